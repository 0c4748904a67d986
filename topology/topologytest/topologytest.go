// Package topologytest helps test topologies, in the spirit of Broadway's
// test helpers:
//
//   - Producer is a pull producer the test feeds. Push queues messages and
//     returns a Pending whose Wait or Await returns their acknowledgements
//     (Broadway's test_batch); PushFlush does the same but makes each message
//     flush the batch it joins at once, whatever BatchSize and BatchTimeout
//     say (Broadway's test_message with batch_mode: :flush).
//   - Acks lists what came back: the successful and failed messages, and in
//     Records every Ack call with its own successful and failed lists, so a
//     test can assert "acknowledged in one call with [1 2], failed [3]".
//     NewPending makes the same recorder for messages a test emits itself.
//   - Start runs a topology for the length of a test; its cleanup cancels
//     the topology, waits for the drain up to a deadline (DrainDeadline), and
//     fails the test with the Stats snapshot and the goroutine stacks if Run
//     hangs, instead of hanging the test binary.
//   - Placements records which processor or batch processor ran each key,
//     via stages.WorkerFrom(ctx), for partitioning tests.
//   - CheckConservation checks that every emitted message was acknowledged
//     or dropped.
package topologytest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
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

// PushFlush is Push for messages that must not wait for a full batch:
// each one calls FlushBatch, so the batch it joins goes to a batch processor
// as soon as it is in it (its trigger is stages.TriggerFlush). It is
// Broadway's test_message: the acknowledgement comes without waiting for
// BatchSize messages or BatchTimeout.
func (p *Producer[T]) PushFlush(data ...T) *Pending[T] {
	msgs := make([]stages.Message[T], len(data))
	for i, d := range data {
		msgs[i].Data = d
		msgs[i].FlushBatch()
	}
	return p.PushMessages(msgs...)
}

// PushMessages queues msgs and returns a Pending that collects their
// acknowledgements. Each message's Acker is replaced by the Pending; the
// rest of the message (Metadata, a batch key, FlushBatch, a failure) is
// emitted as given.
func (p *Producer[T]) PushMessages(msgs ...stages.Message[T]) *Pending[T] {
	pd := NewPending[T](len(msgs))
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

// Pending collects the acknowledgements of messages pushed together. It is
// a stages.Acknowledger; Push and PushMessages make one, NewPending makes
// one for messages a test emits by other means.
type Pending[T any] struct {
	mu         sync.Mutex
	want       int
	successful []stages.Message[T]
	failed     []stages.Message[T]
	records    []AckCall[T]
	done       chan struct{}
}

// NewPending returns an acknowledger that expects want messages: Done is
// closed once it has been told of that many. Set it as the Acker of the
// messages a test's own producer emits.
func NewPending[T any](want int) *Pending[T] {
	pd := &Pending[T]{want: want, done: make(chan struct{})}
	if want <= 0 {
		close(pd.done)
	}
	return pd
}

// Ack records acknowledgements; it implements stages.Acknowledger.
func (p *Pending[T]) Ack(successful, failed []*stages.Message[T]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	call := AckCall[T]{
		Successful: make([]T, 0, len(successful)),
		Failed:     make([]T, 0, len(failed)),
		Errs:       make([]error, 0, len(failed)),
	}
	for _, m := range successful {
		p.successful = append(p.successful, *m)
		call.Successful = append(call.Successful, m.Data)
	}
	for _, m := range failed {
		p.failed = append(p.failed, *m)
		call.Failed = append(call.Failed, m.Data)
		call.Errs = append(call.Errs, m.Err())
	}
	p.records = append(p.records, call)
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
	// Successful and Failed are copies of the acknowledged messages, in the
	// order they were acknowledged.
	Successful []stages.Message[T]
	Failed     []stages.Message[T]
	// Calls counts Ack calls: grouped acknowledgement means one per batch.
	Calls int
	// Records has one entry per Ack call, in call order: what each call
	// acknowledged, the way Broadway's {:ack, ref, successful, failed}
	// messages tell it.
	Records []AckCall[T]
}

// AckCall is what one call to an acknowledger's Ack was given.
type AckCall[T any] struct {
	// Successful and Failed are the Data of the call's successful and failed
	// messages, in the order the call listed them.
	Successful []T
	Failed     []T
	// Errs[i] is the error Failed[i] was failed with.
	Errs []error
}

// String formats the call as "ok [1 2] failed [3]".
func (c AckCall[T]) String() string {
	return fmt.Sprintf("ok %v failed %v", c.Successful, c.Failed)
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
		Calls:      len(p.records),
		Records:    append([]AckCall[T](nil), p.records...),
	}
}

// DefaultDrainGrace is how much longer than the topology's ShutdownTimeout
// Start waits for Run to return, unless DrainDeadline says otherwise.
const DefaultDrainGrace = 10 * time.Second

// ErrHung is wrapped by the error stop returns when Run did not return
// within the drain deadline.
var ErrHung = errors.New("topologytest: Run did not return after its context was cancelled")

