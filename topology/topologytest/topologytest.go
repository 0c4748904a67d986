// Package topologytest helps test topologies: a Producer the test feeds,
// acknowledgements a test can wait for (Broadway's test_message and
// test_batch, in Go), and Start, which runs a topology for the length of a
// test.
package topologytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// Producer is a pull producer fed by the test: it emits what Push gives it,
// never more than the topology asks for, so nothing it sends is dropped.
// Close makes it finish once everything pushed has been emitted, which lets
// the topology drain and Run return.
type Producer[T any] struct {
	mu      sync.Mutex
	queue   []stages.Message[T]
	closed  bool
	ready   chan struct{} // closed and replaced when queue or closed changes
	demands []int
}

// NewProducer returns an empty, open Producer.
func NewProducer[T any]() *Producer[T] {
	return &Producer[T]{ready: make(chan struct{})}
}

// Push queues a message for each value and returns a Pending that collects
// their acknowledgements.
func (p *Producer[T]) Push(data ...T) *Pending[T] {
	msgs := make([]stages.Message[T], len(data))
	for i, d := range data {
		msgs[i].Data = d
	}
	return p.PushMessages(msgs...)
}

// PushMessages queues msgs and returns a Pending that collects their
// acknowledgements. Each message's Acker is replaced by the Pending.
func (p *Producer[T]) PushMessages(msgs ...stages.Message[T]) *Pending[T] {
	pd := &Pending[T]{want: len(msgs), done: make(chan struct{})}
	if len(msgs) == 0 {
		close(pd.done)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		panic("topologytest: Push after Close")
	}
	for _, m := range msgs {
		m.Acker = pd
		p.queue = append(p.queue, m)
	}
	p.notifyLocked()
	return pd
}

// Close tells the producer no more messages will be pushed.
func (p *Producer[T]) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.notifyLocked()
}

// Demands returns every demand the topology told the producer, in order.
func (p *Producer[T]) Demands() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.demands...)
}

func (p *Producer[T]) notifyLocked() {
	close(p.ready)
	p.ready = make(chan struct{})
}

// Run emits pushed messages as the topology asks for them.
func (p *Producer[T]) Run(ctx context.Context, out *stages.Emitter[T]) error {
	var batch []stages.Message[T]
	for {
		n, err := out.Demand(ctx)
		if err != nil {
			return nil
		}
		p.mu.Lock()
		p.demands = append(p.demands, n)
		for len(p.queue) == 0 && !p.closed {
			ready := p.ready
			p.mu.Unlock()
			select {
			case <-ready:
			case <-ctx.Done():
				return nil
			}
			p.mu.Lock()
		}
		if len(p.queue) == 0 && p.closed {
			p.mu.Unlock()
			return nil
		}
		k := min(n, len(p.queue))
		batch = append(batch[:0], p.queue[:k]...)
		clear(p.queue[:k])
		p.queue = p.queue[k:]
		p.mu.Unlock()
		if _, err := out.EmitAll(ctx, batch); err != nil {
			return nil
		}
	}
}

// Pending collects the acknowledgements of messages pushed together.
type Pending[T any] struct {
	mu         sync.Mutex
	want       int
	successful []stages.Message[T]
	failed     []stages.Message[T]
	calls      int
	done       chan struct{}
}

// Ack records acknowledgements; it implements stages.Acknowledger.
func (p *Pending[T]) Ack(successful, failed []*stages.Message[T]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	for _, m := range successful {
		p.successful = append(p.successful, *m)
	}
	for _, m := range failed {
		p.failed = append(p.failed, *m)
	}
	if got := len(p.successful) + len(p.failed); got >= p.want && p.want > 0 {
		select {
		case <-p.done:
		default:
			close(p.done)
		}
	}
}

// Acks is the outcome of pushed messages.
type Acks[T any] struct {
	Successful []stages.Message[T]
	Failed     []stages.Message[T]
	// Calls counts Ack calls: grouped acknowledgement means one per batch.
	Calls int
}

// Done is closed once every message has been acknowledged.
func (p *Pending[T]) Done() <-chan struct{} { return p.done }

// Wait waits until every message has been acknowledged, or ctx ends.
func (p *Pending[T]) Wait(ctx context.Context) (Acks[T], error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.mu.Lock()
		got := len(p.successful) + len(p.failed)
		p.mu.Unlock()
		return p.acks(), fmt.Errorf("topologytest: %d of %d messages acknowledged: %w", got, p.want, ctx.Err())
	}
	return p.acks(), nil
}

// Await waits up to timeout for every acknowledgement and fails the test
// if they do not all come.
func (p *Pending[T]) Await(t testing.TB, timeout time.Duration) Acks[T] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	acks, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return acks
}

func (p *Pending[T]) acks() Acks[T] {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Acks[T]{
		Successful: append([]stages.Message[T](nil), p.successful...),
		Failed:     append([]stages.Message[T](nil), p.failed...),
		Calls:      p.calls,
	}
}

// Start runs top until the test ends: cleanup cancels its context, waits
// for Run to return, and fails the test if Run returned an error or if the
// topology's counters do not balance (emitted = acked + failed + dropped).
// It returns a function that stops the topology early and returns Run's
// error.
func Start[T any](t testing.TB, top *topology.Topology[T]) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- top.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("topology %s: Run: %v", top.Name(), err)
		}
		if err := CheckConservation(top.Stats()); err != nil {
			t.Error(err)
		}
	})
	return stop
}

// CheckConservation returns an error unless every message the producer
// emitted was acknowledged or dropped: emitted = acked + failed + dropped,
// with nothing in flight. Call it after Run returned.
func CheckConservation(s stages.Stats) error {
	if s.InFlight != 0 || s.Producer.Emitted != s.Acked+s.Failed+s.Dropped {
		return fmt.Errorf("topology %s: conservation broken: emitted %d != acked %d + failed %d + dropped %d (in flight %d)",
			s.Name, s.Producer.Emitted, s.Acked, s.Failed, s.Dropped, s.InFlight)
	}
	return nil
}
