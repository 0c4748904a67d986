// Package twittertest is a fake X (Twitter) API v2 stream server for tests,
// demos and benchmarks: HTTP/2 only (TLS with a self-signed certificate, or
// cleartext h2c with prior knowledge), bearer-token auth, the filtered-stream
// rules endpoints, and the filtered and sample streams replaying recorded
// tweets (testdata/*.jsonl) at a given rate or as fast as possible, once or
// looping, with keep-alives, backfill and injectable faults.
//
// It follows the protocol facts the producer relies on: problem bodies like
// the API's, ids as strings, CRLF-delimited messages flushed one by one, a
// bare CRLF as keep-alive, matching_rules computed from the rules the fake
// holds.
//
// The fake's timeline is shared by its connections: a new connection starts
// where the last one left off (and backfill_minutes replays what was served
// in the last minutes, duplicates included), and it does not move while no
// client is connected; with Config.Live it moves with the clock, as the
// API's does, and what no client was connected for is lost unless a
// connection asks for backfill. backfill_minutes is honoured on any
// connection, a client's first one included, as the API does.
package twittertest

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Defaults of Config's zero values.
const (
	DefaultToken         = "test-token"
	DefaultKeepAlive     = 20 * time.Second
	DefaultBackfillLimit = 10_000
	DefaultMaxRules      = 1000
	DefaultFlushBytes    = 64 << 10
)

// DisconnectMode is how the fake ends a stream on a disconnect fault.
type DisconnectMode string

// Disconnect modes.
const (
	// DisconnectEnd ends the response: the client reads EOF (END_STREAM).
	DisconnectEnd DisconnectMode = "end"
	// DisconnectReset resets the stream (RST_STREAM).
	DisconnectReset DisconnectMode = "reset"
	// DisconnectClose closes the TCP connection under the stream.
	DisconnectClose DisconnectMode = "close"
)

// Faults are the failures the fake injects. Counts of connects ("the next N
// stream connections") go down as they are used; per-connection faults apply
// to every stream connection. The zero value injects nothing.
type Faults struct {
	// Unauthorized, Forbidden, RateLimited and Unavailable answer the next N
	// stream connections with 401, 403, 429 (with x-rate-limit-reset) and
	// 503, in that order of precedence.
	Unauthorized int
	Forbidden    int
	RateLimited  int
	Unavailable  int
	// RateLimitReset sets x-rate-limit-reset to now + this (default 60s; it
	// is rounded up to whole seconds).
	RateLimitReset time.Duration
	// UsageCapped answers the next N stream connections with 429
	// UsageCapExceeded.
	UsageCapped int
	// MaxConnections > 0 answers a stream connection beyond that many
	// concurrent ones with 429 TooManyConnections, as the API does.
	MaxConnections int

	// DisconnectAfterTweets ends each stream connection after that many
	// tweets, DisconnectAfter after that long; how is DisconnectMode
	// (default DisconnectEnd).
	DisconnectAfterTweets int
	DisconnectAfter       time.Duration
	DisconnectMode        DisconnectMode
	// OperationalDisconnectAfter sends an in-stream operational-disconnect
	// error after that many tweets on each connection, then ends it.
	OperationalDisconnectAfter int
	// Stall holds each connection open with no bytes at all (not even
	// keep-alives) after StallAfterTweets tweets, until the client leaves.
	Stall            bool
	StallAfterTweets int

	// MalformedEvery injects a malformed line after every N tweets,
	// OversizedEvery an oversized one (OversizedSize bytes before its CRLF,
	// default 1 MiB + 1 KiB; well-formed JSON, too long).
	MalformedEvery int
	OversizedEvery int
	OversizedSize  int
	// SplitFrames > 0 writes each line in pieces of that many bytes, each
	// flushed as its own DATA frame.
	SplitFrames int
}

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Addr is the listen address. Default "127.0.0.1:0" (a free port).
	Addr string
	// Token is the bearer token clients must send. Default DefaultToken.
	Token string
	// Lines are the recorded stream lines to replay (see LoadLines).
	Lines [][]byte
	// Rate is tweets per second on the timeline; 0 serves as fast as the
	// client reads.
	Rate float64
	// Loop replays the lines forever, each pass with its own tweet ids
	// (data.id moved by 2^42 per pass, so they stay unique and fit in an
	// int64); otherwise the replay stops after the last line and
	// connections get keep-alives only.
	Loop bool
	// Live, with a Rate, moves the timeline with the clock from NewServer
	// on, whether a client is connected or not, as the API's does: a
	// connection starts at the present, and what was published while no
	// client was connected is served only by a backfill_minutes reaching
	// back to it (at most BackfillLimit tweets). Without Live the timeline
	// waits for its clients: a new connection starts where the last one
	// left off.
	Live bool
	// KeepAlive is the idle time after which a bare CRLF is sent. Default
	// 20s; negative disables keep-alives.
	KeepAlive time.Duration
	// H2C serves cleartext HTTP/2 with prior knowledge instead of TLS.
	H2C bool
	// BackfillLimit caps how many tweets backfill_minutes replays. Default
	// 10,000.
	BackfillLimit int
	// MaxRules caps the rules held (rule-cap errors beyond). Default 1000.
	MaxRules int
	// Faults are the failures to inject; SetFaults changes them later.
	Faults Faults
	// FlushBytes: with Rate 0, lines are gathered and flushed once that many
	// bytes are pending, and whenever the replay pauses. Default 16 KiB (one
	// full DATA frame); negative flushes every line. With a Rate every line
	// is flushed on its own, as the API does.
	FlushBytes int
	// Record keeps a copy of every tweet line served, for Served.
	Record bool
	// Logger receives the server's logs. Default: discard.
	Logger *slog.Logger
}

