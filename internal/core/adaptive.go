package core

import (
	"sync"
	"sync/atomic"
	"time"
)

// Adaptive concurrency of a batcher's pool.
//
// A batcher starts as many batch processors as it may ever run (its
// MaxConcurrency, or its fixed Concurrency) and lets only the first limit
// of them take batches. The limit moves by AIMD (additive increase,
// multiplicative decrease), window by window (a window is at least three
// times the limit in handler calls, and 20ms), on what the handler calls
// show:
//
//   - a window with a failed call (an error, or a message failed with a
//     transient error) halves the limit, so a failing sink is not hit by
//     more callers while it recovers;
//   - when the latency per message of the window's full batches stays at
//     twice the best seen lately for two windows in a row, the sink is well
//     past its knee (queueing inside it, contention) and the limit drops by
//     a quarter (one window over is noise on a shared machine);
//   - when the pool was saturated (every allowed batch processor busy, or
//     batches queued for them), the limit grows: by doubling at first (slow
//     start, as TCP's), then by one. If the next window after a step (the
//     one right after a change is a transition, not counted) does not move
//     at least half the share of messages per second that one more caller
//     adds to a sink that scales (from c: 1/2c more), the step did not pay.
//     A doubling that did not pay ends slow start, and is undone if
//     throughput fell or latency crossed the tolerance (past the knee);
//     a step of one that did not pay is undone, and the limit holds for 10
//     windows before it probes again, then 20, 40 … 160 while probes keep
//     failing (a back-off for latency or errors resets that). So it gets
//     near the knee in a few windows, settles there, and keeps checking,
//     ever less often, that the knee has not moved.
//
// AIMD was chosen over a latency-gradient limit (limit × minLatency /
// latency) because batch latencies are noisy (batch sizes and timeouts
// vary, the handler shares cores with the rest of the pipeline), and a
// gradient applies that noise to the limit multiplicatively at every
// window, while AIMD moves one step up at a time, only keeps a step that
// shows in throughput, and backs off hard only on a clear signal. The best
// latency is a minimum that drifts up by 2% a window, so it follows a
// sink that got slower for good.
type limiter struct {
	min, max int
	adaptive bool // bounds were given: adapt while not pinned
	cur      atomic.Int32
	pinned   atomic.Bool // SetConcurrency fixed the limit
	changes  atomic.Int64

	mu        sync.Mutex
	start     time.Time
	batches   int
	msgs      int64
	fullMsgs  int64
	fullDur   time.Duration
	failed    int
	saturated int
	best      float64 // ns per message: the lowest window latency, drifting up
	prevTput  float64 // messages per second of the previous window
	stepped   bool    // the previous window ended with a step up
	from      int     // the limit before that step
	slow      bool    // slow start: steps up double the limit
	over      int     // windows in a row whose latency was over the tolerance
	holdFor   int     // the hold after the last step that did not pay (0: none yet)
	hold      int     // windows to wait before probing up again
	settling  bool    // the limit just changed: the next window is a transition, not a measure
}

// Tuning of the AIMD loop.
const (
	limWindowMin   = 20 * time.Millisecond
	limWindowCalls = 3    // handler calls per window, times the limit
	limTolerance   = 2.0  // latency over best × this: back off
	limBackoff     = 0.75 // multiplicative decrease on latency
	limDrift       = 1.02 // best latency drifts up by this a window
	limErrorFactor = 0.5  // multiplicative decrease on errors
	limGain        = 0.5  // a step up from c must raise throughput by this share of 1/c
	limHold        = 10   // windows held after a step up that did not pay,
	limHoldMax     = 160  // doubling with each further one up to this
)

// nextHold is how many windows to hold after a step that did not pay:
// limHold, twice the last hold while steps keep not paying (a knee that
// holds is probed ever less often, so probing costs ever less), back to
// limHold once the limit moved down for a reason of its own.
func (l *limiter) nextHold() int {
	l.holdFor = clampInt(2*l.holdFor, limHold, limHoldMax)
	return l.holdFor
}

