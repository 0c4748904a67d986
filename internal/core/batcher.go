package core

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/internal/backoff"
	"github.com/causeway-go/causeway/internal/notify"
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
// batch processors. Processors add pointers to their messages to open
// batches under mu; a batch that closes (full, flushed, timed out, drained)
// joins the queue of its partition (one queue when unpartitioned), which
// batch processors take from in order. Nobody ever waits while holding mu:
// a processor that finds too many closed batches queued waits for a batch
// processor to take one after it has let go of mu, so one slow partition
// holds back processors only once the backlog is full, and never holds the
// lock that the other partitions need.
type batcher[T any] struct {
	e      *Engine[T]
	index  int
	cfg    BatcherConfig[T]
	policy batchPolicy
	pool   sync.Pool

	mu      sync.Mutex
	open    map[batchKey]*openBatch[T]
	last    *openBatch[T] // most recently used open batch
	nextDue time.Time     // zero: timer not armed
	timer   *time.Timer
	closing bool // close has begun: the timer goroutine flushes nothing more
	// queues[i] holds the closed batches of partition i (or all, unpartitioned)
	// not yet taken by a batch processor, oldest first; ready[i] wakes the
	// batch processors of queue i, taken wakes processors waiting for room.
	// They are guarded by qmu, not mu, so that batch processors never
	// contend with processors adding messages; qmu is taken inside mu.
	qmu     sync.Mutex
	queues  [][]*openBatch[T]
	queued  int    // batches in all queues
	busy    []bool // partitioned: a batch of queue i is being handled
	wake    notify.Notifier
	taken   notify.Notifier
	drained bool          // close flushed everything: batch processors end on empty queues
	quit    chan struct{} // closed by close: the timer goroutine returns
	timerOK chan struct{} // closed when the timer goroutine has returned

	bpState       []atomic.Int32 // per batch processor: what it is doing
	lim           *limiter       // how many batch processors may take batches
	active        atomic.Int32   // handler calls running
	queuedN       atomic.Int32   // queued, readable without qmu
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
	outageLog     ratelog.Limiter
	blocked       atomic.Bool  // OutageBlock: a batch is being retried
	spill         *spiller[T]  // OutageSpill
	spillFull     atomic.Bool  // the spill refused a batch: held back until room
	progress      atomic.Int64 // unix nanos of the last handler return (or first call)
	overflowed    atomic.Int64 // batches sent to the spill while the sink stalled
}

// openSpill opens the batcher's spill, for OutageSpill.
func (b *batcher[T]) openSpill() error {
	if b.cfg.Outage != OutageSpill || b.cfg.Spill == nil {
		return nil
	}
	s, err := openSpill(b, *b.cfg.Spill)
	if err != nil {
		return err
	}
	b.spill = s
	if n := s.log.Len(); n > 0 {
		b.e.cfg.Logger.Info("stages: spill holds records from an earlier run; replaying them first",
			"topology", b.e.cfg.Name, "batcher", b.cfg.Name, "records", n)
	}
	return nil
}

// closeSpill closes the spill once Run is done with it.
func (b *batcher[T]) closeSpill() {
	if b.spill != nil {
		if err := b.spill.log.Close(); err != nil {
			b.e.cfg.Logger.Error("stages: spill: close", "batcher", b.cfg.Name, "err", err)
		}
	}
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
		policy:  batchPolicy{size: cfg.BatchSize, sized: cfg.SizeFunc != nil, timeout: cfg.BatchTimeout},
	}
	procs := cfg.processors()
	b.bpState = make([]atomic.Int32, procs)
	if cfg.MaxConcurrency > 0 {
		b.lim = newLimiter(cfg.Concurrency, max(1, cfg.MinConcurrency), procs)
	} else {
		b.lim = newLimiter(cfg.Concurrency, cfg.Concurrency, procs)
	}
	n := 1
	if cfg.PartitionBy != nil {
		n = procs
		b.busy = make([]bool, n)
	}
	b.queues = make([][]*openBatch[T], n)
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
	var bps sync.WaitGroup
	for i := range b.bpState {
		wctx := withWorker(ctx, Worker{Batcher: b.cfg.Name, Index: i})
		bps.Go(func() { b.runProcessor(wctx, (*atomicState)(&b.bpState[i]), i) })
	}
	wg.Go(bps.Wait)
	if b.spill != nil {
		// The replay drains once the batch processors are done: nothing is
		// appended to the spill after that.
		wg.Go(func() { b.spill.run(ctx) })
		if b.cfg.PartitionBy == nil {
			bps.Go(func() { b.runOverflow(ctx) })
		}
		wg.Go(func() { bps.Wait(); b.spill.drain() })
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
			b.flushDue(time.Now())
			b.mu.Unlock()
		case <-b.quit:
			return
		case <-ctx.Done():
			return
		}
	}
}

