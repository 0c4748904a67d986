package topology_test

// One test per defect of the issue "the core never loses, stalls or
// crashes", each named after what now holds.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

var quietLog = slog.New(slog.DiscardHandler)

func noopBatch[T any](context.Context, *stages.Batch[T]) error { return nil }

// runToEnd runs top with a background context and fails the test unless Run
// returns nil within wait and every message is accounted for.
func runToEnd[T any](t *testing.T, top *topology.Topology[T]) stages.Stats {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- top.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatalf("Run did not return in %v: %+v", wait, top.Stats())
	}
	s := top.Stats()
	if err := topologytest.CheckConservation(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// Defect 1: a panicking SizeFunc or batcher PartitionBy fails its message;
// the process and the batcher live on.
func TestBatcherFunctionPanicsFailTheirMessage(t *testing.T) {
	for _, which := range []string{"SizeFunc", "PartitionBy"} {
		t.Run(which, func(t *testing.T) {
			log := newAckLog(10)
			boom := func(m *stages.Message[int]) {
				if m.Data == 3 {
					panic(which + " bug")
				}
			}
			spec := topology.BatcherSpec[int]{BatchSize: 4, BatchTimeout: 10 * time.Millisecond, Concurrency: 2, Handle: noopBatch[int]}
			if which == "SizeFunc" {
				spec.SizeFunc = func(m *stages.Message[int]) int { boom(m); return 1 }
			} else {
				spec.PartitionBy = func(m *stages.Message[int]) uint64 { boom(m); return uint64(m.Data) }
			}
			top := mustNew(t, topology.Spec[int]{Logger: quietLog,
				Producer:   topology.ProducerSpec[int]{Producer: &countingProducer{n: 10, acker: log}},
				Processors: topology.ProcessorSpec[int]{Concurrency: 2},
				Batchers:   map[string]topology.BatcherSpec[int]{"b": spec}})
			s := runToEnd(t, top)
			log.await(t)
			var perr *stages.PanicError
			if err := log.fail[3]; !errors.As(err, &perr) || len(perr.Stack) == 0 || len(log.fail) != 1 || len(log.ok) != 9 {
				t.Fatalf("failed %v (message 3: %v), ok %d; want only 3 failed, with a PanicError and its stack", log.fail, err, len(log.ok))
			}
			if b := s.Batchers[0]; b.Failed != 1 || b.Acked != 9 || s.Failed != 1 {
				t.Fatalf("stats: batcher %+v, topology failed %d; want 1 failed, 9 acked", b, s.Failed)
			}
		})
	}
}

// valueAcker is a value type holding a slice: == on it panics.
type valueAcker struct {
	tags  []string
	calls *atomic.Int64
	n     *atomic.Int64
}

func (v valueAcker) Ack(ok, failed []*stages.Message[int]) {
	v.calls.Add(1)
	v.n.Add(int64(len(ok) + len(failed)))
}

// Defect 2: an acknowledger of any type works; one boxed value shared by
// messages is still told once per batch.
func TestUncomparableAcknowledger(t *testing.T) {
	var calls, n atomic.Int64
	var shared stages.Acknowledger[int] = valueAcker{tags: []string{"x"}, calls: &calls, n: &n}
	msgs := make([]stages.Message[int], 40)
	for i := range msgs {
		msgs[i] = stages.Message[int]{Data: i, Acker: shared}
		if i%2 == 1 { // a separately boxed copy of the same value
			msgs[i].Acker = valueAcker{tags: []string{"x"}, calls: &calls, n: &n}
		}
	}
	top := mustNew(t, topology.Spec[int]{Logger: quietLog,
		Producer: topology.ProducerSpec[int]{Producer: stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
			_, err := out.EmitAll(ctx, msgs)
			return err
		})},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1, MaxDemand: 40},
		Batchers:   map[string]topology.BatcherSpec[int]{"b": {BatchSize: 40, Handle: noopBatch[int]}}})
	runToEnd(t, top)
	if n.Load() != 40 {
		t.Fatalf("acknowledgers told of %d of 40 messages", n.Load())
	}
	// 20 messages share one boxed value (one call); the 20 others each have
	// their own copy, which cannot be compared, so each is told alone.
	if calls.Load() != 21 {
		t.Fatalf("%d Ack calls, want 21", calls.Load())
	}
}

