package twitter

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

// TestBackoffSequences checks each class's waits with the default
// configuration, attempt by attempt, and what resets them.
func TestBackoffSequences(t *testing.T) {
	cfg := Config{Token: "x"}.withDefaults()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	seq := func(b *backoffs, r result, n int) []time.Duration {
		var out []time.Duration
		for range n {
			out = append(out, b.next(&cfg, r, now).Backoff)
		}
		return out
	}
	check := func(name string, got, want []time.Duration) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %v, want %v", name, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s: attempt %d waits %v, want %v (all: %v)", name, i+1, got[i], want[i], got)
			}
		}
	}

	var b backoffs
	net := seq(&b, result{reason: ReasonNetwork}, 66)
	check("network", net[:4], []time.Duration{250 * ms, 500 * ms, 750 * ms, time.Second})
	check("network cap", net[61:65], []time.Duration{15500 * ms, 15750 * ms, 16 * time.Second, 16 * time.Second})

	b = backoffs{}
	check("http", seq(&b, result{reason: ReasonHTTP, status: 503}, 9), []time.Duration{5 * time.Second, 10 * time.Second,
		20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 320 * time.Second, 320 * time.Second, 320 * time.Second})

	b = backoffs{}
	check("rate limit", seq(&b, result{reason: ReasonRateLimited, status: 429}, 7), []time.Duration{time.Minute, 2 * time.Minute,
		4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 16 * time.Minute, 16 * time.Minute})

	// x-rate-limit-reset later than the back-off wins; an earlier one does
	// not shorten it.
	b = backoffs{}
	if ev := b.next(&cfg, result{reason: ReasonRateLimited, status: 429, resetAt: now.Add(7 * time.Minute)}, now); ev.Backoff != 7*time.Minute || ev.Class != ClassRateLimit {
		t.Errorf("429 with a reset in 7m: %+v", ev)
	}
	if ev := b.next(&cfg, result{reason: ReasonTooManyConnections, status: 429, resetAt: now.Add(time.Second)}, now); ev.Backoff != 2*time.Minute {
		t.Errorf("second 429 with a reset in 1s: %v, want 2m", ev.Backoff)
	}

	// A 200 resets the HTTP and rate-limit classes, not the network one.
	b = backoffs{http: 3, rate: 2, network: 2}
	ev := b.next(&cfg, result{reason: ReasonDisconnected, status: http.StatusOK, connected: time.Second, gotData: true}, now)
	if ev.Class != ClassLinear || ev.Backoff != 750*ms || b.http != 0 || b.rate != 0 {
		t.Errorf("short connection after a 200: %+v, counters %+v", ev, b)
	}
	// A healthy connection (data for BackoffReset) resets everything and
	// reconnects at once.
	ev = b.next(&cfg, result{reason: ReasonStall, status: http.StatusOK, connected: cfg.BackoffReset, gotData: true}, now)
	if ev.Class != ClassImmediate || ev.Backoff != 0 || !ev.Healthy || b != (backoffs{}) {
		t.Errorf("healthy connection lost: %+v, counters %+v", ev, b)
	}
	// A long connection that never delivered a byte is not healthy.
	ev = b.next(&cfg, result{reason: ReasonStall, status: http.StatusOK, connected: time.Hour}, now)
	if ev.Class != ClassLinear || ev.Healthy {
		t.Errorf("silent connection lost: %+v", ev)
	}
}

// TestWatchdog checks the stall timer in a synctest bubble: kicks hold it
// off, silence fires it exactly at the timeout.
func TestWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start := time.Now()
		w := newWatchdog(90*time.Second, cancel)
		defer w.stop()
		for range 5 {
			time.Sleep(60 * time.Second) // a keep-alive every 60 s
			w.kick()
		}
		if w.fired.Load() || ctx.Err() != nil {
			t.Fatal("fired although kicked every 60s")
		}
		<-ctx.Done()
		if got := time.Since(start); got != 5*60*time.Second+90*time.Second || !w.fired.Load() {
			t.Errorf("fired after %v (fired %v), want 390s", got, w.fired.Load())
		}
		w.kick() // a late kick does not un-fire it
		if !w.fired.Load() {
			t.Error("a kick after firing reset the watchdog")
		}
	})
}

// TestBackoffWaitRespectsContext runs the real sleep in a synctest bubble:
// a 320 s back-off ends early when the context is cancelled.
func TestBackoffWaitRespectsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		go func() {
			time.Sleep(7 * time.Second)
			cancel()
		}()
		if err := sleepCtx(ctx, 320*time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("sleep: %v", err)
		}
		if got := time.Since(start); got != 7*time.Second {
			t.Errorf("returned after %v, want 7s", got)
		}
		start = time.Now()
		if err := sleepCtx(context.Background(), 5*time.Second); err != nil || time.Since(start) != 5*time.Second {
			t.Errorf("full sleep: %v after %v", err, time.Since(start))
		}
	})
}

// TestDedupWindow checks the window remembers exactly the last n ids.
func TestDedupWindow(t *testing.T) {
	d := newDedup(3)
	for i, tc := range []struct {
		id   string
		seen bool
	}{
		{"1", false}, {"2", false}, {"1", true}, {"3", false}, {"4", false}, // 1 falls out
		{"1", false}, {"3", true}, {"not-a-number", false}, {"not-a-number", true}, {"2", false},
	} {
		if got := d.seen(tc.id); got != tc.seen {
			t.Errorf("step %d: seen(%s) = %v, want %v", i, tc.id, got, tc.seen)
		}
	}
	if len(d.set) != 3 {
		t.Errorf("window holds %d ids, want 3", len(d.set))
	}
	big := newDedup(DefaultDedupWindow)
	for i := range 2 * DefaultDedupWindow {
		if big.seen(strconv.Itoa(i)) {
			t.Fatalf("id %d seen before", i)
		}
	}
	if len(big.set) != DefaultDedupWindow || !big.seen(strconv.Itoa(2*DefaultDedupWindow-1)) || big.seen("0") {
		t.Errorf("full window: %d ids", len(big.set))
	}
}
