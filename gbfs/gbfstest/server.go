// Package gbfstest is a fake GBFS (bike-share) publisher for tests, demos
// and benchmarks. It serves gbfs.json (auto-discovery),
// system_information.json, station_information.json and station_status.json
// of a deterministic simulated system, in GBFS v2.3 or v3.0, with ttl,
// ETag, Last-Modified, Cache-Control and 304s, and injectable faults.
//
// The simulation is driven by Config.Clock: every simulated second each
// station may see a bike taken or returned, a bike reported broken or
// repaired, a heartbeat (same state, new last_reported), or go out of
// service and come back; a station's last_reported moves only when it
// reports. The same seed, station count and start time always give the same
// system, so a test that controls the clock (a ManualClock, or the fake
// clock of a testing/synctest bubble) gets the same documents every run.
//
// The feed is published like a real one: a new station_status every TTL
// (every second with a TTL below one second), whose last_updated is its
// publication time and whose stations are the simulation's state then.
// Requests within one period get the same document (and a 304 when they
// send its ETag or a later If-Modified-Since).
//
// The server records what it served: every distinct (station_id,
// last_reported) of a station_status document it answered 200 with,
// with its state (Served), so a test can assert that a pipeline got exactly
// those rows.
package gbfstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/causeway-go/causeway/gbfs"
)

// Defaults of Config's zero values.
const (
	DefaultStations   = 300
	DefaultSeed       = 1
	DefaultTTL        = 10 * time.Second
	DefaultRetryAfter = time.Second
)

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	// Addr is the address Start listens on. Default "127.0.0.1:0" (a free
	// port).
	Addr string
	// Plain makes Start serve cleartext HTTP/1.1; by default it serves TLS
	// (a self-signed certificate, see Client) with HTTP/2 offered by ALPN.
	Plain bool
	// Version is the GBFS version served: gbfs.V23 (default) or gbfs.V30.
	Version string
	// Stations is the number of simulated stations. Default 300.
	Stations int
	// Seed seeds the simulation. Default 1.
	Seed uint64
	// TTL is the publication period and the ttl every document carries, in
	// whole seconds. Default 10 s; negative publishes ttl 0 and a new
	// station_status every second.
	TTL time.Duration
	// Clock drives the simulation. Default time.Now (which, inside a
	// testing/synctest bubble, is the bubble's fake clock).
	Clock func() time.Time
	// Start is when the simulation starts. Default Clock() when the server
	// is made, truncated to the second. The simulation computes every
	// second from Start on (about 30 ns per station per second), so a
	// Start long before the clock makes the first station_status slow.
	Start time.Time
	// BaseURL prefixes the feed URLs gbfs.json lists. Default: the scheme
	// and host the discovery request came to.
	BaseURL string
	// Faults are injected from the start; InjectFaults adds more later.
	Faults Faults
	// Logger receives the server's logs. Default: discarded.
	Logger *slog.Logger
}

// Faults are the failures the fake injects into requests of one feed. Each
// count is "the next N requests of that feed", used up as they happen, in
// this order of precedence: ServerErrors, Throttled, Backwards, Malformed,
// Truncated. Delay applies to every request of the feed. The zero value
// injects nothing.
type Faults struct {
	// Feed is the feed the faults apply to: "station_status" (the default),
	// "station_information", "system_information", "gbfs", or "*" for all.
	Feed string
	// ServerErrors answers with 503 Service Unavailable.
	ServerErrors int
	// Throttled answers with 429 Too Many Requests and a Retry-After of
	// RetryAfter (whole seconds; default 1 s).
	Throttled  int
	RetryAfter time.Duration
	// Backwards serves, for station_status, the publication served before
	// the latest one: last_updated goes backwards, as from a stale cache.
	// It has no effect until two publications have been served.
	Backwards int
	// Malformed serves the document with invalid JSON in its middle,
	// Truncated serves its first half; both are complete 200 responses
	// carrying the good document's ETag, as a broken proxy would send.
	Malformed int
	Truncated int
	// Delay holds every response that long before answering (or until the
	// client gives up).
	Delay time.Duration
}

func (f Faults) feed() string {
	if f.Feed == "" {
		return gbfs.FeedStationStatus
	}
	return f.Feed
}