// Defects 3 and 4: SetRateLimit applies at once, wakes a processor waiting
// out the old interval, and rejects what New rejects.
func TestSetRateLimitAppliesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var at []time.Duration
		start := time.Now()
		limit := stages.RateLimit{Messages: 1, Interval: 5 * time.Second}
		top := mustNew(t, topology.Spec[int]{Logger: quietLog,
			Producer: topology.ProducerSpec[int]{Producer: stages.FromSlice(1, 2, 3), RateLimit: limit},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1, Handle: func(context.Context, *stages.Message[int]) error {
				mu.Lock()
				at = append(at, time.Since(start))
				mu.Unlock()
				return nil
			}}})
		done := make(chan error, 1)
		go func() { done <- top.Run(context.Background()) }()
		time.Sleep(300 * time.Millisecond)
		if err := top.SetRateLimit(stages.RateLimit{Messages: 0, Interval: time.Second}); err == nil {
			t.Fatal("SetRateLimit accepted 0 messages per second")
		}
		if got := top.Describe().Producer.RateLimit; got != limit {
			t.Fatalf("an invalid SetRateLimit changed the limit to %+v", got)
		}
		if err := top.SetRateLimit(stages.RateLimit{}); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, 300 * time.Millisecond, 300 * time.Millisecond}
		if !slices.Equal(at, want) {
			t.Fatalf("handled at %v, want %v (limit lifted at 300ms)", at, want)
		}
	})
}

// Defect 3: a drain is never held by a rate-limit wait, even one longer
// than ShutdownTimeout.
func TestDrainIgnoresRateLimitWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newAckLog(0)
		top := mustNew(t, topology.Spec[int]{Logger: quietLog, ShutdownTimeout: time.Second,
			Producer: topology.ProducerSpec[int]{Producer: &countingProducer{n: 5, acker: log},
				RateLimit: stages.RateLimit{Messages: 1, Interval: time.Minute}, Keep: stages.Block},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- top.Run(ctx) }()
		time.Sleep(time.Second)
		cancel()
		start := time.Now()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("drain took %v, waiting for the rate limit", d)
		}
		s := top.Stats()
		if err := topologytest.CheckConservation(s); err != nil {
			t.Fatal(err)
		}
		if s.Acked != s.Producer.Emitted || s.Acked < 1 {
			t.Fatalf("acked %d of %d emitted", s.Acked, s.Producer.Emitted)
		}
	})
}

