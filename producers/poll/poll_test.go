package poll_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/producers/poll"
)

// A new document every poll: polls at exactly every Interval, each
// document's items emitted in order.
func TestInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			w.Write(doc{Items: items(n*2, 2)}.bytes())
		}}
		p := startPipeline(t, srv, feed(10*time.Second), options{})
		time.Sleep(35 * time.Second)
		synctest.Wait()
		if got, want := srv.gaps(), []time.Duration{10 * time.Second, 10 * time.Second, 10 * time.Second}; !slices.Equal(got, want) {
			t.Errorf("gaps between polls = %v, want %v", got, want)
		}
		if got, want := p.received(), items(0, 8); !slices.Equal(got, want) {
			t.Errorf("received %v, want %v", got, want)
		}
		s := p.prod.Stats()
		if s.Polls != 4 || s.Documents != 4 || s.Items != 8 || s.Errors() != 0 || s.Bytes == 0 {
			t.Errorf("stats = %+v, want 4 polls, 4 documents, 8 items, no errors, some bytes", s.Counters)
		}
		if len(s.Feeds) != 1 || s.Feeds[0].Name != "test" || s.Feeds[0].Items != 8 {
			t.Errorf("feed stats = %+v", s.Feeds)
		}
	})
}

// Jitter lengthens every wait by at most Jitter of it, never shortens it,
// and does spread the polls.
func TestJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			w.Write(doc{Items: items(n, 1)}.bytes())
		}}
		cfg := feed(10 * time.Second)
		cfg.Jitter = 0.2
		startPipeline(t, srv, cfg, options{})
		time.Sleep(1000 * time.Second)
		synctest.Wait()
		gaps := srv.gaps()
		if len(gaps) < 80 {
			t.Fatalf("%d polls in 1000 s at 10-12 s each", len(gaps))
		}
		distinct := map[time.Duration]bool{}
		for i, g := range gaps {
			if g < 10*time.Second || g >= 12*time.Second {
				t.Errorf("gap %d = %v, want within [10s, 12s)", i, g)
			}
			distinct[g] = true
		}
		if len(distinct) < len(gaps)/2 {
			t.Errorf("only %d distinct gaps in %d: jitter does not spread polls", len(distinct), len(gaps))
		}
	})
}

// With FollowHints the next poll is due at the document's last_updated +
// ttl, or after Cache-Control's max-age less Age, clamped to
// [MinInterval, MaxInterval].
func TestFollowHints(t *testing.T) {
	cases := []struct {
		name      string
		freshness bool
		respond   func(now time.Time, n int, w http.ResponseWriter)
		want      []time.Duration
	}{
		{
			name: "ttl from last_updated", freshness: true,
			// Published every 7 s; the first poll comes 3 s into a period.
			respond: func(now time.Time, n int, w http.ResponseWriter) {
				pub := now.Unix() - now.Unix()%7
				w.Write(doc{LastUpdated: pub, TTL: 7, Items: items(n, 1)}.bytes())
			},
			want: []time.Duration{4 * time.Second, 7 * time.Second, 7 * time.Second},
		},
		{
			name: "ttl 0 polls at MinInterval", freshness: true,
			respond: func(now time.Time, n int, w http.ResponseWriter) {
				w.Write(doc{LastUpdated: now.Unix(), TTL: 0, Items: items(n, 1)}.bytes())
			},
			want: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second},
		},
		{
			name: "overdue document polls at MinInterval", freshness: true,
			respond: func(now time.Time, n int, w http.ResponseWriter) {
				w.Write(doc{LastUpdated: now.Unix() - 100, TTL: 10, Items: items(n, 1)}.bytes())
			},
			want: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second},
		},
		{
			name: "long ttl clamped to MaxInterval", freshness: true,
			respond: func(now time.Time, n int, w http.ResponseWriter) {
				w.Write(doc{LastUpdated: now.Unix(), TTL: 3600, Items: items(n, 1)}.bytes())
			},
			want: []time.Duration{20 * time.Second, 20 * time.Second},
		},
		{
			name: "Cache-Control max-age less Age",
			respond: func(now time.Time, n int, w http.ResponseWriter) {
				w.Header().Set("Cache-Control", "public, max-age=9")
				w.Header().Set("Age", "3")
				w.Write(doc{Items: items(n, 1)}.bytes())
			},
			want: []time.Duration{6 * time.Second, 6 * time.Second, 6 * time.Second},
		},
		{
			name: "no hint: Interval",
			respond: func(now time.Time, n int, w http.ResponseWriter) {
				w.Write(doc{Items: items(n, 1)}.bytes())
			},
			want: []time.Duration{15 * time.Second},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
					c.respond(time.Now(), n, w)
				}}
				cfg := feed(15 * time.Second)
				f := &cfg.Feeds[0]
				f.FollowHints, f.MinInterval, f.MaxInterval = true, 2*time.Second, 20*time.Second
				if c.freshness {
					f.Freshness = docFreshness
				}
				// Start 3 s after a whole multiple of 7 s of the epoch.
				time.Sleep(time.Duration(7-time.Now().Unix()%7+3) * time.Second)
				startPipeline(t, srv, cfg, options{})
				var total time.Duration
				for _, w := range c.want {
					total += w
				}
				time.Sleep(total + time.Second)
				synctest.Wait()
				if got := srv.gaps(); !slices.Equal(got, c.want) {
					t.Errorf("gaps = %v, want %v", got, c.want)
				}
			})
		})
	}
}

