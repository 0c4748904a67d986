package core

import (
	"testing"
	"time"
)

// kneeModel is a sink with knee parallel slots: a call takes base while at
// most knee calls run, and proportionally longer beyond (the slots are
// shared), so throughput grows with the callers up to the knee and stays
// flat past it.
type kneeModel struct {
	knee int
	base time.Duration
}

func (k kneeModel) latency(callers int) time.Duration {
	if callers <= k.knee {
		return k.base
	}
	return k.base * time.Duration(callers) / time.Duration(k.knee)
}

// drive feeds l the calls the model makes at l's limit for n windows (a
// window being limit × limWindowCalls calls, the least observe needs), on a
// synthetic clock, and returns the limit after each window.
func drive(l *limiter, k kneeModel, now *time.Time, n int) []int {
	var seen []int
	for range n {
		cur := l.limit()
		d := k.latency(cur)
		for range limWindowCalls * cur {
			*now = now.Add(d / time.Duration(cur))
			l.observe(*now, d, 100, true, false, true)
		}
		seen = append(seen, l.limit())
	}
	return seen
}

func TestLimiterSlowStartReachesTheBoundFast(t *testing.T) {
	l := newLimiter(2, 1, 32)
	now := time.Unix(0, 0)
	seen := drive(l, kneeModel{knee: 64, base: 10 * time.Millisecond}, &now, 12)
	// 2 -> 4 -> 8 -> 16 -> 32, each doubling followed by a settling window.
	if got := l.limit(); got != 32 {
		t.Fatalf("a sink that scales past the bound: limit %d after 12 windows, want 32 (limits %v)", got, seen)
	}
	// Steps of one would need 30 steps (60 windows) to get there.
	for i, c := range seen {
		if c == 32 {
			if i > 9 {
				t.Fatalf("reached 32 only after %d windows: %v", i+1, seen)
			}
			break
		}
	}
}

func TestLimiterSettlesAtTheKneeAndProbesLessOften(t *testing.T) {
	l := newLimiter(1, 1, 16)
	now := time.Unix(0, 0)
	seen := drive(l, kneeModel{knee: 4, base: 10 * time.Millisecond}, &now, 600)
	for _, c := range seen {
		if c > 8 {
			t.Fatalf("limit went to %d with a knee at 4 (slow start may overshoot to 8, no further): %v", c, seen)
		}
	}
	if got := l.limit(); got != 4 {
		t.Fatalf("limit %d after 600 windows, want 4 (the knee)", got)
	}
	// After the climb, the limit leaves 4 only to probe 5 and come back;
	// the holds between probes double (10, 20, 40, 80, 160, 160 ...), so
	// 600 windows hold a handful of probes, not the ~50 a fixed hold of
	// 10 windows (plus the probe's 2) would.
	probes := 0
	for i := 1; i < len(seen); i++ {
		if seen[i-1] == 4 && seen[i] == 5 {
			probes++
		}
	}
	if probes < 2 || probes > 8 {
		t.Fatalf("%d probes above the knee in 600 windows, want 2..8: %v", probes, seen)
	}
	if l.holdFor != limHoldMax {
		t.Fatalf("hold after repeated probes that did not pay: %d windows, want %d", l.holdFor, limHoldMax)
	}
}

func TestLimiterHalvesOnErrors(t *testing.T) {
	l := newLimiter(8, 1, 16)
	now := time.Unix(0, 0)
	for range limWindowCalls * 8 {
		now = now.Add(5 * time.Millisecond)
		l.observe(now, 10*time.Millisecond, 100, true, true, true)
	}
	if got := l.limit(); got != 4 {
		t.Fatalf("a window of failed calls: limit %d, want 4 (halved from 8)", got)
	}
	// A limit pinned by SetConcurrency does not move.
	l.set(6)
	for range limWindowCalls * 6 * 3 {
		now = now.Add(5 * time.Millisecond)
		l.observe(now, 10*time.Millisecond, 100, true, true, true)
	}
	if got := l.limit(); got != 6 {
		t.Fatalf("pinned at 6, failing calls moved it to %d", got)
	}
}
