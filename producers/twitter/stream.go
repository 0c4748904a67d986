// Package twitter is a push producer for the X (Twitter) API v2 filtered and
// sample streams, over one HTTP/2 connection.
//
// A Stream syncs the filtered stream's rules at start, connects with a bearer
// token, splits the body into CRLF-delimited lines however the bytes arrive,
// and emits one stages.Message[Tweet] per tweet into the producer stage's
// bounded buffer; the read loop never waits for the topology, so a slow
// consumer drops (counted by the stage) and never stalls the connection. It
// follows the API's reconnect guidance: immediate after a healthy connection
// is lost, linear back-off for network errors, exponential for HTTP errors,
// longer exponential for 429 (never before x-rate-limit-reset), and a stop
// with ErrUnauthorized when the token is rejected, or with a PermanentError
// when the server does not speak HTTP/2, its certificate does not verify or
// its stream is not JSON. A stall timeout catches silent connections; a
// bounded window drops duplicate tweet ids. A restarted program passes the
// time of the last tweet it stored (Config.ResumeFrom, kept in a StateFile)
// and the first connection asks for backfill from then.
package twitter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/stages"

	"github.com/causeway-go/causeway/internal/backoff"
	"github.com/causeway-go/causeway/internal/ratelog"
)

// Stream is a stages.Producer[Tweet] for an X API v2 stream. Run may be
// called by several producer goroutines (redundant connections, on tiers
// that allow them); they share the rules sync, the de-duplication window
// and the counters.
type Stream struct {
	cfg   Config
	base  *url.URL
	log   *slog.Logger
	clk   clock
	dedup *dedup

	syncMu sync.Mutex
	synced bool
	plan   RulesPlan

	state atomic.Int32
	c     counters
	late  lateState // Decode's malformed lines
}

// clock is the stream's time source; tests replace it.
type clock struct {
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

var realClock = clock{now: time.Now, sleep: sleepCtx}

func sleepCtx(ctx context.Context, d time.Duration) error { return backoff.Sleep(ctx, d, nil) }

// NewStream returns a Stream for cfg. A bad cfg is reported by Run (and by
// cfg.Validate, to check it earlier).
func NewStream(cfg Config) *Stream {
	cfg = cfg.withDefaults()
	s := &Stream{cfg: cfg, log: cfg.Logger.With("producer", "twitter"), clk: realClock}
	s.base, _ = url.Parse(strings.TrimRight(cfg.URL, "/"))
	if cfg.DedupWindow > 0 {
		s.dedup = newDedup(cfg.DedupWindow + len(cfg.StoredIDs))
		for _, id := range cfg.StoredIDs {
			s.dedup.seen(id)
		}
	}
	return s
}

// MaxLineSize returns the longest stream line the stream accepts, in bytes
// without its CRLF (Config.MaxLineSize or its default): a tweet's Raw is
// never longer, so a sink that stores Raw whole can size its own limit
// (a Kafka producer's maximum message bytes, the broker's
// message.max.bytes) from it, plus its record overhead.
func (s *Stream) MaxLineSize() int { return s.cfg.MaxLineSize }

// ErrBlockingBuffer is returned by Run when the producer stage's Keep policy
// is Block: the X stream cannot be slowed, so its buffer must drop
// (KeepLast or KeepFirst) and count what it drops.
var ErrBlockingBuffer = errors.New("twitter: the producer stage uses Keep: Block, but an X stream cannot be slowed; use KeepLast or KeepFirst")

// Run streams tweets into out until ctx ends or the topology stops taking
// them (it returns nil then), or until the token is rejected, the server
// fails permanently (a *PermanentError) or the rules cannot be synced (it
// returns that error, which stops the topology). With
// Config.RulesDryRun it syncs nothing, logs the plan and returns nil.
func (s *Stream) Run(ctx context.Context, out *stages.Emitter[Tweet]) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	if out.Keep() == stages.Block {
		// Blocking would stop the read loop, the server would see a slow
		// reader and disconnect it: a stream that cannot be slowed needs a
		// buffer that drops.
		return ErrBlockingBuffer
	}
	defer s.state.Store(int32(StateStopped))
	if !s.cfg.Sample && len(s.cfg.Rules) > 0 {
		if _, err := s.syncOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if s.cfg.RulesDryRun {
			return nil
		}
	}
	var bo backoffs
	established, resumeLogged := false, false
	for {
		if ctx.Err() != nil {
			return nil
		}
		backfill := 0
		resume := false
		switch {
		case established:
			backfill = s.cfg.BackfillMinutes
		case !s.cfg.ResumeFrom.IsZero():
			resume = true
			backfill = resumeBackfill(s.clk.now().Sub(s.cfg.ResumeFrom), s.cfg.BackfillMinutes)
			if !resumeLogged {
				resumeLogged = true
				s.logResume(backfill)
			}
		}
		s.state.Store(int32(StateConnecting))
		r := s.stream(ctx, out, backfill, resume)
		established = established || r.connected > 0 || r.status == http.StatusOK
		switch {
		case r.closed:
			return nil
		case r.fatal != nil:
			s.log.Error("twitter: stream stopped", "err", r.fatal)
			return r.fatal
		case ctx.Err() != nil:
			return nil
		}
		ev := bo.next(&s.cfg, r, s.clk.now())
		s.c.reconnects[reasonIndex(ev.Reason)].Add(1)
		s.c.lastBackoff.Store(int64(ev.Backoff))
		s.log.Warn("twitter: reconnecting", "reason", ev.Reason, "class", ev.Class, "backoff", ev.Backoff,
			"attempt", ev.Attempt, "status", ev.Status, "connected_for", ev.Connected, "err", ev.Err)
		if s.cfg.OnReconnect != nil {
			s.cfg.OnReconnect(ev)
		}
		s.state.Store(int32(StateBackoff))
		if err := s.clk.sleep(ctx, ev.Backoff); err != nil {
			return nil
		}
	}
}