// An unchanged document costs a 304 (ETag, Last-Modified) or, from a
// server without validators, is recognised by its body; neither emits.
func TestNotModified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		body := doc{Items: items(0, 3)}.bytes()
		const etag = `"v1"`
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			switch {
			case n < 3: // validators: ETag, then Last-Modified only
				if n == 0 {
					w.Header().Set("ETag", etag)
				}
				if r.Header.Get("If-None-Match") == etag {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
				if r.Header.Get("If-Modified-Since") != "" {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Write(body)
			default: // no validators, same body
				w.Write(body)
			}
		}}
		p := startPipeline(t, srv, feed(time.Second), options{})
		time.Sleep(4*time.Second + time.Millisecond)
		synctest.Wait()
		reqs := srv.requests()
		if len(reqs) != 5 {
			t.Fatalf("%d requests, want 5", len(reqs))
		}
		if got := reqs[1].header.Get("If-None-Match"); got != etag {
			t.Errorf("second request If-None-Match = %q, want %q", got, etag)
		}
		if got := p.outcomes(); !slices.Equal(got, []poll.Outcome{poll.OutcomeDocument, poll.OutcomeNotModified,
			poll.OutcomeNotModified, poll.OutcomeUnchanged, poll.OutcomeUnchanged}) {
			t.Errorf("outcomes = %v", got)
		}
		if got := p.received(); !slices.Equal(got, items(0, 3)) {
			t.Errorf("received %v, want the first document's items once", got)
		}
		s := p.prod.Stats()
		if s.NotModified != 2 || s.Unchanged != 2 || s.Documents != 1 || s.Items != 3 {
			t.Errorf("stats = %+v", s.Counters)
		}
	})
}

// A document older than one already seen is stale: counted, not emitted.
func TestStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lu := []int64{100, 110, 105, 120}
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			w.Write(doc{LastUpdated: lu[min(n, 3)], Items: []string{fmt.Sprint(lu[min(n, 3)])}}.bytes())
		}}
		cfg := feed(time.Second)
		cfg.Feeds[0].Freshness = docFreshness
		p := startPipeline(t, srv, cfg, options{})
		time.Sleep(3*time.Second + time.Millisecond)
		synctest.Wait()
		if got := p.received(); !slices.Equal(got, []string{"100", "110", "120"}) {
			t.Errorf("received %v, want 100 110 120", got)
		}
		if s := p.prod.Stats(); s.Stale != 1 {
			t.Errorf("stale = %d, want 1", s.Stale)
		}
	})
}

