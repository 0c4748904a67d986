package topology_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 10 * time.Second

// mustNew builds a topology or fails the test.
func mustNew[T any](t testing.TB, spec topology.Spec[T]) *topology.Topology[T] {
	t.Helper()
	top, err := topology.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// ints returns 0..n-1.
func ints(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func ids[T any](ms []stages.Message[T], id func(T) int) map[int]bool {
	out := make(map[int]bool, len(ms))
	for _, m := range ms {
		out[id(m.Data)] = true
	}
	return out
}

func self(i int) int { return i }

// recorder collects batches a handler saw.
type recorder[T any] struct {
	mu      sync.Mutex
	batches []recorded[T]
}

type recorded[T any] struct {
	info stages.BatchInfo
	data []T
	at   time.Time
}

func (r *recorder[T]) handle(_ context.Context, b *stages.Batch[T]) error {
	rec := recorded[T]{info: b.BatchInfo, at: time.Now()}
	for _, m := range b.Messages {
		rec.data = append(rec.data, m.Data)
	}
	r.mu.Lock()
	r.batches = append(r.batches, rec)
	r.mu.Unlock()
	return nil
}

func (r *recorder[T]) snapshot() []recorded[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded[T](nil), r.batches...)
}

// run runs top in the background and returns a function that cancels it
// and returns Run's error, checking conservation.
func run[T any](t testing.TB, top *topology.Topology[T]) func() error {
	t.Helper()
	return topologytest.Start(t, top)
}

// countingProducer emits n messages 0..n-1 as fast as demand allows and
// records every demand it is told.
type countingProducer struct {
	n       int
	acker   stages.Acknowledger[int]
	mu      sync.Mutex
	demands []int
}

func (p *countingProducer) Run(ctx context.Context, out *stages.Emitter[int]) error {
	var buf []stages.Message[int]
	for sent := 0; sent < p.n; {
		d, err := out.Demand(ctx)
		if err != nil {
			return nil
		}
		p.mu.Lock()
		p.demands = append(p.demands, d)
		p.mu.Unlock()
		d = min(d, p.n-sent)
		buf = buf[:0]
		for i := range d {
			buf = append(buf, stages.Message[int]{Data: sent + i, Acker: p.acker})
		}
		if _, err := out.EmitAll(ctx, buf); err != nil {
			return nil
		}
		sent += d
	}
	return nil
}

// ackLog is an acknowledger that records every call.
type ackLog struct {
	mu    sync.Mutex
	calls int
	ok    map[int]int // id -> times acked ok
	fail  map[int]error
	done  chan struct{}
	want  int
}

func newAckLog(want int) *ackLog {
	return &ackLog{ok: map[int]int{}, fail: map[int]error{}, done: make(chan struct{}), want: want}
}

func (a *ackLog) Ack(ok, failed []*stages.Message[int]) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	for _, m := range ok {
		a.ok[m.Data]++
	}
	for _, m := range failed {
		if _, dup := a.fail[m.Data]; dup {
			a.fail[-1-m.Data] = m.Err() // mark duplicate
		}
		a.fail[m.Data] = m.Err()
	}
	if a.want > 0 && len(a.ok)+len(a.fail) >= a.want {
		select {
		case <-a.done:
		default:
			close(a.done)
		}
	}
}

func (a *ackLog) await(t testing.TB) {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(wait):
		a.mu.Lock()
		defer a.mu.Unlock()
		t.Fatalf("acks: %d ok + %d failed of %d", len(a.ok), len(a.fail), a.want)
	}
}
