package core

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/internal/backoff"
	"github.com/causeway-go/causeway/internal/ratelog"
)

// RetryPolicy re-runs failed batches before their messages count as failed.
// The zero value never retries.
type RetryPolicy struct {
	// Attempts is the most handler calls per batch, the first included;
	// 0 and 1 mean no retry.
	Attempts int
	// Backoff is the wait before the first retry; it doubles after each.
	// Default 100ms.
	Backoff time.Duration
	// MaxBackoff caps the wait. Default 10s.
	MaxBackoff time.Duration
	// Retryable, if set, decides whether a message failed with err is
	// retried; by default every failure is.
	Retryable func(err error) bool
}

func (r RetryPolicy) wait(attempt int) time.Duration {
	d, maxD := r.Backoff, r.MaxBackoff
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	if maxD <= 0 {
		maxD = 10 * time.Second
	}
	return backoff.Exponential(d, maxD, attempt)
}

// openBatch is a batch being filled, then handled. It points into the
// chunks processors took the messages into, and holds them until settled.
type openBatch[T any] struct {
	msgs      []*Message[T]
	holds     []hold[T]
	key       string
	partition int
	size      int // sum of SizeFunc, or len(msgs)
	deadline  time.Time
	trigger   Trigger
}

// hold is n messages of a batch living in chunk c.
type hold[T any] struct {
	c *chunk[T]
	n int32
}

type batchKey struct {
	key       string
	partition int
}

// batcher groups one named batcher's messages into batches and runs its
// batch processors. Processors add messages under mu, copying them into open
// batches while they are still hot in the processor's cache; a batch that
// fills up is handed to a batch processor by the processor that filled it,
// and one that times out by the batcher's timer goroutine.
type batcher[T any] struct {
	e      *Engine[T]
	index  int
	cfg    BatcherConfig[T]
	policy batchPolicy
	outs   []chan *openBatch[T] // one shared, or one per partition
	// sendMu[i] serializes hand-overs on outs[i]: it is taken before mu is
	// released, so batches leave in the order they were closed.
	sendMu []sync.Mutex
	pool   sync.Pool

	mu      sync.Mutex
	open    map[batchKey]*openBatch[T]
	last    *openBatch[T] // most recently used open batch
	nextDue time.Time     // zero: timer not armed
	timer   *time.Timer
	closing bool          // close has begun: the timer goroutine flushes nothing more
	quit    chan struct{} // closed by close: the timer goroutine returns
	timerOK chan struct{} // closed when the timer goroutine has returned

	bpState       []atomic.Int32 // per batch processor: what it is doing
	received      atomic.Int64
	pending       atomic.Int64
	batches       atomic.Int64
	batchesFailed atomic.Int64
	retries       atomic.Int64
	missing       atomic.Int64
	acked         atomic.Int64
	failed        atomic.Int64
	sizes         *Histogram
	latency       *Histogram
	panicLog      ratelog.Limiter
}

func newBatcher[T any](e *Engine[T], index int, cfg BatcherConfig[T]) *batcher[T] {
	b := &batcher[T]{
		e:       e,
		index:   index,
		cfg:     cfg,
		open:    make(map[batchKey]*openBatch[T]),
		quit:    make(chan struct{}),
		timerOK: make(chan struct{}),
		sizes:   NewSizeHistogram(),
		latency: NewLatencyHistogram(),
		bpState: make([]atomic.Int32, cfg.Concurrency),
		policy:  batchPolicy{size: cfg.BatchSize, sized: cfg.SizeFunc != nil, timeout: cfg.BatchTimeout},
	}
	n := 1
	if cfg.PartitionBy != nil {
		n = cfg.Concurrency
	}
	for range n {
		b.outs = append(b.outs, make(chan *openBatch[T]))
	}
	b.sendMu = make([]sync.Mutex, n)
	size := cfg.BatchSize
	if cfg.SizeFunc != nil {
		size = 16
	}
	b.pool.New = func() any { return &openBatch[T]{msgs: make([]*Message[T], 0, size)} }
	return b
}