// Errors back off by class: network linearly, 5xx and 429 exponentially
// and never sooner than Retry-After; a success resets them.
func TestBackoffClasses(t *testing.T) {
	ok := func(w http.ResponseWriter, n int) { w.Write(doc{Items: items(n, 1)}.bytes()) }
	status := func(code int, retryAfter string) func(w http.ResponseWriter, n int) {
		return func(w http.ResponseWriter, n int) {
			if retryAfter != "" {
				w.Header().Set("Retry-After", retryAfter)
			}
			w.WriteHeader(code)
		}
	}
	abort := func(w http.ResponseWriter, n int) { panic(http.ErrAbortHandler) }
	cases := []struct {
		name    string
		script  []func(http.ResponseWriter, int)
		want    []time.Duration
		outcome poll.Outcome
		count   func(poll.Stats) int64
	}{
		{"network: linear", []func(http.ResponseWriter, int){abort, abort, abort, abort, ok},
			[]time.Duration{1 * time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 60 * time.Second},
			poll.OutcomeNetwork, func(s poll.Stats) int64 { return s.NetworkErrors }},
		{"5xx: exponential", []func(http.ResponseWriter, int){status(500, ""), status(502, ""), status(503, ""), status(504, ""), ok},
			[]time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 60 * time.Second},
			poll.OutcomeServer, func(s poll.Stats) int64 { return s.ServerErrors }},
		{"5xx: Retry-After", []func(http.ResponseWriter, int){status(503, "30"), status(503, "1"), ok},
			[]time.Duration{30 * time.Second, 4 * time.Second, 60 * time.Second},
			poll.OutcomeServer, func(s poll.Stats) int64 { return s.ServerErrors }},
		{"429: exponential, Retry-After", []func(http.ResponseWriter, int){status(429, "7"), status(429, "7"), status(429, ""), ok},
			[]time.Duration{7 * time.Second, 10 * time.Second, 20 * time.Second, 60 * time.Second},
			poll.OutcomeThrottled, func(s poll.Stats) int64 { return s.Throttled }},
		{"a success resets", []func(http.ResponseWriter, int){status(500, ""), status(500, ""), ok, status(500, ""), ok},
			[]time.Duration{2 * time.Second, 4 * time.Second, 60 * time.Second, 2 * time.Second, 60 * time.Second},
			poll.OutcomeServer, func(s poll.Stats) int64 { return s.ServerErrors }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
					c.script[min(n, len(c.script)-1)](w, n)
				}}
				p := startPipeline(t, srv, feed(time.Minute), options{})
				var total time.Duration
				for _, w := range c.want {
					total += w
				}
				time.Sleep(total + time.Second)
				synctest.Wait()
				if got := srv.gaps(); !slices.Equal(got, c.want) {
					t.Errorf("gaps = %v, want %v", got, c.want)
				}
				var errs int64
				for _, o := range p.outcomes() {
					if o == c.outcome {
						errs++
					}
				}
				if got := c.count(p.prod.Stats()); got != errs || got == 0 {
					t.Errorf("counted %d errors of the class, %d events", got, errs)
				}
				if p.prod.Stats().Items == 0 {
					t.Error("nothing emitted after recovering")
				}
			})
		})
	}
}

