package twitter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway-go/causeway/internal/core"
	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

var quiet = slog.New(slog.DiscardHandler)

// newServer starts a fake server replaying lines (every recorded line when
// nil) and closes it when the test ends.
func newServer(t testing.TB, cfg twittertest.Config, lines [][]byte) *twittertest.Server {
	t.Helper()
	if lines == nil {
		lines = recordedLines(t)
	}
	cfg.Lines = lines
	if cfg.Token == "" {
		cfg.Token = "sekrit-token-123"
	}
	srv, err := twittertest.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// probe records what a Stream decided, and replaces its sleeps: a back-off
// is recorded and returns at once, so tests see the exact waits without
// waiting them.
type probe struct {
	mu         sync.Mutex
	reconnects []ReconnectEvent
	connects   []ConnectEvent
	sleeps     []time.Duration
	changed    chan struct{} // receives after every event (never blocks)
}

func newProbe() *probe { return &probe{changed: make(chan struct{}, 1)} }

func (p *probe) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func (p *probe) events() ([]ReconnectEvent, []ConnectEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reconnects), slices.Clone(p.connects)
}

// waitFor waits until cond holds on the events, or fails the test.
func (p *probe) waitFor(t testing.TB, what string, cond func(rs []ReconnectEvent, cs []ConnectEvent) bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		rs, cs := p.events()
		if cond(rs, cs) {
			return
		}
		select {
		case <-p.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; reconnects %+v, connects %d", what, rs, len(cs))
		}
	}
}

// newStream returns a Stream for srv whose back-offs are recorded by p
// instead of waited.
func newStream(srv *twittertest.Server, p *probe, cfg Config) *Stream {
	cfg.URL = srv.URL()
	if cfg.Token == "" {
		cfg.Token = srv.Token()
	}
	cfg.TLSConfig = srv.TLSConfig()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	if p != nil {
		cfg.OnReconnect = func(ev ReconnectEvent) {
			p.mu.Lock()
			p.reconnects = append(p.reconnects, ev)
			p.mu.Unlock()
			p.notify()
		}
		cfg.OnConnect = func(ev ConnectEvent) {
			p.mu.Lock()
			p.connects = append(p.connects, ev)
			p.mu.Unlock()
			p.notify()
		}
	}
	s := NewStream(cfg)
	if p != nil {
		s.clk.sleep = func(ctx context.Context, d time.Duration) error {
			p.mu.Lock()
			p.sleeps = append(p.sleeps, d)
			p.mu.Unlock()
			return ctx.Err()
		}
	}
	return s
}

