package backoff

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestArithmetic(t *testing.T) {
	s, m := time.Second, time.Minute
	for _, c := range []struct {
		name string
		f    func(time.Duration, time.Duration, int) time.Duration
		n    int
		want time.Duration
	}{
		{"linear 0", Linear, 0, s},
		{"linear 1", Linear, 1, s},
		{"linear 7", Linear, 7, 7 * s},
		{"linear capped", Linear, 1000, m},
		{"linear huge n", Linear, 1 << 62, m},
		{"exponential 1", Exponential, 1, s},
		{"exponential 4", Exponential, 4, 8 * s},
		{"exponential capped", Exponential, 10, m},
		{"exponential huge n", Exponential, 1 << 30, m},
	} {
		if got := c.f(s, m, c.n); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Sleep(context.Background(), time.Second, nil); err != nil || time.Since(start) != time.Second {
			t.Fatalf("Sleep 1s: %v after %v", err, time.Since(start))
		}
		wake := make(chan struct{})
		go func() { time.Sleep(100 * time.Millisecond); close(wake) }()
		start = time.Now()
		if err := Sleep(context.Background(), time.Hour, wake); err != nil || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("woken Sleep: %v after %v", err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := Sleep(ctx, time.Hour, nil); err != context.DeadlineExceeded {
			t.Fatalf("Sleep with ended ctx: %v", err)
		}
	})
}