// close flushes every open batch (trigger drain) and lets the batch
// processors end once they have handled everything queued. It is called
// once, after the last processor stopped.
func (b *batcher[T]) close() {
	b.mu.Lock()
	b.closing = true
	b.timer.Stop()
	for _, ob := range b.open {
		b.flushLocked(ob, TriggerDrain)
	}
	b.qmu.Lock()
	b.drained = true
	b.wake.Broadcast()
	b.qmu.Unlock()
	b.mu.Unlock()
	close(b.quit)
	<-b.timerOK
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
		r.part = int32(b.cfg.PartitionBy(r.m) % uint64(len(b.queues)))
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
				b.flushLocked(ob, TriggerSize)
				continue // opens the next batch for this key
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
			b.flushLocked(ob, t)
		}
	}
	return b.waitForRoom(ctx)
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
func (b *batcher[T]) flushDue(now time.Time) {
	var next time.Time
	for _, ob := range b.open {
		if b.policy.due(ob.deadline, now) {
			b.flushLocked(ob, TriggerTimeout)
		} else if next.IsZero() || ob.deadline.Before(next) {
			next = ob.deadline
		}
	}
	if !next.IsZero() {
		b.arm(next, now)
	}
}

// flushLocked closes ob and queues it for a batch processor. b.mu must be
// held; flushLocked never waits.
func (b *batcher[T]) flushLocked(ob *openBatch[T], t Trigger) {
	delete(b.open, batchKey{ob.key, ob.partition})
	if b.last == ob {
		b.last = nil
	}
	ob.trigger = t
	i := 0
	if b.cfg.PartitionBy != nil {
		i = ob.partition
	}
	b.qmu.Lock()
	b.queues[i] = append(b.queues[i], ob)
	b.queued++
	b.queuedN.Store(int32(b.queued))
	b.wake.Broadcast()
	b.qmu.Unlock()
}

// waitForRoom waits, with b.mu released, while more closed batches are
// queued than there are queues and processors: as many as when each
// processor could hold one closed batch while waiting to hand it over. It
// is how a batcher whose sink is slow holds its processors back. b.mu must
// be held; it is held again on return. It reports false if the topology was
// stopped hard.
func (b *batcher[T]) waitForRoom(ctx context.Context) bool {
	limit := len(b.queues) + b.e.cfg.Processors.Concurrency
	for {
		b.qmu.Lock()
		if b.queued <= limit {
			b.qmu.Unlock()
			return true
		}
		ch := b.taken.Wait()
		b.qmu.Unlock()
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			b.mu.Lock()
			return false
		}
		b.mu.Lock()
	}
}

// next takes the next batch batch processor i may handle, waiting for one;
// it returns nil once the batcher is drained and every queue empty, or ctx
// ended. Only the first limit batch processors take batches. Unpartitioned,
// they share one queue. Partitioned, processor i serves the queues q with
// q % limit == i, oldest batch first, and never a queue another processor
// is handling a batch of (busy): so however the limit changes, one
// partition's batches are handled one at a time, in order. It returns the
// queue the batch came from.
func (b *batcher[T]) next(ctx context.Context, i int) (*openBatch[T], int) {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	for {
		// After a hard stop queued batches are left unhandled (counted as
		// not acknowledged), not failed: a failure there would only say
		// that the topology stopped.
		if ctx.Err() != nil {
			return nil, 0
		}
		if limit := b.lim.limit(); i < limit {
			if q := b.pick(i, limit); q >= 0 {
				ob := b.queues[q][0]
				b.queues[q][0] = nil
				b.queues[q] = b.queues[q][1:]
				b.queued--
				b.queuedN.Store(int32(b.queued))
				if b.busy != nil {
					b.busy[q] = true
				}
				b.taken.Broadcast()
				if b.drained && b.queued == 0 {
					b.wake.Broadcast() // the idle ones can end
				}
				return ob, q
			}
		}
		if b.drained && b.queued == 0 {
			return nil, 0
		}
		ch := b.wake.Wait()
		b.qmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			b.qmu.Lock()
			return nil, 0
		}
		b.qmu.Lock()
	}
}