// runBare runs s into a plain producer-stage buffer (no processors) until
// stop is called or the test ends; stop returns Run's error.
func runBare(t testing.TB, s *Stream) (stop func() error, buf *core.Buffer[Tweet]) {
	t.Helper()
	buf = core.NewBuffer(core.BufferConfig[Tweet]{Size: 1 << 20, Consumers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, buf.NewEmitter()) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop, buf
}

// waitUntil checks cond every millisecond until it holds, or fails the test
// after 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// collector is a batch handler that keeps every tweet it sees.
type collector struct {
	mu     sync.Mutex
	tweets []Tweet
	acked  atomic.Int64
	want   int64
	all    chan struct{}
}

func newCollector(want int) *collector {
	return &collector{want: int64(want), all: make(chan struct{})}
}

func (c *collector) handle(_ context.Context, b *stages.Batch[Tweet]) error {
	c.mu.Lock()
	for _, m := range b.Messages {
		c.tweets = append(c.tweets, m.Data)
	}
	c.mu.Unlock()
	if c.acked.Add(int64(len(b.Messages))) == c.want {
		close(c.all)
	}
	return nil
}

func (c *collector) wait(t testing.TB) {
	t.Helper()
	select {
	case <-c.all:
	case <-time.After(30 * time.Second):
		t.Fatalf("collected %d of %d tweets", c.acked.Load(), c.want)
	}
}

// TestStreamIntactOverHTTP2 replays every recorded tweet over TLS and over
// h2c into a real topology and checks that each arrives once, byte for
// byte as served, with the counts balancing.
func TestStreamIntactOverHTTP2(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		name := map[bool]string{false: "tls", true: "h2c"}[h2c]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, twittertest.Config{H2C: h2c, Record: true}, nil)
			p := newProbe()
			s := newStream(srv, p, Config{Sample: true})
			n := srv.Len()
			col := newCollector(n)
			top, err := topology.New(topology.Spec[Tweet]{
				Name:       "intact-" + name,
				Producer:   topology.ProducerSpec[Tweet]{Producer: s, BufferSize: 2 * n},
				Processors: topology.ProcessorSpec[Tweet]{Concurrency: 2},
				Batchers:   map[string]topology.BatcherSpec[Tweet]{"collect": {BatchSize: 500, BatchTimeout: 10 * time.Millisecond, Handle: col.handle}},
				Logger:     quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			stop := topologytest.Start(t, top)
			col.wait(t)
			<-srv.Done()
			if err := stop(); err != nil {
				t.Fatal(err)
			}

			served := srv.Served()
			if len(served) != n {
				t.Fatalf("server served %d lines, want %d", len(served), n)
			}
			byID := map[string][]byte{}
			for _, tw := range col.tweets {
				if _, dup := byID[tw.ID]; dup {
					t.Fatalf("tweet %s delivered twice", tw.ID)
				}
				byID[tw.ID] = tw.Raw
			}
			var l Line
			for i, raw := range served {
				if err := Decode(raw, &l); err != nil {
					t.Fatalf("served line %d: %v", i, err)
				}
				if got := byID[l.Tweet.ID]; !bytes.Equal(got, raw) {
					t.Fatalf("tweet %s: raw bytes differ from what was served:\n got %.200q\nwant %.200q", l.Tweet.ID, got, raw)
				}
			}

			st := s.Stats()
			if err := st.Check(); err != nil {
				t.Error(err)
			}
			ts := top.Stats()
			if st.Received != int64(n) || st.Emitted != int64(n) || st.Malformed != 0 || st.Deduplicated != 0 ||
				ts.Producer.Emitted != st.Emitted || ts.Acked != int64(n) || ts.Dropped != 0 {
				t.Errorf("received %d, emitted %d (stage %d), malformed %d, deduplicated %d, acked %d, dropped %d; want %d each, no loss",
					st.Received, st.Emitted, ts.Producer.Emitted, st.Malformed, st.Deduplicated, ts.Acked, ts.Dropped, n)
			}
			rs, cs := p.events()
			if len(rs) != 0 || len(cs) != 1 || cs[0].Proto != "HTTP/2.0" || st.Connects != 1 {
				t.Errorf("reconnects %+v, connects %+v: want one HTTP/2.0 connection", rs, cs)
			}
			if st.State != StateStopped {
				t.Errorf("state %v after Run returned", st.State)
			}
		})
	}
}