func newLimiter(start, min, max int) *limiter {
	l := &limiter{min: min, max: max, adaptive: max > min, slow: true}
	l.cur.Store(int32(clampInt(start, min, max)))
	return l
}

func clampInt(v, lo, hi int) int {
	return max(lo, min(v, hi))
}

// limit is how many batch processors may handle batches now.
func (l *limiter) limit() int { return int(l.cur.Load()) }

// set pins the limit at n (clamped to the pool) and stops adapting; n 0
// resumes adapting from the current limit. It reports the limit.
func (l *limiter) set(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n == 0 {
		l.pinned.Store(false)
		l.reset(time.Time{})
		l.stepped, l.hold = false, 0
		return l.limit()
	}
	l.pinned.Store(true)
	n = clampInt(n, 1, l.max)
	if int(l.cur.Swap(int32(n))) != n {
		l.changes.Add(1)
	}
	return n
}

func (l *limiter) reset(now time.Time) {
	l.start, l.batches, l.msgs, l.fullMsgs, l.fullDur, l.failed, l.saturated = now, 0, 0, 0, 0, 0, 0
}

// observe records one handler call: its duration, its messages, whether
// the batch was full (closed by size), whether it failed, and whether the
// pool was saturated when it ended. It reports whether the limit changed.
func (l *limiter) observe(now time.Time, d time.Duration, msgs int, full, failed, saturated bool) bool {
	if !l.adaptive || l.pinned.Load() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() {
		l.start = now
	}
	l.batches++
	l.msgs += int64(msgs)
	if full && !failed && msgs > 0 {
		l.fullMsgs += int64(msgs)
		l.fullDur += d
	}
	if failed {
		l.failed++
	}
	if saturated {
		l.saturated++
	}
	cur := l.limit()
	elapsed := now.Sub(l.start)
	if l.batches < limWindowCalls*cur || elapsed < limWindowMin {
		return false
	}
	if l.settling && l.failed == 0 {
		// The window after a change mixes both limits: measure the next.
		l.settling = false
		l.reset(now)
		return false
	}
	l.settling = false
	tput := float64(l.msgs) / elapsed.Seconds()
	lat := 0.0
	if l.fullMsgs > 0 {
		lat = float64(l.fullDur) / float64(l.fullMsgs)
		if l.best == 0 || lat < l.best {
			l.best = lat
		} else {
			l.best *= limDrift
		}
	}
	over := lat > l.best*limTolerance
	if over {
		l.over++
	} else {
		l.over = 0
	}
	// unpaid: the step up before this window did not add what one more
	// caller adds to a sink that scales.
	unpaid := l.stepped && tput < l.prevTput*(1+limGain/float64(l.from))
	next, stepped := cur, false
	switch {
	case l.failed > 0:
		next, l.holdFor = int(float64(cur)*limErrorFactor), 0
	case l.stepped && l.slow && (unpaid || over):
		// Slow start ends at the first doubling that did not pay: kept if
		// it lost nothing and latency held (steps of one go on from
		// there), undone if it went past the knee.
		l.slow = false
		if tput < l.prevTput || over {
			next, l.hold = l.from, l.nextHold()
		}
	case l.over > 1:
		next, l.holdFor = min(cur-1, int(float64(cur)*limBackoff)), 0
	case unpaid:
		// Back to where it was.
		next, l.hold = l.from, l.nextHold()
	case l.hold > 0:
		l.hold--
	case 2*l.saturated >= l.batches:
		next, stepped = cur+1, true
		if l.slow {
			next = 2 * cur
		}
	}
	l.reset(now)
	next = clampInt(next, l.min, l.max)
	l.stepped = stepped && next > cur
	if l.stepped || next == cur {
		l.prevTput = tput
	}
	if l.stepped {
		l.from = cur
	} else if next < cur {
		l.slow = false
	}
	if next == cur {
		return false
	}
	l.cur.Store(int32(next))
	l.changes.Add(1)
	l.settling = true
	return true
}
