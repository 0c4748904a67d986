// Package dashboard serves a live web page for running topologies: each
// topology drawn as a graph (producer and buffer, processors, each batcher
// and its sink) with per-stage rates, buffer fill and drops, concurrency,
// batch sizes and handler latencies over the last minutes, failures with
// their latest errors, and the conservation of messages
// (emitted = acked + failed + dropped + in flight).
//
// One line mounts it in a program's mux:
//
//	mux.Handle("/causeway/", dashboard.Handler(top))
//
// The page updates itself from one Server-Sent Events stream (about one
// event per second); <prefix>api/topologies answers the same data as JSON.
// A sampler goroutine reads Stats every interval and keeps a ring of the
// last minutes, so a page opened late still shows them; a slow or closed
// browser costs only its own connection and never blocks a topology. The
// page's HTML, script and style are embedded: no CDN, no build step.
//
// The package uses the standard library only (and Causeway's core).
package dashboard

import (
	"embed"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// Topology is what the dashboard reads from a topology: a *topology.Topology
// of any message type has both methods. A Topology that also has a
// LatestErrors() []ErrorEntry method (see WithErrors) has its latest
// errors shown.
type Topology interface {
	Stats() stages.Stats
	Describe() topology.Description
}

// Panel is an extra section of the page, for what a program knows beyond
// Stats: a stream's connection state, a map, a top-N list. Data is called
// once per sample on the sampler's goroutine; it must be quick, safe for
// concurrent use, and return a value encoding/json can encode. The page
// draws objects as tables of their fields, arrays of objects as tables of
// rows, and anything else as text, unless Kind names another drawing.
type Panel struct {
	// Name identifies the panel (and its entry in the JSON's "panels").
	Name string
	// Title is the panel's heading. Default: Name.
	Title string
	// Kind, if set, names how the page draws Data instead of as a table:
	// KindStationMap. A kind the page does not know is drawn as a table.
	Kind string
	// Data returns the panel's current content.
	Data func() any
}

// KindStationMap is the Panel.Kind of a map of stations, drawn in SVG from
// their positions alone (no map tiles): Data is a list of objects with
// "lat" and "lon" in degrees and, optionally, "station_id", "name",
// "bikes", "docks", "capacity", "installed", "renting", "returning" and
// "last_reported". Each station is a circle coloured by bikes available
// over capacity (or over bikes and docks when capacity is 0), from red
// (empty) to green (full); grey when it is not installed or not renting.
// Its tooltip gives the station's name and numbers. Stations without a
// numeric lat and lon are left out.
const KindStationMap = "station-map"

// Options tune a Dashboard; the zero value takes the defaults.
type Options struct {
	// Interval is how often the sampler reads every topology and how often
	// the page updates. Default 1s.
	Interval time.Duration
	// History is how many samples the ring keeps for the plots. Default
	// 300 (five minutes at the default interval).
	History int
	// Panels are extra sections drawn below the topologies.
	Panels []Panel
}

// Dashboard is the handler for the page, its assets, its event stream and
// its JSON. It is an http.Handler that works mounted at any path, with or
// without http.StripPrefix. Close stops its sampler.
type Dashboard struct {
	tops     []Topology
	panels   []Panel
	interval time.Duration
	history  int

	mu      sync.Mutex
	ring    [][]point // per topology, oldest first, at most history points
	last    *sampleSet
	latest  []byte // the latest event's JSON
	clients map[chan []byte]struct{}

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// Handler returns a dashboard for tops with the default options, ready to
// mount: mux.Handle("/causeway/", dashboard.Handler(top)). Its sampler runs
// for the life of the program; use New to be able to stop it.
func Handler(tops ...Topology) http.Handler { return New(Options{}, tops...) }

// New returns a dashboard for tops and starts its sampler, which Close
// stops.
func New(opts Options, tops ...Topology) *Dashboard {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.History <= 0 {
		opts.History = 300
	}
	d := &Dashboard{
		tops: tops, panels: opts.Panels, interval: opts.Interval, history: opts.History,
		ring: make([][]point, len(tops)), clients: map[chan []byte]struct{}{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	d.sample(time.Now()) // the page has numbers from its first load
	go d.run()
	return d
}

// Close stops the sampler and ends every open event stream. It waits for
// the sampler; the handlers of open streams return promptly after.
func (d *Dashboard) Close() {
	d.once.Do(func() { close(d.stop) })
	<-d.done
}

func (d *Dashboard) run() {
	defer close(d.done)
	t := time.NewTicker(d.interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case now := <-t.C:
			d.sample(now)
		}
	}
}

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/index.html"))

// routes are the dashboard's paths, matched as suffixes of the request's
// path so that the prefix it is mounted at does not matter.
var routes = []string{"api/topologies", "events", "app.js", "style.css"}

// ServeHTTP serves the page (the prefix itself), app.js, style.css,
// api/topologies (JSON) and events (Server-Sent Events).
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	route := ""
	for _, s := range routes {
		if p == s || strings.HasSuffix(p, "/"+s) {
			route = s
			break
		}
	}
	switch {
	case route == "api/topologies":
		d.serveJSON(w)
	case route == "events":
		d.serveEvents(w, r)
	case route == "app.js" || route == "style.css":
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, assets, "assets/"+route)
	case p == "" || strings.HasSuffix(p, "/"):
		d.servePage(w, r)
	default:
		http.NotFound(w, r)
	}
}

// base is the path the dashboard is mounted at, with a trailing slash, as
// the browser sees it (before any StripPrefix).
func base(r *http.Request) string {
	full := r.URL.Path
	if r.RequestURI != "" {
		full, _, _ = strings.Cut(r.RequestURI, "?")
		if i := strings.Index(full, "://"); i >= 0 { // absolute-form request
			if j := strings.IndexByte(full[i+3:], '/'); j >= 0 {
				full = full[i+3+j:]
			}
		}
	}
	if !strings.HasSuffix(full, "/") {
		if i := strings.LastIndexByte(full, '/'); i >= 0 {
			full = full[:i+1]
		}
	}
	if full == "" {
		full = "/"
	}
	return full
}

func (d *Dashboard) servePage(w http.ResponseWriter, r *http.Request) {
	b := base(r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	names := make([]string, len(d.tops))
	d.mu.Lock()
	if d.last != nil {
		for i, t := range d.last.Topologies {
			names[i] = t.Name
		}
	}
	d.mu.Unlock()
	page.Execute(w, struct {
		Base  string
		API   string
		Names []string
	}{b, b + "api/topologies", names})
}

// serveJSON answers the latest sample with the history ring.
func (d *Dashboard) serveJSON(w http.ResponseWriter) {
	d.mu.Lock()
	s := *d.last
	s.Topologies = append([]topologySample(nil), s.Topologies...)
	for i := range s.Topologies {
		s.Topologies[i].History = append([]point(nil), d.ring[i]...)
	}
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(s)
}

// serveEvents streams each new sample as an SSE event named "sample". A
// client that cannot keep up gets the newest sample when it is ready
// again: the sampler never waits for it.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	ch := make(chan []byte, 1)
	d.mu.Lock()
	first := d.latest
	d.clients[ch] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.clients, ch)
		d.mu.Unlock()
	}()
	write := func(msg []byte) error {
		rc.SetWriteDeadline(time.Now().Add(10 * d.interval)) // a stuck client is cut off
		if _, err := w.Write(msg); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := write([]byte("retry: 2000\n\n")); err != nil {
		return
	}
	if first != nil && write(first) != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.stop:
			return
		case msg := <-ch:
			if write(msg) != nil {
				return
			}
		}
	}
}

// broadcastLocked offers msg to every client without waiting: a client whose
// previous event is still unsent has it replaced by msg.
func (d *Dashboard) broadcastLocked(msg []byte) {
	for ch := range d.clients {
		select {
		case ch <- msg:
			continue
		default:
		}
		select { // full: replace the stale event
		case <-ch:
		default:
		}
		select {
		case ch <- msg:
		default:
		}
	}
}
