package topology_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

const (
	// propWatchdog is how much virtual time a case may take before it
	// counts as stalled. Time only moves when every goroutine of the bubble
	// is blocked, so a stall jumps straight to it.
	propWatchdog = time.Hour
	// propGrace is how long past ShutdownTimeout Run may take to return
	// once the drain started, when every handler respects its ctx.
	propGrace = 2 * time.Second
)

// copyObs is what the batch handlers of one batcher saw of one message.
type copyObs struct {
	first  int  // attempt-1 sightings: more than one is a duplicate
	last   int  // the last attempt that had it
	failed bool // its outcome after that attempt
}

// propRun runs one case and records what its callbacks saw.
type propRun struct {
	c      *propCase
	top    *topology.Topology[item]
	ackers []stages.Acknowledger[item]
	start  time.Time
	nextP  atomic.Int32

	mu          sync.Mutex
	problems    []string
	taken       map[int]int
	closedRun   int // messages refused with ErrClosed while their producer ran
	dropped     map[int]int
	dropEvents  int
	procSeen    map[int]int
	procFailed  map[int]bool
	procFails   int
	procPanics  int
	procOrder   [][]int
	procTimes   []time.Duration // when each handler call began
	rateSetAt   time.Duration
	forwardTo   map[int][]int
	copies      []map[int]*copyObs
	calls       []int
	failedCalls []int
	retryCalls  []int
	missing     []int
	batchOrder  [][][]int // per batcher, per batch processor: attempt-1 ids in order
	acked       map[int]int
	ackFailed   map[int]bool
	hf          map[int]int
	procStart   int
	procStop    int
	batchStart  int
	batchStop   int
	prodFailed  bool
	prodErrSeen bool // a producer returned errProducer (not a panic)
	prodFailAt  time.Duration
	cancelledAt time.Duration
	runErr      error
	runAt       time.Duration
	stalled     bool
	final       stages.Stats
}

func newPropRun(c *propCase) *propRun {
	nb := len(c.batchers)
	r := &propRun{
		c: c, taken: map[int]int{}, dropped: map[int]int{}, procSeen: map[int]int{}, procFailed: map[int]bool{},
		procOrder: make([][]int, c.procs), forwardTo: map[int][]int{}, copies: make([]map[int]*copyObs, nb),
		calls: make([]int, nb), failedCalls: make([]int, nb), retryCalls: make([]int, nb), missing: make([]int, nb),
		batchOrder: make([][][]int, nb), acked: map[int]int{}, ackFailed: map[int]bool{}, hf: map[int]int{},
		prodFailAt: -1, cancelledAt: -1, rateSetAt: -1,
	}
	for i, b := range c.batchers {
		r.copies[i] = map[int]*copyObs{}
		r.batchOrder[i] = make([][]int, b.conc)
	}
	for i, a := range c.ackers {
		if a.value {
			r.ackers = append(r.ackers, propValueAcker{r: r, id: i, panics: a.panic, tags: []string{"uncomparable"}})
		} else {
			r.ackers = append(r.ackers, &propAcker{r: r, id: i, panics: a.panic})
		}
	}
	return r
}

func (r *propRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problemLocked(format, args...)
}

