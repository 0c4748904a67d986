package topology_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// flakySink fails every batch while down, fails message 13 permanently, and
// records what it stored.
type flakySink struct {
	down   atomic.Bool
	mu     sync.Mutex
	stored []int
	calls  int
}

var errDown = errors.New("connection refused")

func (s *flakySink) handle(_ context.Context, b *stages.Batch[int]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.down.Load() {
		return errDown
	}
	for _, m := range b.Messages {
		if m.Data == 13 {
			m.Fail(stages.Permanent(errors.New("row refused")))
			continue
		}
		s.stored = append(s.stored, m.Data)
	}
	return nil
}

// OutageBlock holds a batch through a sink outage of any length and retries
// it until the sink takes it; a permanent failure is not retried.
func TestOutageBlockRetriesUntilTheSinkReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &flakySink{}
		sink.down.Store(true)
		log := newAckLog(0)
		top := mustNew(t, topology.Spec[int]{Logger: quietLog,
			Producer:   topology.ProducerSpec[int]{Producer: &countingProducer{n: 100, acker: log}},
			Processors: topology.ProcessorSpec[int]{Concurrency: 2},
			Batchers: map[string]topology.BatcherSpec[int]{"pg": {BatchSize: 10, Concurrency: 2, Handle: sink.handle,
				Outage: stages.OutageBlock, Retry: stages.RetryPolicy{Backoff: 100 * time.Millisecond, MaxBackoff: time.Second}}}})
		done := make(chan error, 1)
		go func() { done <- top.Run(context.Background()) }()
		time.Sleep(10 * time.Minute) // an outage far longer than any retry budget
		s := top.Stats()
		if !s.Batchers[0].Blocked || s.Acked+s.Failed != 0 || s.Batchers[0].Retries < 500 {
			t.Fatalf("during the outage: blocked %v, acked %d, failed %d, retries %d; want blocked, nothing settled, retrying",
				s.Batchers[0].Blocked, s.Acked, s.Failed, s.Batchers[0].Retries)
		}
		sink.down.Store(false)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		s = top.Stats()
		if s.Acked != 99 || s.Failed != 1 || len(sink.stored) != 99 || s.Batchers[0].Blocked {
			t.Fatalf("after the outage: acked %d, failed %d, stored %d, blocked %v; want 99, 1 (the permanent one), 99, false",
				s.Acked, s.Failed, len(sink.stored), s.Batchers[0].Blocked)
		}
		if err := log.fail[13]; !stages.IsPermanent(err) {
			t.Fatalf("message 13 failed with %v, want the permanent error", err)
		}
	})
}

// A hard stop ends OutageBlock's retries: the held messages fail with the
// sink's transient error (a pull source then does not commit them).
func TestOutageBlockEndsAtHardStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &flakySink{}
		sink.down.Store(true)
		top := mustNew(t, topology.Spec[int]{Logger: quietLog, ShutdownTimeout: 5 * time.Second,
			Producer:   topology.ProducerSpec[int]{Producer: stages.FromSlice(ints(20)...)},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1},
			Batchers:   map[string]topology.BatcherSpec[int]{"pg": {BatchSize: 10, Handle: sink.handle, Outage: stages.OutageBlock}}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- top.Run(ctx) }()
		time.Sleep(time.Minute)
		cancel()
		err := <-done
		if !errors.Is(err, stages.ErrShutdownTimeout) {
			t.Fatalf("Run = %v, want a shutdown timeout", err)
		}
		if s := top.Stats(); s.Acked != 0 || s.Failed+s.InFlight != 20 {
			t.Fatalf("acked %d, failed %d, in flight %d: the held messages must not count as stored", s.Acked, s.Failed, s.InFlight)
		}
	})
}