func (b *batcher[T]) start(ctx context.Context, wg *sync.WaitGroup) {
	b.timer = time.NewTimer(time.Hour)
	b.timer.Stop()
	wg.Go(func() { b.runTimer(ctx) })
	for i := range b.cfg.Concurrency {
		out := b.outs[0]
		if b.cfg.PartitionBy != nil {
			out = b.outs[i]
		}
		wctx := withWorker(ctx, Worker{Batcher: b.cfg.Name, Index: i})
		wg.Go(func() { b.runProcessor(wctx, (*atomicState)(&b.bpState[i]), out) })
	}
}

// runTimer flushes batches whose timeout passed.
func (b *batcher[T]) runTimer(ctx context.Context) {
	defer close(b.timerOK)
	for {
		select {
		case <-b.timer.C:
			b.mu.Lock()
			if b.closing {
				// The timer fired as close began: close flushes everything.
				b.mu.Unlock()
				return
			}
			b.nextDue = time.Time{}
			ok := b.flushDue(ctx, time.Now())
			b.mu.Unlock()
			if !ok {
				return
			}
		case <-b.quit:
			return
		case <-ctx.Done():
			return
		}
	}
}

// close flushes every open batch (trigger drain) and ends the batch
// processors once they have handled them. It is called once, after the last
// processor stopped. The timer goroutine may be flushing a batch at that
// moment: close waits for it to return before it closes the channels that
// batch goes out on.
func (b *batcher[T]) close(ctx context.Context) {
	b.mu.Lock()
	b.closing = true
	b.timer.Stop()
	for _, ob := range b.open {
		if !b.flushLocked(ctx, ob, TriggerDrain) {
			break
		}
	}
	b.mu.Unlock()
	close(b.quit)
	<-b.timerOK
	for _, o := range b.outs {
		close(o)
	}
}

// measure runs the size and partition functions on r's message and
// records their answers in r. If one panics, it fails the message and
// reports false.
func (b *batcher[T]) measure(r *ref[T]) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			perr := newPanicError(v)
			r.m.Fail(perr)
			ok = false
			if allowed, n := b.panicLog.Allow(1); allowed {
				b.e.cfg.Logger.Error("stages: batcher SizeFunc or PartitionBy panicked; message failed",
					"topology", b.e.cfg.Name, "batcher", b.cfg.Name, "messages", n, "panic", v, "stack", string(perr.Stack))
			}
		}
	}()
	if b.cfg.PartitionBy != nil {
		r.part = int32(b.cfg.PartitionBy(r.m) % uint64(b.cfg.Concurrency))
	}
	if b.cfg.SizeFunc != nil {
		r.size = int32(b.cfg.SizeFunc(r.m))
	}
	return true
}

// add puts a processor's messages into their open batches, in order,
// handing over the ones that fill up. Each ref holds one reference on the
// chunk its message lives in; the batches keep them. It reports false if
// the topology was stopped hard.
func (b *batcher[T]) add(ctx context.Context, refs []ref[T]) bool {
	b.received.Add(int64(len(refs)))
	b.pending.Add(int64(len(refs)))
	b.mu.Lock()
	defer b.mu.Unlock()
	var now time.Time
	for i := 0; i < len(refs); {
		m, part := refs[i].m, int(refs[i].part)
		ob := b.last
		if ob == nil || ob.key != m.batchKey || ob.partition != part {
			ob = b.open[batchKey{m.batchKey, part}]
		}
		size := 1
		if b.policy.sized {
			size = int(refs[i].size)
			if ob != nil && b.policy.overflows(fill{len(ob.msgs), ob.size}, size) {
				if !b.flushLocked(ctx, ob, TriggerSize) {
					return false
				}
				// b.mu was released while the batch was handed over: another
				// processor may have opened a batch for this key. Look again.
				continue
			}
		}
		if ob == nil {
			if now.IsZero() {
				now = time.Now()
			}
			ob = b.pool.Get().(*openBatch[T])
			ob.key, ob.partition, ob.size = m.batchKey, part, 0
			ob.deadline = b.policy.deadline(now)
			b.open[batchKey{m.batchKey, part}] = ob
			b.arm(ob.deadline, now)
		}
		b.last = ob
		j := i + 1
		if !b.policy.sized && b.cfg.PartitionBy == nil {
			// Take the run of messages with this batch key that fits.
			room := i + b.policy.room(fill{len(ob.msgs), ob.size})
			for ; j < len(refs) && j < room && refs[j].m.batchKey == ob.key && !refs[j-1].m.flush; j++ {
			}
			size = j - i
		}
		for _, r := range refs[i:j] {
			ob.msgs = append(ob.msgs, r.m)
			if h := len(ob.holds) - 1; h >= 0 && ob.holds[h].c == r.c {
				ob.holds[h].n++
			} else {
				ob.holds = append(ob.holds, hold[T]{r.c, 1})
			}
		}
		ob.size += size
		i = j
		if t, ok := b.policy.closes(fill{len(ob.msgs), ob.size}, refs[j-1].m.flush); ok {
			if !b.flushLocked(ctx, ob, t) {
				return false
			}
		}
	}
	return true
}

