package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Producer is a source of messages. The producer stage calls Run once per
// goroutine of its concurrency, each with its own Emitter, and Run emits
// messages until its source is exhausted (it returns nil) or ctx ends (it
// returns nil or ctx's error). Any other error stops the topology: it
// drains what it holds and returns that error.
//
// Producers come in two kinds, and Emitter serves both:
//
//   - A pull producer, which can wait (a Kafka consumer, a channel), loops
//     on Emitter.Demand and emits exactly the demand it was told, never
//     more: nothing is buffered beyond what processors asked for.
//   - A push producer, which cannot be slowed (a network stream), emits
//     whenever data arrives; the producer stage's bounded buffer absorbs
//     bursts and drops by its Keep policy when full, counting every drop.
//
// When the topology has drained and acknowledged every message, a producer
// that implements io.Closer is closed.
type Producer[T any] interface {
	Run(ctx context.Context, out *Emitter[T]) error
}

// ProducerFunc adapts a function to the Producer interface.
type ProducerFunc[T any] func(ctx context.Context, out *Emitter[T]) error

// Run calls f(ctx, out).
func (f ProducerFunc[T]) Run(ctx context.Context, out *Emitter[T]) error { return f(ctx, out) }

// Keep says what a full producer-stage buffer does with a new message.
type Keep uint8

const (
	// KeepLast drops the oldest buffered message to make room for the new
	// one (GenStage's buffer_keep: :last). It is the zero value.
	KeepLast Keep = iota
	// KeepFirst drops the new message and keeps what is buffered.
	KeepFirst
	// Block makes Emit wait until there is room (or its context ends). It is
	// for producers that can be slowed.
	Block
)

func (k Keep) String() string {
	switch k {
	case KeepLast:
		return "keep-last"
	case KeepFirst:
		return "keep-first"
	case Block:
		return "block"
	}
	return fmt.Sprintf("Keep(%d)", uint8(k))
}

// ErrClosed is returned by Emitter methods once the producer stage has
// stopped taking input: the topology is draining.
var ErrClosed = errors.New("stages: producer stage closed")

// Emitter is a producer's handle on its stage's buffer. Each producer
// goroutine has its own; it is not safe for concurrent use.
type Emitter[T any] struct {
	b *Buffer[T]
	// promised is the demand told to this emitter and not yet emitted,
	// counted in b.promised; promisedAt is when it was told. Both are
	// guarded by b.mu.
	promised   int
	promisedAt time.Time
	// lapsed is demand this emitter was told that other producers were
	// offered since (its lease ran out): what it emits within it still waits
	// for room rather than drop. Guarded by b.mu.
	lapsed  int
	parts   []int
	failed  []error // per message being emitted: its PartitionBy panic
	dropped []Message[T]
	one     [1]Message[T]
}

// Keep returns the stage's policy for a full buffer. A push producer that
// must never wait (a network stream whose socket has to be drained) can
// refuse Block.
func (e *Emitter[T]) Keep() Keep { return e.b.keep }

// Demand blocks until processors have asked for messages that are neither
// buffered nor promised to another producer goroutine, and returns how many.
// The producer should emit up to that many; emitting fewer is fine (the
// next call to Demand accounts for it), emitting more fills the buffer.
//
// With several producer goroutines, demand told to one of them is its own
// for a short lease; if it has not emitted it by then, or returns, the
// demand is offered to the others. While a rate limit holds messages back,
// Demand tells only what the limit can let out. It returns ErrClosed once
// the topology drains (a producer may still emit what it has read), or
// ctx's error once ctx ends.
func (e *Emitter[T]) Demand(ctx context.Context) (int, error) { return e.demand(ctx, true) }

// TryDemand is Demand without the wait: it returns the demand there is
// now, possibly 0. A producer that must act on a clock (a poller whose next
// poll is due) uses it to learn whether anyone wants what it would fetch.
func (e *Emitter[T]) TryDemand() (int, error) { return e.demand(context.Background(), false) }

func (e *Emitter[T]) demand(ctx context.Context, wait bool) (int, error) {
	b := e.b
	b.mu.Lock()
	b.promised -= e.promised
	e.promised, e.lapsed = 0, 0
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			b.mu.Unlock()
			return 0, err
		}
		if b.closed || b.stopping {
			// Draining: no more demand. What was read may still be emitted.
			b.mu.Unlock()
			return 0, ErrClosed
		}
		if n := b.unmetDemand(); n > 0 {
			e.promised = n
			b.promised += n
			if len(b.emitters) > 1 {
				e.promisedAt = time.Now()
			}
			if b.onDemand != nil {
				b.onDemand(n)
			}
			b.mu.Unlock()
			return n, nil
		}
		if !wait {
			b.mu.Unlock()
			return 0, nil
		}
		// Nothing to tell now. Wait for demand to grow, for the rate
		// limit's next interval, or for another producer's lease to end.
		ch := b.demand.Wait()
		wait := b.nextDemandCheck(e)
		b.mu.Unlock()
		var tick <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			tick = timer.C
		}
		select {
		case <-ch:
		case <-tick:
		case <-ctx.Done():
		}
		b.mu.Lock()
		b.reclaimLapsed(e)
	}
}

// nextDemandCheck is how long a producer with nothing to do waits before it
// looks again even if nobody wakes it: until the rate limit's next interval,
// or until the oldest promise to another producer lapses; 0 means no timer.
// b.mu must be held.
func (b *Buffer[T]) nextDemandCheck(self *Emitter[T]) time.Duration {
	if b.promised == 0 && !b.rateActive() {
		return 0
	}
	now := time.Now()
	wait := b.rateReopens(now)
	for _, o := range b.emitters {
		if o != self && o.promised > 0 {
			d := max(o.promisedAt.Add(promiseLease).Sub(now), time.Nanosecond)
			if wait == 0 || d < wait {
				wait = d
			}
		}
	}
	return wait
}