// pick returns a queue processor i (of limit) may take a batch from, or
// -1. b.qmu must be held.
func (b *batcher[T]) pick(i, limit int) int {
	if b.busy == nil {
		if len(b.queues[0]) > 0 {
			return 0
		}
		return -1
	}
	for q := i; q < len(b.queues); q += limit {
		if len(b.queues[q]) > 0 && !b.busy[q] {
			return q
		}
	}
	return -1
}

// done marks queue q's batch handled: another batch of q may be taken.
func (b *batcher[T]) done(q int) {
	if b.busy == nil {
		return
	}
	b.qmu.Lock()
	b.busy[q] = false
	if len(b.queues[q]) > 0 || b.drained {
		b.wake.Broadcast()
	}
	b.qmu.Unlock()
}

// setConcurrency pins the pool's limit (0: adapt again); see limiter.set.
func (b *batcher[T]) setConcurrency(n int) int {
	n = b.lim.set(n)
	b.qmu.Lock()
	b.wake.Broadcast()
	b.qmu.Unlock()
	return n
}

func (b *batcher[T]) stats() BatcherStats {
	var sp *SpillStats
	if b.spill != nil {
		sp = b.spill.stats()
	}
	return BatcherStats{
		Spill:              sp,
		Name:               b.cfg.Name,
		Concurrency:        b.lim.limit(),
		MinConcurrency:     b.lim.min,
		MaxConcurrency:     b.lim.max,
		Adaptive:           b.lim.adaptive && !b.lim.pinned.Load(),
		ConcurrencyChanges: b.lim.changes.Load(),
		Received:           b.received.Load(),
		Pending:            b.pending.Load(),
		Batches:            b.batches.Load(),
		BatchesFailed:      b.batchesFailed.Load(),
		Retries:            b.retries.Load(),
		Blocked:            b.blocked.Load() || b.spillFull.Load(),
		Missing:            b.missing.Load(),
		Acked:              b.acked.Load(),
		Failed:             b.failed.Load(),
		BatchSize:          b.sizes.Snapshot(),
		Latency:            b.latency.Snapshot(),
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

func (b *batcher[T]) runProcessor(ctx context.Context, state *atomicState, i int) {
	bp := &batchProcessor[T]{b: b, ctx: ctx, state: state}
	bp.settler.init(b.e)
	for {
		ob, q := b.next(ctx, i)
		if ob == nil {
			return
		}
		bp.process(ob)
		b.done(q)
		b.recycle(ob)
	}
}

// recycle releases a handled batch's holds on its chunks and returns it to
// the pool.
func (b *batcher[T]) recycle(ob *openBatch[T]) {
	n := len(ob.msgs)
	for _, h := range ob.holds {
		b.e.release(h.c, h.n)
	}
	clear(ob.holds)
	clear(ob.msgs)
	ob.holds, ob.msgs = ob.holds[:0], ob.msgs[:0]
	b.pool.Put(ob)
	b.pending.Add(-int64(n))
}

// stalled reports whether every batch processor has been inside the
// handler, with no call returning, for longer than the spill's
// StallTimeout.
func (b *batcher[T]) stalled(now time.Time) bool {
	return int(b.active.Load()) >= b.lim.limit() &&
		now.Sub(time.Unix(0, b.progress.Load())) > b.cfg.Spill.stallTimeout()
}

// runOverflow watches a spilling batcher's sink: while it is stalled, it
// takes the queued batches and holds them in the spill, so that a sink
// whose client waits out an outage costs no other batcher its data. The
// batch processors then put their next batches in the spill too (behind
// these), and the replay hands everything to the sink once it answers.
func (b *batcher[T]) runOverflow(ctx context.Context) {
	bp := &batchProcessor[T]{b: b, ctx: ctx, state: new(atomicState)}
	bp.settler.init(b.e)
	every := min(max(b.cfg.Spill.stallTimeout()/4, 10*time.Millisecond), 250*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		for b.stalled(time.Now()) {
			ob, done := b.takeQueued()
			if ob == nil {
				if done {
					return
				}
				break
			}
			b.overflowed.Add(1)
			if ok, n := b.outageLog.Allow(1); ok {
				b.e.cfg.Logger.Warn("stages: sink stalled; batches queued behind it go to the spill",
					"topology", b.e.cfg.Name, "batcher", b.cfg.Name, "batches", n,
					"no_answer_for", time.Since(time.Unix(0, b.progress.Load())).Round(time.Millisecond))
			}
			bp.spillBatch(ob)
			b.recycle(ob)
		}
		b.qmu.Lock()
		done := b.drained && b.queued == 0
		b.qmu.Unlock()
		if done {
			return
		}
	}
}

// takeQueued takes the oldest queued batch, or returns nil and whether the
// batcher is drained.
func (b *batcher[T]) takeQueued() (*openBatch[T], bool) {
	b.qmu.Lock()
	defer b.qmu.Unlock()
	if len(b.queues[0]) == 0 {
		return nil, b.drained
	}
	ob := b.queues[0][0]
	b.queues[0][0] = nil
	b.queues[0] = b.queues[0][1:]
	b.queued--
	b.queuedN.Store(int32(b.queued))
	b.taken.Broadcast()
	if b.drained && b.queued == 0 {
		b.wake.Broadcast() // the idle batch processors can end
	}
	return ob, false
}

// spillBatch holds a whole batch in the spill and settles it.
func (bp *batchProcessor[T]) spillBatch(ob *openBatch[T]) {
	b := bp.b
	msgs := ob.msgs
	bp.set = bp.set[:0]
	for i := range msgs {
		bp.set = append(bp.set, int32(i))
	}
	info := BatchInfo{Batcher: b.cfg.Name, Key: ob.key, Partition: ob.partition, Size: len(msgs), Trigger: ob.trigger}
	bp.holdOrWait(msgs, bp.set, info)
	bp.state.set(workerAcking)
	bp.settler.settle(bp.ctx, msgs, b)
	bp.state.set(workerIdle)
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
	if b.spill != nil && b.spill.pending() {
		// Earlier batches wait in the spill: this one joins them, in order.
		bp.spillBatch(ob)
		return
	}
	retry, block := b.cfg.Retry, b.cfg.Outage == OutageBlock
	for attempt := 1; ; attempt++ {
		info.Attempt = attempt
		bp.attempt(msgs, info)
		if !block && attempt >= retry.Attempts {
			break
		}
		// Keep the failed, retryable messages for the next attempt.
		j := 0
		var last error
		for _, s := range bp.set {
			if err := msgs[s].err; err != nil && b.retryable(err) {
				bp.set[j] = s
				j++
				last = err
			}
		}
		bp.set = bp.set[:j]
		if j == 0 {
			break
		}
		wait := retry.wait(attempt)
		if block {
			b.blocked.Store(true)
			if ok, n := b.outageLog.Allow(1); ok {
				b.e.cfg.Logger.Warn("stages: sink failing, batch held and retried",
					"topology", b.e.cfg.Name, "batcher", b.cfg.Name, "messages", j, "attempt", attempt,
					"next_in", wait, "retries", n, "err", last)
			}
		}
		if backoff.Sleep(bp.ctx, wait, nil) != nil {
			break
		}
		for _, s := range bp.set {
			msgs[s].err = nil
		}
		b.retries.Add(1)
	}
	if b.spill != nil {
		var transient []int32
		for i, m := range msgs {
			if m.err != nil && !IsPermanent(m.err) {
				m.err = nil
				transient = append(transient, int32(i))
			}
		}
		if len(transient) > 0 {
			bp.holdOrWait(msgs, transient, info)
		}
	}
	if block && b.blocked.Load() {
		if !bp.anyFailed(msgs) {
			b.blocked.Store(false)
			b.e.cfg.Logger.Info("stages: sink takes batches again", "topology", b.e.cfg.Name, "batcher", b.cfg.Name)
		}
	}
	bp.state.set(workerAcking)
	bp.settler.settle(bp.ctx, msgs, b)
	bp.state.set(workerIdle)
}

// holdOrWait puts the messages all[i] for i in want into the spill,
// acknowledged as held. If the spill refuses them (full, or a disk error)
// it holds the batch back as OutageBlock would, trying the sink (when no
// spilled batch is waiting ahead of them) and the spill in turn with capped
// back-off, until one takes each message or the topology stops hard; they
// then stay failed with the spill's error.
func (bp *batchProcessor[T]) holdOrWait(all []*Message[T], want []int32, info BatchInfo) {
	b := bp.b
	pick := func() []*Message[T] {
		sub := make([]*Message[T], len(want))
		for i, s := range want {
			sub[i] = all[s]
		}
		return sub
	}
	err := b.spill.hold(pick())
	for attempt := 1; err != nil; attempt++ {
		b.spillFull.Store(true)
		for _, s := range want {
			if all[s].err == nil {
				all[s].err = err
			}
		}
		if ok, n := b.outageLog.Allow(1); ok {
			b.e.cfg.Logger.Error("stages: spill refuses a batch; holding it back",
				"topology", b.e.cfg.Name, "batcher", b.cfg.Name, "messages", len(want), "times", n, "err", err)
		}
		if backoff.Sleep(bp.ctx, b.cfg.Retry.wait(attempt), nil) != nil {
			break
		}
		if !b.spill.pending() {
			bp.set = bp.set[:0]
			for _, s := range want {
				if !IsPermanent(all[s].err) {
					all[s].err = nil
					bp.set = append(bp.set, s)
				}
			}
			info.Attempt++
			bp.attempt(all, info)
		}
		next := make([]int32, 0, len(want))
		for _, s := range want {
			if m := all[s]; m.err != nil && !IsPermanent(m.err) {
				m.err = nil
				next = append(next, s)
			}
		}
		if want = next; len(want) == 0 {
			break
		}
		err = b.spill.hold(pick())
	}
	b.spillFull.Store(false)
}

// retryable reports whether a message failed with err is tried again:
// RetryPolicy.Retryable decides if set; with OutageBlock every failure but
// a permanent one is.
func (b *batcher[T]) retryable(err error) bool {
	if b.cfg.Retry.Retryable != nil {
		return b.cfg.Retry.Retryable(err)
	}
	return b.cfg.Outage != OutageBlock || !IsPermanent(err)
}

func (bp *batchProcessor[T]) anyFailed(msgs []*Message[T]) bool {
	for _, m := range msgs {
		if m.err != nil && !IsPermanent(m.err) {
			return true
		}
	}
	return false
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
	active := b.active.Add(1)
	if active == 1 {
		b.progress.Store(start.UnixNano())
	}
	err := bp.call(&bp.batch)
	b.active.Add(-1)
	bp.state.set(workerIdle)
	now := time.Now()
	b.progress.Store(now.UnixNano())
	d := now.Sub(start)
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
	if b.lim.adaptive {
		failed := err != nil
		for _, s := range bp.set {
			if m := msgs[s]; !failed && m.err != nil && !IsPermanent(m.err) {
				failed = true
			}
		}
		saturated := int(active) >= b.lim.limit() || b.queuedN.Load() > 0
		if b.lim.observe(now, d, len(bp.set), info.Trigger == TriggerSize, failed, saturated) {
			b.qmu.Lock()
			b.wake.Broadcast()
			b.qmu.Unlock()
		}
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

func (bp *batchProcessor[T]) call(batch *Batch[T]) error { return bp.b.callHandler(bp.ctx, batch) }

// callHandler runs the batch handler, turning a panic into the batch's
// error.
func (b *batcher[T]) callHandler(ctx context.Context, batch *Batch[T]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			perr := newPanicError(v)
			err = perr
			b.e.cfg.Logger.Error("stages: batch handler panicked; batch failed",
				"topology", b.e.cfg.Name, "batcher", b.cfg.Name, "size", len(batch.Messages), "panic", v, "stack", string(perr.Stack))
		}
	}()
	return b.cfg.Handle(ctx, batch)
}