// arm makes the timer fire by due. b.mu must be held.
func (b *batcher[T]) arm(due, now time.Time) {
	if !b.nextDue.IsZero() && !due.Before(b.nextDue) {
		return
	}
	b.timer.Reset(due.Sub(now))
	b.nextDue = due
}

// flushDue hands over the batches whose deadline passed. b.mu must be held.
func (b *batcher[T]) flushDue(ctx context.Context, now time.Time) bool {
	var next time.Time
	for _, ob := range b.open {
		if b.policy.due(ob.deadline, now) {
			if !b.flushLocked(ctx, ob, TriggerTimeout) {
				return false
			}
		} else if next.IsZero() || ob.deadline.Before(next) {
			next = ob.deadline
		}
	}
	if !next.IsZero() {
		b.arm(next, now)
	}
	return true
}

// flushLocked closes ob and hands it to a batch processor, waiting for one
// to be free. b.mu must be held; it is released while waiting and held again
// on return.
func (b *batcher[T]) flushLocked(ctx context.Context, ob *openBatch[T], t Trigger) bool {
	delete(b.open, batchKey{ob.key, ob.partition})
	if b.last == ob {
		b.last = nil
	}
	ob.trigger = t
	i := 0
	if b.cfg.PartitionBy != nil {
		i = ob.partition
	}
	b.sendMu[i].Lock()
	b.mu.Unlock()
	defer b.mu.Lock()
	defer b.sendMu[i].Unlock()
	select {
	case b.outs[i] <- ob:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *batcher[T]) stats() BatcherStats {
	return BatcherStats{
		Name:          b.cfg.Name,
		Concurrency:   b.cfg.Concurrency,
		Received:      b.received.Load(),
		Pending:       b.pending.Load(),
		Batches:       b.batches.Load(),
		BatchesFailed: b.batchesFailed.Load(),
		Retries:       b.retries.Load(),
		Missing:       b.missing.Load(),
		Acked:         b.acked.Load(),
		Failed:        b.failed.Load(),
		BatchSize:     b.sizes.Snapshot(),
		Latency:       b.latency.Snapshot(),
	}
}

// batchProcessor is one goroutine running a batcher's handler.
type batchProcessor[T any] struct {
	b       *batcher[T]
	ctx     context.Context
	state   *atomicState
	batch   Batch[T]
	ptrs    []*Message[T]
	set     []int32 // slots of the messages in the current attempt
	seen    []bool
	settler settler[T]
}

func (b *batcher[T]) runProcessor(ctx context.Context, state *atomicState, in <-chan *openBatch[T]) {
	bp := &batchProcessor[T]{b: b, ctx: ctx, state: state}
	bp.settler.init(b.e)
	for {
		select {
		case ob, ok := <-in:
			if !ok {
				return
			}
			bp.process(ob)
			n := len(ob.msgs)
			for _, h := range ob.holds {
				b.e.release(h.c, h.n)
			}
			clear(ob.holds)
			clear(ob.msgs)
			ob.holds, ob.msgs = ob.holds[:0], ob.msgs[:0]
			b.pool.Put(ob)
			b.pending.Add(-int64(n))
		case <-ctx.Done():
			return
		}
	}
}

func (bp *batchProcessor[T]) process(ob *openBatch[T]) {
	b := bp.b
	msgs := ob.msgs
	b.sizes.Observe(int64(len(msgs)))
	bp.set = bp.set[:0]
	for i := range msgs {
		bp.set = append(bp.set, int32(i))
	}
	info := BatchInfo{Batcher: b.cfg.Name, Key: ob.key, Partition: ob.partition, Size: len(msgs), Trigger: ob.trigger}
	retry := b.cfg.Retry
	for attempt := 1; ; attempt++ {
		info.Attempt = attempt
		bp.attempt(msgs, info)
		if attempt >= retry.Attempts {
			break
		}
		// Keep the failed, retryable messages for the next attempt.
		j := 0
		for _, s := range bp.set {
			if err := msgs[s].err; err != nil && (retry.Retryable == nil || retry.Retryable(err)) {
				bp.set[j] = s
				j++
			}
		}
		bp.set = bp.set[:j]
		if j == 0 {
			break
		}
		if backoff.Sleep(bp.ctx, retry.wait(attempt), nil) != nil {
			break
		}
		for _, s := range bp.set {
			msgs[s].err = nil
		}
		b.retries.Add(1)
	}
	bp.state.set(workerAcking)
	bp.settler.settle(bp.ctx, msgs, b)
	bp.state.set(workerIdle)
}

// attempt calls the handler on the messages of bp.set and records each
// one's outcome in its status. The handler gets its own copy of the pointer
// list, so whatever it does to the slice, msgs still names every message.
func (bp *batchProcessor[T]) attempt(msgs []*Message[T], info BatchInfo) {
	b := bp.b
	ptrs := bp.ptrs[:0]
	for _, s := range bp.set {
		msgs[s].slot = s
		ptrs = append(ptrs, msgs[s])
	}
	bp.ptrs = ptrs
	bp.batch = Batch[T]{Messages: ptrs, BatchInfo: info}
	hooks, log := b.e.cfg.Hooks, b.e.cfg.Logger
	if h := hooks.BatchStart; h != nil {
		safely(log, "BatchStart hook", func() { h(BatchEvent{Topology: b.e.cfg.Name, BatchInfo: info}) })
	}
	start := time.Now()
	bp.state.set(workerHandling)
	err := bp.call(&bp.batch)
	bp.state.set(workerIdle)
	d := time.Since(start)
	b.latency.ObserveDuration(d)
	b.batches.Add(1)
	if err != nil {
		b.batchesFailed.Add(1)
		for _, s := range bp.set {
			msgs[s].Fail(err)
		}
	} else if got := bp.batch.Messages; len(got) != len(ptrs) || (len(got) > 0 && &got[0] != &ptrs[0]) {
		bp.failMissing(msgs, got)
	}
	if h := hooks.BatchStop; h != nil {
		failed := 0
		for _, s := range bp.set {
			if msgs[s].err != nil {
				failed++
			}
		}
		ev := BatchEvent{Topology: b.e.cfg.Name, BatchInfo: info, Failed: failed, Duration: d, Err: err}
		safely(log, "BatchStop hook", func() { h(ev) })
	}
}

// failMissing fails the messages of the attempt that the handler left out
// of the batch it returned.
func (bp *batchProcessor[T]) failMissing(msgs []*Message[T], got []*Message[T]) {
	if cap(bp.seen) < len(msgs) {
		bp.seen = make([]bool, len(msgs))
	}
	seen := bp.seen[:len(msgs)]
	clear(seen)
	for _, p := range got {
		if p == nil {
			continue
		}
		if s := p.slot; s >= 0 && int(s) < len(msgs) && msgs[s] == p {
			seen[s] = true
		}
	}
	missing := 0
	for _, s := range bp.set {
		if !seen[s] {
			msgs[s].Fail(ErrMissingFromBatch)
			missing++
		}
	}
	if missing > 0 {
		bp.b.missing.Add(int64(missing))
		bp.b.e.cfg.Logger.Error("stages: batch handler returned fewer messages than it got; the missing ones are failed",
			"topology", bp.b.e.cfg.Name, "batcher", bp.b.cfg.Name, "got", len(bp.set), "returned", len(bp.set)-missing)
	}
}

func (bp *batchProcessor[T]) call(batch *Batch[T]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			perr := newPanicError(v)
			err = perr
			bp.b.e.cfg.Logger.Error("stages: batch handler panicked; batch failed",
				"topology", bp.b.e.cfg.Name, "batcher", bp.b.cfg.Name, "size", len(batch.Messages), "panic", v, "stack", string(perr.Stack))
		}
	}()
	return bp.b.cfg.Handle(bp.ctx, batch)
}