// resumeBackfill returns the backfill minutes that reach back over a gap
// since the last stored tweet: whole minutes rounded up, at least one
// (the clocks may disagree), at most limit (0 when backfill is off).
func resumeBackfill(gap time.Duration, limit int) int {
	if limit <= 0 {
		return 0
	}
	m := max((gap+time.Minute-1)/time.Minute, 1)
	return int(min(m, time.Duration(limit)))
}

// logResume tells what a resumed start recovers, and what it cannot.
func (s *Stream) logResume(backfill int) {
	from := s.cfg.ResumeFrom
	now := s.clk.now()
	gap := now.Sub(from)
	switch reach := time.Duration(backfill) * time.Minute; {
	case backfill == 0:
		s.log.Warn("twitter: resuming without backfill (BackfillMinutes is 0): tweets since the last stored one are not asked for",
			"resume_from", from, "gap", gap)
	case gap > reach:
		s.log.Warn("twitter: resuming after a gap longer than the backfill reaches: tweets in between are lost",
			"resume_from", from, "gap", gap, "backfill_minutes", backfill, "lost_from", from, "lost_until", now.Add(-reach))
	default:
		s.log.Info("twitter: resuming with backfill", "resume_from", from, "gap", gap, "backfill_minutes", backfill,
			"stored_ids", len(s.cfg.StoredIDs))
	}
}

// result is how one connection attempt ended.
type result struct {
	reason    Reason
	err       error
	status    int
	resetAt   time.Time
	connected time.Duration // how long the stream was up (0: never)
	gotData   bool          // the stream delivered at least one byte
	closed    bool          // the topology stopped taking input
	fatal     error         // stop: token rejected, or a PermanentError
}

