package topology_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// A pull producer is told exactly the processors' outstanding demand: the
// first MaxDemand, then MaxDemand-MinDemand each time a processor's pending
// demand falls to MinDemand. Processors never hold more than they asked for.
func TestDemandFlowsUpstream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := make(chan struct{})
		var handled atomic.Int64
		p := &countingProducer{n: 1 << 30}
		top := mustNew(t, topology.Spec[int]{
			Producer: topology.ProducerSpec[int]{Producer: p},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1, MaxDemand: 10, MinDemand: 6,
				Handle: func(ctx context.Context, m *stages.Message[int]) error {
					select {
					case <-gate:
					case <-ctx.Done():
					}
					handled.Add(1)
					return nil
				}},
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- top.Run(ctx) }()
		emitted := func() int64 { return top.Stats().Producer.Emitted }
		synctest.Wait()
		if got := emitted(); got != 10 {
			t.Fatalf("emitted %d before any message was handled, want MaxDemand = 10", got)
		}
		for i := 1; i <= 20; i++ {
			gate <- struct{}{}
			synctest.Wait()
			// Demand is topped up when pending falls to MinDemand: after
			// 4, 8, 12, ... messages, 4 more each time.
			want := int64(10 + 4*(i/4))
			if got := emitted(); got != want {
				t.Fatalf("after %d handled: emitted %d, want %d", i, got, want)
			}
			if held := emitted() - handled.Load(); held > 10 {
				t.Fatalf("processor holds %d messages, more than MaxDemand", held)
			}
		}
		cancel()
		close(gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, d := range p.demands {
			want := 4
			if i == 0 {
				want = 10
			}
			if d != want {
				t.Fatalf("demand %d was %d, want %d (all: %v)", i, d, want, p.demands)
			}
		}
		if err := topologytest.CheckConservation(top.Stats()); err != nil {
			t.Fatal(err)
		}
	})
}

// A push producer 10x faster than the processors: memory stays bounded by
// BufferSize, every drop is counted and offered to OnDrop, and what is not
// dropped is acknowledged.
func TestBoundedBufferUnderFastPushProducer(t *testing.T) {
	for _, keep := range []stages.Keep{stages.KeepLast, stages.KeepFirst} {
		t.Run(keep.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const total, bufSize = 10_000, 100
				var onDrop atomic.Int64
				var lastSeen atomic.Int64
				// Each millisecond's 10 messages arrive in one EmitAll: emitted
				// one by one, a processor taking a message between two Emits
				// of the same instant could make room for the newest one, and
				// KeepFirst would rightly keep it.
				push := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
					burst := make([]stages.Message[int], 10)
					for i := 0; i < total; i += 10 {
						for j := range burst {
							burst[j] = stages.Message[int]{Data: i + j}
						}
						if _, err := out.EmitAll(ctx, burst); err != nil {
							return nil
						}
						time.Sleep(time.Millisecond) // 10 messages per ms
					}
					return nil
				})
				top := mustNew(t, topology.Spec[int]{
					Producer: topology.ProducerSpec[int]{Producer: push, BufferSize: bufSize, Keep: keep,
						OnDrop: func(d []stages.Message[int]) { onDrop.Add(int64(len(d))) }},
					Processors: topology.ProcessorSpec[int]{Concurrency: 1, MaxDemand: 2, MinDemand: 1,
						Handle: func(ctx context.Context, m *stages.Message[int]) error {
							time.Sleep(time.Millisecond) // 1 message per ms
							lastSeen.Store(int64(m.Data))
							return nil
						}},
				})
				if err := top.Run(context.Background()); err != nil {
					t.Fatal(err)
				}
				s := top.Stats()
				if s.Producer.MaxBuffered > bufSize {
					t.Fatalf("buffer held %d messages, more than BufferSize %d", s.Producer.MaxBuffered, bufSize)
				}
				if s.Producer.Emitted != total || s.Dropped < total*8/10 || s.Dropped != onDrop.Load() {
					t.Fatalf("emitted %d, dropped %d (OnDrop saw %d); want %d emitted and most dropped, all offered to OnDrop",
						s.Producer.Emitted, s.Dropped, onDrop.Load(), total)
				}
				if err := topologytest.CheckConservation(s); err != nil {
					t.Fatal(err)
				}
				// KeepLast keeps the newest, so the last message made it;
				// KeepFirst drops the newest.
				if last := lastSeen.Load(); (keep == stages.KeepLast) != (last == total-1) {
					t.Fatalf("%v: last message handled was %d; stats %+v", keep, last, s)
				}
			})
		})
	}
}