// Option configures Start.
type Option func(*options)

type options struct {
	deadline time.Duration
}

// DrainDeadline sets how long stop (and the test's cleanup) waits for Run
// to return once the topology's context is cancelled. The default is the
// topology's ShutdownTimeout plus DefaultDrainGrace. Under testing/synctest
// the deadline is measured on the bubble's clock.
func DrainDeadline(d time.Duration) Option {
	return func(o *options) { o.deadline = d }
}

// Start runs top until the test ends: cleanup cancels its context, waits
// for Run to return, and fails the test if Run returned an error or if the
// topology's counters do not balance (emitted = acked + failed + dropped).
// It returns a function that stops the topology early and returns Run's
// error.
//
// A drain that hangs does not hang the test binary: if Run has not returned
// by the drain deadline (see DrainDeadline), stop fails the test with the
// topology's Stats and every goroutine's stack, and returns an error
// wrapping ErrHung; Run's goroutine is left behind.
func Start[T any](t testing.TB, top *topology.Topology[T], opts ...Option) (stop func() error) {
	t.Helper()
	o := options{deadline: top.Describe().ShutdownTimeout + DefaultDrainGrace}
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- top.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		t.Helper()
		once.Do(func() {
			cancel()
			timer := time.NewTimer(o.deadline)
			defer timer.Stop()
			select {
			case runErr = <-done:
			case <-timer.C:
				runErr = fmt.Errorf("topology %s: %w within %v", top.Name(), ErrHung, o.deadline)
				t.Errorf("%v\n%s\n\n%s", runErr, FormatStats(top.Stats()), stacks())
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			if !errors.Is(err, ErrHung) {
				t.Errorf("topology %s: Run: %v", top.Name(), err)
			}
			return
		}
		if err := CheckConservation(top.Stats()); err != nil {
			t.Error(err)
		}
	})
	return stop
}

// FormatStats writes a Stats snapshot over a few lines, for failure
// messages.
func FormatStats(s stages.Stats) string {
	out := fmt.Sprintf("stats of %s: emitted %d, acked %d, failed %d, dropped %d, in flight %d\n",
		s.Name, s.Producer.Emitted, s.Acked, s.Failed, s.Dropped, s.InFlight)
	out += fmt.Sprintf("  producer stage: delivered %d, buffered %d, demand %d, promised %d\n",
		s.Producer.Delivered, s.Producer.Buffered, s.Producer.Demand, s.Producer.Promised)
	out += fmt.Sprintf("  processors: received %d, failed %d, panics %d, forwarded %d\n",
		s.Processors.Received, s.Processors.Failed, s.Processors.Panics, s.Processors.Forwarded)
	for _, b := range s.Batchers {
		out += fmt.Sprintf("  batcher %s: received %d, pending %d, acked %d, failed %d, batches %d (%d failed, %d retries), missing %d\n",
			b.Name, b.Received, b.Pending, b.Acked, b.Failed, b.Batches, b.BatchesFailed, b.Retries, b.Missing)
	}
	return out
}

// stacks returns every goroutine's stack.
func stacks() string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return string(buf[:n])
		}
		buf = make([]byte, 2*len(buf))
	}
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

// Placements records which worker (stages.WorkerFrom) ran the handler for
// each key, for partitioning tests: with PartitionBy, every key must always
// run on the same processor, or the same batch processor of a batcher.
// It is safe for concurrent use; the zero value is ready.
type Placements[K comparable] struct {
	mu   sync.Mutex
	seen map[K][]stages.Worker // distinct workers, in the order first seen
	n    int
}

// Record notes that the handler that got ctx handled key, and returns the
// worker running it. A ctx no processor or batch processor handed out
// records (and returns) the Worker with Index -1.
func (p *Placements[K]) Record(ctx context.Context, key K) stages.Worker {
	w, ok := stages.WorkerFrom(ctx)
	if !ok {
		w = stages.Worker{Index: -1}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen = make(map[K][]stages.Worker)
	}
	p.n++
	for _, x := range p.seen[key] {
		if x == w {
			return w
		}
	}
	p.seen[key] = append(p.seen[key], w)
	return w
}

// Workers returns the distinct workers that handled key, in the order they
// first did.
func (p *Placements[K]) Workers(key K) []stages.Worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]stages.Worker(nil), p.seen[key]...)
}

// Len returns how many handler calls were recorded.
func (p *Placements[K]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Check returns an error naming every key that ran anywhere but on
// want(key), such as stages.Worker{Batcher: "b", Index: int(key % 4)}.
func (p *Placements[K]) Check(want func(K) stages.Worker) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for key, ws := range p.seen {
		w := want(key)
		if len(ws) != 1 || ws[0] != w {
			errs = append(errs, fmt.Errorf("key %v ran on %v, want only %v", key, ws, w))
		}
	}
	return errors.Join(errs...)
}
