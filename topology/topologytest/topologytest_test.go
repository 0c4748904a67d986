package topologytest_test

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

	"go.uber.org/goleak"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errThree = errors.New("three is bad")

// batchTopology has one processor and one batcher "b" of size 3 whose
// handler fails the message 3 and records every batch.
func batchTopology(t *testing.T, p *topologytest.Producer[int], size int, timeout time.Duration, batches *[]stages.BatchInfo) *topology.Topology[int] {
	t.Helper()
	var mu sync.Mutex
	top, err := topology.New(topology.Spec[int]{
		Producer:   topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 1},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {
			BatchSize: size, BatchTimeout: timeout,
			Handle: func(_ context.Context, b *stages.Batch[int]) error {
				mu.Lock()
				*batches = append(*batches, b.BatchInfo)
				mu.Unlock()
				for _, m := range b.Messages {
					if m.Data == 3 {
						m.Fail(errThree)
					}
				}
				return nil
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// Each Ack call is recorded with its own lists: a batch of [1 2 3] whose
// handler fails 3 is acknowledged in one call, ok [1 2], failed [3].
func TestAckRecordsPerCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := topologytest.NewProducer[int]()
		var batches []stages.BatchInfo
		top := batchTopology(t, p, 3, time.Hour, &batches)
		topologytest.Start(t, top)
		acks := p.Push(1, 2, 3).Await(t, time.Minute)
		if acks.Calls != 1 || len(acks.Records) != 1 {
			t.Fatalf("%d Ack calls, records %v; want one", acks.Calls, acks.Records)
		}
		c := acks.Records[0]
		if !slices.Equal(c.Successful, []int{1, 2}) || !slices.Equal(c.Failed, []int{3}) ||
			len(c.Errs) != 1 || !errors.Is(c.Errs[0], errThree) {
			t.Fatalf("Ack call %v (errors %v), want ok [1 2] failed [3] with errThree", c, c.Errs)
		}
		if got := c.String(); got != "ok [1 2] failed [3]" {
			t.Fatalf("String() = %q", got)
		}
		// Two more batches: two more records, in call order.
		acks = p.Push(4, 5, 6, 7, 8, 9).Await(t, time.Minute)
		if len(acks.Records) != 2 || !slices.Equal(acks.Records[0].Successful, []int{4, 5, 6}) ||
			!slices.Equal(acks.Records[1].Successful, []int{7, 8, 9}) {
			t.Fatalf("records %v, want ok [4 5 6] then ok [7 8 9]", acks.Records)
		}
	})
}

// PushFlush is Broadway's test_message: the message's batch is handed over
// at once, neither BatchSize nor BatchTimeout is waited for.
func TestPushFlushHandsOverPartialBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := topologytest.NewProducer[int]()
		var batches []stages.BatchInfo
		top := batchTopology(t, p, 100, time.Hour, &batches)
		topologytest.Start(t, top)
		start := time.Now()
		acks := p.PushFlush(1).Await(t, time.Minute)
		if !slices.Equal(acks.Records[0].Successful, []int{1}) {
			t.Fatalf("records %v, want ok [1]", acks.Records)
		}
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("the flushed message waited %v", waited)
		}
		if len(batches) != 1 || batches[0].Trigger != stages.TriggerFlush || batches[0].Size != 1 {
			t.Fatalf("batches %+v, want one of size 1 by flush", batches)
		}
		// Every pushed message flushes its batch: three messages, each acked
		// without waiting for the hour-long timeout.
		acks = p.PushFlush(3, 4, 5).Await(t, time.Minute)
		if time.Since(start) != 0 || len(acks.Successful)+len(acks.Failed) != 3 {
			t.Fatalf("PushFlush(3, 4, 5): %v after %v", acks.Records, time.Since(start))
		}
		// Push, by contrast, waits for the batch timeout.
		pd := p.Push(6)
		synctest.Wait()
		select {
		case <-pd.Done():
			t.Fatal("a plain Push was acknowledged before BatchTimeout")
		default:
		}
		pd.Await(t, 2*time.Hour)
		if waited := time.Since(start); waited != time.Hour {
			t.Fatalf("plain Push acknowledged after %v, want the BatchTimeout of 1h", waited)
		}
	})
}

