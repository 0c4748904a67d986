package ratelog

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := Limiter{Every: time.Second}
		if ok, n := l.Allow(3); !ok || n != 3 {
			t.Fatalf("first Allow = %v, %d; want a line for 3", ok, n)
		}
		for range 5 {
			if ok, _ := l.Allow(1); ok {
				t.Fatal("a second line within the interval")
			}
		}
		time.Sleep(time.Second)
		var skipped int64 = -1
		l.Do(func(s int64) { skipped = s })
		if skipped != 5 {
			t.Fatalf("Do after the interval reported %d skipped, want 5", skipped)
		}
		l.Allow(2)
		if n := l.Flush(); n != 2 {
			t.Fatalf("Flush = %d, want 2", n)
		}
	})
}
