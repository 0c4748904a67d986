package topology_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// startSynctest runs top inside a synctest bubble and returns a stop
// function that cancels it and checks Run's error and conservation.
func startSynctest[T any](t *testing.T, top *topology.Topology[T]) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- top.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := topologytest.CheckConservation(top.Stats()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBatchSizeAndTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := topologytest.NewProducer[int]()
		rec := &recorder[int]{}
		top := mustNew(t, topology.Spec[int]{
			Producer:   topology.ProducerSpec[int]{Producer: p},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1},
			Batchers:   map[string]topology.BatcherSpec[int]{"b": {BatchSize: 10, BatchTimeout: time.Second, Handle: rec.handle}},
		})
		stop := startSynctest(t, top)
		start := time.Now()
		p.Push(ints(25)...)
		synctest.Wait()
		got := rec.snapshot()
		if len(got) != 2 || got[0].info.Trigger != stages.TriggerSize || len(got[0].data) != 10 || len(got[1].data) != 10 {
			t.Fatalf("after pushing 25: %d batches, want two full batches of 10 by size", len(got))
		}
		// The last 5 wait for the timeout: not a moment before.
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		if n := len(rec.snapshot()); n != 2 {
			t.Fatalf("partial batch flushed before BatchTimeout (%d batches)", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		got = rec.snapshot()
		if len(got) != 3 || got[2].info.Trigger != stages.TriggerTimeout || !slices.Equal(got[2].data, []int{20, 21, 22, 23, 24}) ||
			got[2].at.Sub(start) != time.Second {
			t.Fatalf("third batch %+v, want [20..24] by timeout at exactly 1s", got[len(got)-1])
		}
		// A lone message is flushed BatchTimeout after it arrived.
		time.Sleep(300 * time.Millisecond)
		lone := time.Now()
		p.Push(99)
		time.Sleep(time.Second)
		synctest.Wait()
		got = rec.snapshot()
		if len(got) != 4 || !slices.Equal(got[3].data, []int{99}) || got[3].at.Sub(lone) != time.Second {
			t.Fatalf("lone message batch %+v, want [99] one second after it arrived", got[len(got)-1])
		}
		stop()
	})
}

func TestBatchKeysSeparateBatches(t *testing.T) {
	p := topologytest.NewProducer[int]()
	rec := &recorder[int]{}
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 3, Handle: func(_ context.Context, m *stages.Message[int]) error {
			m.SetBatchKey([]string{"red", "green", "blue"}[m.Data%3])
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 10, BatchTimeout: 10 * time.Millisecond, Handle: rec.handle}},
	})
	run(t, top)
	p.Push(ints(300)...).Await(t, wait)
	total := 0
	for _, b := range rec.snapshot() {
		for _, d := range b.data {
			if key := []string{"red", "green", "blue"}[d%3]; key != b.info.Key {
				t.Fatalf("message %d (key %s) in a batch with key %q", d, key, b.info.Key)
			}
		}
		if len(b.data) > 10 {
			t.Fatalf("batch of %d > BatchSize", len(b.data))
		}
		total += len(b.data)
	}
	if total != 300 {
		t.Fatalf("batches held %d messages, want 300", total)
	}
}

func TestSizeFuncBatchesByBytes(t *testing.T) {
	p := topologytest.NewProducer[string]()
	rec := &recorder[string]{}
	top := mustNew(t, topology.Spec[string]{
		Producer:   topology.ProducerSpec[string]{Producer: p},
		Processors: topology.ProcessorSpec[string]{Concurrency: 1},
		Batchers: map[string]topology.BatcherSpec[string]{"bytes": {BatchSize: 100, BatchTimeout: 10 * time.Millisecond,
			SizeFunc: func(m *stages.Message[string]) int { return len(m.Data) }, Handle: rec.handle}},
	})
	run(t, top)
	in := []string{strings.Repeat("a", 30), strings.Repeat("b", 30), strings.Repeat("c", 30), strings.Repeat("d", 30), // 120 bytes: 3 fit
		strings.Repeat("e", 150),                         // alone: bigger than a batch
		strings.Repeat("f", 60), strings.Repeat("g", 40)} // exactly 100
	p.Push(in...).Await(t, wait)
	var sizes [][]int
	for _, b := range rec.snapshot() {
		var s []int
		for _, d := range b.data {
			s = append(s, len(d))
		}
		sizes = append(sizes, s)
	}
	want := fmt.Sprint([][]int{{30, 30, 30}, {30}, {150}, {60, 40}})
	if fmt.Sprint(sizes) != want {
		t.Fatalf("batches by size %v, want %v", sizes, want)
	}
}