// Stats counts what the server did.
type Stats struct {
	Requests     int64            // every request
	ByFeed       map[string]int64 // requests per feed name
	OK           int64            // 200s with a whole document
	NotModified  int64            // 304s
	ServerErrors int64            // injected 503s
	Throttled    int64            // injected 429s
	Backwards    int64            // stale station_status documents served
	Malformed    int64            // malformed documents served
	Truncated    int64            // truncated documents served
	NotFound     int64            // unknown paths
	Publications int64            // distinct station_status publications served
	Reports      int64            // distinct (station_id, last_reported) served
	Bytes        int64            // body bytes written
}

// Server is the fake publisher. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	period time.Duration
	ttl    int
	loc    *time.Location
	log    *slog.Logger

	mu         sync.Mutex
	sim        *sim
	faults     Faults
	info       *document // station_information, built once
	sys        *document // system_information, built once
	status     *document // the latest station_status publication built
	lastServed *document // the latest station_status publication served
	prevServed *document // the one served before it
	served     map[gbfs.Key]gbfs.StationStatus
	stats      Stats

	hs *httptest.Server
}

// document is one serialised file.
type document struct {
	pub     time.Time // last_updated
	body    []byte
	etag    string
	records []gbfs.StationStatus // station_status only
}

// NewServer makes a server; Handler serves it, Start listens.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Version == "" {
		cfg.Version = gbfs.V23
	}
	if cfg.Version != gbfs.V23 && cfg.Version != gbfs.V30 {
		return nil, fmt.Errorf("gbfstest: Config.Version must be %q or %q, got %q", gbfs.V23, gbfs.V30, cfg.Version)
	}
	if cfg.Stations == 0 {
		cfg.Stations = DefaultStations
	}
	if cfg.Stations < 0 {
		return nil, fmt.Errorf("gbfstest: Config.Stations must be > 0, got %d", cfg.Stations)
	}
	if cfg.Seed == 0 {
		cfg.Seed = DefaultSeed
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL > 0 && cfg.TTL%time.Second != 0 {
		return nil, fmt.Errorf("gbfstest: Config.TTL must be whole seconds, got %v", cfg.TTL)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Start.IsZero() {
		cfg.Start = cfg.Clock()
	}
	cfg.Start = cfg.Start.Truncate(time.Second).UTC()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:    cfg,
		period: max(cfg.TTL, time.Second),
		ttl:    int(max(cfg.TTL, 0) / time.Second),
		loc:    time.FixedZone("EST", -5*3600),
		log:    cfg.Logger,
		sim:    newSim(cfg.Seed, cfg.Stations, cfg.Start),
		faults: cfg.Faults,
		served: make(map[gbfs.Key]gbfs.StationStatus),
		stats:  Stats{ByFeed: map[string]int64{}},
	}
	return s, nil
}

// Start listens on Config.Addr and serves in the background: TLS with
// HTTP/2 unless Config.Plain. Close stops it.
func (s *Server) Start() error {
	hs := httptest.NewUnstartedServer(s)
	if s.cfg.Addr != "" {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return fmt.Errorf("gbfstest: listen on %s: %w", s.cfg.Addr, err)
		}
		hs.Listener.Close()
		hs.Listener = ln
	}
	if s.cfg.Plain {
		hs.Start()
	} else {
		hs.EnableHTTP2 = true
		hs.StartTLS()
	}
	s.hs = hs
	return nil
}

// URL returns the started server's base URL (https://127.0.0.1:port).
func (s *Server) URL() string { return s.hs.URL }

// DiscoveryURL returns the started server's gbfs.json URL.
func (s *Server) DiscoveryURL() string { return s.hs.URL + "/gbfs.json" }

// FeedURL returns the started server's URL of the named feed.
func (s *Server) FeedURL(name string) string { return s.hs.URL + "/" + name + ".json" }

// Client returns an HTTP client for the started server: it trusts the
// server's certificate and speaks HTTP/2 over TLS.
func (s *Server) Client() *http.Client { return s.hs.Client() }

// Certificate returns the started TLS server's certificate, or nil.
func (s *Server) Certificate() []byte {
	if c := s.hs.Certificate(); c != nil {
		return c.Raw
	}
	return nil
}

// Close stops a started server and closes its connections.
func (s *Server) Close() {
	if s.hs != nil {
		s.hs.Close()
	}
}

// Handler returns the server as an http.Handler, to mount on any listener
// (an in-memory one inside a testing/synctest bubble, say).
func (s *Server) Handler() http.Handler { return s }

