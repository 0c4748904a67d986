package stages

import (
	"context"
	"errors"
	"fmt"
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
	b        *Buffer[T]
	promised int      // demand told to this emitter and not yet emitted
	parts    []uint32 // partition of each message being emitted
	dropped  []Message[T]
	one      [1]Message[T]
}

// Keep returns the stage's policy for a full buffer. A push producer that
// must never wait (a network stream whose socket has to be drained) can
// refuse Block.
func (e *Emitter[T]) Keep() Keep { return e.b.keep }

// Demand blocks until processors have asked for messages that are neither
// buffered nor promised to another producer goroutine, and returns how many.
// The producer should emit up to that many; emitting fewer is fine (the
// next call to Demand accounts for it), emitting more fills the buffer.
// It returns ErrClosed once the stage is draining, or ctx's error.
func (e *Emitter[T]) Demand(ctx context.Context) (int, error) {
	b := e.b
	b.mu.Lock()
	b.promised -= e.promised
	e.promised = 0
	for {
		if b.closed {
			b.mu.Unlock()
			return 0, ErrClosed
		}
		if n := b.unmetDemand(); n > 0 {
			e.promised = n
			b.promised += n
			if b.onDemand != nil {
				b.onDemand(n)
			}
			b.mu.Unlock()
			return n, nil
		}
		if b.demandCh == nil {
			b.demandCh = make(chan struct{})
		}
		ch := b.demandCh
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		b.mu.Lock()
	}
}

// Emit adds m to the buffer. Messages within the demand Demand told this
// emitter are never dropped: if their buffer is full they wait for room.
// Beyond that, with KeepLast and KeepFirst Emit never blocks (a full buffer
// drops a message, counted) and with Block it waits for room or for ctx to
// end. It returns ErrClosed once the stage is draining: the message was not
// taken.
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
	promised := min(e.promised, len(msgs))
	e.promised -= promised
	b.promised -= promised
	i := 0
	if b.partition == nil {
		if b.rings[0].n == 0 && len(b.waiting) > 0 && !b.rate.Enabled() {
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
			// Messages within the demand this emitter was told were asked
			// for: they wait for room rather than drop. That happens only
			// with partitioned processors, whose partitions a producer
			// cannot aim at.
			keep := b.keep
			if i < promised {
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
				if b.spaceCh == nil {
					b.spaceCh = make(chan struct{})
				}
				ch := b.spaceCh
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
		r.push(msgs[i])
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
	e.parts = e.parts[:0]
	for i := range msgs {
		e.parts = append(e.parts, uint32(b.partitionOf(&msgs[i])))
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