// Routing to named batchers, and fan-out: a message routed to two batchers
// is acknowledged once, after both, and failed if either failed it.
func TestRoutingAndFanOut(t *testing.T) {
	acks := newAckLog(300)
	p := &countingProducer{n: 300, acker: acks}
	var mu sync.Mutex
	seen := map[string][]int{}
	handler := func(name string) stages.BatchHandler[int] {
		return func(_ context.Context, b *stages.Batch[int]) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range b.Messages {
				seen[b.Batcher] = append(seen[b.Batcher], m.Data)
				if name == "b" && m.Data%5 == 0 {
					m.Fail(fmt.Errorf("b rejects %d", m.Data))
				}
			}
			return nil
		}
	}
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 4, Handle: func(_ context.Context, m *stages.Message[int]) error {
			switch {
			case m.Data%3 == 0:
				m.Route("a", "b")
			case m.Data%2 == 0:
				m.Route("a")
			default:
				m.Route("b")
			}
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{
			"a": {BatchSize: 7, BatchTimeout: 5 * time.Millisecond, Handle: handler("a")},
			"b": {BatchSize: 11, BatchTimeout: 5 * time.Millisecond, Concurrency: 3, Handle: handler("b")},
		},
	})
	run(t, top)
	acks.await(t)
	mu.Lock()
	defer mu.Unlock()
	for name, want := range map[string]func(int) bool{
		"a": func(i int) bool { return i%3 == 0 || i%2 == 0 },
		"b": func(i int) bool { return i%3 == 0 || i%2 != 0 },
	} {
		got := slices.Sorted(slices.Values(seen[name]))
		var exp []int
		for i := range 300 {
			if want(i) {
				exp = append(exp, i)
			}
		}
		if !slices.Equal(got, exp) {
			t.Fatalf("batcher %s saw %d messages, want %d", name, len(got), len(exp))
		}
	}
	acks.mu.Lock()
	defer acks.mu.Unlock()
	for i := range 300 {
		failedByB := i%5 == 0 && (i%3 == 0 || i%2 != 0)
		_, failed := acks.fail[i]
		if failed != failedByB || (!failed && acks.ok[i] != 1) || acks.fail[-1-i] != nil {
			t.Fatalf("message %d: failed=%v ok=%d; want failed=%v and exactly one ack", i, failed, acks.ok[i], failedByB)
		}
		if failed && acks.fail[i].Error() != fmt.Sprintf("b rejects %d", i) {
			t.Fatalf("message %d failed with %v", i, acks.fail[i])
		}
	}
	stats := top.Stats()
	if stats.Batchers[0].Name != "a" || stats.Batchers[1].Received != 200 || stats.Batchers[0].Received != 150+50 {
		t.Fatalf("batcher stats %+v", stats.Batchers)
	}
}

