package topology_test

// A randomized property test of the core. Each case draws a topology from
// a seed (producers, buffer, processors, batchers, routing, failures and
// panics in every callback, cancel time, ShutdownTimeout), runs it inside a
// testing/synctest bubble (time is virtual: timeouts and back-offs cost
// nothing, a stall shows as a jump to the watchdog) and checks what it
// observed against the core's promises: every emitted message acknowledged
// exactly once or counted as dropped, with the outcome its handlers gave it;
// per-key order; Stats that agree; Run returning in its bound with the right
// error; no goroutine left behind (synctest's own check).
//
// Replay a case with the seed its failure prints:
//
//	go test ./topology -run TestProperty -prop.seed=0x1234abcd
//	CAUSEWAY_PROP_SEED=0x1234abcd go test ./topology -run TestProperty
//
// The number of cases is -prop.cases or CAUSEWAY_PROP_CASES (default 500);
// make soak runs many more. CAUSEWAY_PROP_OFF=name,name switches fault
// classes off (see propFaults), to look past a known crash.

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

var (
	propSeed  = flag.String("prop.seed", "", "run only the property case with this seed (env CAUSEWAY_PROP_SEED)")
	propCases = flag.Int("prop.cases", 0, "number of random topologies TestProperty runs (env CAUSEWAY_PROP_CASES; default 500)")
)

const defaultPropCases = 500

// propRealLimit is the real time one case may take before it counts as
// stuck.
const propRealLimit = 20 * time.Second

// propFaults are the fault classes a case may inject; CAUSEWAY_PROP_OFF
// names some to leave out.
var propFaults = []string{
	"handler-error", "handler-panic", "batch-error", "batch-panic", "copy-fail", "omit",
	"sizefunc-panic", "proc-partition-panic", "batch-partition-panic",
	"acker-panic", "value-acker", "handlefailed-panic", "ondrop-panic", "hook-panic",
	"producer-error", "prefailed", "unknown-route", "cancel",
	"batch-wait", // batch handlers that sleep, and retries (which back off)
	"rate-limit",
	"ignore-ctx", // processor handlers that sleep through their ctx
}

func propFaultOn(name string) bool {
	for _, f := range strings.Split(os.Getenv("CAUSEWAY_PROP_OFF"), ",") {
		if strings.TrimSpace(f) == name {
			return false
		}
	}
	return true
}

func TestProperty(t *testing.T) {
	seedText := *propSeed
	if seedText == "" {
		seedText = os.Getenv("CAUSEWAY_PROP_SEED")
	}
	if seedText != "" {
		seed, err := strconv.ParseUint(seedText, 0, 64)
		if err != nil {
			t.Fatalf("bad seed %q: %v", seedText, err)
		}
		runPropCase(t, seed)
		return
	}
	n := *propCases
	if n == 0 {
		if s := os.Getenv("CAUSEWAY_PROP_CASES"); s != "" {
			var err error
			if n, err = strconv.Atoi(s); err != nil {
				t.Fatalf("CAUSEWAY_PROP_CASES=%q: %v", s, err)
			}
		}
	}
	if n <= 0 {
		n = defaultPropCases
	}
	base := rand.Uint64()
	t.Logf("property: %d cases from base seed %#x", n, base)
	start := time.Now()
	for i := range n {
		seed := splitmix(base + uint64(i))
		ok := t.Run(fmt.Sprintf("seed=%#016x", seed), func(t *testing.T) { runPropCase(t, seed) })
		if !ok {
			t.Fatalf("case %d of %d failed; replay: %s", i, n, replay(seed))
		}
	}
	t.Logf("property: %d cases in %v: %s", n, time.Since(start).Round(time.Millisecond), propTotals.String())
}

func allStacks() string {
	buf := make([]byte, 1<<22)
	return string(buf[:runtime.Stack(buf, true)])
}

// propTotals sums what the cases of a run did, to show the run's reach.
type propTotalsT struct {
	sync.Mutex
	cases, emitted, dropped, acked, failed, batches, cancelled, timedOut, prodFailed int64
}

var propTotals propTotalsT

