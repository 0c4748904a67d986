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
// multiplicative decrease) on two signals a batch handler gives anyway:
//
//   - its latency per message, over the full batches of a window (a
//     window is at least twice the limit in batches, and 10ms): when it
//     climbs to 1.5× the best seen lately, the sink is past its knee
//     (queueing inside it, contention), and the limit drops by a quarter;
//   - its errors: a window with a failed handler call halves the limit,
//     so a failing sink is not hit by more callers while it recovers.
//
// Otherwise, when the pool was saturated (every allowed batch processor
// busy, or batches queued for them), the limit grows by one.
//
// AIMD was chosen over a latency-gradient limit (limit × minLatency /
// latency) because batch latencies are noisy (batch sizes and timeouts
// vary, the handler shares cores with the rest of the pipeline), and a
// gradient applies that noise to the limit multiplicatively at every
// window, while AIMD moves one step up at a time and only backs off on a
// clear rise. The best latency is a minimum that drifts up by 2% a window,
// so the limit probes upward again after the sink got faster or slower.
type limiter struct {
	min, max int
	adaptive bool // bounds were given: adapt while not pinned
	cur      atomic.Int32
	pinned   atomic.Bool // SetConcurrency fixed the limit

	mu        sync.Mutex
	start     time.Time
	batches   int
	fullMsgs  int64
	fullDur   time.Duration
	failed    int
	saturated int
	best      float64 // ns per message: the lowest window latency, drifting up
	changes   atomic.Int64
}

// Tuning of the AIMD loop.
const (
	limWindowMin   = 10 * time.Millisecond
	limTolerance   = 1.5  // latency over best × this: back off
	limBackoff     = 0.75 // multiplicative decrease on latency
	limDrift       = 1.02 // best latency drifts up by this a window
	limErrorFactor = 0.5  // multiplicative decrease on errors
)

func newLimiter(start, min, max int) *limiter {
	l := &limiter{min: min, max: max, adaptive: max > min}
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
	l.start, l.batches, l.fullMsgs, l.fullDur, l.failed, l.saturated = now, 0, 0, 0, 0, 0
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
	if l.batches < 2*cur || now.Sub(l.start) < limWindowMin {
		return false
	}
	next := cur
	switch {
	case l.failed > 0:
		next = int(float64(cur) * limErrorFactor)
	case l.fullMsgs > 0:
		lat := float64(l.fullDur) / float64(l.fullMsgs)
		switch {
		case l.best == 0 || lat < l.best:
			l.best = lat
		default:
			l.best *= limDrift
		}
		if lat > l.best*limTolerance {
			next = min(cur-1, int(float64(cur)*limBackoff))
		} else if 2*l.saturated >= l.batches {
			next = cur + 1
		}
	case 2*l.saturated >= l.batches:
		next = cur + 1
	}
	l.reset(now)
	next = clampInt(next, l.min, l.max)
	if next == cur {
		return false
	}
	l.cur.Store(int32(next))
	l.changes.Add(1)
	return true
}