// A 4xx other than 429 stops Run, and the topology, with a *StatusError
// naming the URL and status.
func TestClientErrorStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 0 {
				w.Write(doc{Items: items(0, 1)}.bytes())
				return
			}
			http.Error(w, "no such system", http.StatusNotFound)
		}}
		p := startPipeline(t, srv, feed(time.Second), options{})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		err := <-p.done
		close(p.done)
		var se *poll.StatusError
		if !errors.As(err, &se) {
			t.Fatalf("Run returned %v, want a *poll.StatusError", err)
		}
		if se.StatusCode != 404 || se.URL != "http://feed.test/doc.json" || !strings.Contains(se.Error(), "404 Not Found") ||
			!strings.Contains(se.Error(), "http://feed.test/doc.json") || !strings.Contains(se.Error(), "no such system") {
			t.Errorf("error = %v (%+v)", err, se)
		}
		if s := p.prod.Stats(); s.ClientErrors != 1 || s.Polls != 2 {
			t.Errorf("stats = %+v", s.Counters)
		}
	})
}

// A malformed document is counted and logged with the URL and offset;
// nothing of it is emitted; the validators it came with are forgotten and
// the next poll recovers.
func TestMalformedRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		good := doc{Items: items(0, 2)}.bytes()
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", `"e`+strconv.Itoa(n)+`"`)
			switch n {
			case 0:
				w.Write(good[:len(good)/2]) // truncated
			case 1:
				w.Write([]byte(`{"items": ["a", 7]}`)) // wrong type at offset 17
			case 2:
				if r.Header.Get("If-None-Match") != "" {
					t.Errorf("request after a malformed document sent If-None-Match %q", r.Header.Get("If-None-Match"))
				}
				w.Write(good)
			default:
				w.WriteHeader(http.StatusNotModified)
			}
		}}
		p := startPipeline(t, srv, feed(5*time.Second), options{})
		time.Sleep(11 * time.Second)
		synctest.Wait()
		if got := p.received(); !slices.Equal(got, items(0, 2)) {
			t.Errorf("received %v, want only the good document's items", got)
		}
		if s := p.prod.Stats(); s.Malformed != 2 || s.Documents != 1 {
			t.Errorf("stats = %+v, want 2 malformed, 1 document", s.Counters)
		}
		logs := p.logs.String()
		for _, want := range []string{"malformed document", "url=http://feed.test/doc.json", "offset=17", "unexpected end of JSON input"} {
			if !strings.Contains(logs, want) {
				t.Errorf("logs lack %q:\n%s", want, logs)
			}
		}
		if got := srv.gaps(); !slices.Equal(got, []time.Duration{5 * time.Second, 5 * time.Second}) {
			t.Errorf("gaps = %v: a malformed document waits a regular interval", got)
		}
	})
}

// A response slower than the interval is never overlapped by another
// request: the next poll waits for it, and is then due at once.
func TestOneRequestInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			if n < 3 {
				time.Sleep(25 * time.Second)
			}
			w.Write(doc{Items: items(n, 1)}.bytes())
		}}
		p := startPipeline(t, srv, feed(10*time.Second), options{})
		time.Sleep(100 * time.Second)
		synctest.Wait()
		srv.mu.Lock()
		maxIn := srv.maxIn
		srv.mu.Unlock()
		if maxIn != 1 {
			t.Errorf("%d requests were in flight at once, want 1", maxIn)
		}
		gaps := srv.gaps()
		if len(gaps) < 5 || !slices.Equal(gaps[:5], []time.Duration{25 * time.Second, 25 * time.Second, 25 * time.Second, 10 * time.Second, 10 * time.Second}) {
			t.Errorf("gaps = %v, want 25s ×3 (each slow response), then 10s", gaps)
		}
		if got := p.received(); !slices.Equal(got[:5], items(0, 5)) {
			t.Errorf("received %v", got)
		}
	})
}

// Concurrent Runs of one producer would put two requests in flight per
// URL: the second one fails.
func TestConcurrentRunRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			w.Write(doc{Items: items(n, 1)}.bytes())
		}}
		p := startPipeline(t, srv, feed(time.Second), options{})
		synctest.Wait()
		if err := p.prod.Run(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "concurrently") {
			t.Errorf("second Run = %v, want a refusal", err)
		}
	})
}