// Defect 5: while the rate limit is closed a pull producer is told no
// demand, so it never fetches more than the limit lets out.
func TestRateLimitedDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &countingProducer{n: 1000}
		top := mustNew(t, topology.Spec[int]{Logger: quietLog,
			Producer:   topology.ProducerSpec[int]{Producer: p, RateLimit: stages.RateLimit{Messages: 10, Interval: time.Second}},
			Processors: topology.ProcessorSpec[int]{Concurrency: 4, MaxDemand: 64}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- top.Run(ctx) }()
		time.Sleep(3500 * time.Millisecond)
		s := top.Stats()
		p.mu.Lock()
		told := 0
		for _, d := range p.demands {
			told += d
		}
		p.mu.Unlock()
		// Four windows have opened (0, 1, 2, 3 s): at most 40 may leave.
		if told > 40 || s.Producer.Emitted > 40 || s.Processors.Received != 40 {
			t.Fatalf("after 3.5 s at 10/s: told %d, emitted %d, processed %d; want at most 40 told and emitted, 40 processed",
				told, s.Producer.Emitted, s.Processors.Received)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// Defect 6: what a push producer emits after the drain began and before
// it returns is processed, not refused.
func TestDrainTakesWhatProducersStillEmit(t *testing.T) {
	log := newAckLog(0)
	push := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
		<-ctx.Done()
		// Data read from the socket before the stop: hand it over.
		for i := range 50 {
			if err := out.Emit(ctx, stages.Message[int]{Data: i, Acker: log}); err != nil {
				return fmt.Errorf("emit %d while draining: %w", i, err)
			}
		}
		return nil
	})
	top := mustNew(t, topology.Spec[int]{Logger: quietLog,
		Producer:   topology.ProducerSpec[int]{Producer: push},
		Processors: topology.ProcessorSpec[int]{Concurrency: 2},
		Batchers:   map[string]topology.BatcherSpec[int]{"b": {BatchSize: 7, Handle: noopBatch[int]}}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- top.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(log.ok) != 50 || top.Stats().Acked != 50 {
		t.Fatalf("acked %d of the 50 emitted during the drain", len(log.ok))
	}
}

// Defect 7: a handler that ignores ctx cannot hold Run past
// ShutdownTimeout plus a grace; the error names it.
func TestShutdownBoundHoldsWithStuckHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		stuck := topology.BatcherSpec[int]{BatchSize: 1, Handle: func(context.Context, *stages.Batch[int]) error {
			<-release // ignores ctx
			return nil
		}}
		top := mustNew(t, topology.Spec[int]{Logger: quietLog, ShutdownTimeout: 2 * time.Second,
			Producer:   topology.ProducerSpec[int]{Producer: stages.FromSlice(1, 2, 3)},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1},
			Batchers:   map[string]topology.BatcherSpec[int]{"slow": stuck}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- top.Run(ctx) }()
		time.Sleep(time.Second)
		cancel()
		start := time.Now()
		err := <-done
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Run returned %v after the cancel; bound is 2 s + 1 s grace", d)
		}
		if !errors.Is(err, stages.ErrShutdownTimeout) || !strings.Contains(err.Error(), `batcher "slow" batch processors [0] in their handler`) ||
			!strings.Contains(err.Error(), "3 messages not acknowledged") {
			t.Fatalf("Run = %v; want a shutdown timeout naming the stuck batch processor and 3 messages left", err)
		}
		close(release) // let the goroutine Run left behind finish
		synctest.Wait()
	})
}

