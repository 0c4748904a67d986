package topology_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
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

func intCodec() stages.SpillConfig[int] {
	return stages.SpillConfig[int]{
		Encode: func(m *stages.Message[int]) ([]byte, error) { return []byte(strconv.Itoa(m.Data)), nil },
		Decode: func(b []byte) (int, error) { return strconv.Atoi(string(b)) },
	}
}

// OutageSpill acknowledges what a down sink cannot take as held in the
// spill, keeps the producer flowing, and replays the spill in order when
// the sink returns; a permanent failure in the replay reaches HandleFailed.
func TestOutageSpillHoldsAndReplaysInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &flakySink{}
		sink.down.Store(true)
		sp := intCodec()
		sp.Dir = t.TempDir()
		var mu sync.Mutex
		var deadLettered []int
		p := topologytest.NewProducer[int]()
		top := mustNew(t, topology.Spec[int]{Logger: quietLog,
			Producer:   topology.ProducerSpec[int]{Producer: p},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1},
			Batchers: map[string]topology.BatcherSpec[int]{"pg": {BatchSize: 10, Handle: sink.handle,
				Outage: stages.OutageSpill, Spill: sp, Retry: stages.RetryPolicy{Backoff: time.Second, MaxBackoff: time.Second}}},
			HandleFailed: func(_ context.Context, failed []*stages.Message[int]) {
				mu.Lock()
				defer mu.Unlock()
				for _, m := range failed {
					deadLettered = append(deadLettered, m.Data)
				}
			}})
		done := make(chan error, 1)
		go func() { done <- top.Run(context.Background()) }()
		p.Push(ints(100)...)
		time.Sleep(time.Minute)
		s := top.Stats()
		if s.Acked != 100 || s.Batchers[0].Spill == nil || s.Batchers[0].Spill.Records != 100 || len(sink.stored) != 0 {
			t.Fatalf("sink down: acked %d, spill %+v, stored %d; want all 100 held in the spill", s.Acked, s.Batchers[0].Spill, len(sink.stored))
		}
		sink.down.Store(false)
		time.Sleep(time.Minute)
		p.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := append(ints(13), ints(100)[14:]...)
		if !slices.Equal(sink.stored, want) {
			t.Fatalf("the sink stored %v, want 0..99 but 13, in order", sink.stored)
		}
		sp2 := top.Stats().Batchers[0].Spill
		if sp2.Records != 0 || sp2.Replayed != 99 || sp2.ReplayFailed != 1 || !slices.Equal(deadLettered, []int{13}) {
			t.Fatalf("spill after the outage %+v, HandleFailed saw %v; want empty, 99 replayed, 13 failed", sp2, deadLettered)
		}
	})
}

// A spill left by a run whose sink never came back (a drain gives up the
// replay at the first refusal: the spill is on disk) is replayed first by
// the next run, before anything new.
func TestOutageSpillReplaysFirstAfterRestart(t *testing.T) {
	dir := t.TempDir()
	run := func(sink *flakySink, data []int, cancelAfterHeld bool) *topology.Topology[int] {
		sp := intCodec()
		sp.Dir = dir
		top := mustNew(t, topology.Spec[int]{Logger: quietLog, ShutdownTimeout: time.Second,
			Producer:   topology.ProducerSpec[int]{Producer: stages.FromSlice(data...)},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1},
			Batchers: map[string]topology.BatcherSpec[int]{"pg": {BatchSize: 5, BatchTimeout: time.Millisecond, Handle: sink.handle,
				Outage: stages.OutageSpill, Spill: sp, Retry: stages.RetryPolicy{Backoff: time.Millisecond, MaxBackoff: time.Millisecond}}}})
		if err := top.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		return top
	}
	down := &flakySink{}
	down.down.Store(true)
	first := run(down, []int{100, 101, 102, 103, 104, 105, 106}, true)
	if s := first.Stats(); s.Acked != 7 || s.Batchers[0].Spill.Records != 7 {
		t.Fatalf("first run: acked %d, spill %+v; want 7 held", s.Acked, s.Batchers[0].Spill)
	}
	up := &flakySink{}
	run(up, []int{1, 2, 3}, false)
	if want := []int{100, 101, 102, 103, 104, 105, 106, 1, 2, 3}; !slices.Equal(up.stored, want) {
		t.Fatalf("second run stored %v, want the spill first: %v", up.stored, want)
	}
}

// stuckSink's handler does not return while stuck (a client waiting out an
// outage instead of failing); then it stores every batch.
type stuckSink struct {
	stuck  chan struct{} // closed when the sink answers again
	mu     sync.Mutex
	stored []int
}

func (s *stuckSink) handle(ctx context.Context, b *stages.Batch[int]) error {
	select {
	case <-s.stuck:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range b.Messages {
		s.stored = append(s.stored, m.Data)
	}
	return nil
}

// A spilling batcher whose handler stalls (every call inside it, none
// returning for StallTimeout) puts the batches queued behind it in the
// spill: the other batcher keeps taking every message meanwhile, nothing
// is dropped, and once the sink answers everything reaches it exactly once.
func TestOutageSpillTakesOverFromAStalledSink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &stuckSink{stuck: make(chan struct{})}
		var unstick sync.Once
		defer unstick.Do(func() { close(sink.stuck) }) // a failed check must not leave the topology stuck
		var other atomic.Int64
		sp := intCodec()
		sp.Dir = t.TempDir()
		sp.StallTimeout = time.Second
		p := topologytest.NewProducer[int]()
		top := mustNew(t, topology.Spec[int]{Logger: quietLog,
			Producer: topology.ProducerSpec[int]{Producer: p, BufferSize: 50, Keep: stages.KeepLast},
			Processors: topology.ProcessorSpec[int]{Concurrency: 2, Handle: func(_ context.Context, m *stages.Message[int]) error {
				m.Route("kafka", "pg")
				return nil
			}},
			Batchers: map[string]topology.BatcherSpec[int]{
				"kafka": {BatchSize: 10, Concurrency: 2, Handle: sink.handle, Outage: stages.OutageSpill, Spill: sp},
				"pg": {BatchSize: 10, Handle: func(_ context.Context, b *stages.Batch[int]) error {
					other.Add(int64(len(b.Messages)))
					return nil
				}},
			},
		})
		done := make(chan error, 1)
		go func() { done <- top.Run(context.Background()) }()
		const n = 2000
		for i := range n {
			p.Push(i)
			time.Sleep(5 * time.Millisecond) // 200/s for 10s, far more than the buffer holds
		}
		time.Sleep(2 * time.Second) // the last partial batch's timeout
		synctest.Wait()
		if got := other.Load(); got != n {
			t.Fatalf("the other batcher took %d of %d messages while the sink stalled", got, n)
		}
		s := top.Stats()
		if s.Dropped != 0 || s.Batchers[0].Spill == nil || s.Batchers[0].Spill.Spilled == 0 {
			t.Fatalf("dropped %d, spill %+v: want nothing dropped and the stalled sink's batches spilled", s.Dropped, s.Batchers[0].Spill)
		}
		unstick.Do(func() { close(sink.stuck) })
		p.Close()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		slices.Sort(sink.stored)
		if len(sink.stored) != n || sink.stored[0] != 0 || sink.stored[n-1] != n-1 || len(slices.Compact(sink.stored)) != n {
			t.Fatalf("the sink got %d messages (want each of %d once)", len(sink.stored), n)
		}
		if s := top.Stats(); s.Acked != n || s.Dropped != 0 {
			t.Fatalf("acked %d, dropped %d; want %d, 0", s.Acked, s.Dropped, n)
		}
	})
}