func TestUnknownBatcherFailsMessage(t *testing.T) {
	p := topologytest.NewProducer[int]()
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Handle: func(_ context.Context, m *stages.Message[int]) error {
			m.Route("kafka", "postgress")
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{
			"kafka":    {Handle: func(context.Context, *stages.Batch[int]) error { return nil }},
			"postgres": {Handle: func(context.Context, *stages.Batch[int]) error { return nil }},
		},
	})
	run(t, top)
	acks := p.Push(1).Await(t, wait)
	var ub *stages.UnknownBatcherError
	if len(acks.Failed) != 1 || !errors.As(acks.Failed[0].Err(), &ub) {
		t.Fatalf("acks %+v: want the message failed with UnknownBatcherError", acks)
	}
	if msg := ub.Error(); !strings.Contains(msg, `"postgress"`) || !strings.Contains(msg, "known: kafka, postgres") {
		t.Fatalf("error %q should name the bad batcher and the known ones", msg)
	}
}

// Messages routed nowhere (or with no batchers declared) are acknowledged
// right after processing; a processor error fails the message.
func TestUnroutedAndProcessorErrors(t *testing.T) {
	p := topologytest.NewProducer[int]()
	rec := &recorder[int]{}
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Handle: func(_ context.Context, m *stages.Message[int]) error {
			switch m.Data % 3 {
			case 0:
				m.Route() // nowhere
			case 1:
				return fmt.Errorf("odd one %d", m.Data)
			}
			return nil // default batcher: the only one
		}},
		Batchers: map[string]topology.BatcherSpec[int]{"only": {BatchSize: 5, BatchTimeout: time.Millisecond, Handle: rec.handle}},
	})
	run(t, top)
	acks := p.Push(ints(30)...).Await(t, wait)
	if len(acks.Successful) != 20 || len(acks.Failed) != 10 {
		t.Fatalf("%d ok, %d failed; want 20 and 10", len(acks.Successful), len(acks.Failed))
	}
	n := 0
	for _, b := range rec.snapshot() {
		for _, d := range b.data {
			if d%3 != 2 {
				t.Fatalf("message %d reached the batcher", d)
			}
			n++
		}
	}
	if n != 10 {
		t.Fatalf("batcher saw %d messages, want 10", n)
	}
}

// One acknowledger call per acknowledger per batch, and HandleFailed sees
// failed messages before their acknowledgement.
func TestGroupedAckAndHandleFailedFirst(t *testing.T) {
	p := topologytest.NewProducer[int]()
	var mu sync.Mutex
	var events []string
	top := mustNew(t, topology.Spec[int]{
		Producer:   topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 10, BatchTimeout: time.Hour,
			Handle: func(_ context.Context, b *stages.Batch[int]) error {
				for _, m := range b.Messages {
					if m.Data%4 == 0 {
						m.Fail(errors.New("multiple of 4"))
					}
				}
				return nil
			}}},
		HandleFailed: func(_ context.Context, failed []*stages.Message[int]) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range failed {
				events = append(events, fmt.Sprintf("failed %d", m.Data))
			}
		},
	})
	run(t, top)
	a, b := p.Push(ints(50)...), p.Push(ints(50)...)
	// Each acknowledger is called once per batch: 50 messages in batches of
	// 10 from one acknowledger at a time (a single processor keeps pushes
	// apart) means 5 calls each.
	for _, pd := range []*topologytest.Pending[int]{a, b} {
		acks := pd.Await(t, wait)
		if acks.Calls != 5 || len(acks.Failed) != 13 || len(acks.Successful) != 37 {
			t.Fatalf("acks: %d calls, %d failed, %d ok; want 5 calls, 13 failed, 37 ok", acks.Calls, len(acks.Failed), len(acks.Successful))
		}
		mu.Lock()
		for _, m := range acks.Failed {
			if !slices.Contains(events, fmt.Sprintf("failed %d", m.Data)) {
				t.Fatalf("message %d acknowledged as failed without HandleFailed seeing it", m.Data)
			}
		}
		mu.Unlock()
	}
}