func TestProcessorPanicFailsOnlyThatMessage(t *testing.T) {
	p := topologytest.NewProducer[int]()
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1, Handle: func(_ context.Context, m *stages.Message[int]) error {
			if m.Data%10 == 0 {
				panic(fmt.Sprintf("boom %d", m.Data))
			}
			m.Data *= 2
			return nil
		}},
	})
	run(t, top)
	acks := p.Push(ints(100)...).Await(t, wait)
	if len(acks.Failed) != 10 || len(acks.Successful) != 90 {
		t.Fatalf("%d failed, %d ok; want 10 and 90", len(acks.Failed), len(acks.Successful))
	}
	for _, m := range acks.Failed {
		var pe *stages.PanicError
		if !errors.As(m.Err(), &pe) || pe.Value != fmt.Sprintf("boom %d", m.Data) || len(pe.Stack) == 0 {
			t.Fatalf("message %d failed with %v, want its panic with a stack", m.Data, m.Err())
		}
	}
	for _, m := range acks.Successful {
		if m.Data%2 != 0 || m.Data%20 == 0 {
			t.Fatalf("successful message %d was not handled", m.Data)
		}
	}
	if s := top.Stats().Processors; s.Panics != 10 || s.Failed != 10 || s.Received != 100 {
		t.Fatalf("processor stats %+v", s)
	}
}

// PartitionBy keeps each key's messages in order through 8 processors and a
// partitioned batcher with 4 batch processors.
func TestPartitionByKeepsPerKeyOrder(t *testing.T) {
	const keys, perKey = 100, 1000
	type kv struct{ Key, Seq int }
	byKey := func(m *stages.Message[kv]) uint64 { return uint64(m.Data.Key) }
	var procSeen [keys][]int // each key is touched by one processor only
	var mu sync.Mutex
	batchSeen := make(map[int][]int)
	p := topologytest.NewProducer[kv]()
	top := mustNew(t, topology.Spec[kv]{
		Producer: topology.ProducerSpec[kv]{Producer: p},
		Processors: topology.ProcessorSpec[kv]{Concurrency: 8, PartitionBy: byKey,
			Handle: func(_ context.Context, m *stages.Message[kv]) error {
				procSeen[m.Data.Key] = append(procSeen[m.Data.Key], m.Data.Seq)
				return nil
			}},
		Batchers: map[string]topology.BatcherSpec[kv]{"out": {BatchSize: 50, Concurrency: 4, PartitionBy: byKey,
			Handle: func(_ context.Context, b *stages.Batch[kv]) error {
				mu.Lock()
				defer mu.Unlock()
				for _, m := range b.Messages {
					if int(byKey(m))%4 != b.Partition {
						return fmt.Errorf("key %d in partition %d", m.Data.Key, b.Partition)
					}
					batchSeen[m.Data.Key] = append(batchSeen[m.Data.Key], m.Data.Seq)
				}
				return nil
			}}},
	})
	run(t, top)
	data := make([]kv, 0, keys*perKey)
	for s := range perKey {
		for k := range keys {
			data = append(data, kv{k, s})
		}
	}
	acks := p.Push(data...).Await(t, 30*time.Second)
	if len(acks.Failed) != 0 {
		t.Fatalf("%d failed: %v", len(acks.Failed), acks.Failed[0].Err())
	}
	mu.Lock()
	defer mu.Unlock()
	for k := range keys {
		for stage, seen := range map[string][]int{"processor": procSeen[k], "batch": batchSeen[k]} {
			if len(seen) != perKey {
				t.Fatalf("key %d: %s saw %d messages, want %d", k, stage, len(seen), perKey)
			}
			for i, s := range seen {
				if s != i {
					t.Fatalf("key %d: %s saw seq %d at position %d", k, stage, s, i)
				}
			}
		}
	}
}