// InjectFaults adds f's counts to the pending faults, and sets the feed,
// Delay and RetryAfter to f's when f sets them.
func (s *Server) InjectFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.faults
	if f.Feed != "" {
		p.Feed = f.Feed
	}
	if f.Delay != 0 {
		p.Delay = f.Delay
	}
	if f.RetryAfter != 0 {
		p.RetryAfter = f.RetryAfter
	}
	p.ServerErrors += f.ServerErrors
	p.Throttled += f.Throttled
	p.Backwards += f.Backwards
	p.Malformed += f.Malformed
	p.Truncated += f.Truncated
}

// SetDelay sets the delay of every response of the faults' feed (0 for
// none).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	s.faults.Delay = d
	s.mu.Unlock()
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByFeed = make(map[string]int64, len(s.stats.ByFeed))
	for k, v := range s.stats.ByFeed {
		st.ByFeed[k] = v
	}
	return st
}

// Served returns every distinct (station_id, last_reported) of the
// station_status documents served whole, with its state, sorted by station
// id and then time.
func (s *Server) Served() []gbfs.StationStatus {
	s.mu.Lock()
	out := make([]gbfs.StationStatus, 0, len(s.served))
	for _, st := range s.served {
		out = append(out, st)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b gbfs.StationStatus) int {
		if c := strings.Compare(a.StationID, b.StationID); c != 0 {
			return c
		}
		return a.LastReported.Compare(b.LastReported)
	})
	return out
}

// Stations returns the simulated system's stations as station_information
// describes them (names in English).
func (s *Server) Stations() []gbfs.StationInformation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]gbfs.StationInformation, len(s.sim.stations))
	for i, st := range s.sim.stations {
		out[i] = st.info
	}
	return out
}

// Publication returns the last_updated of the station_status document the
// server would serve at t.
func (s *Server) Publication(t time.Time) time.Time {
	if t.Before(s.cfg.Start) {
		return s.cfg.Start
	}
	return s.cfg.Start.Add(t.Sub(s.cfg.Start) / s.period * s.period)
}

// fault is what one request gets.
type fault uint8

const (
	faultNone fault = iota
	faultServerError
	faultThrottled
	faultBackwards
	faultMalformed
	faultTruncated
)

// takeFault uses up the next fault for feed, and returns it with the delay
// and Retry-After to apply; s.mu is held.
func (s *Server) takeFault(feed string) (k fault, delay, retryAfter time.Duration) {
	k, delay = s.nextFault(feed)
	retryAfter = s.faults.RetryAfter
	if retryAfter <= 0 {
		retryAfter = DefaultRetryAfter
	}
	return k, delay, retryAfter
}

func (s *Server) nextFault(feed string) (fault, time.Duration) {
	f := &s.faults
	if f.feed() != "*" && f.feed() != feed {
		return faultNone, 0
	}
	take := func(n *int, k fault) fault {
		if *n > 0 {
			*n--
			return k
		}
		return faultNone
	}
	for _, c := range []struct {
		n *int
		k fault
	}{{&f.ServerErrors, faultServerError}, {&f.Throttled, faultThrottled}} {
		if k := take(c.n, c.k); k != faultNone {
			return k, f.Delay
		}
	}
	if f.Backwards > 0 && feed == gbfs.FeedStationStatus && s.prevServed != nil {
		f.Backwards--
		return faultBackwards, f.Delay
	}
	if k := take(&f.Malformed, faultMalformed); k != faultNone {
		return k, f.Delay
	}
	return take(&f.Truncated, faultTruncated), f.Delay
}

// ServeHTTP serves the feeds.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	feed := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), ".json")
	s.mu.Lock()
	s.stats.Requests++
	s.stats.ByFeed[feed]++
	f, delay, retryAfter := s.takeFault(feed)
	s.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	switch f {
	case faultServerError:
		s.count(func(st *Stats) { st.ServerErrors++ })
		problem(w, http.StatusServiceUnavailable, "service unavailable (injected)")
		return
	case faultThrottled:
		s.count(func(st *Stats) { st.Throttled++ })
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
		problem(w, http.StatusTooManyRequests, "too many requests (injected)")
		return
	}
	s.mu.Lock()
	d, err := s.document(feed, r, f)
	s.mu.Unlock()
	if err != nil {
		s.count(func(st *Stats) { st.NotFound++ })
		problem(w, http.StatusNotFound, err.Error())
		return
	}
	s.write(w, r, feed, d, f)
}