// Defect 8: Stats counts every message failed in processors, and an
// unknown route is logged with the known batcher names.
func TestProcessorFailuresAreCounted(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	top := mustNew(t, topology.Spec[int]{Logger: logger,
		Producer: topology.ProducerSpec[int]{Producer: stages.FromSlice(ints(30)...)},
		Processors: topology.ProcessorSpec[int]{Concurrency: 2, Handle: func(_ context.Context, m *stages.Message[int]) error {
			switch m.Data % 3 {
			case 0:
				m.Fail(errors.New("bad"))
			case 1:
				m.Route("nowhere")
			}
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{"pg": {Handle: noopBatch[int]}, "kafka": {Handle: noopBatch[int]}}})
	s := runToEnd(t, top)
	if s.Processors.Failed != 20 || s.Failed != 20 || s.Acked != 10 {
		t.Fatalf("processors failed %d, topology failed %d, acked %d; want 20, 20, 10", s.Processors.Failed, s.Failed, s.Acked)
	}
	mu.Lock()
	defer mu.Unlock()
	if out := buf.String(); !strings.Contains(out, "unknown batcher") || !strings.Contains(out, "batcher=nowhere") || !strings.Contains(out, "kafka pg") {
		t.Fatalf("log does not report the unknown route with the known batchers:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// shareProducer emits n messages of its own on demand, as one Kafka
// partition would, then returns; several run side by side.
type shareProducer struct {
	n     int
	acker stages.Acknowledger[int]
	next  atomic.Int64
}

func (s *shareProducer) Run(ctx context.Context, out *stages.Emitter[int]) error {
	var buf []stages.Message[int]
	for left := s.n; left > 0; {
		d, err := out.Demand(ctx)
		if err != nil {
			return nil
		}
		d = min(d, 256, left)
		buf = buf[:0]
		for range d {
			buf = append(buf, stages.Message[int]{Data: int(s.next.Add(1)), Acker: s.acker})
		}
		if _, err := out.EmitAll(ctx, buf); err != nil {
			return nil
		}
		left -= d
	}
	return nil
}

// Defect 10: several producers that finish apart: every message is
// acknowledged and Run returns, for every mix of producers and processors.
func TestSeveralProducersFinishingApart(t *testing.T) {
	for _, p := range []int{2, 3, 8, 16} {
		for _, procs := range []int{1, 4, 16} {
			t.Run(fmt.Sprintf("producers=%d/processors=%d", p, procs), func(t *testing.T) {
				const each = 5_000
				top := mustNew(t, topology.Spec[int]{Logger: quietLog,
					Producer:   topology.ProducerSpec[int]{Producer: &shareProducer{n: each}, Concurrency: p},
					Processors: topology.ProcessorSpec[int]{Concurrency: procs},
					Batchers:   map[string]topology.BatcherSpec[int]{"b": {BatchSize: 100, BatchTimeout: 10 * time.Millisecond, Handle: noopBatch[int]}}})
				if s := runToEnd(t, top); s.Acked != int64(p*each) {
					t.Fatalf("acked %d of %d", s.Acked, p*each)
				}
			})
		}
	}
}

// idleProducer takes demand and then never emits, like an idle partition.
type idleProducer struct{ took chan struct{} }

func (p idleProducer) Run(ctx context.Context, out *stages.Emitter[int]) error {
	if _, err := out.Demand(ctx); err != nil {
		return nil
	}
	close(p.took)
	<-ctx.Done()
	return nil
}

// Defect 10: demand held by a producer that is slow to use it is offered to
// the others.
func TestDemandOfAnIdleProducerGoesToTheOthers(t *testing.T) {
	idle := idleProducer{took: make(chan struct{})}
	busy := &shareProducer{n: 10_000}
	var which atomic.Int32
	prod := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
		if which.Add(1) == 1 {
			return idle.Run(ctx, out)
		}
		<-idle.took // start once the idle one holds all the demand
		return busy.Run(ctx, out)
	})
	pending := make(chan struct{})
	var acked atomic.Int64
	top := mustNew(t, topology.Spec[int]{Logger: quietLog,
		Producer: topology.ProducerSpec[int]{Producer: prod, Concurrency: 2},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1, Handle: func(context.Context, *stages.Message[int]) error {
			if acked.Add(1) == 10_000 {
				close(pending)
			}
			return nil
		}}})
	stop := topologytest.Start(t, top)
	select {
	case <-pending:
	case <-time.After(wait):
		t.Fatalf("the working producer's messages stalled behind the idle one's demand: %d of 10000 handled", acked.Load())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Defect 11: a pull producer waiting in Demand is woken when room appears,
// whatever the buffer size.
func TestSmallBufferNeverStalls(t *testing.T) {
	for _, size := range []int{1, 2, 5, 63} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			top := mustNew(t, topology.Spec[int]{Logger: quietLog,
				Producer:   topology.ProducerSpec[int]{Producer: stages.FromSlice(ints(1000)...), BufferSize: size},
				Processors: topology.ProcessorSpec[int]{Concurrency: 3}})
			if s := runToEnd(t, top); s.Acked != 1000 {
				t.Fatalf("acked %d of 1000", s.Acked)
			}
		})
	}
}

// Defect 12: concurrent processors filling SizeFunc batches never
// overwrite each other's open batch.
func TestSizeFuncBatchesAreNeverLost(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	top := mustNew(t, topology.Spec[int]{Logger: quietLog,
		Producer:   topology.ProducerSpec[int]{Producer: stages.FromSlice(ints(1000)...)},
		Processors: topology.ProcessorSpec[int]{Concurrency: 4, MaxDemand: 1},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 10, BatchTimeout: 20 * time.Millisecond,
			SizeFunc: func(*stages.Message[int]) int { return 6 },
			Handle: func(_ context.Context, b *stages.Batch[int]) error {
				mu.Lock()
				sizes = append(sizes, len(b.Messages))
				mu.Unlock()
				return nil
			}}}})
	if s := runToEnd(t, top); s.Acked != 1000 {
		t.Fatalf("acked %d of 1000", s.Acked)
	}
	for _, n := range sizes {
		if n != 1 { // 6 + 6 > 10: every message starts a batch of its own
			t.Fatalf("batch of %d messages of size 6 with BatchSize 10", n)
		}
	}
}