// A pull producer polls only while there is demand: a document larger than
// the demand is emitted as demand allows, the feed is not polled meanwhile
// (the beats that fall due are skipped and counted), and nothing is
// dropped.
func TestPollsOnlyOnDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			w.Write(doc{Items: items(n*100, 100)}.bytes())
		}}
		hold := make(chan struct{})
		p := startPipeline(t, srv, feed(time.Second), options{maxDemand: 10, hold: hold})
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if n := len(srv.requests()); n != 1 {
			t.Fatalf("%d requests while processors held 10 of 100 items, want 1", n)
		}
		s := p.prod.Stats()
		if s.Pending != 90 || s.Items != 10 {
			t.Errorf("pending %d, emitted %d; want 90 and 10", s.Pending, s.Items)
		}
		close(hold)
		time.Sleep(5*time.Second + time.Millisecond)
		synctest.Wait()
		got := p.received()
		if len(got) < 200 || !slices.Equal(got[:200], items(0, 200)) {
			t.Errorf("received %d items; want the first two documents whole and in order", len(got))
		}
		if s := p.prod.Stats(); s.Skipped == 0 {
			t.Errorf("no skipped polls counted")
		}
	})
}

// Beats that fall due while nobody asks are skipped, not queued: when
// demand comes back, polling resumes at the interval.
func TestSkipsBeatsWithoutDemand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			w.Write(doc{Items: items(n*4, 4)}.bytes())
		}}
		hold := make(chan struct{})
		// MaxDemand 4: the first document fills the processor; it holds.
		p := startPipeline(t, srv, feed(2*time.Second), options{maxDemand: 4, hold: hold})
		time.Sleep(9 * time.Second)
		synctest.Wait()
		if n := len(srv.requests()); n != 1 {
			t.Errorf("%d requests without demand, want 1", n)
		}
		if s := p.prod.Stats(); s.Skipped != 4 {
			t.Errorf("skipped = %d, want 4 (at 2, 4, 6 and 8 s)", s.Skipped)
		}
		close(hold)
		time.Sleep(4 * time.Second)
		synctest.Wait()
		if n := len(srv.requests()); n != 3 {
			t.Errorf("%d requests after demand came back, want 3", n)
		}
	})
}

// Several feeds in one producer: each on its own schedule with its own
// counters, polled one at a time; messages say which feed they came from.
func TestSeveralFeeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &feedServer{respond: func(n int, w http.ResponseWriter, r *http.Request) {
			name := strings.TrimPrefix(r.URL.Path, "/")
			w.Write(doc{Items: []string{fmt.Sprintf("%s@%d", name, time.Now().Unix()%1000)}}.bytes())
		}}
		cfg := poll.Config[string]{
			Feeds: []poll.Feed[string]{
				{Name: "info", URL: "http://feed.test/info", Split: splitDoc, Interval: time.Minute},
				{Name: "status", URL: "http://feed.test/status", Split: splitDoc, Interval: 10 * time.Second},
			},
			Jitter: -1,
		}
		p := startPipeline(t, srv, cfg, options{})
		time.Sleep(2*time.Minute + time.Second)
		synctest.Wait()
		s := p.prod.Stats()
		if len(s.Feeds) != 2 || s.Feeds[0].Name != "info" || s.Feeds[0].Polls != 3 || s.Feeds[1].Name != "status" || s.Feeds[1].Polls != 13 {
			t.Errorf("feed stats = %+v", s.Feeds)
		}
		if s.Polls != 16 || s.Items != 16 {
			t.Errorf("totals = %+v", s.Counters)
		}
		var info, status int
		for _, it := range p.received() {
			switch {
			case strings.HasPrefix(it, "info@"):
				info++
			case strings.HasPrefix(it, "status@"):
				status++
			}
		}
		if info != 3 || status != 13 {
			t.Errorf("received %d from info, %d from status", info, status)
		}
	})
}