// Stats is a snapshot of what the fake served.
type Stats struct {
	Connections int64 // stream connections answered 200
	Active      int   // stream connections open now
	Rejected    map[int]int64
	Tweets      int64 // tweet lines written and flushed, duplicates included
	Published   int64 // timeline position: distinct tweets served so far
	// Timeline is the timeline's position now: Published, or with
	// Config.Live where the clock has moved it, served or not.
	Timeline    int64
	Bytes       int64
	KeepAlives  int64
	Malformed   int64
	Oversized   int64
	Disconnects int64 // connections the fake ended by a fault
}

// Server is a running fake X API server.
type Server struct {
	cfg     Config
	ln      net.Listener
	hs      *http.Server
	url     string
	pool    *x509.CertPool
	certPEM []byte
	log     *slog.Logger
	entries []entry
	start   time.Time

	mu        sync.Mutex
	faults    Faults
	active    int
	rules     []StoredRule
	ruleSeq   int64
	published int64      // next timeline position
	history   []servedAt // recent timeline positions, for backfill
	rejected  map[int]int64
	record    [][]byte
	done      chan struct{}
	doneOnce  sync.Once
	idle      chan struct{} // closed when active drops to 0, while Close waits

	compiled atomic.Pointer[[]StoredRule]

	conns, tweets, bytes, keepAlives, malformed, oversized, disconnects atomic.Int64

	closed atomic.Bool
	stop   chan struct{} // closed by Close: stream handlers return
}

type servedAt struct {
	pos int64
	at  time.Time
}

// StoredRule is a rule the fake holds.
type StoredRule struct {
	ID    string `json:"id"`
	Value string `json:"value"`
	Tag   string `json:"tag,omitempty"`
	rule  *Rule
}

type connKey struct{}

