// Package sinktest is the conformance suite every Causeway batch handler
// (sink) runs: the same assertions about what a batch handler must do with
// the messages it is given, checked against the real backend.
package sinktest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// Harness is one fresh instance of a sink under test, writing to a
// destination nobody else uses (a new topic, a new schema).
type Harness[T any] struct {
	// Handle is the sink's batch handler.
	Handle stages.BatchHandler[T]
	// Make returns the i-th message data; different i give different ids.
	Make func(i int) T
	// ID is the id under which a message's data is stored.
	ID func(T) string
	// Stored returns the ids stored in the destination, with their
	// multiplicity, once at least want of them are there (or the deadline
	// passes: then it returns what it found).
	Stored func(ctx context.Context, want int) ([]string, error)
	// Ordered says the destination keeps one batch's messages in order
	// (as one Kafka partition does); Stored then returns them in order.
	Ordered bool
}

// Run runs the conformance suite; newHarness makes a fresh harness for each
// case.
func Run[T any](t *testing.T, newHarness func(t *testing.T) Harness[T]) {
	t.Run("Batch", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := batch(h, 0, 250)
		ptrs := slices.Clone(b.Messages)
		if err := h.Handle(ctx(t), b); err != nil {
			t.Fatalf("HandleBatch: %v", err)
		}
		if !slices.Equal(b.Messages, ptrs) {
			t.Fatalf("HandleBatch changed the batch's message slice")
		}
		for i, m := range b.Messages {
			if m.Failed() {
				t.Fatalf("message %d failed: %v", i, m.Err())
			}
		}
		want := ids(h, 0, 250)
		got := stored(t, h, len(want))
		if !h.Ordered {
			slices.Sort(got)
			slices.Sort(want)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("stored %d ids %v…, want %d ids %v…", len(got), head(got), len(want), head(want))
		}
	})
	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		if err := h.Handle(ctx(t), &stages.Batch[T]{BatchInfo: stages.BatchInfo{Batcher: "sink", Size: 0, Attempt: 1}}); err != nil {
			t.Fatalf("HandleBatch(empty): %v", err)
		}
		if got := stored(t, h, 0); len(got) != 0 {
			t.Fatalf("an empty batch stored %v", got)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		const batches, size = 8, 100
		var wg sync.WaitGroup
		errs := make(chan error, batches)
		for k := range batches {
			wg.Go(func() {
				b := batch(h, k*size, size)
				if err := h.Handle(ctx(t), b); err != nil {
					errs <- err
					return
				}
				for i, m := range b.Messages {
					if m.Failed() {
						errs <- fmt.Errorf("batch %d message %d failed: %w", k, i, m.Err())
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got := stored(t, h, batches*size)
		want := ids(h, 0, batches*size)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("stored %d ids, want %d exactly once each", len(got), len(want))
		}
	})
	t.Run("Topology", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		const n = 1000
		p := topologytest.NewProducer[T]()
		top, err := topology.New(topology.Spec[T]{
			Name:       "sinktest",
			Producer:   topology.ProducerSpec[T]{Producer: p, Keep: stages.Block},
			Processors: topology.ProcessorSpec[T]{Concurrency: 2},
			Batchers: map[string]topology.BatcherSpec[T]{
				"sink": {BatchSize: 64, BatchTimeout: 20 * time.Millisecond, Concurrency: 2, Handle: h.Handle},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		stop := topologytest.Start(t, top)
		data := make([]T, n)
		for i := range data {
			data[i] = h.Make(i)
		}
		acks := p.Push(data...).Await(t, 60*time.Second)
		if len(acks.Successful) != n || len(acks.Failed) != 0 {
			t.Fatalf("acked %d ok and %d failed, want %d ok", len(acks.Successful), len(acks.Failed), n)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if err := topologytest.CheckConservation(top.Stats()); err != nil {
			t.Fatal(err)
		}
		got := stored(t, h, n)
		want := ids(h, 0, n)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("stored %d ids, want %d exactly once each", len(got), len(want))
		}
	})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// batch returns a batch of n messages made from Make(from)...Make(from+n-1).
func batch[T any](h Harness[T], from, n int) *stages.Batch[T] {
	msgs := make([]stages.Message[T], n)
	b := &stages.Batch[T]{BatchInfo: stages.BatchInfo{Batcher: "sink", Size: n, Trigger: stages.TriggerSize, Attempt: 1}}
	for i := range msgs {
		msgs[i].Data = h.Make(from + i)
		b.Messages = append(b.Messages, &msgs[i])
	}
	return b
}

func ids[T any](h Harness[T], from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = h.ID(h.Make(from + i))
	}
	return out
}

func stored[T any](t *testing.T, h Harness[T], want int) []string {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got, err := h.Stored(c, want)
	if err != nil {
		t.Fatalf("reading what the sink stored: %v", err)
	}
	return got
}

func head(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// SliceSource is a pull producer emitting data as demanded, and the
// acknowledger of what it emits: Done is closed once every message has been
// acknowledged. After emitting everything it waits for ctx to end, so a
// benchmark measures the sink, not the drain.
type SliceSource[T any] struct {
	data   []T
	ok     atomic.Int64
	failed atomic.Int64
	done   chan struct{}
}

// NewSliceSource returns a source of data.
func NewSliceSource[T any](data []T) *SliceSource[T] {
	return &SliceSource[T]{data: data, done: make(chan struct{})}
}

// Run emits the data as demand allows.
func (s *SliceSource[T]) Run(ctx context.Context, out *stages.Emitter[T]) error {
	var buf []stages.Message[T]
	for i := 0; i < len(s.data); {
		n, err := out.Demand(ctx)
		if err != nil {
			return nil
		}
		buf = buf[:0]
		for j := i; j < min(i+n, len(s.data)); j++ {
			buf = append(buf, stages.Message[T]{Data: s.data[j], Acker: s})
		}
		if _, err := out.EmitAll(ctx, buf); err != nil {
			return nil
		}
		i += len(buf)
	}
	<-ctx.Done()
	return nil
}

// Ack counts acknowledgements.
func (s *SliceSource[T]) Ack(successful, failed []*stages.Message[T]) {
	ok := s.ok.Add(int64(len(successful)))
	f := s.failed.Add(int64(len(failed)))
	if ok+f == int64(len(s.data)) {
		close(s.done)
	}
}

// Done is closed once every message has been acknowledged.
func (s *SliceSource[T]) Done() <-chan struct{} { return s.done }

// Counts returns how many messages were acknowledged ok and failed.
func (s *SliceSource[T]) Counts() (ok, failed int64) { return s.ok.Load(), s.failed.Load() }