func TestBatchInfoAndFailures(t *testing.T) {
	p := topologytest.NewProducer[int]()
	var mu sync.Mutex
	var infos []stages.BatchInfo
	top := mustNew(t, topology.Spec[int]{
		Producer:   topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1},
		Batchers: map[string]topology.BatcherSpec[int]{"sink": {BatchSize: 10, BatchTimeout: time.Hour,
			Handle: func(_ context.Context, b *stages.Batch[int]) error {
				mu.Lock()
				infos = append(infos, b.BatchInfo)
				mu.Unlock()
				switch b.Messages[0].Data / 10 {
				case 0: // fail single messages
					b.Messages[3].Fail(errors.New("bad 3"))
				case 1:
					return errors.New("whole batch refused")
				case 2:
					panic("batch handler panic")
				case 3: // return fewer: drop the last two
					b.Messages = b.Messages[:len(b.Messages)-2]
				case 4: // filter in place: keep the even ones
					kept := b.Messages[:0]
					for _, m := range b.Messages {
						if m.Data%2 == 0 {
							kept = append(kept, m)
						}
					}
					b.Messages = kept
				}
				return nil
			}}},
	})
	run(t, top)
	acks := p.Push(ints(60)...).Await(t, wait) // 6 batches; the topology keeps running after each failure
	failed := map[int]string{}
	for _, m := range acks.Failed {
		failed[m.Data] = m.Err().Error()
	}
	want := map[int]string{3: "bad 3"}
	for i := 10; i < 20; i++ {
		want[i] = "whole batch refused"
	}
	for i := 20; i < 30; i++ {
		want[i] = "panic: batch handler panic"
	}
	want[38], want[39] = stages.ErrMissingFromBatch.Error(), stages.ErrMissingFromBatch.Error()
	for i := 41; i < 50; i += 2 {
		want[i] = stages.ErrMissingFromBatch.Error()
	}
	if fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Fatalf("failed messages:\n got %v\nwant %v", failed, want)
	}
	if len(acks.Successful) != 60-len(want) {
		t.Fatalf("%d successful, want %d", len(acks.Successful), 60-len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, info := range infos {
		if info.Batcher != "sink" || info.Key != "" || info.Partition != 0 || info.Size != 10 || info.Trigger != stages.TriggerSize || info.Attempt != 1 {
			t.Fatalf("batch info %+v", info)
		}
	}
	s := top.Stats().Batchers[0]
	if s.Batches != 6 || s.BatchesFailed != 2 || s.Missing != 7 || s.Failed != int64(len(want)) {
		t.Fatalf("batcher stats %+v", s)
	}
}

type panicAcker struct{}

func (panicAcker) Ack(ok, failed []*stages.Message[int]) { panic("acker down") }

// A panicking acknowledger or HandleFailed is contained: the other ack
// groups still run and the messages still count as acknowledged.
func TestPanickingAckerAndHandleFailedAreContained(t *testing.T) {
	good := newAckLog(20)
	var bad panicAcker
	prod := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
		var batch []stages.Message[int]
		for i := range 40 {
			var a stages.Acknowledger[int] = good
			if i%2 == 1 {
				a = bad
			}
			batch = append(batch, stages.Message[int]{Data: i, Acker: a})
		}
		_, err := out.EmitAll(ctx, batch)
		return err
	})
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: prod, Keep: stages.Block},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 40, Handle: func(_ context.Context, b *stages.Batch[int]) error {
			for _, m := range b.Messages {
				if m.Data%4 == 0 {
					m.Fail(errors.New("nope"))
				}
			}
			return nil
		}}},
		HandleFailed: func(context.Context, []*stages.Message[int]) { panic("dead letter queue down") },
	})
	if err := top.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	good.await(t)
	if len(good.ok) != 10 || len(good.fail) != 10 {
		t.Fatalf("the healthy acknowledger saw %d ok, %d failed; want 10 and 10", len(good.ok), len(good.fail))
	}
	if s := top.Stats(); s.Acked != 30 || s.Failed != 10 || s.InFlight != 0 {
		t.Fatalf("stats %d acked %d failed %d in flight; want 30, 10, 0", s.Acked, s.Failed, s.InFlight)
	}
}

func TestRetryPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := topologytest.NewProducer[int]()
		var mu sync.Mutex
		calls := map[int][]int{} // first message -> sizes per attempt
		var attemptsAt []time.Duration
		start := time.Now()
		top := mustNew(t, topology.Spec[int]{
			Producer:   topology.ProducerSpec[int]{Producer: p},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1},
			Batchers: map[string]topology.BatcherSpec[int]{"flaky": {BatchSize: 10, BatchTimeout: time.Hour,
				Retry: stages.RetryPolicy{Attempts: 4, Backoff: 100 * time.Millisecond, MaxBackoff: 250 * time.Millisecond,
					Retryable: func(err error) bool { return err.Error() != "permanent" }},
				Handle: func(_ context.Context, b *stages.Batch[int]) error {
					mu.Lock()
					defer mu.Unlock()
					first := b.Messages[0].Data
					calls[first/10*10] = append(calls[first/10*10], len(b.Messages))
					if first < 10 {
						attemptsAt = append(attemptsAt, time.Since(start))
						if b.Attempt < 3 {
							return errors.New("transient") // whole batch, twice
						}
						return nil
					}
					for _, m := range b.Messages {
						switch {
						case m.Data == 15:
							m.Fail(errors.New("permanent"))
						case m.Data%2 == 1 && b.Attempt < 4:
							m.Fail(errors.New("flaky"))
						case m.Data == 12:
							m.Fail(errors.New("always"))
						}
					}
					return nil
				}}},
		})
		stop := startSynctest(t, top)
		acks := p.Push(ints(20)...)
		<-acks.Done()
		res, _ := acks.Wait(context.Background())
		mu.Lock()
		got := fmt.Sprint(calls)
		mu.Unlock()
		// Batch 0-9 fails whole twice, then succeeds: 3 calls of 10.
		// Batch 10-19: attempt 1 fails 11,13,15,17,19 and 12; 15 is not
		// retryable, so attempts 2-4 re-run 11,13,17,19 and 12.
		if want := "map[0:[10 10 10] 10:[10 5 5 5]]"; got != want {
			t.Fatalf("handler calls %s, want %s", got, want)
		}
		if want := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond}; !slices.Equal(attemptsAt, want) {
			t.Fatalf("attempts at %v, want %v (backoff 100ms, doubling)", attemptsAt, want)
		}
		failed := map[int]string{}
		for _, m := range res.Failed {
			failed[m.Data] = m.Err().Error()
		}
		if fmt.Sprint(failed) != "map[12:always 15:permanent]" {
			t.Fatalf("failed after retries: %v", failed)
		}
		if s := top.Stats().Batchers[0]; s.Retries != 5 || s.Batches != 7 {
			t.Fatalf("batcher stats: %d retries, %d batches; want 5 and 7", s.Retries, s.Batches)
		}
		stop()
	})
}

func TestHooks(t *testing.T) {
	p := topologytest.NewProducer[int]()
	var mu sync.Mutex
	count := map[string]int{}
	note := func(k string) { mu.Lock(); count[k]++; mu.Unlock() }
	top := mustNew(t, topology.Spec[int]{
		Producer:   topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 3},
		Batchers:   map[string]topology.BatcherSpec[int]{"b": {BatchSize: 10, Handle: func(context.Context, *stages.Batch[int]) error { return nil }}},
		Hooks: stages.Hooks{
			ProcessorStart: func(stages.ProcessorEvent) { note("pstart") },
			ProcessorStop:  func(stages.ProcessorEvent) { note("pstop") },
			BatchStart:     func(stages.BatchEvent) { note("bstart") },
			BatchStop: func(e stages.BatchEvent) {
				if e.Batcher == "b" && e.Size == 10 && e.Duration >= 0 {
					note("bstop")
				}
			},
		},
	})
	stop := run(t, top)
	p.Push(ints(50)...).Await(t, wait)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(count) != "map[bstart:5 bstop:5 pstart:3 pstop:3]" {
		t.Fatalf("hook calls %v", count)
	}
}
