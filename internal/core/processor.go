package core

import (
	"context"
	"errors"
	"math/bits"
	"time"
)

// processor is one goroutine of the processor pool.
type processor[T any] struct {
	e       *Engine[T]
	id      int
	ctx     context.Context
	state   *atomicState
	routed  [][]ref[T]  // per batcher: messages of the chunk routed there, in order
	copies  []*chunk[T] // per batcher: storage for fan-out copies
	direct  []*Message[T]
	failed  []ref[T] // messages a batcher's SizeFunc or PartitionBy failed
	fmsgs   []*Message[T]
	settler settler[T]
	chunks  uint64 // chunks handled

	// Demand, as GenStage keeps it: pending counts messages asked for and
	// not yet processed; when it falls to minDemand the processor asks for
	// enough to be back at maxDemand.
	pending, maxDemand, minDemand int
}

// ref is one message on its way to a batcher: where it lives, and what the
// batcher's size and partition functions said of it.
type ref[T any] struct {
	m    *Message[T]
	c    *chunk[T]
	size int32
	part int32
}

func (e *Engine[T]) runProcessor(ctx context.Context, id int) {
	p := &processor[T]{e: e, id: id, ctx: withWorker(ctx, Worker{Index: id}), state: (*atomicState)(&e.procState[id]),
		routed: make([][]ref[T], len(e.batchers)), copies: make([]*chunk[T], len(e.batchers))}
	p.settler.init(e)
	log := e.cfg.Logger
	if h := e.cfg.Hooks.ProcessorStart; h != nil {
		safely(log, "ProcessorStart hook", func() { h(ProcessorEvent{Topology: e.cfg.Name, ID: id}) })
	}
	if h := e.cfg.Hooks.ProcessorStop; h != nil {
		defer safely(log, "ProcessorStop hook", func() { h(ProcessorEvent{Topology: e.cfg.Name, ID: id}) })
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
		p.state.set(workerHandling)
		p.handle(c.msgs)
		p.state.set(workerIdle)
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
			perr := newPanicError(v)
			msgs[next].Fail(perr)
			p.askMore()
			p.e.panics.Add(1)
			p.e.procFail.Add(1)
			p.e.cfg.Logger.Error("stages: processor handler panicked; message failed",
				"topology", p.e.cfg.Name, "processor", p.id, "panic", v, "stack", string(perr.Stack))
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
			}
			if m.err != nil {
				p.failedHere(m)
			}
		}
		p.askMore()
	}
	return next
}

// askMore counts one message done and asks the buffer for more once
// pending falls to MinDemand.
func (p *processor[T]) askMore() {
	if p.pending--; p.pending <= p.minDemand {
		p.e.buf.Ask(p.id, p.maxDemand-p.pending)
		p.pending = p.maxDemand
	}
}

// failedHere counts a message the handler failed (by error, Fail or a route
// to an unknown batcher) and logs unknown routes, rate-limited.
func (p *processor[T]) failedHere(m *Message[T]) {
	p.e.procFail.Add(1)
	var ub *UnknownBatcherError
	if errors.As(m.err, &ub) {
		if ok, n := p.e.routeLog.Allow(1); ok {
			p.e.cfg.Logger.Error("stages: message routed to an unknown batcher; failed",
				"topology", p.e.cfg.Name, "batcher", ub.Name, "known", ub.Known, "messages", n)
		}
	}
}

// dispatch sends the chunk's messages on to their batchers, which keep
// pointers to them, and settles the ones that go nowhere. A message routed
// to several batchers is copied once per batcher, each copy tracking the
// shared outcome. Each batcher gets its messages in chunk order, copies
// included, so per-key order holds through fan-out. It reports false if
// the topology was stopped hard.
func (p *processor[T]) dispatch(c *chunk[T]) bool {
	e := p.e
	msgs := c.msgs
	c.refs.Store(1) // the processor's own hold, released below
	defer e.release(c, 1)
	direct := p.direct[:0]
	forwarded, held := 0, 0 // held: messages of c that batches will hold
	for i := range msgs {
		m := &msgs[i]
		r := m.effectiveRoutes()
		if m.err != nil || r == 0 {
			direct = append(direct, m)
			continue
		}
		if r&(r-1) == 0 {
			b := bits.TrailingZeros64(r)
			p.routed[b] = append(p.routed[b], ref[T]{m: m, c: c})
			forwarded++
			held++
			continue
		}
		m.fan = newFanout(bits.OnesCount64(r))
		for r != 0 {
			b := bits.TrailingZeros64(r)
			r &= r - 1
			cc := p.copies[b]
			if cc == nil {
				cc = e.getChunk()
				if cap(cc.msgs) < len(msgs) {
					cc.msgs = make([]Message[T], 0, len(msgs))
				}
				cc.refs.Store(1)
				p.copies[b] = cc
			}
			cc.msgs = append(cc.msgs, *m)
			p.routed[b] = append(p.routed[b], ref[T]{m: &cc.msgs[len(cc.msgs)-1], c: cc})
			forwarded++
		}
	}
	p.direct = direct
	e.forwarded.Add(int64(forwarded))
	// Batches hold one reference per message on the storage it lives in.
	c.refs.Add(int32(held))
	for _, cc := range p.copies {
		if cc != nil {
			cc.refs.Add(int32(len(cc.msgs)))
		}
	}
	ok := true
	for i, b := range e.batchers {
		if refs := p.routed[i]; len(refs) > 0 {
			refs = p.measure(b, refs)
			if ok && len(refs) > 0 {
				ok = b.add(p.ctx, refs)
			}
			clear(p.routed[i])
			p.routed[i] = p.routed[i][:0]
		}
		if cc := p.copies[i]; cc != nil {
			p.copies[i] = nil
			e.release(cc, 1)
		}
	}
	if len(direct) > 0 {
		p.state.set(workerAcking)
		p.settler.settle(p.ctx, direct, nil)
		p.state.set(workerIdle)
		clear(direct)
	}
	return ok
}

// measure runs batcher b's size and partition functions on refs, which hold
// a chunk reference each. Messages whose function panicked are failed,
// settled and let go of; it returns the others.
func (p *processor[T]) measure(b *batcher[T], refs []ref[T]) []ref[T] {
	if b.cfg.SizeFunc == nil && b.cfg.PartitionBy == nil {
		return refs
	}
	kept, failed := refs[:0], p.failed[:0]
	for _, r := range refs {
		if b.measure(&r) {
			kept = append(kept, r)
		} else {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		fmsgs := p.fmsgs[:0]
		for _, r := range failed {
			fmsgs = append(fmsgs, r.m)
		}
		b.received.Add(int64(len(fmsgs)))
		p.state.set(workerAcking)
		p.settler.settle(p.ctx, fmsgs, b)
		p.state.set(workerIdle)
		for _, r := range failed {
			p.e.release(r.c, 1)
		}
		clear(fmsgs)
		p.fmsgs = fmsgs[:0]
		clear(failed)
	}
	p.failed = failed[:0]
	return kept
}