// reclaimLapsed takes back the promises to producers other than self whose
// lease has ended, so that Demand can offer them again. b.mu must be held.
func (b *Buffer[T]) reclaimLapsed(self *Emitter[T]) {
	if b.promised == 0 {
		return
	}
	now := time.Now()
	for _, o := range b.emitters {
		if o != self && o.promised > 0 && now.Sub(o.promisedAt) >= promiseLease {
			b.promised -= o.promised
			o.lapsed += o.promised
			o.promised = 0
		}
	}
}

// done gives back what e was promised and did not emit, once its producer
// has returned, and offers it to the other producers.
func (e *Emitter[T]) done() {
	b := e.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.promised -= e.promised
	e.promised, e.lapsed = 0, 0
	for i, o := range b.emitters {
		if o == e {
			b.emitters = append(b.emitters[:i], b.emitters[i+1:]...)
			break
		}
	}
	b.announceDemandLocked()
}

// Emit adds m to the buffer. Messages within the demand Demand told this
// emitter are never dropped: if their buffer is full they wait for room.
// Beyond that, with KeepLast and KeepFirst Emit never blocks (a full buffer
// drops a message, counted) and with Block it waits for room or for ctx to
// end. It returns ErrClosed once the stage takes no more input: the message
// was not taken. While the topology drains, producers may still emit what
// they have already read; the stage closes once every producer returned.
func (e *Emitter[T]) Emit(ctx context.Context, m Message[T]) error {
	e.one[0] = m
	_, err := e.EmitAll(ctx, e.one[:])
	var zero Message[T]
	e.one[0] = zero
	return err
}

// EmitAll adds msgs to the buffer in order, as Emit does, and returns how
// many it took: all of them, unless it returns an error (ErrClosed, or ctx's
// while waiting for room), in which case msgs[n:] were not taken. A message
// a full buffer dropped counts as taken (and as dropped). The messages are
// copied; the slice may be reused once EmitAll returns.
func (e *Emitter[T]) EmitAll(ctx context.Context, msgs []Message[T]) (n int, err error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	b := e.b
	if b.partition != nil {
		e.partitionAll(msgs)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, ErrClosed
	}
	// Messages within this emitter's promise (current or lapsed) wait for
	// room rather than drop.
	promised := min(e.promised, len(msgs))
	e.promised -= promised
	b.promised -= promised
	lapsed := min(e.lapsed, len(msgs)-promised)
	e.lapsed -= lapsed
	noDrop := promised + lapsed
	i := 0
	if b.partition == nil {
		if b.rings[0].n == 0 && len(b.waiting) > 0 && !b.rateActive() {
			i = b.deliverDirect(msgs)
		}
		// Copy what fits in one go.
		k := b.rings[0].pushAll(msgs[i:])
		b.buffered += k
		b.emitted += int64(k)
		i += k
	}
	for i < len(msgs) {
		r := &b.rings[0]
		if b.partition != nil {
			r = &b.rings[e.parts[i]]
		}
		if r.full() {
			keep := b.keep
			if i < noDrop {
				keep = Block
			}
			switch keep {
			case KeepFirst:
				e.dropped = append(e.dropped, msgs[i])
				b.emitted++
				i++
				continue
			case KeepLast:
				e.dropped = append(e.dropped, r.popFront())
				b.buffered--
			case Block:
				ch := b.space.Wait()
				b.wakeConsumers()
				b.mu.Unlock()
				e.flushDrops()
				select {
				case <-ch:
				case <-ctx.Done():
					return i, ctx.Err()
				}
				b.mu.Lock()
				if b.closed {
					b.mu.Unlock()
					return i, ErrClosed
				}
				continue
			}
		}
		m := r.push(msgs[i])
		if b.partition != nil && e.failed[i] != nil {
			m.Fail(e.failed[i])
		}
		b.buffered++
		b.emitted++
		i++
	}
	if b.buffered > b.maxBuffered {
		b.maxBuffered = b.buffered
	}
	b.wakeConsumers()
	b.mu.Unlock()
	e.flushDrops()
	return len(msgs), nil
}

func (e *Emitter[T]) partitionAll(msgs []Message[T]) {
	b := e.b
	e.parts, e.failed = e.parts[:0], e.failed[:0]
	for i := range msgs {
		p, err := b.partitionOf(&msgs[i])
		e.parts = append(e.parts, p)
		e.failed = append(e.failed, err)
	}
}

// flushDrops counts, reports and forgets the messages this emitter dropped.
func (e *Emitter[T]) flushDrops() {
	if len(e.dropped) == 0 {
		return
	}
	e.b.reportDrops(e.dropped)
	clear(e.dropped)
	e.dropped = e.dropped[:0]
}

// FromSlice returns a pull producer that emits data in order, as demand
// allows, and then finishes, so the topology drains and Run returns. It is
// meant for examples, tests and replays of known data.
func FromSlice[T any](data ...T) Producer[T] {
	return ProducerFunc[T](func(ctx context.Context, out *Emitter[T]) error {
		var buf []Message[T]
		for len(data) > 0 {
			n, err := out.Demand(ctx)
			if err != nil {
				return nil
			}
			n = min(n, len(data))
			buf = buf[:0]
			for _, d := range data[:n] {
				buf = append(buf, Message[T]{Data: d})
			}
			if _, err := out.EmitAll(ctx, buf); err != nil {
				return nil
			}
			data = data[n:]
		}
		return nil
	})
}