// streamURL returns the stream endpoint with its query.
func (s *Stream) streamURL(backfill int) string {
	u := *s.base
	u.Path += s.streamPath()
	q := url.Values{}
	for _, f := range []struct {
		name string
		vals []string
	}{
		{"tweet.fields", s.cfg.TweetFields}, {"expansions", s.cfg.Expansions}, {"user.fields", s.cfg.UserFields},
		{"media.fields", s.cfg.MediaFields}, {"place.fields", s.cfg.PlaceFields}, {"poll.fields", s.cfg.PollFields},
	} {
		if len(f.vals) > 0 {
			q.Set(f.name, strings.Join(f.vals, ","))
		}
	}
	if backfill > 0 {
		q.Set("backfill_minutes", strconv.Itoa(backfill))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// streamPath is the stream endpoint's path.
func (s *Stream) streamPath() string {
	if s.cfg.Sample {
		return "/2/tweets/sample/stream"
	}
	return "/2/tweets/search/stream"
}

// stream makes one connection and reads it until it ends.
func (s *Stream) stream(ctx context.Context, out *stages.Emitter[Tweet], backfill int, resume bool) (r result) {
	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.c.attempts.Add(1)
	// The stall timer runs from the start: a server that accepts and never
	// answers is a stall too.
	wd := newWatchdog(s.cfg.StallTimeout, cancel)
	defer wd.stop()
	streamURL := s.streamURL(backfill)
	req, err := http.NewRequestWithContext(connCtx, http.MethodGet, streamURL, nil)
	if err != nil {
		return result{fatal: fmt.Errorf("twitter: stream request: %w", err)}
	}
	s.authorize(req)
	tr, note := s.transport()
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		if kind, cause := note.permanent(); kind != nil {
			return result{fatal: s.permanentError(kind, cause)}
		}
		if wd.fired.Load() {
			return result{reason: ReasonStall, err: fmt.Errorf("twitter: no answer within the stall timeout %v", s.cfg.StallTimeout)}
		}
		return result{reason: ReasonNetwork, err: s.redact(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s.httpFailure(resp)
	}
	if resp.ProtoMajor != 2 {
		return result{fatal: s.permanentError(ErrNotHTTP2, fmt.Errorf("it answered over %s", resp.Proto))}
	}
	if ct := resp.Header.Get("Content-Type"); !jsonContentType(ct) {
		return result{fatal: s.permanentError(ErrNotJSON, fmt.Errorf("it answered 200 with Content-Type %q", cut(ct, 80)))}
	}
	wd.kick()
	start := s.clk.now()
	n := s.c.connects.Add(1)
	s.state.Store(int32(StateConnected))
	s.log.Info("twitter: stream connected", "url", streamURL, "proto", resp.Proto, "backfill_minutes", backfill, "resume", resume)
	if s.cfg.OnConnect != nil {
		s.cfg.OnConnect(ConnectEvent{URL: streamURL, Proto: resp.Proto, Backfill: backfill, Resume: resume, Attempt: n})
	}
	r = s.read(connCtx, out, resp.Body, wd)
	r.status = http.StatusOK
	r.connected = max(s.clk.now().Sub(start), time.Nanosecond)
	if r.reason == ReasonStall {
		r.err = fmt.Errorf("twitter: no byte for %v", s.cfg.StallTimeout)
	}
	return r
}

// permanentError returns the error that stops Run for a failure no retry
// can mend: one line naming the endpoint and the cause.
func (s *Stream) permanentError(kind, cause error) *PermanentError {
	return s.permanentAt(s.streamPath(), kind, cause)
}

func (s *Stream) permanentAt(path string, kind, cause error) *PermanentError {
	u := *s.base
	u.Path += path
	return &PermanentError{URL: u.String(), Kind: kind, Err: s.redact(cause)}
}

// orPermanent returns err, or the permanent failure behind it that the
// transport's dials noted.
func (s *Stream) orPermanent(note *dialNote, path string, err error) error {
	if err == nil {
		return nil
	}
	if kind, cause := note.permanent(); kind != nil {
		return s.permanentAt(path, kind, cause)
	}
	return err
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (s *Stream) authorize(req *http.Request) {
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	req.Header.Set("User-Agent", "causeway-twitter/1")
}

// redact removes the token from an error's text, should anything echo it.
func (s *Stream) redact(err error) error {
	if err == nil || s.cfg.Token == "" || !strings.Contains(err.Error(), s.cfg.Token) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), s.cfg.Token, "[token]"))
}

// httpFailure turns a non-200 stream answer into a result.
func (s *Stream) httpFailure(resp *http.Response) result {
	he := s.problem(resp, "connect to the "+s.kind()+" stream")
	r := result{status: resp.StatusCode, err: he}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		r.fatal = he
	case resp.StatusCode == http.StatusTooManyRequests:
		r.reason = ReasonRateLimited
		if he.Reason == "TooManyConnections" || strings.HasSuffix(he.Type, "/streaming-connection") {
			r.reason = ReasonTooManyConnections
		}
		if v, err := strconv.ParseInt(resp.Header.Get("x-rate-limit-reset"), 10, 64); err == nil {
			r.resetAt = time.Unix(v, 0)
		}
	default:
		r.reason = ReasonHTTP
	}
	return r
}

