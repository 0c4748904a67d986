package topology_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

func TestSmoke(t *testing.T) {
	p := topologytest.NewProducer[int]()
	var sum atomic.Int64
	top, err := topology.New(topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 4, Handle: func(ctx context.Context, m *stages.Message[int]) error {
			m.Data *= 2
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{"sum": {BatchSize: 10, BatchTimeout: 10 * time.Millisecond, Handle: func(ctx context.Context, b *stages.Batch[int]) error {
			for _, m := range b.Messages {
				sum.Add(int64(m.Data))
			}
			return nil
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	topologytest.Start(t, top)
	data := make([]int, 1000)
	for i := range data {
		data[i] = i
	}
	acks := p.Push(data...).Await(t, 5*time.Second)
	if len(acks.Successful) != 1000 || sum.Load() != 999*1000 {
		t.Fatalf("got %d ok, sum %d", len(acks.Successful), sum.Load())
	}
	t.Log(top.Describe())
}