func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := topologytest.NewProducer[int]()
		var times []time.Duration
		var mu sync.Mutex
		start := time.Now()
		top := mustNew(t, topology.Spec[int]{
			Producer: topology.ProducerSpec[int]{Producer: p, RateLimit: stages.RateLimit{Messages: 10, Interval: time.Second}},
			Processors: topology.ProcessorSpec[int]{Concurrency: 2, Handle: func(context.Context, *stages.Message[int]) error {
				mu.Lock()
				times = append(times, time.Since(start))
				mu.Unlock()
				return nil
			}},
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- top.Run(ctx) }()
		acks := p.Push(ints(35)...)
		<-acks.Done()
		if elapsed := time.Since(start); elapsed != 3*time.Second {
			t.Fatalf("35 messages at 10/s took %v, want 3s", elapsed)
		}
		perSecond := map[time.Duration]int{}
		for _, d := range times {
			perSecond[d.Truncate(time.Second)]++
		}
		for sec, n := range perSecond {
			if n > 10 {
				t.Fatalf("%d messages in second %v, limit 10", n, sec)
			}
		}
		// Raise the limit while running.
		top.SetRateLimit(stages.RateLimit{Messages: 1000, Interval: time.Second})
		if got := top.Describe().Producer.RateLimit.Messages; got != 1000 {
			t.Fatalf("Describe shows limit %d after SetRateLimit", got)
		}
		mark := time.Now()
		<-p.Push(ints(500)...).Done()
		if d := time.Since(mark); d != 0 {
			t.Fatalf("500 messages under a 1000/s limit took %v, want no wait", d)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// Cancelling in the middle of a 100,000-message run: every message the
// producer emitted is acknowledged before Run returns, and open batches are
// flushed with TriggerDrain.
func TestDrainAcknowledgesEverything(t *testing.T) {
	const n = 100_000
	acks := newAckLog(0)
	p := &countingProducer{n: n, acker: acks}
	var drained atomic.Int64
	var handled atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 4, Handle: func(_ context.Context, m *stages.Message[int]) error {
			if handled.Add(1) == n/2 {
				cancel()
			}
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{"slow": {BatchSize: 1000, BatchTimeout: time.Hour, Concurrency: 2,
			Handle: func(_ context.Context, b *stages.Batch[int]) error {
				if b.Trigger == stages.TriggerDrain {
					drained.Add(int64(len(b.Messages)))
				}
				return nil
			}}},
	})
	if err := top.Run(ctx); err != nil {
		t.Fatal(err)
	}
	s := top.Stats()
	if s.Producer.Emitted <= n/2 || s.Producer.Emitted == n {
		t.Fatalf("emitted %d: the cancel should land mid-run", s.Producer.Emitted)
	}
	if err := topologytest.CheckConservation(s); err != nil {
		t.Fatal(err)
	}
	acks.mu.Lock()
	defer acks.mu.Unlock()
	if int64(len(acks.ok)) != s.Producer.Emitted || len(acks.fail) != 0 {
		t.Fatalf("acknowledger saw %d ok + %d failed, producer emitted %d", len(acks.ok), len(acks.fail), s.Producer.Emitted)
	}
	for id, times := range acks.ok {
		if times != 1 {
			t.Fatalf("message %d acknowledged %d times", id, times)
		}
	}
	if drained.Load() == 0 {
		t.Fatal("no batch was flushed by the drain: partial batches were lost or flushed another way")
	}
}

func TestShutdownTimeoutReportsWhatWasLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := topologytest.NewProducer[int]()
		started := make(chan struct{})
		top := mustNew(t, topology.Spec[int]{
			Producer:        topology.ProducerSpec[int]{Producer: p},
			Processors:      topology.ProcessorSpec[int]{Concurrency: 1},
			ShutdownTimeout: 5 * time.Second,
			Batchers: map[string]topology.BatcherSpec[int]{"stuck": {BatchSize: 10,
				Handle: func(ctx context.Context, b *stages.Batch[int]) error {
					close(started)
					<-ctx.Done() // stuck until the hard stop
					return ctx.Err()
				}}},
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- top.Run(ctx) }()
		p.Push(ints(25)...)
		<-started
		start := time.Now()
		cancel()
		err := <-done
		if !errors.Is(err, stages.ErrShutdownTimeout) {
			t.Fatalf("Run returned %v, want ErrShutdownTimeout", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Fatalf("Run returned %v after cancel, want the 5s ShutdownTimeout", d)
		}
		// The stuck batch's handler returned ctx's error at the hard stop,
		// so its 10 messages were acknowledged as failed; the other 15
		// were left in the batcher.
		if want := "15 messages not acknowledged"; !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
		if s := top.Stats(); s.InFlight != 15 || s.Failed != 10 || s.Acked != 0 {
			t.Fatalf("stats after timeout: %d in flight, %d failed, %d acked; want 15, 10, 0", s.InFlight, s.Failed, s.Acked)
		}
	})
}