// NewServer starts a fake server for cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Token == "" {
		cfg.Token = DefaultToken
	}
	if cfg.KeepAlive == 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.BackfillLimit == 0 {
		cfg.BackfillLimit = DefaultBackfillLimit
	}
	if cfg.MaxRules == 0 {
		cfg.MaxRules = DefaultMaxRules
	}
	if cfg.FlushBytes == 0 {
		cfg.FlushBytes = DefaultFlushBytes
	}
	if cfg.Rate < 0 {
		return nil, fmt.Errorf("twittertest: Config.Rate must be >= 0, got %v", cfg.Rate)
	}
	if cfg.Live && cfg.Rate == 0 {
		return nil, fmt.Errorf("twittertest: Config.Live needs a Rate > 0")
	}
	entries, err := prepare(cfg.Lines)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, entries: entries, faults: cfg.Faults, rejected: map[int]int64{},
		done: make(chan struct{}), stop: make(chan struct{}), ruleSeq: 1895600000000000000}
	s.compiled.Store(&[]StoredRule{})
	if len(entries) == 0 && !cfg.Loop {
		s.finish()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("twittertest: listen: %w", err)
	}
	s.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serveRoot)
	mux.HandleFunc("/2/tweets/search/stream", func(w http.ResponseWriter, r *http.Request) { s.serveStream(w, r, true) })
	mux.HandleFunc("/2/tweets/sample/stream", func(w http.ResponseWriter, r *http.Request) { s.serveStream(w, r, false) })
	mux.HandleFunc("/2/tweets/search/stream/rules", s.serveRules)
	s.hs = &http.Server{
		Handler:     mux,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		Protocols:   new(http.Protocols),
		HTTP2:       &http.HTTP2Config{},
	}
	s.start = time.Now()
	if cfg.H2C {
		s.hs.Protocols.SetUnencryptedHTTP2(true)
		s.url = "http://" + ln.Addr().String()
		go s.hs.Serve(ln)
	} else {
		cert, pemBytes, pool, err := selfSigned()
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.pool, s.certPEM = pool, pemBytes
		s.hs.Protocols.SetHTTP2(true)
		s.hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{http2.NextProtoTLS}}
		s.url = "https://" + ln.Addr().String()
		go s.hs.ServeTLS(ln, "", "")
	}
	return s, nil
}

// URL returns the server's base URL: http://host:port for h2c, https:// for
// TLS.
func (s *Server) URL() string { return s.url }

// Token returns the bearer token the server accepts.
func (s *Server) Token() string { return s.cfg.Token }

// CertPool returns a pool that trusts the server's certificate (nil for
// h2c).
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// CertPEM returns the server's certificate in PEM (nil for h2c), for
// clients in other processes.
func (s *Server) CertPEM() []byte { return s.certPEM }

// TLSConfig returns a client TLS configuration that trusts the server (nil
// for h2c).
func (s *Server) TLSConfig() *tls.Config {
	if s.pool == nil {
		return nil
	}
	return &tls.Config{RootCAs: s.pool, NextProtos: []string{http2.NextProtoTLS}}
}

// Client returns an HTTP/2-only client for the server (h2c or TLS trusting
// its certificate).
func (s *Server) Client() *http.Client {
	tr := &http2.Transport{TLSClientConfig: s.TLSConfig()}
	if s.cfg.H2C {
		tr.AllowHTTP = true
		tr.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	return &http.Client{Transport: tr}
}

// Len returns how many recorded tweets the server replays.
func (s *Server) Len() int { return len(s.entries) }

// Done is closed once a replay that does not loop has served every recorded
// tweet at least once (written and flushed).
func (s *Server) Done() <-chan struct{} { return s.done }

// SetFaults replaces the faults to inject from now on.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.mu.Unlock()
}

// Faults returns the faults in force, with the connect counts left.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// Served returns a copy of every tweet line served (without CRLF), in order,
// when Config.Record is set.
func (s *Server) Served() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.record...)
}

// Stats returns a snapshot of what the server served.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Active: s.active, Published: s.published, Rejected: make(map[int]int64, len(s.rejected))}
	for k, v := range s.rejected {
		st.Rejected[k] = v
	}
	s.mu.Unlock()
	st.Timeline = st.Published
	if s.cfg.Live {
		st.Timeline = s.livePos(time.Now())
	}
	st.Connections = s.conns.Load()
	st.Tweets = s.tweets.Load()
	st.Bytes = s.bytes.Load()
	st.KeepAlives = s.keepAlives.Load()
	st.Malformed = s.malformed.Load()
	st.Oversized = s.oversized.Load()
	st.Disconnects = s.disconnects.Load()
	return st
}

// Rules returns the rules the server holds, in creation order.
func (s *Server) Rules() []StoredRule {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]StoredRule(nil), s.rules...)
}

