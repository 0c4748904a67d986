// Package backoff is the one implementation of back-off arithmetic and of a
// context-aware sleep that Causeway's stages and producers share.
package backoff

import (
	"context"
	"time"
)

// Linear is the n-th (from 1) wait of a linear back-off: initial × n,
// capped by max.
func Linear(initial, max time.Duration, n int) time.Duration {
	n = max1(n)
	if initial > 0 && time.Duration(n) > max/initial {
		return max
	}
	return min(initial*time.Duration(n), max)
}

// Exponential is the n-th (from 1) wait of an exponential back-off:
// initial × 2^(n-1), capped by max.
func Exponential(initial, max time.Duration, n int) time.Duration {
	d := initial
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// Sleep waits for d, for ctx to end (returning its error) or for wake to be
// closed, whichever comes first. A nil wake never fires; d <= 0 returns at
// once with ctx's error, if any.
func Sleep(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