func (s *Stream) kind() string {
	if s.cfg.Sample {
		return "sample"
	}
	return "filtered"
}

// problem reads an API error body (at most 64 KiB) into an HTTPError.
func (s *Stream) problem(resp *http.Response, op string) *HTTPError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	he := &HTTPError{Op: op, Status: resp.StatusCode}
	var p struct {
		Title, Detail, Type, Reason string
		ConnectionIssue             string `json:"connection_issue"`
	}
	if err := json.Unmarshal(body, &p); err == nil {
		he.Title, he.Detail, he.Type, he.Reason = p.Title, p.Detail, p.Type, p.Reason
		if p.ConnectionIssue != "" {
			he.Reason = p.ConnectionIssue
		}
	}
	if he.Title == "" {
		he.Title = http.StatusText(resp.StatusCode)
	}
	if s.cfg.Token != "" {
		he.Detail = strings.ReplaceAll(he.Detail, s.cfg.Token, "[token]")
	}
	return he
}

// read is the read loop: it drains the body as fast as it arrives, splits
// and decodes lines, and emits each read's tweets in one call.
func (s *Stream) read(ctx context.Context, out *stages.Emitter[Tweet], body io.Reader, wd *watchdog) result {
	lr := newLineReader(body, s.cfg.MaxLineSize)
	lr.keep = s.cfg.DeferDecode // deferred tweets keep their line where it was read
	var (
		line       Line
		msgs       []stages.Message[Tweet]
		malLog     = ratelog.Limiter{Every: time.Second}
		errLog     = ratelog.Limiter{Every: time.Second}
		disconnect *Problem
		gotData    bool
	)
	for {
		n, rerr := lr.fill()
		var now time.Time
		if n > 0 {
			now = s.clk.now()
			wd.kick()
			gotData = true
			s.c.bytes.Add(int64(n))
		}
		for n > 0 {
			raw, off, size, what := lr.next()
			if what == splitNone {
				break
			}
			if what == splitOver {
				s.c.received.Add(1)
				s.c.malformed.Add(1)
				s.c.oversized.Add(1)
				malLog.Do(func(skipped int64) {
					s.log.Warn("twitter: line over the size limit skipped", "offset", off, "size_seen", size,
						"limit", s.cfg.MaxLineSize, "also_skipped", skipped)
				})
				continue
			}
			if s.cfg.DeferDecode {
				if id, ok := peekTweet(raw); ok {
					s.c.received.Add(1)
					s.c.tweets.Add(1)
					if s.dedup != nil && s.dedup.seen(id) {
						s.c.deduplicated.Add(1)
						continue
					}
					msgs = append(msgs, stages.Message[Tweet]{Data: deferredTweet(raw, id, now, off)})
					continue
				}
			}
			if err := Decode(raw, &line); err != nil {
				s.c.received.Add(1)
				s.c.malformed.Add(1)
				malLog.Do(func(skipped int64) {
					s.log.Warn("twitter: malformed line skipped", "offset", off, "err", err,
						"line", quoteCut(raw, 120), "also_skipped", skipped)
				})
				continue
			}
			switch line.Kind {
			case KindKeepAlive:
				s.c.keepAlives.Add(1)
			case KindTweet:
				s.c.received.Add(1)
				s.c.tweets.Add(1)
				if s.dedup != nil && s.dedup.seen(line.Tweet.ID) {
					s.c.deduplicated.Add(1)
					continue
				}
				line.Tweet.ReceivedAt, line.Tweet.Offset = now, off
				msgs = append(msgs, stages.Message[Tweet]{Data: line.Tweet})
			case KindError:
				s.c.received.Add(1)
				s.c.streamErrors.Add(1)
				for i := range line.Problems {
					p := line.Problems[i]
					if p.Disconnect() && disconnect == nil {
						disconnect = &p
						s.log.Warn("twitter: in-stream disconnect", "title", p.Title, "disconnect_type", p.DisconnectType,
							"detail", p.Detail, "type", p.Type, "offset", off)
						continue
					}
					errLog.Do(func(skipped int64) {
						s.log.Warn("twitter: in-stream error", "title", p.Title, "detail", p.Detail, "type", p.Type,
							"offset", off, "also_skipped", skipped)
					})
				}
			default:
				s.c.received.Add(1)
				s.c.ignored.Add(1)
			}
		}
		if len(msgs) > 0 {
			if taken, err := out.EmitAll(ctx, msgs); err != nil {
				s.c.emitted.Add(int64(taken))
				s.c.abandoned.Add(int64(len(msgs) - taken))
				return result{closed: true, gotData: gotData}
			}
			s.c.emitted.Add(int64(len(msgs)))
			clear(msgs)
			msgs = msgs[:0]
		}
		if disconnect != nil {
			return result{reason: ReasonOperationalDisconnect, gotData: gotData,
				err: fmt.Errorf("twitter: in-stream error %s (%s): %s", disconnect.Title, disconnect.DisconnectType, disconnect.Detail)}
		}
		if rerr != nil {
			if n := lr.pending(); n > 0 {
				// The stream ended inside a line: it can never be completed.
				s.c.received.Add(1)
				s.c.malformed.Add(1)
				s.log.Warn("twitter: line cut by the end of the stream skipped", "offset", lr.offset(), "size", n)
			}
			switch {
			case wd.fired.Load():
				return result{reason: ReasonStall, gotData: gotData}
			case errors.Is(rerr, io.EOF):
				return result{reason: ReasonDisconnected, gotData: gotData, err: errors.New("twitter: the server ended the stream")}
			default:
				return result{reason: ReasonDisconnected, gotData: gotData, err: s.redact(rerr)}
			}
		}
	}
}

