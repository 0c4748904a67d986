package topology_test

import (
	"context"
	"fmt"
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

// kneeSink is a resource with knee slots of parallelism: a batch takes base
// while at most knee batches are in it; beyond that each takes longer in
// proportion to the crowd, plus a quarter of base per caller over the knee
// (contention), so throughput peaks at knee callers and falls past it.
type kneeSink struct {
	knee   int
	base   time.Duration
	active atomic.Int32
	peak   atomic.Int32
	msgs   atomic.Int64
}

func (s *kneeSink) handle(_ context.Context, b *stages.Batch[int]) error {
	n := int(s.active.Add(1))
	defer s.active.Add(-1)
	for p := s.peak.Load(); int32(n) > p && !s.peak.CompareAndSwap(p, int32(n)); p = s.peak.Load() {
	}
	d := s.base
	if over := n - s.knee; over > 0 {
		d = s.base*time.Duration(n)/time.Duration(s.knee) + s.base*time.Duration(over)/4
	}
	time.Sleep(d)
	s.msgs.Add(int64(len(b.Messages)))
	return nil
}

// An adaptive pool climbs from one batch processor to about the sink's
// knee and stays near it: not at its minimum, not at its maximum.
func TestAdaptiveConcurrencyFindsTheKnee(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &kneeSink{knee: 4, base: 10 * time.Millisecond}
		p := &countingProducer{n: 200_000}
		top := mustNew(t, topology.Spec[int]{
			Producer:   topology.ProducerSpec[int]{Producer: p},
			Processors: topology.ProcessorSpec[int]{Concurrency: 2, Handle: func(context.Context, *stages.Message[int]) error { return nil }},
			Batchers: map[string]topology.BatcherSpec[int]{"sink": {BatchSize: 100, BatchTimeout: time.Second,
				Concurrency: 1, MaxConcurrency: 16, Handle: sink.handle}},
		})
		var limits []int
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- top.Run(ctx) }()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
	wait:
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				break wait
			case <-tick.C:
				limits = append(limits, top.Stats().Batchers[0].Concurrency)
			}
		}
		s := top.Stats()
		if got := sink.msgs.Load(); got != 200_000 || s.Acked != 200_000 {
			t.Fatalf("sink took %d, acked %d, want 200000", got, s.Acked)
		}
		b := s.Batchers[0]
		if !b.Adaptive || b.MinConcurrency != 1 || b.MaxConcurrency != 16 || b.ConcurrencyChanges == 0 {
			t.Fatalf("stats %+v: want adaptive 1..16 with changes", b)
		}
		// After the climb (the first half second), the limit hovers around
		// the knee.
		settled := limits[10:]
		sum := 0
		for _, l := range settled {
			sum += l
			if l < 2 || l > 8 {
				t.Fatalf("limit %d after the climb, want 2..8 around the knee 4 (all: %v)", l, limits)
			}
		}
		if avg := float64(sum) / float64(len(settled)); avg < 3 || avg > 6 {
			t.Fatalf("average limit %.1f, want 3..6 (all: %v)", avg, limits)
		}
		if peak := sink.peak.Load(); peak > 8 {
			t.Fatalf("the sink saw %d batches at once, over the limits seen", peak)
		}
	})
}