func (p *propTotalsT) add(r *propRun) {
	p.Lock()
	defer p.Unlock()
	s := r.final
	p.cases++
	p.emitted += s.Producer.Emitted
	p.dropped += s.Dropped
	p.acked += s.Acked
	p.failed += s.Failed
	for _, b := range s.Batchers {
		p.batches += b.Batches
	}
	if r.cancelledAt >= 0 {
		p.cancelled++
	}
	if errors.Is(r.runErr, stages.ErrShutdownTimeout) {
		p.timedOut++
	}
	if r.prodFailed {
		p.prodFailed++
	}
}

func (p *propTotalsT) String() string {
	p.Lock()
	defer p.Unlock()
	return fmt.Sprintf("%d messages emitted, %d acked ok, %d acked failed, %d dropped, %d batch handler calls; %d cases cancelled, %d timed out, %d with a failed producer",
		p.emitted, p.acked, p.failed, p.dropped, p.batches, p.cancelled, p.timedOut, p.prodFailed)
}

// replay is the command that runs one case again, with the fault classes
// this run left out.
func replay(seed uint64) string {
	env := ""
	if off := os.Getenv("CAUSEWAY_PROP_OFF"); off != "" {
		env = "CAUSEWAY_PROP_OFF=" + off + " "
	}
	return fmt.Sprintf("%sgo test ./topology -run TestProperty -prop.seed=%#016x", env, seed)
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// runPropCase runs one case. A deadlock that synctest reports (goroutines
// left blocked) is turned into a failure that names the seed.
func runPropCase(t *testing.T, seed uint64) {
	c := genCase(seed)
	// A bubble whose clock cannot advance (goroutines blocked on a
	// sync.Mutex whose holder waits on virtual time, or one spinning on
	// nanosecond timers) is no deadlock to synctest: a real-time guard
	// reports it, and ends the binary, which cannot get those goroutines
	// back.
	guard := time.AfterFunc(propRealLimit, func() {
		fmt.Fprintf(os.Stderr, "property case %#016x made no progress in %v of real time: its synctest clock is stuck "+
			"(goroutines blocked on a sync.Mutex held across a wait on virtual time, or a goroutine spinning: look for runnable ones)\n%s\n%s\nreplay: %s\n",
			seed, propRealLimit, c, allStacks(), replay(seed))
		panic(fmt.Sprintf("property case %#016x stuck", seed))
	})
	defer guard.Stop()
	defer func() {
		if v := recover(); v != nil {
			t.Fatalf("seed %#016x: %v\n%s\nreplay: %s\ngoroutines left:\n%s", seed, v, c, replay(seed), stagesStacks())
		}
	}()
	synctest.Test(t, func(t *testing.T) {
		r := newPropRun(c)
		r.run()
		propTotals.add(r)
		if problems := r.check(); len(problems) > 0 {
			if len(problems) > 25 {
				problems = append(problems[:25], fmt.Sprintf("... and %d more", len(problems)-25))
			}
			t.Errorf("seed %#016x: %d violations:\n  %s\n%s\n%s\nreplay: %s",
				seed, len(problems), strings.Join(problems, "\n  "), c, r.summary(), replay(seed))
		}
	})
}

// ---- the case: everything drawn from the seed ----

type item struct {
	ID   int
	Key  int
	Prod int
}

const (
	actOK = iota
	actErr
	actFail
	actPanic
)

const (
	routeDefault = iota // no Route call
	routeNowhere        // Route()
	routeSome           // Route(names...)
	routeUnknown        // Route(known..., "nope")
)

// fate is what happens to one message, decided up front.
type fate struct {
	key      int
	preFail  bool
	act      int
	sleep    time.Duration
	stubborn time.Duration // the handler sleeps this long, ignoring ctx
	route    int
	to       []int // batcher indexes for routeSome / routeUnknown
	flush    bool
	acker    int // -1: none
	partPnc  bool
	sizePnc  [3]bool
	bpartPnc [3]bool
	size     [3]int
	copyFail [3]int  // fail this copy in attempts <= n
	perm     [3]bool // fail this copy permanently (not retryable)
	poison   [3]int  // fail the whole batch in attempts <= n
	poisonP  [3]bool // ... by panicking
	omit     [3]bool // leave out of the batch in attempt 1
}

type prodPlan struct {
	push    bool
	single  bool // Emit one by one rather than EmitAll
	ids     []int
	pause   time.Duration
	burst   int
	endErr  bool
	endPnc  bool
	ctxErr  bool // return ctx.Err() when cancelled
	prePace time.Duration
}

type batcherPlan struct {
	name      string
	size      int
	sizeFunc  bool
	timeout   time.Duration
	conc      int
	part      bool
	retry     stages.RetryPolicy
	retryable bool
	sleep     time.Duration
}

type ackerPlan struct {
	value bool // a value type with a slice field
	panic bool
}

type propCase struct {
	seed       uint64
	fates      []fate
	prods      []prodPlan
	bufSize    int
	keep       stages.Keep
	procs      int
	maxD, minD int
	procPart   bool
	batchers   []batcherPlan
	defName    string // Spec.DefaultBatcher
	defIndex   int    // effective default batcher, -1: none
	keyBatch   []bool // per key: SetBatchKey
	ackers     []ackerPlan
	handleFail bool
	hfPanic    bool
	onDropPnc  bool
	hooks      bool
	hookPnc    bool
	rate       stages.RateLimit
	rateAt     time.Duration // 0: no SetRateLimit
	rateNew    stages.RateLimit
	rateBad    bool          // the SetRateLimit call is invalid and must change nothing
	cancelAt   time.Duration // 0: never
	shutdown   time.Duration // 0: default
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func genCase(seed uint64) *propCase {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	c := &propCase{seed: seed}
	on := propFaultOn
	rate := func(name string) float64 {
		if !on(name) {
			return 0
		}
		return pick(r, 0, 0, 0.02, 0.1, 0.3)
	}
	chance := func(p float64) bool { return r.Float64() < p }

	total := pick(r, 0, 1, 5, 20, 60, 150, 300, 1000)
	if total > 1 {
		total = 1 + r.IntN(total)
	}
	nKeys := 1 + r.IntN(8)
	c.bufSize = pick(r, 1, 2, 3, 5, 10, 50, 1000, 10000, 1+r.IntN(20))
	c.keep = pick(r, stages.KeepLast, stages.KeepFirst, stages.Block)
	c.procs = 1 + r.IntN(8)
	c.maxD = pick(r, 1, 2, 3, 5, 10, 1+r.IntN(20))
	if c.maxD > 1 {
		c.minD = r.IntN(c.maxD) // 0 takes the default, MaxDemand/2
	}
	c.procPart = chance(0.4)

	names := []string{"a", "b", "default"}
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	nb := r.IntN(4)
	for i := range nb {
		bp := batcherPlan{
			name:    names[i],
			size:    pick(r, 1, 2, 3, 5, 10, 20),
			timeout: pick(r, time.Millisecond, 5*time.Millisecond, 50*time.Millisecond, time.Second, 0),
			conc:    1 + r.IntN(4),
			part:    chance(0.4),
			sleep:   pick(r, 0, 0, time.Millisecond, 10*time.Millisecond),
		}
		if !on("batch-wait") {
			bp.sleep = 0
		}
		bp.sizeFunc = chance(0.3)
		if on("batch-wait") && chance(0.3) {
			bp.retry = stages.RetryPolicy{Attempts: 2 + r.IntN(3), Backoff: pick(r, time.Millisecond, 20*time.Millisecond)}
			bp.retryable = chance(0.5)
		}
		c.batchers = append(c.batchers, bp)
	}
	// Sort by name: the topology declares batchers in name order.
	slices.SortFunc(c.batchers, func(a, b batcherPlan) int { return strings.Compare(a.name, b.name) })
	c.defIndex = -1
	switch {
	case nb > 0 && chance(0.2):
		c.defName = topology.NoBatcher
	case nb > 0 && chance(0.25):
		c.defIndex = r.IntN(nb)
		c.defName = c.batchers[c.defIndex].name
	default:
		for i, b := range c.batchers {
			if b.name == "default" {
				c.defIndex = i
			}
		}
		if c.defIndex < 0 && nb == 1 {
			c.defIndex = 0
		}
	}
	for range nKeys {
		c.keyBatch = append(c.keyBatch, chance(0.3))
	}
	for range r.IntN(4) {
		c.ackers = append(c.ackers, ackerPlan{value: on("value-acker") && chance(0.4), panic: on("acker-panic") && chance(0.2)})
	}
	c.handleFail = chance(0.6)
	c.hfPanic = c.handleFail && on("handlefailed-panic") && chance(0.2)
	c.onDropPnc = on("ondrop-panic") && chance(0.3)
	c.hooks = chance(0.5)
	c.hookPnc = c.hooks && on("hook-panic") && chance(0.3)
	if on("cancel") && chance(0.6) {
		c.cancelAt = time.Microsecond + pick(r, time.Duration(r.IntN(5000))*time.Microsecond,
			time.Duration(r.IntN(50))*time.Millisecond, time.Duration(r.IntN(300))*time.Millisecond)
	}
	if on("rate-limit") && chance(0.2) {
		c.rate = stages.RateLimit{Messages: 1 + r.IntN(50), Interval: pick(r, time.Millisecond, 10*time.Millisecond, 100*time.Millisecond)}
	}
	if on("rate-limit") && chance(0.2) {
		c.rateAt = time.Duration(1+r.IntN(100)) * time.Millisecond
		switch r.IntN(3) {
		case 0:
			c.rateBad = true
		case 1:
			c.rateNew = stages.RateLimit{Messages: 1 + r.IntN(50), Interval: pick(r, time.Millisecond, 10*time.Millisecond)}
		}
	}
	c.shutdown = pick(r, 0, time.Millisecond, 20*time.Millisecond, 200*time.Millisecond, 2*time.Second)

	// Producers, each with its own share of the ids.
	np := 1 + r.IntN(4)
	for range np {
		pp := prodPlan{
			push:    chance(0.5),
			single:  chance(0.3),
			pause:   pick(r, 0, time.Millisecond, 5*time.Millisecond),
			burst:   1 + r.IntN(8),
			ctxErr:  chance(0.5),
			prePace: pick(r, 0, 0, time.Millisecond, 30*time.Millisecond),
		}
		c.prods = append(c.prods, pp)
	}
	if on("producer-error") && chance(0.1) {
		p := &c.prods[r.IntN(np)]
		if chance(0.5) {
			p.endErr = true
		} else {
			p.endPnc = true
		}
	}
	for id := range total {
		g := r.IntN(np)
		c.prods[g].ids = append(c.prods[g].ids, id)
	}

	rErr, rPanic, rPre := rate("handler-error"), rate("handler-panic"), rate("prefailed")
	rUnknown := rate("unknown-route")
	rCopy, rBatch, rBPanic, rOmit := rate("copy-fail"), rate("batch-error"), rate("batch-panic"), rate("omit")
	rSize, rPPart, rBPart := rate("sizefunc-panic"), rate("proc-partition-panic"), rate("batch-partition-panic")
	rSleep := pick(r, 0, 0, 0.05, 0.3)
	rStubborn := 0.0
	if on("ignore-ctx") && chance(0.1) {
		rStubborn = pick(r, 0.01, 0.05)
	}
	for range total {
		f := fate{key: r.IntN(nKeys), acker: -1}
		f.preFail = chance(rPre)
		switch x := r.Float64(); {
		case x < rErr/2:
			f.act = actErr
		case x < rErr:
			f.act = actFail
		case x < rErr+rPanic:
			f.act = actPanic
		}
		if chance(rSleep) {
			f.sleep = time.Duration(1+r.IntN(5)) * time.Millisecond
		}
		if chance(rStubborn) {
			f.stubborn = time.Duration(1+r.IntN(3000)) * time.Millisecond
		}
		f.route = pick(r, routeDefault, routeDefault, routeNowhere, routeSome, routeSome)
		if nb == 0 && f.route == routeSome {
			f.route = routeDefault
		}
		if chance(rUnknown) {
			f.route = routeUnknown
		}
		if f.route == routeSome || f.route == routeUnknown {
			for i := range nb {
				if chance(0.5) {
					f.to = append(f.to, i)
				}
			}
			if len(f.to) == 0 && f.route == routeSome {
				f.to = []int{r.IntN(nb)}
			}
			if len(f.to) > 0 && chance(0.2) {
				f.to = append(f.to, f.to[0]) // a name twice
			}
		}
		f.flush = chance(0.1)
		if len(c.ackers) > 0 && chance(0.8) {
			f.acker = r.IntN(len(c.ackers))
		}
		f.partPnc = c.procPart && chance(rPPart)
		for i, b := range c.batchers {
			f.size[i] = 1 + r.IntN(5)
			f.sizePnc[i] = b.sizeFunc && chance(rSize)
			f.bpartPnc[i] = b.part && chance(rBPart)
			if chance(rCopy) {
				f.copyFail[i] = 1 + r.IntN(3)
				f.perm[i] = b.retryable && chance(0.3)
			}
			if chance(rBatch + rBPanic) {
				f.poison[i] = 1 + r.IntN(2)
				f.poisonP[i] = chance(rBPanic / (rBatch + rBPanic))
			}
			f.omit[i] = chance(rOmit)
		}
		c.fates = append(c.fates, f)
	}
	return c
}

func (c *propCase) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "case %#016x: %d messages, %d keys\n", c.seed, len(c.fates), len(c.keyBatch))
	for g, p := range c.prods {
		kind := "pull"
		if p.push {
			kind = fmt.Sprintf("push(burst %d, pause %v, single %v)", p.burst, p.pause, p.single)
		}
		fmt.Fprintf(&b, "  producer %d: %s, %d messages, pace %v, err %v, panic %v, ctxErr %v\n",
			g, kind, len(p.ids), p.prePace, p.endErr, p.endPnc, p.ctxErr)
	}
	fmt.Fprintf(&b, "  buffer %d %v; processors %d, MaxDemand %d, MinDemand %d, partitioned %v\n",
		c.bufSize, c.keep, c.procs, c.maxD, c.minD, c.procPart)
	for _, bp := range c.batchers {
		fmt.Fprintf(&b, "  batcher %q: size %d, sizeFunc %v, timeout %v, concurrency %d, partitioned %v, retry %+v (retryable fn %v), sleep %v\n",
			bp.name, bp.size, bp.sizeFunc, bp.timeout, bp.conc, bp.part, bp.retry, bp.retryable, bp.sleep)
	}
	fmt.Fprintf(&b, "  default batcher %q (effective %d); ackers %+v; HandleFailed %v (panics %v); OnDrop panics %v; hooks %v (panic %v)\n",
		c.defName, c.defIndex, c.ackers, c.handleFail, c.hfPanic, c.onDropPnc, c.hooks, c.hookPnc)
	fmt.Fprintf(&b, "  rate limit %+v, changed at %v to %+v (invalid %v)\n", c.rate, c.rateAt, c.rateNew, c.rateBad)
	stubborn := 0
	for i := range c.fates {
		if c.fates[i].stubborn > 0 {
			stubborn++
		}
	}
	fmt.Fprintf(&b, "  %d messages whose handler ignores ctx; cancel at %v, ShutdownTimeout %v", stubborn, c.cancelAt, c.shutdown)
	return b.String()
}