// TestTransportIsHTTP2Only checks the server and the producer's transport
// speak HTTP/2 (ProtoMajor 2) and nothing else.
func TestTransportIsHTTP2Only(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		srv := newServer(t, twittertest.Config{H2C: h2c}, [][]byte{})
		s := NewStream(Config{URL: srv.URL(), Token: srv.Token(), TLSConfig: srv.TLSConfig(), Logger: quiet})
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/", nil)
		h2, _ := s.transport()
		resp, err := h2.RoundTrip(req)
		if err != nil {
			t.Fatalf("h2c %v: %v", h2c, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Errorf("h2c %v: %s %d, want HTTP/2 200", h2c, resp.Proto, resp.StatusCode)
		}
		// An HTTP/1.1-only client gets nowhere.
		tr := &http.Transport{TLSClientConfig: srv.TLSConfig().Clone(), ForceAttemptHTTP2: false}
		if tr.TLSClientConfig != nil {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetHTTP1(true)
		if resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(srv.URL() + "/"); err == nil {
			resp.Body.Close()
			t.Errorf("h2c %v: an HTTP/1.1 client got %s %d, want a failure", h2c, resp.Proto, resp.StatusCode)
		}
		tr.CloseIdleConnections()
	}
}

// TestRulesSync checks the sync adds and deletes exactly the difference,
// and that the filtered stream then carries the matching rules.
func TestRulesSync(t *testing.T) {
	srv := newServer(t, twittertest.Config{H2C: true}, recordedLines(t)[:1500])
	keepID, _ := srv.AddRule("#AI", "ai")
	staleID, _ := srv.AddRule("lang:ja", "japanese")
	srv.AddRule("lang:ar", "old-tag") // same value, another tag: replaced
	want := []Rule{{"#AI", "ai"}, {"lang:ar", "arabic"}, {`"good morning" OR selamat`, "greetings"}}

	// A dry run changes nothing and does not stream.
	dry := newStream(srv, nil, Config{Rules: want, RulesDryRun: true})
	plan, err := dry.SyncRules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !plan.DryRun || len(plan.Keep) != 1 || len(plan.Delete) != 2 || len(plan.Add) != 2 {
		t.Fatalf("dry-run plan %v", plan)
	}
	if len(srv.Rules()) != 3 {
		t.Fatalf("dry run changed the rules: %+v", srv.Rules())
	}
	buf := core.NewBuffer(core.BufferConfig[Tweet]{Size: 10, Consumers: 1})
	if err := dry.Run(context.Background(), buf.NewEmitter()); err != nil || srv.Stats().Connections != 0 {
		t.Fatalf("dry-run Run: %v, %d stream connections", err, srv.Stats().Connections)
	}

	p := newProbe()
	s := newStream(srv, p, Config{Rules: want})
	_, buf = runBare(t, s)
	<-srv.Done()
	p.waitFor(t, "a connection", func(_ []ReconnectEvent, cs []ConnectEvent) bool { return len(cs) == 1 })

	got := srv.Rules()
	var vals []string
	for _, r := range got {
		vals = append(vals, r.Value+"/"+r.Tag)
	}
	if strings.Join(vals, ",") != `#AI/ai,lang:ar/arabic,"good morning" OR selamat/greetings` {
		t.Fatalf("server rules after sync: %v", vals)
	}
	if got[0].ID != keepID {
		t.Errorf("kept rule got a new id %s, want %s", got[0].ID, keepID)
	}
	for _, r := range got {
		if r.ID == staleID {
			t.Errorf("stale rule %s still there", staleID)
		}
	}

	// Wait for every served tweet to be read and emitted (a read is
	// counted before the batch it belongs to is emitted), then check
	// their rules.
	waitUntil(t, "every served tweet emitted", func() bool { return s.Stats().Emitted >= srv.Stats().Tweets })
	served := srv.Stats().Tweets
	st := s.Stats()
	if served == 0 || st.Tweets != served || st.Emitted != served {
		t.Fatalf("server served %d filtered tweets, stream got %d, emitted %d", served, st.Tweets, st.Emitted)
	}
	ruleTags := map[string]string{}
	for _, r := range got {
		ruleTags[r.ID] = r.Tag
	}
	tags := map[string]int{}
	buf.Ask(0, int(served))
	taken, err := buf.Take(context.Background(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range taken {
		tw := m.Data
		if len(tw.MatchingRules) == 0 {
			t.Fatalf("tweet %s has no matching_rules", tw.ID)
		}
		for _, mr := range tw.MatchingRules {
			tag := ruleTags[mr.ID]
			if tag == "" || tag != mr.Tag {
				t.Fatalf("tweet %s matched rule %+v the server does not hold", tw.ID, mr)
			}
			tags[tag]++
			switch tag {
			case "arabic":
				if tw.Lang != "ar" {
					t.Errorf("tweet %s (lang %s) matched lang:ar", tw.ID, tw.Lang)
				}
			case "ai":
				if !slices.ContainsFunc(tw.Hashtags, func(h string) bool { return strings.EqualFold(h, "AI") }) {
					t.Errorf("tweet %s (hashtags %v) matched #AI", tw.ID, tw.Hashtags)
				}
			}
		}
	}
	if tags["ai"] == 0 || tags["arabic"] == 0 || tags["greetings"] == 0 {
		t.Errorf("matches by tag %v: want every rule to match some tweets", tags)
	}
}

// TestRulesSyncRejected checks that a rule the server rejects stops Run with
// an error naming it.
func TestRulesSyncRejected(t *testing.T) {
	srv := newServer(t, twittertest.Config{H2C: true}, [][]byte{})
	s := newStream(srv, nil, Config{Rules: []Rule{{"#ok", "fine"}, {"(cat OR", "broken"}, {"-only -negated", "neg"}}})
	top, err := topology.New(topology.Spec[Tweet]{Producer: topology.ProducerSpec[Tweet]{Producer: s}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	err = top.Run(context.Background())
	var re *RulesError
	if !errors.As(err, &re) || len(re.Rejected) != 2 || re.Rejected[0].Value != "(cat OR" || re.Rejected[0].Tag != "broken" {
		t.Fatalf("Run: %v, want a RulesError naming the 2 bad rules", err)
	}
	if !strings.Contains(err.Error(), `rule "(cat OR" (tag "broken")`) || !strings.Contains(err.Error(), "non-negation") {
		t.Errorf("error does not name the rule and the reason: %v", err)
	}
	if srv.Stats().Connections != 0 {
		t.Errorf("streamed despite the rejected rules")
	}
	if err := topologytest.CheckConservation(top.Stats()); err != nil {
		t.Error(err)
	}
}

// TestUnauthorizedStops checks 401 and 403 stop the topology with a clear
// error, at once, without the token in it.
func TestUnauthorizedStops(t *testing.T) {
	tests := []struct {
		name   string
		token  string
		faults twittertest.Faults
		status string
	}{
		{"wrong token", "wrong-token-456", twittertest.Faults{}, "HTTP 401 Unauthorized"},
		{"forbidden", "", twittertest.Faults{Forbidden: 1}, "HTTP 403 Client Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, twittertest.Config{H2C: true, Faults: tt.faults}, recordedLines(t)[:10])
			p := newProbe()
			s := newStream(srv, p, Config{Sample: true, Token: tt.token})
			top, err := topology.New(topology.Spec[Tweet]{Producer: topology.ProducerSpec[Tweet]{Producer: s}, Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			err = top.Run(context.Background())
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("Run: %v, want ErrUnauthorized", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.status) || !strings.Contains(msg, "bearer token was rejected") {
				t.Errorf("error %q does not say the token was rejected (%s)", msg, tt.status)
			}
			if strings.Contains(msg, srv.Token()) || strings.Contains(msg, "wrong-token-456") {
				t.Errorf("error leaks the token: %q", msg)
			}
			if rs, _ := p.events(); len(rs) != 0 {
				t.Errorf("retried a rejected token: %+v", rs)
			}
			if err := topologytest.CheckConservation(top.Stats()); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestReconnectClasses injects each fault and checks the reason and the
// exact back-offs chosen (recorded, not waited).
func TestReconnectClasses(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name    string
		faults  twittertest.Faults
		cfg     Config
		events  int
		reason  Reason
		class   Class
		backoff []time.Duration
	}{
		{"503 is exponential from 5s", twittertest.Faults{Unavailable: 4}, Config{}, 4, ReasonHTTP, ClassExponential,
			[]time.Duration{5 * sec, 10 * sec, 20 * sec, 40 * sec}},
		{"usage cap is rate-limited from 1min", twittertest.Faults{UsageCapped: 3}, Config{}, 3, ReasonRateLimited, ClassRateLimit,
			[]time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute}},
		{"short connections back off linearly", twittertest.Faults{DisconnectAfterTweets: 5}, Config{}, 4, ReasonDisconnected, ClassLinear,
			[]time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond, sec}},
		{"RST_STREAM", twittertest.Faults{DisconnectAfterTweets: 5, DisconnectMode: twittertest.DisconnectReset}, Config{}, 2, ReasonDisconnected, ClassLinear,
			[]time.Duration{250 * time.Millisecond, 500 * time.Millisecond}},
		{"TCP close", twittertest.Faults{DisconnectAfterTweets: 5, DisconnectMode: twittertest.DisconnectClose}, Config{}, 2, ReasonDisconnected, ClassLinear,
			[]time.Duration{250 * time.Millisecond, 500 * time.Millisecond}},
		{"healthy connections reconnect at once", twittertest.Faults{DisconnectAfterTweets: 5}, Config{BackoffReset: time.Nanosecond}, 3, ReasonDisconnected, ClassImmediate,
			[]time.Duration{0, 0, 0}},
		{"operational disconnect", twittertest.Faults{OperationalDisconnectAfter: 3}, Config{BackoffReset: time.Nanosecond}, 2, ReasonOperationalDisconnect, ClassImmediate,
			[]time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, twittertest.Config{H2C: true, Faults: tt.faults}, recordedLines(t)[:200])
			p := newProbe()
			cfg := tt.cfg
			cfg.Sample = true
			s := newStream(srv, p, cfg)
			cancel, _ := runBare(t, s)
			p.waitFor(t, "reconnects", func(rs []ReconnectEvent, _ []ConnectEvent) bool { return len(rs) >= tt.events })
			cancel()
			rs, _ := p.events()
			for i, ev := range rs[:tt.events] {
				if ev.Reason != tt.reason || ev.Class != tt.class || ev.Backoff != tt.backoff[i] {
					t.Errorf("reconnect %d: %s/%s after %v, want %s/%s after %v (err %v)",
						i, ev.Reason, ev.Class, ev.Backoff, tt.reason, tt.class, tt.backoff[i], ev.Err)
				}
			}
			if st := s.Stats(); st.Reconnects[tt.reason] < int64(tt.events) {
				t.Errorf("stats count %d %s reconnects, want >= %d", st.Reconnects[tt.reason], tt.reason, tt.events)
			}
		})
	}
}

// TestRateLimitHonoursReset checks a 429 waits until x-rate-limit-reset when
// that is later than the back-off, and that a 200 resets the class.
func TestRateLimitHonoursReset(t *testing.T) {
	srv := newServer(t, twittertest.Config{H2C: true, Faults: twittertest.Faults{RateLimited: 2, RateLimitReset: 150 * time.Second}}, recordedLines(t)[:10])
	p := newProbe()
	s := newStream(srv, p, Config{Sample: true})
	runBare(t, s)
	p.waitFor(t, "a connection after two 429s", func(_ []ReconnectEvent, cs []ConnectEvent) bool { return len(cs) >= 1 })
	rs, _ := p.events()
	if len(rs) != 2 {
		t.Fatalf("reconnects %+v, want 2", rs)
	}
	for i, ev := range rs {
		if ev.Reason != ReasonRateLimited || ev.Class != ClassRateLimit || ev.Status != 429 || ev.ResetAt.IsZero() {
			t.Errorf("reconnect %d: %+v", i, ev)
		}
		// The reset is 150 s (rounded up to a whole second) away: it wins
		// over 1 and 2 minutes.
		if ev.Backoff < 148*time.Second || ev.Backoff > 151*time.Second {
			t.Errorf("reconnect %d: back-off %v, want about 150s (x-rate-limit-reset)", i, ev.Backoff)
		}
	}
}

// TestTooManyConnections holds one connection open and checks the second
// gets 429 TooManyConnections, handled as a rate limit.
func TestTooManyConnections(t *testing.T) {
	srv := newServer(t, twittertest.Config{H2C: true, Faults: twittertest.Faults{MaxConnections: 1}, KeepAlive: 20 * time.Millisecond}, [][]byte{})
	first := newStream(srv, nil, Config{Sample: true})
	stopFirst, _ := runBare(t, first)
	waitUntil(t, "the first connection", func() bool { return first.Stats().KeepAlives > 0 })
	p := newProbe()
	second := newStream(srv, p, Config{Sample: true})
	runBare(t, second)
	p.waitFor(t, "a refused connection", func(rs []ReconnectEvent, _ []ConnectEvent) bool { return len(rs) >= 1 })
	if err := stopFirst(); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "the second connection", func(_ []ReconnectEvent, cs []ConnectEvent) bool { return len(cs) == 1 })
	rs, _ := p.events()
	ev := rs[0]
	if ev.Reason != ReasonTooManyConnections || ev.Class != ClassRateLimit || ev.Backoff != time.Minute || ev.Status != 429 {
		t.Errorf("first reconnect %+v, want too-many-connections, rate-limit class, 1m", ev)
	}
	if n := srv.Stats().Rejected[429]; n < 1 {
		t.Errorf("server rejected %d connections with 429", n)
	}
}

// TestNetworkErrorsBackOffLinearly connects to a port nobody listens on.
func TestNetworkErrorsBackOffLinearly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := newProbe()
	s := NewStream(Config{URL: "http://" + addr, Token: "t", Sample: true, Logger: quiet,
		NetworkBackoff: Backoff{Initial: 250 * time.Millisecond, Max: time.Second},
		OnReconnect: func(ev ReconnectEvent) {
			p.mu.Lock()
			p.reconnects = append(p.reconnects, ev)
			p.mu.Unlock()
			p.notify()
		}})
	s.clk.sleep = func(ctx context.Context, d time.Duration) error { return ctx.Err() }
	cancel, _ := runBare(t, s)
	p.waitFor(t, "6 network errors", func(rs []ReconnectEvent, _ []ConnectEvent) bool { return len(rs) >= 6 })
	cancel()
	rs, _ := p.events()
	want := []time.Duration{250, 500, 750, 1000, 1000, 1000}
	for i, w := range want {
		if ev := rs[i]; ev.Reason != ReasonNetwork || ev.Class != ClassLinear || ev.Backoff != w*time.Millisecond || ev.Attempt != i+1 {
			t.Errorf("reconnect %d: %+v, want network/linear %vms attempt %d", i, ev, w, i+1)
		}
	}
}

// TestStallReconnects checks a connection that goes silent is dropped after
// the stall timeout, while keep-alives keep a quiet one alive.
func TestStallReconnects(t *testing.T) {
	t.Run("silent connection", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, twittertest.Config{H2C: true, Faults: twittertest.Faults{Stall: true, StallAfterTweets: 3}}, recordedLines(t)[:100])
		p := newProbe()
		s := newStream(srv, p, Config{Sample: true, StallTimeout: 500 * time.Millisecond, BackoffReset: time.Nanosecond})
		runBare(t, s)
		p.waitFor(t, "two stalls", func(rs []ReconnectEvent, _ []ConnectEvent) bool { return len(rs) >= 2 })
		rs, cs := p.events()
		for i, ev := range rs[:2] {
			if ev.Reason != ReasonStall || ev.Class != ClassImmediate || ev.Backoff != 0 {
				t.Errorf("reconnect %d: %+v, want an immediate stall reconnect", i, ev)
			}
			if ev.Connected < 500*time.Millisecond {
				t.Errorf("reconnect %d: gave up after %v, before the stall timeout", i, ev.Connected)
			}
		}
		if len(cs) < 2 {
			t.Errorf("%d connections, want a new one after the stall", len(cs))
		}
		if got := s.Stats().Tweets; got < 6 {
			t.Errorf("%d tweets, want 3 per connection", got)
		}
	})
	t.Run("keep-alives reset the timer", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, twittertest.Config{H2C: true, KeepAlive: 10 * time.Millisecond}, [][]byte{})
		p := newProbe()
		// The stall timeout is 100 keep-alive intervals: a loaded machine
		// (the race detector, shared cores) may hold the fake's writes back
		// by hundreds of milliseconds without it being a stall.
		s := newStream(srv, p, Config{Sample: true, StallTimeout: time.Second})
		start := time.Now()
		cancel, _ := runBare(t, s)
		// Held for more than two stall timeouts, by 100 keep-alives or more.
		waitUntil(t, "2.5 s and 100 keep-alives", func() bool {
			return time.Since(start) > 2500*time.Millisecond && s.Stats().KeepAlives >= 100
		})
		cancel()
		rs, cs := p.events()
		if st := s.Stats(); st.KeepAlives < 100 || len(rs) != 0 || len(cs) != 1 {
			t.Errorf("%d keep-alives, reconnects %+v, %d connections: want keep-alives to hold one connection", st.KeepAlives, rs, len(cs))
		}
	})
}