// Defect 13: a message without an acknowledger is not handed to another
// message's acknowledger.
func TestMessageWithoutAcknowledgerIsToldToNobody(t *testing.T) {
	a := newAckLog(1)
	msgs := []stages.Message[int]{{Data: 1, Acker: a}, {Data: 2}, {Data: 3, Acker: a}}
	top := mustNew(t, topology.Spec[int]{Logger: quietLog,
		Producer: topology.ProducerSpec[int]{Producer: stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
			_, err := out.EmitAll(ctx, msgs)
			return err
		})},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1},
		Batchers:   map[string]topology.BatcherSpec[int]{"b": {BatchSize: 3, Handle: noopBatch[int]}}})
	runToEnd(t, top)
	if len(a.ok) != 2 || a.ok[1] != 1 || a.ok[3] != 1 || a.calls != 1 {
		t.Fatalf("acknowledger told of %v in %d calls, want 1 and 3 in one call", a.ok, a.calls)
	}
}

// Defect 14: fan-out keeps per-key order in every batcher.
func TestFanOutKeepsPerKeyOrder(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]int{}
	record := func(name string) stages.BatchHandler[int] {
		return func(_ context.Context, b *stages.Batch[int]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range b.Messages {
				got[name] = append(got[name], m.Data)
			}
			return nil
		}
	}
	key := func(*stages.Message[int]) uint64 { return 0 }
	top := mustNew(t, topology.Spec[int]{Logger: quietLog,
		Producer: topology.ProducerSpec[int]{Producer: stages.FromSlice(ints(200)...)},
		Processors: topology.ProcessorSpec[int]{Concurrency: 4, PartitionBy: key, Handle: func(_ context.Context, m *stages.Message[int]) error {
			if m.Data%3 == 0 {
				m.Route("a", "b")
			} else {
				m.Route("a")
			}
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{
			"a": {BatchSize: 1, Concurrency: 4, PartitionBy: key, Handle: record("a")},
			"b": {BatchSize: 5, Concurrency: 4, PartitionBy: key, Handle: record("b")}}})
	runToEnd(t, top)
	if !slices.IsSorted(got["a"]) || len(got["a"]) != 200 || !slices.IsSorted(got["b"]) || len(got["b"]) != 67 {
		t.Fatalf("batcher a handled %v\nbatcher b handled %v\nwant each in order", got["a"], got["b"])
	}
}

// Defect 15: a panicking OnDrop does not silence the Drop hook; a
// panicking hook does not kill the process.
func TestPanickingOnDropAndHooks(t *testing.T) {
	var heard atomic.Int64
	emitted := make(chan struct{})
	push := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
		defer close(emitted)
		for i := range 20 {
			out.Emit(ctx, stages.Message[int]{Data: i})
		}
		return nil
	})
	release := make(chan struct{})
	top := mustNew(t, topology.Spec[int]{Logger: quietLog,
		Producer: topology.ProducerSpec[int]{Producer: push, BufferSize: 2, Keep: stages.KeepFirst,
			OnDrop: func([]stages.Message[int]) { panic("OnDrop bug") }},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1, MaxDemand: 1, Handle: func(context.Context, *stages.Message[int]) error {
			<-release
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 1, Handle: noopBatch[int]}},
		Hooks: stages.Hooks{
			Drop:           func(e stages.DropEvent) { heard.Add(int64(e.Count)) },
			ProcessorStart: func(stages.ProcessorEvent) { panic("hook bug") },
			BatchStart:     func(stages.BatchEvent) { panic("hook bug") },
			BatchStop:      func(stages.BatchEvent) { panic("hook bug") },
		}})
	done := make(chan error, 1)
	go func() { done <- top.Run(context.Background()) }()
	<-emitted // all 20 emitted while the processor is stuck: the buffer of 2 dropped most
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := top.Stats()
	if s.Dropped == 0 || heard.Load() != s.Dropped || s.Acked+s.Dropped != 20 {
		t.Fatalf("dropped %d, the Drop hook heard of %d, acked %d", s.Dropped, heard.Load(), s.Acked)
	}
}
