package kafka_test

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/topology"
)

// BenchmarkKafkaSource measures records/s consumed from kfake (3 brokers,
// 4 partitions, ~400-byte values) by one group member through a topology
// with a no-op batcher, acknowledged and committed: the clock runs from the
// first batch handled (after the group join) until the consumer has closed
// with every offset committed.
func BenchmarkKafkaSource(b *testing.B) {
	c := kafkatest.Start(b, kfake.NumBrokers(3), kfake.SeedTopics(4, "events"))
	value := []byte(strings.Repeat("x", 400))
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "events", Key: []byte(strconv.Itoa(i)), Value: value}
	}
	c.Produce(b, recs...)
	ends := endOffsetsB(b, c)
	cons, err := kafka.New(kafka.Config[[]byte]{
		Brokers: c.Brokers, GroupID: "bench", Topics: []string{"events"},
		Properties: fastGroup, Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	var first atomic.Pointer[time.Time]
	done := make(chan struct{})
	top, err := topology.New(topology.Spec[[]byte]{
		Producer:   topology.ProducerSpec[[]byte]{Producer: cons, Keep: stages.Block},
		Processors: topology.ProcessorSpec[[]byte]{Concurrency: 2, MaxDemand: 1000},
		Batchers: map[string]topology.BatcherSpec[[]byte]{
			"noop": {BatchSize: 1000, BatchTimeout: 10 * time.Millisecond, Concurrency: 2,
				Handle: func(_ context.Context, batch *stages.Batch[[]byte]) error {
					now := time.Now()
					first.CompareAndSwap(nil, &now)
					if acked.Add(int64(len(batch.Messages))) == int64(b.N) {
						close(done)
					}
					return nil
				}},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	runErr := make(chan error, 1)
	go func() { runErr <- top.Run(ctx) }()
	<-done
	cancel()
	if err := <-runErr; err != nil { // drains, then closes cons: final commit
		b.Fatal(err)
	}
	// From the first batch, so the group join (a fixed cost) is left out.
	elapsed := time.Since(*first.Load())
	b.StopTimer()
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	got, err := kafkatest.CommittedOffsets(cctx, c.Client(b), "bench", "events")
	if err != nil {
		b.Fatal(err)
	}
	maps.DeleteFunc(ends, func(_ int32, end int64) bool { return end == 0 }) // nothing to commit there
	maps.DeleteFunc(got, func(_ int32, off int64) bool { return off < 0 })
	if !maps.Equal(got, ends) {
		b.Fatalf("committed %v, want %v", got, ends)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}

func endOffsetsB(b *testing.B, c *kafkatest.Cluster) map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := kafkatest.EndOffsets(ctx, c.Client(b), "events")
	if err != nil {
		b.Fatal(err)
	}
	return got
}