// routes returns the batchers a message that its handler did not fail goes
// to, and whether the route named an unknown batcher.
func (c *propCase) routes(f *fate) (to []int, unknown bool) {
	switch f.route {
	case routeDefault:
		if c.defIndex >= 0 {
			return []int{c.defIndex}, false
		}
		return nil, false
	case routeNowhere:
		return nil, false
	case routeUnknown:
		return nil, true
	}
	for _, i := range f.to {
		if !slices.Contains(to, i) {
			to = append(to, i)
		}
	}
	slices.Sort(to)
	return to, false
}

func procPartOf(key int) uint64  { return uint64(key)*5 + 3 }
func batchPartOf(key int) uint64 { return uint64(key) * 11 }

var (
	errHandler  = errors.New("prop: handler error")
	errFail     = errors.New("prop: m.Fail")
	errPre      = errors.New("prop: failed by its producer")
	errCopy     = errors.New("prop: copy failed in batch")
	errPerm     = errors.New("prop: copy failed for good")
	errBatch    = errors.New("prop: batch error")
	errProducer = errors.New("prop: producer failed")
)

// stubborn returns how long handlers that ignore their ctx sleep in all:
// after that, none can still be running.
func (c *propCase) stubborn() time.Duration {
	var d time.Duration
	for i := range c.fates {
		d += c.fates[i].stubborn
	}
	return d
}