// A failing sink halves the limit: fewer callers while it recovers.
func TestAdaptiveConcurrencyBacksOffOnErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var failing atomic.Bool
		handle := func(_ context.Context, b *stages.Batch[int]) error {
			time.Sleep(5 * time.Millisecond)
			if failing.Load() {
				return fmt.Errorf("sink down")
			}
			return nil
		}
		p := &countingProducer{n: 1 << 30}
		top := mustNew(t, topology.Spec[int]{
			Producer:   topology.ProducerSpec[int]{Producer: p},
			Processors: topology.ProcessorSpec[int]{Concurrency: 2, Handle: func(context.Context, *stages.Message[int]) error { return nil }},
			Batchers: map[string]topology.BatcherSpec[int]{"sink": {BatchSize: 50, BatchTimeout: time.Second,
				Concurrency: 1, MinConcurrency: 2, MaxConcurrency: 8, Handle: handle}},
			HandleFailed: func(context.Context, []*stages.Message[int]) {},
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- top.Run(ctx) }()
		time.Sleep(2 * time.Second)
		if got := top.Stats().Batchers[0].Concurrency; got != 8 {
			t.Fatalf("limit %d against a sink with room, want the maximum 8", got)
		}
		failing.Store(true)
		time.Sleep(time.Second)
		if got := top.Stats().Batchers[0].Concurrency; got != 2 {
			t.Fatalf("limit %d against a failing sink, want the minimum 2", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// SetConcurrency pins the limit while the topology runs (and 0 lets it
// adapt again); through any sequence of changes each partition's batches
// are handled one at a time and in order.
func TestSetConcurrencyKeepsPartitionOrder(t *testing.T) {
	const total, keys = 50_000, 13
	var (
		mu      sync.Mutex
		last    = make(map[int]int) // key -> last message seen
		inside  [keys]atomic.Int32
		errs    []string
		handled atomic.Int64
	)
	handle := func(_ context.Context, b *stages.Batch[int]) error {
		key := b.Messages[0].Data % keys
		if inside[key].Add(1) != 1 {
			mu.Lock()
			errs = append(errs, fmt.Sprintf("two batches of key %d at once", key))
			mu.Unlock()
		}
		defer inside[key].Add(-1)
		time.Sleep(50 * time.Microsecond)
		mu.Lock()
		defer mu.Unlock()
		for _, m := range b.Messages {
			k := m.Data % keys
			if prev, ok := last[k]; ok && m.Data <= prev {
				errs = append(errs, fmt.Sprintf("key %d: message %d after %d", k, m.Data, prev))
			}
			last[k] = m.Data
		}
		handled.Add(int64(len(b.Messages)))
		return nil
	}
	p := &countingProducer{n: total}
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		// One processor: messages reach the batcher in order.
		Processors: topology.ProcessorSpec[int]{Concurrency: 1, Handle: func(context.Context, *stages.Message[int]) error { return nil }},
		Batchers: map[string]topology.BatcherSpec[int]{"sink": {BatchSize: 20, BatchTimeout: time.Millisecond,
			Concurrency: 4, MaxConcurrency: keys, PartitionBy: func(m *stages.Message[int]) uint64 { return uint64(m.Data % keys) },
			Handle: handle}},
	})
	stop := topologytest.Start(t, top)
	pins := []int{1, 7, 2, 13, 0, 3, 100, 1, 0, 5}
	for i := 0; handled.Load() < total; i++ {
		n := pins[i%len(pins)]
		got, err := top.SetConcurrency("sink", n)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(n, keys); n != 0 && got != want {
			t.Fatalf("SetConcurrency(%d) = %d, want %d", n, got, want)
		}
		if s := top.Stats().Batchers[0]; n != 0 && (s.Concurrency != got || s.Adaptive) {
			t.Fatalf("after SetConcurrency(%d): stats say limit %d, adaptive %v", n, s.Concurrency, s.Adaptive)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d order violations, first: %s", len(errs), strings.Join(errs[:min(5, len(errs))], "; "))
	}
	if s := top.Stats(); s.Acked != total {
		t.Fatalf("acked %d of %d", s.Acked, total)
	}
	if _, err := top.SetConcurrency("nope", 1); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("SetConcurrency on an unknown batcher: %v", err)
	}
}

func TestConcurrencyBoundsValidated(t *testing.T) {
	h := func(context.Context, *stages.Batch[int]) error { return nil }
	for _, tc := range []struct {
		b    topology.BatcherSpec[int]
		want string
	}{
		{topology.BatcherSpec[int]{MinConcurrency: 5, MaxConcurrency: 2, Handle: h}, "must be at most MaxConcurrency 2, got 5"},
		{topology.BatcherSpec[int]{MinConcurrency: 2, Handle: h}, "needs MaxConcurrency"},
		{topology.BatcherSpec[int]{MaxConcurrency: -1, Handle: h}, "must not be negative"},
	} {
		_, err := topology.New(topology.Spec[int]{Producer: topology.ProducerSpec[int]{Producer: &countingProducer{}},
			Batchers: map[string]topology.BatcherSpec[int]{"b": tc.b}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error with %q", tc.b, err, tc.want)
		}
	}
}

// BenchmarkAdaptiveConcurrency runs 100-message batches into a kneeSink
// (4 slots, 2ms a batch within them, slower per batch and in total past
// them) with a fixed pool of 1, 2, 4, 8 and 16 batch processors, and with
// an adaptive pool of 1..16 starting at 1, side by side; msgs/s is what
// the sink took, limit the adaptive pool's limit at the end.
func BenchmarkAdaptiveConcurrency(b *testing.B) {
	type pool struct {
		name          string
		conc, maxConc int
	}
	pools := []pool{{"fixed=1", 1, 0}, {"fixed=2", 2, 0}, {"fixed=4", 4, 0}, {"fixed=8", 8, 0}, {"fixed=16", 16, 0},
		{"adaptive=1..16", 1, 16}}
	for _, pl := range pools {
		b.Run(pl.name, func(b *testing.B) {
			sink := &kneeSink{knee: 4, base: 2 * time.Millisecond}
			top := mustNew(b, topology.Spec[int]{
				Producer:   topology.ProducerSpec[int]{Producer: &countingProducer{n: b.N}},
				Processors: topology.ProcessorSpec[int]{Concurrency: 2, Handle: func(context.Context, *stages.Message[int]) error { return nil }},
				Batchers: map[string]topology.BatcherSpec[int]{"sink": {BatchSize: 100, BatchTimeout: 10 * time.Millisecond,
					Concurrency: pl.conc, MaxConcurrency: pl.maxConc, Handle: sink.handle}},
			})
			b.ResetTimer()
			start := time.Now()
			if err := top.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			s := top.Stats()
			if s.Acked != int64(b.N) {
				b.Fatalf("acked %d of %d", s.Acked, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(s.Batchers[0].Concurrency), "limit")
			b.ReportMetric(float64(sink.peak.Load()), "peak")
		})
	}
}
