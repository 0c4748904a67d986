package gostreams_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reugn/go-streams/extension"
	"github.com/reugn/go-streams/flow"
	"go.uber.org/goleak"

	"github.com/causeway-go/causeway/producers/gostreams"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSourceFeedsTopologyAndConvertsOrFails(t *testing.T) {
	ch := make(chan any, 100)
	for i := range 100 {
		if i%10 == 7 {
			ch <- fmt.Sprintf("x%d", i) // not a number
		} else {
			ch <- strconv.Itoa(i)
		}
	}
	close(ch)
	src := gostreams.NewSource(extension.NewChanSource(ch), func(v any) (int, error) { return strconv.Atoi(v.(string)) })
	var mu sync.Mutex
	var got []int
	var failed []string
	top, err := topology.New(topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: src},
		Batchers: map[string]topology.BatcherSpec[int]{"sum": {BatchSize: 16, Handle: func(_ context.Context, b *stages.Batch[int]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range b.Messages {
				got = append(got, m.Data)
			}
			return nil
		}}},
		HandleFailed: func(_ context.Context, ms []*stages.Message[int]) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range ms {
				failed = append(failed, m.Err().Error())
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := top.Run(context.Background()); err != nil { // ends when the channel is closed and drained
		t.Fatal(err)
	}
	slices.Sort(got)
	if len(got) != 90 || got[0] != 0 || got[89] != 99 {
		t.Fatalf("got %d numbers", len(got))
	}
	slices.Sort(failed)
	if len(failed) != 10 || failed[9] != `gostreams: element 97 (x97): strconv.Atoi: parsing "x97": invalid syntax` {
		t.Fatalf("failures %q", failed)
	}
	if err := topologytest.CheckConservation(top.Stats()); err != nil {
		t.Fatal(err)
	}
}

// The source reads only what the topology asks for: the rest stays in the
// go-streams channel.
func TestSourceReadsOnlyOnDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := make(chan any, 1000)
		for i := range 1000 {
			ch <- i
		}
		gate := make(chan struct{})
		top, err := topology.New(topology.Spec[int]{
			Producer: topology.ProducerSpec[int]{Producer: gostreams.NewSource[int](extension.NewChanSource(ch), nil)},
			Processors: topology.ProcessorSpec[int]{Concurrency: 2, MaxDemand: 10, Handle: func(ctx context.Context, _ *stages.Message[int]) error {
				select {
				case <-gate:
				case <-ctx.Done():
				}
				return nil
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- top.Run(ctx) }()
		synctest.Wait() // every goroutine blocked: processors on the gate, the source on demand
		if n, e := len(ch), top.Stats().Producer.Emitted; n != 980 || e != 20 {
			t.Fatalf("%d elements left in the channel, %d emitted; want 980 and 20: two processors asked for 10 each", n, e)
		}
		cancel()
		close(gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := topologytest.CheckConservation(top.Stats()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOutletFeedsGoStreams(t *testing.T) {
	outlet := gostreams.NewOutlet[int](0, false)
	sinkCh := make(chan any)
	var received []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := range sinkCh {
			received = append(received, v.([]int)...)
		}
	}()
	go outlet.Via(flow.NewMap(func(i int) int { return i * 10 }, 1)).Via(flow.NewBatch[int](7, time.Hour)).To(extension.NewChanSink(sinkCh))
	top, err := topology.New(topology.Spec[int]{
		Producer:   topology.ProducerSpec[int]{Producer: stages.FromSlice(makeRange(500)...)},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1},
		Batchers:   map[string]topology.BatcherSpec[int]{"out": {BatchSize: 50, Handle: outlet.HandleBatch}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := top.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	outlet.Close()
	<-done
	// One processor and one batch processor keep the order.
	want := make([]int, 500)
	for i := range want {
		want[i] = i * 10
	}
	if !slices.Equal(received, want) {
		t.Fatalf("go-streams received %d elements, want 0..4990 in order", len(received))
	}
	if s := top.Stats(); s.Acked != 500 {
		t.Fatalf("acked %d", s.Acked)
	}
}

func TestOutletFailsWhatItCouldNotHandOver(t *testing.T) {
	outlet := gostreams.NewOutlet[int](0, false) // nobody reads
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &stages.Batch[int]{Messages: []*stages.Message[int]{{Data: 1}, {Data: 2}}}
	if err := outlet.HandleBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, m := range b.Messages {
		if !errors.Is(m.Err(), context.Canceled) {
			t.Fatalf("message %d: %v, want context.Canceled", m.Data, m.Err())
		}
	}
	outlet.Close()
}

func makeRange(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