func quoteCut(b []byte, n int) string {
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "…"
	}
	return strconv.Quote(string(b))
}

// watchdog cancels a connection when no byte arrived for its timeout.
type watchdog struct {
	t     *time.Timer
	d     time.Duration
	fired atomic.Bool
}

func newWatchdog(d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{d: d}
	w.t = time.AfterFunc(d, func() {
		w.fired.Store(true)
		cancel()
	})
	return w
}

// kick restarts the timeout; a fired watchdog stays fired.
func (w *watchdog) kick() {
	if !w.fired.Load() {
		w.t.Reset(w.d)
	}
}

func (w *watchdog) stop() { w.t.Stop() }

// backoffs holds the consecutive failures of each back-off class.
type backoffs struct{ network, http, rate int }

// next decides the wait before the next attempt after r.
func (b *backoffs) next(cfg *Config, r result, now time.Time) ReconnectEvent {
	ev := ReconnectEvent{Reason: r.reason, Status: r.status, ResetAt: r.resetAt, Connected: r.connected, Err: r.err}
	if r.status == http.StatusOK {
		// Being let in resets the HTTP and rate-limit classes.
		b.http, b.rate = 0, 0
	}
	switch r.reason {
	case ReasonDisconnected, ReasonOperationalDisconnect, ReasonStall:
		ev.Healthy = r.gotData && r.connected >= cfg.BackoffReset
		if ev.Healthy {
			*b = backoffs{}
			ev.Class = ClassImmediate
			return ev
		}
		fallthrough
	case ReasonNetwork:
		b.network++
		ev.Class, ev.Attempt = ClassLinear, b.network
		ev.Backoff = backoff.Linear(cfg.NetworkBackoff.Initial, cfg.NetworkBackoff.Max, b.network)
	case ReasonRateLimited, ReasonTooManyConnections:
		b.rate++
		ev.Class, ev.Attempt = ClassRateLimit, b.rate
		ev.Backoff = backoff.Exponential(cfg.RateLimitBackoff.Initial, cfg.RateLimitBackoff.Max, b.rate)
		if wait := r.resetAt.Sub(now); !r.resetAt.IsZero() && wait > ev.Backoff {
			ev.Backoff = wait
		}
	default:
		b.http++
		ev.Class, ev.Attempt = ClassExponential, b.http
		ev.Backoff = backoff.Exponential(cfg.HTTPBackoff.Initial, cfg.HTTPBackoff.Max, b.http)
	}
	return ev
}