// TestDedupBackfill reconnects with backfill_minutes after every 100 tweets:
// the replayed tweets are dropped as duplicates and each tweet is emitted
// once.
func TestDedupBackfill(t *testing.T) {
	lines := recordedLines(t)[:1000]
	srv := newServer(t, twittertest.Config{H2C: true, BackfillLimit: 30, Faults: twittertest.Faults{DisconnectAfterTweets: 100}}, lines)
	p := newProbe()
	s := newStream(srv, p, Config{Sample: true, BackfillMinutes: 2, BackoffReset: time.Nanosecond})
	_, buf := runBare(t, s)
	<-srv.Done()
	waitUntil(t, "every served tweet emitted or dropped as a duplicate", func() bool {
		st := s.Stats()
		return st.Emitted+st.Deduplicated >= srv.Stats().Tweets
	})
	st, ss := s.Stats(), srv.Stats()
	_, cs := p.events()
	// 1000 tweets, 100 per connection, 30 of them replayed after the first:
	// 1 + ceil(900/70) = 14 connections, 13 × 30 duplicates.
	if st.Emitted != 1000 || st.Tweets != ss.Tweets || st.Deduplicated != int64(30*(len(cs)-1)) || len(cs) != 14 {
		t.Fatalf("emitted %d, received %d tweets (served %d), deduplicated %d, %d connections; want 1000 emitted, 30 duplicates per reconnect, 14 connections",
			st.Emitted, st.Tweets, ss.Tweets, st.Deduplicated, len(cs))
	}
	if cs[0].Backfill != 0 || cs[1].Backfill != 2 || !strings.Contains(cs[1].URL, "backfill_minutes=2") {
		t.Errorf("backfill asked on connect %d and reconnect %d (%s): want only on reconnects", cs[0].Backfill, cs[1].Backfill, cs[1].URL)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
	if bs := buf.Stats(); bs.Emitted != 1000 || bs.Buffered != 1000 {
		t.Errorf("buffer got %d emitted, %d buffered", bs.Emitted, bs.Buffered)
	}
}

// TestMalformedAndSplitLines injects malformed and oversized lines and
// splits every line across many DATA frames: the bad lines are counted and
// skipped, the good ones arrive intact.
func TestMalformedAndSplitLines(t *testing.T) {
	lines := recordedLines(t)[:400]
	srv := newServer(t, twittertest.Config{H2C: true, Record: true, Faults: twittertest.Faults{
		MalformedEvery: 10, OversizedEvery: 100, OversizedSize: 70_000, SplitFrames: 100}}, lines)
	s := newStream(srv, newProbe(), Config{Sample: true, MaxLineSize: 64 << 10})
	_, buf := runBare(t, s)
	<-srv.Done()
	waitUntil(t, "every line read", func() bool { return s.Stats().Received >= 400+40+4 })
	st := s.Stats()
	if st.Emitted != 400 || st.Malformed != 44 || st.Oversized != 4 || st.Received != 444 {
		t.Fatalf("emitted %d, malformed %d, oversized %d, received %d; want 400, 44, 4, 444", st.Emitted, st.Malformed, st.Oversized, st.Received)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
	buf.Ask(0, 400)
	msgs, err := buf.Take(context.Background(), 0, nil)
	if err != nil || len(msgs) != 400 {
		t.Fatalf("took %d messages: %v", len(msgs), err)
	}
	for i, raw := range srv.Served() {
		if !bytes.Equal(msgs[i].Data.Raw, raw) {
			t.Fatalf("tweet %d differs from what was served", i)
		}
	}
}

// TestSlowConsumerDrops runs a consumer far slower than the stream: the
// stream is still read as fast as the server writes (the server finishes its
// replay long before the consumer could), the bounded buffer drops the
// overflow, and every count balances.
func TestSlowConsumerDrops(t *testing.T) {
	srv := newServer(t, twittertest.Config{H2C: true}, nil)
	s := newStream(srv, newProbe(), Config{Sample: true})
	const bufSize = 100
	var handled atomic.Int64
	top, err := topology.New(topology.Spec[Tweet]{
		Name:     "slow",
		Producer: topology.ProducerSpec[Tweet]{Producer: s, BufferSize: bufSize, Keep: stages.KeepLast},
		Processors: topology.ProcessorSpec[Tweet]{Concurrency: 1, MaxDemand: 1, Handle: func(ctx context.Context, m *stages.Message[Tweet]) error {
			handled.Add(1)
			time.Sleep(5 * time.Millisecond) // simulated slow work: ~200 tweets/s
			return nil
		}},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := topologytest.Start(t, top)
	start := time.Now()
	select {
	case <-srv.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the server could not write its replay: the connection stalled (%d served)", srv.Stats().Tweets)
	}
	elapsed := time.Since(start)
	n := int64(srv.Len())
	waitUntil(t, "every tweet emitted", func() bool { return s.Stats().Emitted >= n })
	handledAtDone := handled.Load()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	st, ts := s.Stats(), top.Stats()
	// The consumer handles ~200/s; the replay of 5,000 tweets went at least
	// 5× faster than that.
	if handledAtDone*5 > n || elapsed > 10*time.Second {
		t.Errorf("replay took %v while the consumer handled %d of %d: the stream waited for the consumer", elapsed, handledAtDone, n)
	}
	if st.Emitted != n || ts.Producer.Emitted != n || ts.Dropped == 0 || ts.Dropped >= n ||
		ts.Producer.MaxBuffered > bufSize || ts.Producer.Capacity != bufSize {
		t.Errorf("emitted %d (stage %d) of %d, dropped %d, max buffered %d of %d", st.Emitted, ts.Producer.Emitted, n, ts.Dropped, ts.Producer.MaxBuffered, bufSize)
	}
	// received = emitted + dropped + deduped + malformed, end to end.
	if st.Received != ts.Acked+ts.Failed+ts.Dropped+st.Deduplicated+st.Malformed+st.Abandoned {
		t.Errorf("conservation: received %d != acked %d + failed %d + dropped %d + deduplicated %d + malformed %d + abandoned %d",
			st.Received, ts.Acked, ts.Failed, ts.Dropped, st.Deduplicated, st.Malformed, st.Abandoned)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
}

// TestConfigValidate checks bad fields are named.
func TestConfigValidate(t *testing.T) {
	err := Config{URL: "ftp://x", BackfillMinutes: 9, Rules: []Rule{{"a", ""}, {"a", ""}, {" ", ""}},
		NetworkBackoff: Backoff{Initial: time.Second, Max: time.Millisecond}}.Validate()
	for _, want := range []string{"Config.URL", "Config.Token is required", "Config.BackfillMinutes must be 0 to 5, got 9",
		`Config.Rules[1].Value "a" is configured twice`, "Config.Rules[2].Value is empty", "Config.NetworkBackoff"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
	if err := (Config{Token: "x"}).Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	s := NewStream(Config{Token: "x"})
	if u := s.streamURL(3); u != DefaultURL+"/2/tweets/search/stream?backfill_minutes=3&expansions=author_id%2Centities.mentions.username&tweet.fields=id%2Ctext%2Cauthor_id%2Cconversation_id%2Ccreated_at%2Clang%2Centities%2Creferenced_tweets%2Cedit_history_tweet_ids&user.fields=id%2Cname%2Cusername%2Ccreated_at" {
		t.Errorf("stream URL %s", u)
	}
}

// TestReconnectsDoNotLeak reconnects 40 times and checks goroutines come
// back to where they were: every connection's transport is closed.
func TestReconnectsDoNotLeak(t *testing.T) {
	srv := newServer(t, twittertest.Config{H2C: true, Loop: true, Faults: twittertest.Faults{DisconnectAfterTweets: 2}}, recordedLines(t)[:20])
	before := runtime.NumGoroutine()
	p := newProbe()
	s := newStream(srv, p, Config{Sample: true})
	stop, _ := runBare(t, s)
	p.waitFor(t, "40 reconnects", func(rs []ReconnectEvent, _ []ConnectEvent) bool { return len(rs) >= 40 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Connections close asynchronously; a leak would keep ~3 goroutines
	// per reconnect.
	waitUntil(t, "the connections' goroutines to exit", func() bool { return runtime.NumGoroutine() <= before+3 })
}

func TestStreamRefusesBlockingBuffer(t *testing.T) {
	s := NewStream(Config{URL: "http://127.0.0.1:1", Token: "t", Sample: true})
	top, err := topology.New(topology.Spec[Tweet]{
		Producer: topology.ProducerSpec[Tweet]{Producer: s, Keep: stages.Block},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := top.Run(context.Background()); !errors.Is(err, ErrBlockingBuffer) {
		t.Fatalf("Run = %v, want ErrBlockingBuffer", err)
	}
}

// TestOversizedLineLoggedWithOffset checks that a line over MaxLineSize is
// skipped, counted and logged with its stream offset and the limit, and
// that MaxLineSize reports the limit in force (or the default).
func TestOversizedLineLoggedWithOffset(t *testing.T) {
	if got := NewStream(Config{Token: "x"}).MaxLineSize(); got != DefaultMaxLineSize || DefaultMaxLineSize != 1<<20 {
		t.Errorf("default MaxLineSize %d (DefaultMaxLineSize %d), want 1 MiB", got, DefaultMaxLineSize)
	}
	const limit, size = 64 << 10, 70_000 // a recorded tweet is 51,147 bytes
	lines := recordedLines(t)[:20]
	srv := newServer(t, twittertest.Config{H2C: true, Record: true, KeepAlive: -1,
		Faults: twittertest.Faults{OversizedEvery: 10, OversizedSize: size}}, lines)
	var logs lockedBuffer
	s := newStream(srv, newProbe(), Config{Sample: true, MaxLineSize: limit,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if s.MaxLineSize() != limit {
		t.Errorf("MaxLineSize() = %d, want %d", s.MaxLineSize(), limit)
	}
	_, buf := runBare(t, s)
	<-srv.Done()
	waitUntil(t, "every line read", func() bool { return s.Stats().Received >= 22 })
	st := s.Stats()
	if st.Emitted != 20 || st.Oversized != 2 || st.Malformed != 2 {
		t.Fatalf("emitted %d, oversized %d, malformed %d; want 20, 2, 2", st.Emitted, st.Oversized, st.Malformed)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
	// The body is 10 tweets, an oversized line, 10 tweets, another.
	var off int64
	for _, raw := range srv.Served()[:10] {
		off += int64(len(raw)) + 2
	}
	var rec struct {
		Msg    string
		Offset int64
		Limit  int
	}
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "over the size limit") {
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if rec.Offset != off || rec.Limit != limit {
		t.Errorf("logged %+v, want the oversized line's offset %d and limit %d; logs:\n%s", rec, off, limit, logs.String())
	}
	if bs := buf.Stats(); bs.Emitted != 20 {
		t.Errorf("buffer got %d tweets, want 20", bs.Emitted)
	}
}