// Close stops the server: open streams end, and Close waits for their
// handlers.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stop)
	err := s.hs.Close()
	s.mu.Lock()
	var idle chan struct{}
	if s.active > 0 {
		idle = make(chan struct{})
		s.idle = idle
	}
	s.mu.Unlock()
	if idle != nil {
		<-idle
	}
	return err
}

func (s *Server) finish() { s.doneOnce.Do(func() { close(s.done) }) }

// --- HTTP plumbing -----------------------------------------------------

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

func problem(title, detail, typ string, status int) map[string]any {
	p := map[string]any{"title": title, "detail": detail, "type": typ}
	if status != 0 {
		p["status"] = status
	}
	return p
}

func (s *Server) reject(w http.ResponseWriter, status int, body any) {
	s.mu.Lock()
	s.rejected[status]++
	s.mu.Unlock()
	writeJSON(w, status, body)
}

func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtle.ConstantTimeCompare([]byte(got), []byte(s.cfg.Token)) == 1 {
		return true
	}
	s.reject(w, http.StatusUnauthorized, problem("Unauthorized", "Unauthorized", "about:blank", 401))
	return false
}

func invalidRequest(msg string, params map[string]any) map[string]any {
	return map[string]any{
		"errors": []any{map[string]any{"parameters": params, "message": msg}},
		"title":  "Invalid Request", "detail": "One or more parameters to your request was invalid.",
		"type": "https://api.twitter.com/2/problems/invalid-request",
	}
}

func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		writeJSON(w, http.StatusNotFound, problem("Not Found", "Sorry, that page does not exist.", "about:blank", 404))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"server": "causeway fake X API v2", "tweets": len(s.entries), "proto": r.Proto,
		"endpoints": []string{"/2/tweets/search/stream", "/2/tweets/sample/stream", "/2/tweets/search/stream/rules"},
	})
}

// Query fields the fake knows; others are rejected like the API does.
var knownFields = map[string][]string{
	"tweet.fields": {"attachments", "author_id", "card_uri", "context_annotations", "conversation_id", "created_at",
		"edit_controls", "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id", "lang",
		"non_public_metrics", "note_tweet", "organic_metrics", "possibly_sensitive", "promoted_metrics",
		"public_metrics", "referenced_tweets", "reply_settings", "source", "text", "withheld"},
	"expansions": {"attachments.media_keys", "attachments.poll_ids", "author_id", "edit_history_tweet_ids",
		"entities.mentions.username", "geo.place_id", "in_reply_to_user_id", "referenced_tweets.id",
		"referenced_tweets.id.author_id"},
	"user.fields": {"created_at", "description", "entities", "id", "location", "most_recent_tweet_id", "name",
		"pinned_tweet_id", "profile_image_url", "protected", "public_metrics", "url", "username", "verified",
		"verified_type", "withheld"},
	"media.fields": {"alt_text", "duration_ms", "height", "media_key", "non_public_metrics", "organic_metrics",
		"preview_image_url", "promoted_metrics", "public_metrics", "type", "url", "variants", "width"},
	"place.fields": {"contained_within", "country", "country_code", "full_name", "geo", "id", "name", "place_type"},
	"poll.fields":  {"duration_minutes", "end_datetime", "id", "options", "voting_status"},
}

// checkQuery validates a stream request's query like the API: it returns a
// 400 body or nil, and the backfill minutes asked for.
func checkQuery(r *http.Request) (map[string]any, int) {
	q := r.URL.Query()
	for name, allowed := range knownFields {
		v := q.Get(name)
		if v == "" {
			continue
		}
		for f := range strings.SplitSeq(v, ",") {
			ok := false
			for _, a := range allowed {
				ok = ok || a == f
			}
			if !ok {
				return invalidRequest(fmt.Sprintf("The `%s` query parameter value [%s] is not one of %v", name, f, allowed),
					map[string]any{name: []string{v}}), 0
			}
		}
	}
	backfill := 0
	if v := q.Get("backfill_minutes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 5 {
			return invalidRequest(fmt.Sprintf("The `backfill_minutes` query parameter value [%s] is not between 0 and 5", v),
				map[string]any{"backfill_minutes": []string{v}}), 0
		}
		backfill = n
	}
	return nil, backfill
}