func (r *propRun) problemLocked(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func (r *propRun) since() time.Duration { return time.Since(r.start) }

// ---- acknowledgers ----

type propAcker struct {
	r      *propRun
	id     int
	panics bool
}

func (a *propAcker) Ack(ok, failed []*stages.Message[item]) { a.r.ack(a.id, a.panics, ok, failed) }

// propValueAcker is a value type with an uncomparable field: == on two of
// them panics.
type propValueAcker struct {
	r      *propRun
	id     int
	panics bool
	tags   []string
}

func (a propValueAcker) Ack(ok, failed []*stages.Message[item]) { a.r.ack(a.id, a.panics, ok, failed) }

func ackerID(a stages.Acknowledger[item]) int {
	switch x := a.(type) {
	case *propAcker:
		return x.id
	case propValueAcker:
		return x.id
	}
	return -1
}

func (r *propRun) ack(id int, panics bool, ok, failed []*stages.Message[item]) {
	r.mu.Lock()
	for i, list := range [2][]*stages.Message[item]{ok, failed} {
		for _, m := range list {
			mid := m.Data.ID
			if got := ackerID(m.Acker); got != id {
				r.problemLocked("message %d (acknowledger %d) was handed to acknowledger %d", mid, got, id)
			}
			if (i == 1) != (m.Err() != nil) {
				r.problemLocked("message %d acknowledged in the %s list with error %v", mid, [2]string{"successful", "failed"}[i], m.Err())
			}
			r.acked[mid]++
			r.ackFailed[mid] = i == 1
		}
	}
	r.mu.Unlock()
	if panics {
		panic("prop: acknowledger panics")
	}
}

// ---- the producer ----

type propProducer struct{ r *propRun }

func (p propProducer) Run(ctx context.Context, out *stages.Emitter[item]) error {
	r := p.r
	g := int(r.nextP.Add(1) - 1)
	if g >= len(r.c.prods) {
		r.problem("Producer.Run called %d times, Concurrency is %d", g+1, len(r.c.prods))
		return nil
	}
	plan := r.c.prods[g]
	msgs := make([]stages.Message[item], len(plan.ids))
	for i, id := range plan.ids {
		f := &r.c.fates[id]
		msgs[i].Data = item{ID: id, Key: f.key, Prod: g}
		if f.acker >= 0 {
			msgs[i].Acker = r.ackers[f.acker]
			if a, ok := r.ackers[f.acker].(propValueAcker); ok && id%2 == 1 {
				msgs[i].Acker = a // a copy of its own: not the same interface value
			}
		}
		if f.preFail {
			msgs[i].Fail(errPre)
		}
	}
	if plan.push {
		r.push(ctx, out, plan, msgs)
	} else {
		r.pull(ctx, out, plan, msgs)
	}
	if plan.endPnc || plan.endErr {
		r.mu.Lock()
		r.prodFailed = true
		r.prodErrSeen = r.prodErrSeen || plan.endErr
		if r.prodFailAt < 0 {
			r.prodFailAt = r.since()
		}
		r.mu.Unlock()
		if plan.endPnc {
			panic("prop: producer panics")
		}
		return errProducer
	}
	if ctx.Err() != nil && plan.ctxErr {
		return ctx.Err()
	}
	return nil
}

// emit emits msgs and records which were taken.
func (r *propRun) emit(ctx context.Context, out *stages.Emitter[item], single bool, msgs []stages.Message[item]) (int, error) {
	var n int
	var err error
	if single {
		for n < len(msgs) {
			if err = out.Emit(ctx, msgs[n]); err != nil {
				break
			}
			n++
		}
	} else {
		n, err = out.EmitAll(ctx, msgs)
	}
	r.mu.Lock()
	for _, m := range msgs[:n] {
		r.taken[m.Data.ID]++
	}
	if errors.Is(err, stages.ErrClosed) {
		r.closedRun += len(msgs) - n
	}
	r.mu.Unlock()
	return n, err
}

// pull loops on Demand and emits exactly the demand.
func (r *propRun) pull(ctx context.Context, out *stages.Emitter[item], plan prodPlan, msgs []stages.Message[item]) {
	for len(msgs) > 0 {
		if plan.prePace > 0 && !sleepCtx(ctx, plan.prePace) {
			return
		}
		d, err := out.Demand(ctx)
		if err != nil {
			if errors.Is(err, stages.ErrClosed) {
				r.mu.Lock()
				r.closedRun += len(msgs)
				r.mu.Unlock()
			}
			return
		}
		if d <= 0 {
			r.problem("Demand returned %d with no error", d)
			return
		}
		k := min(d, len(msgs))
		n, err := r.emit(ctx, out, false, msgs[:k])
		msgs = msgs[n:]
		if err != nil {
			return
		}
	}
}

// push emits bursts whenever it likes. When ctx ends it still emits what it
// has already read (the burst in hand and the next one), as a network
// stream would: the drain must take it.
func (r *propRun) push(ctx context.Context, out *stages.Emitter[item], plan prodPlan, msgs []stages.Message[item]) {
	flush := func(rest []stages.Message[item]) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.shutdown()+propGrace)
		defer cancel()
		r.emit(fctx, out, plan.single, rest)
	}
	if plan.prePace > 0 && !sleepCtx(ctx, plan.prePace) {
		flush(msgs[:min(plan.burst, len(msgs))])
		return
	}
	for len(msgs) > 0 {
		k := min(plan.burst, len(msgs))
		n, err := r.emit(ctx, out, plan.single, msgs[:k])
		if err != nil {
			if ctx.Err() != nil && !errors.Is(err, stages.ErrClosed) {
				flush(msgs[n:k])
			}
			return
		}
		msgs = msgs[k:]
		if len(msgs) == 0 {
			return
		}
		if plan.pause > 0 && !sleepCtx(ctx, plan.pause) || ctx.Err() != nil {
			flush(msgs[:min(plan.burst, len(msgs))])
			return
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *propRun) shutdown() time.Duration {
	if r.c.shutdown == 0 {
		return topology.DefaultShutdownTimeout
	}
	return r.c.shutdown
}

// ---- processors ----

func (r *propRun) handle(ctx context.Context, m *stages.Message[item]) error {
	c := r.c
	id := m.Data.ID
	f := &c.fates[id]
	w, ok := stages.WorkerFrom(ctx)
	r.mu.Lock()
	r.procSeen[id]++
	r.procTimes = append(r.procTimes, r.since())
	if !ok || w.Batcher != "" || w.Index < 0 || w.Index >= c.procs {
		r.problemLocked("processor handler for %d: WorkerFrom = %+v, %v", id, w, ok)
	} else {
		r.procOrder[w.Index] = append(r.procOrder[w.Index], id)
		if c.procPart && !f.partPnc {
			if want := int(procPartOf(f.key) % uint64(c.procs)); w.Index != want {
				r.problemLocked("message %d (key %d) handled by processor %d, PartitionBy says %d", id, f.key, w.Index, want)
			}
		}
	}
	r.mu.Unlock()
	fail := func(panicked bool) {
		r.mu.Lock()
		r.procFailed[id] = true
		r.procFails++
		if panicked {
			r.procPanics++
		}
		r.mu.Unlock()
	}
	if f.sleep > 0 && !sleepCtx(ctx, f.sleep) {
		fail(false)
		return ctx.Err()
	}
	if f.stubborn > 0 {
		time.Sleep(f.stubborn) // ignores ctx: Run must not wait past its bound
	}
	if c.keyBatch[f.key] {
		m.SetBatchKey("k" + strconv.Itoa(f.key))
	}
	var names []string
	for _, i := range f.to {
		names = append(names, c.batchers[i].name)
	}
	switch f.route {
	case routeNowhere:
		m.Route()
	case routeSome:
		m.Route(names...)
	case routeUnknown:
		m.Route(append(names, "nope")...)
	}
	if f.flush {
		m.FlushBatch()
	}
	switch {
	case f.act == actPanic:
		fail(true)
		panic("prop: processor handler panics")
	case f.act == actErr:
		fail(false)
		return errHandler
	case f.act == actFail:
		fail(false)
		m.Fail(errFail)
	case f.route == routeUnknown:
		fail(false)
	default:
		to, _ := c.routes(f)
		r.mu.Lock()
		r.forwardTo[id] = to
		r.mu.Unlock()
	}
	return nil
}

// ---- batchers ----

func (r *propRun) handleBatch(bi int) stages.BatchHandler[item] {
	c := r.c
	bp := c.batchers[bi]
	return func(ctx context.Context, b *stages.Batch[item]) error {
		w, ok := stages.WorkerFrom(ctx)
		msgs := slices.Clone(b.Messages)
		r.mu.Lock()
		r.calls[bi]++
		if b.Attempt > 1 {
			r.retryCalls[bi]++
		}
		if !ok || w.Batcher != bp.name || w.Index < 0 || w.Index >= bp.conc || (bp.part && w.Index != b.Partition) {
			r.problemLocked("batcher %q: batch (partition %d) handled on %+v (%v)", bp.name, b.Partition, w, ok)
			w.Index = 0
		}
		r.checkBatchLocked(bi, b, msgs, w)
		r.mu.Unlock()

		if bp.sleep > 0 && !sleepCtx(ctx, bp.sleep) {
			r.recordCopies(bi, b.Attempt, msgs, nil, true)
			return ctx.Err()
		}
		poison, poisonPanic := false, false
		for _, m := range msgs {
			f := &c.fates[m.Data.ID]
			if f.poison[bi] >= b.Attempt {
				poison = true
				poisonPanic = poisonPanic || f.poisonP[bi]
			}
			switch {
			case f.perm[bi]:
				m.Fail(errPerm)
			case f.copyFail[bi] >= b.Attempt:
				m.Fail(errCopy)
			}
		}
		var omitted map[int]bool
		if b.Attempt == 1 {
			kept := b.Messages[:0]
			for _, m := range b.Messages {
				if c.fates[m.Data.ID].omit[bi] {
					if omitted == nil {
						omitted = map[int]bool{}
					}
					omitted[m.Data.ID] = true
					continue
				}
				kept = append(kept, m)
			}
			b.Messages = kept
		}
		r.recordCopies(bi, b.Attempt, msgs, omitted, poison)
		if poison {
			if poisonPanic {
				panic("prop: batch handler panics")
			}
			return errBatch
		}
		return nil
	}
}

// checkBatchLocked checks a batch as it reaches its handler: who it is
// for, its shape, and (for retries) that it holds only what failed before.
func (r *propRun) checkBatchLocked(bi int, b *stages.Batch[item], msgs []*stages.Message[item], w stages.Worker) {
	c := r.c
	bp := c.batchers[bi]
	size := 0
	anySizePanic := false
	for i, m := range msgs {
		id := m.Data.ID
		f := &c.fates[id]
		if !slices.Contains(r.forwardTo[id], bi) {
			r.problemLocked("batcher %q got message %d, which was routed to %v", bp.name, id, r.forwardTo[id])
		}
		if m.BatchKey() != b.Key {
			r.problemLocked("batcher %q: message %d with batch key %q in a batch of key %q", bp.name, id, m.BatchKey(), b.Key)
		}
		if bp.part && !f.bpartPnc[bi] {
			if want := int(batchPartOf(f.key) % uint64(bp.conc)); b.Partition != want {
				r.problemLocked("batcher %q: message %d (key %d) in partition %d, PartitionBy says %d", bp.name, id, f.key, b.Partition, want)
			}
		}
		if b.Attempt == 1 && f.flush && i != len(msgs)-1 {
			r.problemLocked("batcher %q: message %d asked to flush its batch but is at %d of %d", bp.name, id, i, len(msgs))
		}
		size += f.size[bi]
		anySizePanic = anySizePanic || f.sizePnc[bi]
		co := r.copies[bi][id]
		if b.Attempt == 1 {
			if co == nil {
				co = &copyObs{}
				r.copies[bi][id] = co
			}
			co.first++
			if co.first > 1 {
				r.problemLocked("batcher %q: message %d handed to a batch handler twice", bp.name, id)
			}
		} else if co == nil || !co.failed || co.last != b.Attempt-1 {
			r.problemLocked("batcher %q: attempt %d has message %d, which did not fail attempt %d (%+v)", bp.name, b.Attempt, id, b.Attempt-1, co)
		}
	}
	if b.Attempt == 1 {
		r.batchOrder[bi][w.Index] = append(r.batchOrder[bi][w.Index], idsOf(msgs)...)
		if b.Size != len(msgs) {
			r.problemLocked("batcher %q: BatchInfo.Size %d for %d messages", bp.name, b.Size, len(msgs))
		}
		switch {
		case len(msgs) == 0:
			r.problemLocked("batcher %q: empty batch", bp.name)
		case !bp.sizeFunc && len(msgs) > bp.size:
			r.problemLocked("batcher %q: batch of %d, BatchSize %d", bp.name, len(msgs), bp.size)
		case !bp.sizeFunc && b.Trigger == stages.TriggerSize && len(msgs) != bp.size:
			r.problemLocked("batcher %q: batch of %d by size, BatchSize %d", bp.name, len(msgs), bp.size)
		case bp.sizeFunc && !anySizePanic && len(msgs) > 1 && size > bp.size:
			r.problemLocked("batcher %q: batch of %d messages of total size %d, BatchSize %d", bp.name, len(msgs), size, bp.size)
		}
	} else if len(r.batchOrder[bi]) <= w.Index {
		r.problemLocked("batcher %q: worker %d out of range", bp.name, w.Index)
	}
}

func idsOf(msgs []*stages.Message[item]) []int {
	out := make([]int, len(msgs))
	for i, m := range msgs {
		out[i] = m.Data.ID
	}
	return out
}

// recordCopies records the outcome the handler gave each message of an
// attempt.
func (r *propRun) recordCopies(bi, attempt int, msgs []*stages.Message[item], omitted map[int]bool, batchFailed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if batchFailed {
		r.failedCalls[bi]++
	}
	if !batchFailed {
		// A batch that failed as a whole fails every message with its
		// error; only the messages left out of a batch that succeeded
		// count as missing.
		r.missing[bi] += len(omitted)
	}
	for _, m := range msgs {
		co := r.copies[bi][m.Data.ID]
		if co == nil {
			continue // reported by checkBatchLocked
		}
		co.last = attempt
		co.failed = batchFailed || m.Failed() || omitted[m.Data.ID]
	}
}

// ---- running a case ----

func (r *propRun) spec() topology.Spec[item] {
	c := r.c
	s := topology.Spec[item]{
		Name: fmt.Sprintf("prop-%016x", c.seed),
		Producer: topology.ProducerSpec[item]{
			Producer: propProducer{r}, Concurrency: len(c.prods), BufferSize: c.bufSize, Keep: c.keep,
		},
		Processors: topology.ProcessorSpec[item]{
			Concurrency: c.procs, MaxDemand: c.maxD, MinDemand: c.minD, Handle: r.handle,
		},
		DefaultBatcher:  c.defName,
		ShutdownTimeout: c.shutdown,
		Logger:          slog.New(slog.DiscardHandler),
	}
	s.Producer.RateLimit = c.rate
	if c.procPart {
		s.Processors.PartitionBy = func(m *stages.Message[item]) uint64 {
			if c.fates[m.Data.ID].partPnc {
				panic("prop: processor PartitionBy panics")
			}
			return procPartOf(m.Data.Key)
		}
	}
	if len(c.batchers) > 0 {
		s.Batchers = map[string]topology.BatcherSpec[item]{}
	}
	for bi, bp := range c.batchers {
		bs := topology.BatcherSpec[item]{
			BatchSize: bp.size, BatchTimeout: bp.timeout, Concurrency: bp.conc,
			Handle: r.handleBatch(bi), Retry: bp.retry,
		}
		if bp.retryable {
			bs.Retry.Retryable = func(err error) bool { return !errors.Is(err, errPerm) }
		}
		if bp.sizeFunc {
			bs.SizeFunc = func(m *stages.Message[item]) int {
				f := &c.fates[m.Data.ID]
				if f.sizePnc[bi] {
					panic("prop: SizeFunc panics")
				}
				return f.size[bi]
			}
		}
		if bp.part {
			bs.PartitionBy = func(m *stages.Message[item]) uint64 {
				if c.fates[m.Data.ID].bpartPnc[bi] {
					panic("prop: batcher PartitionBy panics")
				}
				return batchPartOf(m.Data.Key)
			}
		}
		s.Batchers[bp.name] = bs
	}
	if c.handleFail {
		s.HandleFailed = func(_ context.Context, failed []*stages.Message[item]) {
			r.mu.Lock()
			for _, m := range failed {
				if m.Err() == nil {
					r.problemLocked("HandleFailed got message %d, which has no error", m.Data.ID)
				}
				r.hf[m.Data.ID]++
			}
			r.mu.Unlock()
			if c.hfPanic {
				panic("prop: HandleFailed panics")
			}
		}
	}
	// OnDrop is always set: it is how the test learns which messages were
	// dropped.
	{
		s.Producer.OnDrop = func(d []stages.Message[item]) {
			r.mu.Lock()
			for _, m := range d {
				r.dropped[m.Data.ID]++
			}
			r.mu.Unlock()
			if c.onDropPnc {
				panic("prop: OnDrop panics")
			}
		}
	}
	if c.hooks {
		count := func(n *int, d int) {
			r.mu.Lock()
			*n += d
			r.mu.Unlock()
			if c.hookPnc {
				panic("prop: hook panics")
			}
		}
		s.Hooks = stages.Hooks{
			ProcessorStart: func(stages.ProcessorEvent) { count(&r.procStart, 1) },
			ProcessorStop:  func(stages.ProcessorEvent) { count(&r.procStop, 1) },
			BatchStart:     func(stages.BatchEvent) { count(&r.batchStart, 1) },
			BatchStop:      func(stages.BatchEvent) { count(&r.batchStop, 1) },
			Drop:           func(e stages.DropEvent) { count(&r.dropEvents, e.Count) },
		}
	}
	return s
}

// run runs the topology, cancels it at the case's cancel time, and waits
// for Run with a watchdog.
func (r *propRun) run() {
	top, err := topology.New(r.spec())
	if err != nil {
		r.problem("New: %v", err)
		r.stalled = true
		return
	}
	r.top = top
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.start = time.Now()
	done := make(chan error, 1)
	go func() { done <- top.Run(ctx) }()
	var cancelC <-chan time.Time
	if r.c.cancelAt > 0 {
		t := time.NewTimer(r.c.cancelAt)
		defer t.Stop()
		cancelC = t.C
	}
	var rateC <-chan time.Time
	if r.c.rateAt > 0 {
		t := time.NewTimer(r.c.rateAt)
		defer t.Stop()
		rateC = t.C
	}
	watchdog := time.NewTimer(propWatchdog)
	defer watchdog.Stop()
	for {
		select {
		case err := <-done:
			r.mu.Lock()
			r.runErr, r.runAt = err, r.since()
			r.mu.Unlock()
			r.final = top.Stats()
			if d := r.c.stubborn(); d > 0 {
				// Handlers that ignored ctx may still be running, left
				// behind by Run: let them finish, then every goroutine
				// must end (synctest checks) and the counts still hold.
				time.Sleep(d + 5*time.Second)
				r.final = top.Stats()
			}
			return
		case <-rateC:
			rateC = nil
			r.setRate()
		case <-cancelC:
			cancelC = nil
			r.mu.Lock()
			r.cancelledAt = r.since()
			r.mu.Unlock()
			cancel()
		case <-watchdog.C:
			r.stalled = true
			r.problem("stall: Run has not returned after %v (cancelled at %v)\n%s\n%s",
				propWatchdog, r.cancelledAt, topologytest.FormatStats(top.Stats()), stagesStacks())
			cancel()
			select {
			case <-done:
			case <-time.After(propWatchdog):
				r.problem("Run has not returned %v after its context was cancelled", propWatchdog)
			}
			return
		}
	}
}

// setRate changes the rate limit while the topology runs: an invalid limit
// must be refused and change nothing.
func (r *propRun) setRate() {
	before := r.top.Describe().Producer.RateLimit
	if r.c.rateBad {
		bad := stages.RateLimit{Messages: 0, Interval: time.Second}
		if err := r.top.SetRateLimit(bad); err == nil {
			r.problem("SetRateLimit(%+v) accepted an invalid limit", bad)
		}
		if now := r.top.Describe().Producer.RateLimit; now != before {
			r.problem("an invalid SetRateLimit changed the limit from %+v to %+v", before, now)
		}
		return
	}
	if err := r.top.SetRateLimit(r.c.rateNew); err != nil {
		r.problem("SetRateLimit(%+v): %v", r.c.rateNew, err)
	}
	r.mu.Lock()
	r.rateSetAt = r.since()
	r.mu.Unlock()
}

// stagesStacks returns the stacks of goroutines in package stages, cut to
// a readable length.
func stagesStacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "causeway/stages.") || strings.Contains(g, "causeway/internal/core.") {
			out = append(out, g)
		}
	}
	s := strings.Join(out, "\n\n")
	if len(s) > 12000 {
		s = s[:12000] + "\n..."
	}
	return s
}

func (r *propRun) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("observed: taken %d, dropped %d, processed %d, acked %d, HandleFailed %d; cancelled at %v, producer failed at %v; Run returned at %v: %v\n%s",
		len(r.taken), len(r.dropped), len(r.procSeen), len(r.acked), len(r.hf), r.cancelledAt, r.prodFailAt, r.runAt, r.runErr,
		topologytest.FormatStats(r.final))
}