// write answers with d (or a 304, or d broken by fault f).
func (s *Server) write(w http.ResponseWriter, r *http.Request, feed string, d *document, f fault) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("ETag", d.etag)
	h.Set("Last-Modified", d.pub.UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", s.maxAge(feed, d)))
	if f == faultNone && notModified(r, d) {
		s.count(func(st *Stats) { st.NotModified++ })
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := d.body
	switch f {
	case faultMalformed:
		body = slices.Concat(body[:len(body)/2], []byte(`,,"broken": }`), body[len(body)/2:])
		s.count(func(st *Stats) { st.Malformed++ })
	case faultTruncated:
		body = body[:len(body)/2]
		s.count(func(st *Stats) { st.Truncated++ })
	case faultBackwards:
		s.count(func(st *Stats) { st.Backwards++ })
	default:
		s.mu.Lock()
		s.stats.OK++
		if feed == gbfs.FeedStationStatus && r.Method == http.MethodGet {
			s.record(d)
		}
		s.mu.Unlock()
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	n, _ := w.Write(body)
	s.count(func(st *Stats) { st.Bytes += int64(n) })
}

// record notes the station rows of a served station_status; s.mu is held.
func (s *Server) record(d *document) {
	if s.lastServed != nil && !d.pub.After(s.lastServed.pub) {
		return // already recorded
	}
	s.prevServed, s.lastServed = s.lastServed, d
	s.stats.Publications++
	for _, st := range d.records {
		k := st.Key()
		if old, ok := s.served[k]; ok {
			if !old.SameState(st) {
				s.log.Error("gbfstest: a report changed after it was served", "station_id", k.StationID, "last_reported", st.LastReported)
			}
			continue
		}
		s.served[k] = st
		s.stats.Reports++
	}
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
}

// maxAge is the Cache-Control max-age of d: until the next publication.
func (s *Server) maxAge(feed string, d *document) int {
	if feed != gbfs.FeedStationStatus {
		return s.ttl
	}
	left := d.pub.Add(s.period).Sub(s.cfg.Clock())
	if left < 0 || s.ttl == 0 {
		return 0
	}
	return int((left + time.Second - 1) / time.Second)
}

// notModified reports whether r's conditional headers say the client holds d.
func notModified(r *http.Request, d *document) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		for tag := range strings.SplitSeq(inm, ",") {
			tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
			if tag == d.etag || tag == "*" {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		return err == nil && !d.pub.Truncate(time.Second).After(t)
	}
	return false
}

func problem(w http.ResponseWriter, code int, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"status": code, "error": detail})
}

// errUnknownFeed answers paths the fake does not publish.
var errUnknownFeed = errors.New("no such feed")

// document returns the file for feed; s.mu is held.
func (s *Server) document(feed string, r *http.Request, f fault) (*document, error) {
	switch feed {
	case gbfs.FeedDiscovery:
		return s.newDocument(s.cfg.Start, s.discovery(s.baseURL(r)), nil), nil
	case gbfs.FeedSystemInformation:
		if s.sys == nil {
			s.sys = s.newDocument(s.cfg.Start, s.systemInformation(), nil)
		}
		return s.sys, nil
	case gbfs.FeedStationInformation:
		if s.info == nil {
			s.info = s.newDocument(s.cfg.Start, s.stationInformation(), nil)
		}
		return s.info, nil
	case gbfs.FeedStationStatus:
		if f == faultBackwards {
			return s.prevServed, nil
		}
		pub := s.Publication(s.cfg.Clock())
		if s.status == nil || pub.After(s.status.pub) {
			s.sim.advance(pub)
			recs := s.sim.statuses()
			s.status = s.newDocument(pub, s.stationStatus(pub, recs), recs)
		}
		return s.status, nil
	}
	return nil, fmt.Errorf("%w: %s", errUnknownFeed, r.URL.Path)
}

func (s *Server) baseURL(r *http.Request) string {
	if s.cfg.BaseURL != "" {
		return strings.TrimSuffix(s.cfg.BaseURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) newDocument(pub time.Time, v any, recs []gbfs.StationStatus) *document {
	body, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("gbfstest: encode: %v", err)) // the fake's own types always encode
	}
	h := fnv.New64a()
	h.Write(body)
	return &document{pub: pub, body: body, etag: fmt.Sprintf(`"%016x"`, h.Sum64()), records: recs}
}