// NewPending records acknowledgements of messages a test emits with its own
// producer.
func TestNewPendingWithOwnProducer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pd := topologytest.NewPending[int](4)
		prod := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
			for i := range 4 {
				m := stages.Message[int]{Data: i, Acker: pd}
				if i == 2 {
					m.Fail(errThree)
				}
				if err := out.Emit(ctx, m); err != nil {
					return err
				}
			}
			return nil
		})
		top, err := topology.New(topology.Spec[int]{
			Producer:   topology.ProducerSpec[int]{Producer: prod},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		topologytest.Start(t, top)
		acks := pd.Await(t, time.Minute)
		var ok, failed []int
		for _, r := range acks.Records {
			ok = append(ok, r.Successful...)
			failed = append(failed, r.Failed...)
		}
		if !slices.Equal(ok, []int{0, 1, 3}) || !slices.Equal(failed, []int{2}) {
			t.Fatalf("records %v, want ok 0 1 3 and failed 2", acks.Records)
		}
	})
}

// fakeTB records what Start reports, so a test can check that a hung drain
// fails the test it runs in.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Error(args ...any) { f.Errorf("%s", fmt.Sprint(args...)) }
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// A handler that never returns holds the drain: stop gives up at the drain
// deadline, reports the stuck topology with its Stats and the goroutine
// stacks, and returns ErrHung instead of hanging the test.
func TestStartReportsHungDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		entered := make(chan struct{})
		p := topologytest.NewProducer[int]()
		top, err := topology.New(topology.Spec[int]{
			Name:            "stuck",
			Producer:        topology.ProducerSpec[int]{Producer: p},
			Processors:      topology.ProcessorSpec[int]{Concurrency: 1, Handle: func(context.Context, *stages.Message[int]) error { close(entered); <-release; return nil }},
			ShutdownTimeout: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		ft := &fakeTB{TB: t}
		stop := topologytest.Start(ft, top, topologytest.DrainDeadline(time.Second))
		p.Push(1)
		<-entered
		start := time.Now()
		err = stop()
		if !errors.Is(err, topologytest.ErrHung) {
			t.Fatalf("stop() = %v, want ErrHung", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("stop gave up after %v, want the 1s deadline", waited)
		}
		if len(ft.errs) != 1 || !strings.Contains(ft.errs[0], "stats of stuck: emitted 1") ||
			!strings.Contains(ft.errs[0], "goroutine ") {
			t.Fatalf("reported %q; want one error with the stats and the stacks", ft.errs)
		}
		// Cleanup does not report the hang twice.
		for _, fn := range ft.cleanups {
			fn()
		}
		if len(ft.errs) != 1 {
			t.Fatalf("reported %d errors, want 1", len(ft.errs))
		}
		close(release) // let Run return, so the bubble ends clean
		synctest.Wait()
	})
}

// Start's default deadline is the topology's ShutdownTimeout plus
// DefaultDrainGrace: a topology that drains in time passes.
func TestStartCleanDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := topologytest.NewProducer[int]()
		top, err := topology.New(topology.Spec[int]{
			Producer:   topology.ProducerSpec[int]{Producer: p},
			Processors: topology.ProcessorSpec[int]{Concurrency: 2},
		})
		if err != nil {
			t.Fatal(err)
		}
		stop := topologytest.Start(t, top)
		p.Push(1, 2, 3).Await(t, time.Minute)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if err := stop(); err != nil {
			t.Fatalf("second stop: %v", err)
		}
	})
}

func TestPlacements(t *testing.T) {
	var pl topologytest.Placements[int]
	ctxA := context.Background()
	if w := pl.Record(ctxA, 1); w.Index != -1 {
		t.Fatalf("outside a worker: %+v, want Index -1", w)
	}
	pl.Record(ctxA, 1)
	pl.Record(ctxA, 2)
	if pl.Len() != 3 || len(pl.Workers(1)) != 1 {
		t.Fatalf("Len %d, Workers(1) %v", pl.Len(), pl.Workers(1))
	}
	if err := pl.Check(func(int) stages.Worker { return stages.Worker{Index: -1} }); err != nil {
		t.Fatal(err)
	}
	err := pl.Check(func(k int) stages.Worker { return stages.Worker{Index: k} })
	if err == nil || !strings.Contains(err.Error(), "key 1 ran on") {
		t.Fatalf("Check = %v, want key 1 and 2 misplaced", err)
	}
}