func TestProducerErrorStopsAndDrains(t *testing.T) {
	boom := errors.New("source broke")
	acks := newAckLog(0)
	prod := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
		for i := range 5 {
			out.Emit(ctx, stages.Message[int]{Data: i, Acker: acks})
		}
		return boom
	})
	rec := &recorder[int]{}
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: prod},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 100, BatchTimeout: time.Hour, Handle: rec.handle}},
	})
	err := top.Run(context.Background())
	if !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want the producer's error", err)
	}
	if len(acks.ok) != 5 {
		t.Fatalf("%d of the 5 emitted messages acknowledged before Run returned", len(acks.ok))
	}
	if b := rec.snapshot(); len(b) != 1 || b[0].info.Trigger != stages.TriggerDrain {
		t.Fatalf("batches %+v, want one drain-flushed batch", b)
	}
}

func TestProducerPanicIsAnError(t *testing.T) {
	prod := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error { panic("bad producer") })
	top := mustNew(t, topology.Spec[int]{Producer: topology.ProducerSpec[int]{Producer: prod}})
	var pe *stages.PanicError
	if err := top.Run(context.Background()); !errors.As(err, &pe) || pe.Value != "bad producer" {
		t.Fatalf("Run returned %v, want the producer's panic", err)
	}
}

func TestRunTwice(t *testing.T) {
	p := topologytest.NewProducer[int]()
	p.Close()
	top := mustNew(t, topology.Spec[int]{Producer: topology.ProducerSpec[int]{Producer: p}})
	if err := top.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := top.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// Batch timeouts firing while the topology drains: the timer's flush and
// the drain's must not race (a timer flush once hit a channel the drain had
// closed). Many short runs with 1µs timeouts, stopped at varied moments.
func TestDrainRacesBatchTimeouts(t *testing.T) {
	for i := range 100 {
		acks := newAckLog(0)
		p := &countingProducer{n: 1 << 30, acker: acks}
		top := mustNew(t, topology.Spec[int]{
			Producer:   topology.ProducerSpec[int]{Producer: p},
			Processors: topology.ProcessorSpec[int]{Concurrency: 2},
			Batchers: map[string]topology.BatcherSpec[int]{
				"a": {BatchSize: 1000, BatchTimeout: time.Microsecond, Concurrency: 2,
					Handle: func(context.Context, *stages.Batch[int]) error { return nil }},
			},
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- top.Run(ctx) }()
		for top.Stats().Acked < int64(i*10) {
			runtime.Gosched()
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := topologytest.CheckConservation(top.Stats()); err != nil {
			t.Fatal(err)
		}
	}
}
