// Package ratelog lets a repeated log line through at most once per
// interval and counts what it held back, so hot paths can report trouble
// without flooding the log.
package ratelog

import (
	"sync"
	"time"
)

// Limiter is safe for concurrent use; its zero value logs at most once a
// second.
type Limiter struct {
	// Every is the least time between two lines; 0 means a second.
	Every time.Duration

	mu       sync.Mutex
	last     time.Time
	withheld int64
}

// Allow adds n occurrences and reports whether to log now, and if so how
// many occurrences the line stands for: n plus those held back since.
func (l *Limiter) Allow(n int64) (ok bool, count int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.withheld += n
	now := time.Now()
	every := l.Every
	if every <= 0 {
		every = time.Second
	}
	if !l.last.IsZero() && now.Sub(l.last) < every {
		return false, 0
	}
	l.last = now
	count, l.withheld = l.withheld, 0
	return true, count
}

// Do calls log with the number of occurrences held back before this one,
// if the interval allows a line now.
func (l *Limiter) Do(log func(skipped int64)) {
	if ok, count := l.Allow(1); ok {
		log(count - 1)
	}
}

// Flush returns how many occurrences were held back and forgets them.
func (l *Limiter) Flush() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.withheld
	l.withheld = 0
	return n
}
