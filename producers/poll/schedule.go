package poll

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// regularWait is the wait after a successful poll of f (a document, a 304):
// the feed's Interval or, with FollowHints, until the feed says it will
// change. It becomes f's beat, the wait a skipped poll also takes.
func (p *Producer[T]) regularWait(f *feedState[T], h http.Header) time.Duration {
	wait := f.Interval
	if f.FollowHints {
		if w, ok := hintWait(f, h, time.Now()); ok {
			wait = min(max(w, f.MinInterval), f.MaxInterval)
		}
	}
	f.beat = wait
	return wait
}

// hintWait is how long until f's document changes, by its own last_updated
// and ttl or else by the response's Cache-Control. A document whose change
// is overdue is checked again after MinInterval (the clamp of a zero wait).
func hintWait[T any](f *feedState[T], h http.Header, now time.Time) (time.Duration, bool) {
	switch {
	case !f.lastUpdated.IsZero():
		// The publisher's clock says when; read it against the server's
		// Date when the two clocks disagree by more than Date's precision.
		serverNow := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			if skew := now.Sub(d); skew > 2*time.Second || skew < -2*time.Second {
				serverNow = d
			}
		}
		return max(f.lastUpdated.Add(f.ttl).Sub(serverNow), 0), true
	case f.ttl > 0:
		return f.ttl, true
	}
	return maxAge(h)
}

// jitter lengthens w by a random fraction of it, up to Config.Jitter.
func (p *Producer[T]) jitter(w time.Duration) time.Duration {
	if p.cfg.Jitter <= 0 || w <= 0 {
		return w
	}
	return w + time.Duration(rand.Float64()*p.cfg.Jitter*float64(w))
}
