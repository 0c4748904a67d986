package stages

import (
	"context"
	"math/bits"
	"time"
)

// processor is one goroutine of the processor pool.
type processor[T any] struct {
	e       *Engine[T]
	id      int
	ctx     context.Context
	routed  [][]*Message[T] // per batcher: messages of the chunk routed there
	copies  []*chunk[T]     // per batcher: fan-out copies
	ptrs    []*Message[T]
	direct  []*Message[T]
	settler settler[T]
	chunks  uint64 // chunks handled

	// Demand, as GenStage keeps it: pending counts messages asked for and
	// not yet processed; when it falls to minDemand the processor asks for
	// enough to be back at maxDemand.
	pending, maxDemand, minDemand int
}

func (e *Engine[T]) runProcessor(ctx context.Context, id int) {
	p := &processor[T]{e: e, id: id, ctx: withWorker(ctx, Worker{Index: id}),
		routed: make([][]*Message[T], len(e.batchers)), copies: make([]*chunk[T], len(e.batchers))}
	p.settler.init(e)
	if h := e.cfg.Hooks.ProcessorStart; h != nil {
		h(ProcessorEvent{Topology: e.cfg.Name, ID: id})
	}
	if h := e.cfg.Hooks.ProcessorStop; h != nil {
		defer h(ProcessorEvent{Topology: e.cfg.Name, ID: id})
	}
	p.maxDemand, p.minDemand = e.cfg.Processors.MaxDemand, e.cfg.Processors.MinDemand
	e.buf.Ask(id, p.maxDemand)
	p.pending = p.maxDemand
	for {
		c := e.getChunk()
		var err error
		c.msgs, err = e.buf.Take(ctx, id, c.msgs)
		if err != nil {
			e.putChunk(c)
			return
		}
		p.handle(c.msgs)
		if !p.dispatch(c) {
			return
		}
	}
}

// latencySample: one chunk in latencySample has its handler time measured;
// reading the clock for every chunk costs more than the no-op handlers it
// would time.
const latencySample = 8

// handle runs the handler on every message of msgs, turning panics into
// failures.
func (p *processor[T]) handle(msgs []Message[T]) {
	p.chunks++
	timed := p.chunks%latencySample == 1
	var start time.Time
	if timed {
		start = time.Now()
	}
	for i := 0; i < len(msgs); {
		i = p.handleFrom(msgs, i)
	}
	n := len(msgs)
	p.e.received.Add(int64(n))
	if timed && n > 0 {
		p.e.latency.ObserveN(int64(time.Since(start))/int64(n), n)
	}
}

// handleFrom handles msgs[i:] and returns len(msgs), or, if a handler
// panics, fails that message and returns the index after it.
func (p *processor[T]) handleFrom(msgs []Message[T], i int) (next int) {
	defer func() {
		if v := recover(); v != nil {
			msgs[next].Fail(newPanicError(v))
			if p.pending--; p.pending <= p.minDemand {
				p.e.buf.Ask(p.id, p.maxDemand-p.pending)
				p.pending = p.maxDemand
			}
			p.e.panics.Add(1)
			p.e.procFail.Add(1)
			p.e.cfg.Logger.Error("stages: processor handler panicked; message failed",
				"topology", p.e.cfg.Name, "processor", p.id, "panic", v)
			next++
		}
	}()
	handle, table, ctx := p.e.cfg.Processors.Handle, p.e.table, p.ctx
	for next = i; next < len(msgs); next++ {
		m := &msgs[next]
		m.reset()
		m.table = table
		if m.err == nil { // else failed before it got here, by its producer
			if err := handle(ctx, m); err != nil {
				m.Fail(err)
				p.e.procFail.Add(1)
			}
		}
		if p.pending--; p.pending <= p.minDemand {
			p.e.buf.Ask(p.id, p.maxDemand-p.pending)
			p.pending = p.maxDemand
		}
	}
	return next
}

// dispatch sends the chunk's messages on to their batchers, which keep
// pointers to them, and settles the ones that go nowhere. A message routed
// to several batchers is copied once per batcher, each copy tracking the
// shared outcome. It reports false if the topology was stopped hard.
func (p *processor[T]) dispatch(c *chunk[T]) bool {
	e := p.e
	msgs := c.msgs
	c.refs.Store(1) // the processor's own hold, released below
	defer e.release(c, 1)
	// Fast path: every message is healthy and goes to the same single batcher.
	if len(msgs) > 0 && len(e.batchers) > 0 {
		r := msgs[0].effectiveRoutes()
		uniform := r != 0 && r&(r-1) == 0
		for i := 0; uniform && i < len(msgs); i++ {
			uniform = msgs[i].err == nil && msgs[i].effectiveRoutes() == r
		}
		if uniform {
			ptrs := p.ptrs[:0]
			for i := range msgs {
				ptrs = append(ptrs, &msgs[i])
			}
			p.ptrs = ptrs
			e.forwarded.Add(int64(len(msgs)))
			c.refs.Add(int32(len(msgs)))
			return e.batchers[bits.TrailingZeros64(r)].add(p.ctx, c, ptrs)
		}
	}
	direct := p.direct[:0]
	forwarded := 0
	for i := range msgs {
		m := &msgs[i]
		r := m.effectiveRoutes()
		if m.err != nil || r == 0 {
			direct = append(direct, m)
			continue
		}
		if r&(r-1) == 0 {
			b := bits.TrailingZeros64(r)
			p.routed[b] = append(p.routed[b], m)
			forwarded++
			continue
		}
		m.fan = newFanout(bits.OnesCount64(r))
		for r != 0 {
			b := bits.TrailingZeros64(r)
			r &= r - 1
			if p.copies[b] == nil {
				p.copies[b] = e.getChunk()
				p.copies[b].refs.Store(1)
			}
			p.copies[b].msgs = append(p.copies[b].msgs, *m)
			forwarded++
		}
	}
	p.direct = direct
	e.forwarded.Add(int64(forwarded))
	ok := true
	for b := range e.batchers {
		if ptrs := p.routed[b]; len(ptrs) > 0 {
			c.refs.Add(int32(len(ptrs)))
			if ok {
				ok = e.batchers[b].add(p.ctx, c, ptrs)
			}
			clear(ptrs)
			p.routed[b] = ptrs[:0]
		}
		if cc := p.copies[b]; cc != nil {
			p.copies[b] = nil
			ptrs := p.ptrs[:0]
			for i := range cc.msgs {
				ptrs = append(ptrs, &cc.msgs[i])
			}
			p.ptrs = ptrs
			cc.refs.Add(int32(len(ptrs)))
			if ok {
				ok = e.batchers[b].add(p.ctx, cc, ptrs)
			}
			e.release(cc, 1)
		}
	}
	if len(direct) > 0 {
		p.settler.settle(p.ctx, direct, nil)
		clear(direct)
	}
	return ok
}
