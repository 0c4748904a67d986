package dashboard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixture runs a topology of ints: processors fail multiples of 10, the
// "postgres" sink fails multiples of 7 with an error carrying a password,
// the "kafka" sink takes everything.
type fixture struct {
	top  *topology.Topology[int]
	prod *topologytest.Producer[int]
	errs *Errors
	stop func() error // drains the topology
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{prod: topologytest.NewProducer[int](), errs: &Errors{}}
	top, err := topology.New(topology.Spec[int]{
		Name:     "numbers",
		Producer: topology.ProducerSpec[int]{Producer: f.prod, BufferSize: 100},
		Processors: topology.ProcessorSpec[int]{Concurrency: 2, Handle: func(_ context.Context, m *stages.Message[int]) error {
			if m.Data%10 == 0 {
				return fmt.Errorf("number %d: divisible by ten", m.Data)
			}
			m.Route("kafka", "postgres")
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{
			"kafka": {BatchSize: 5, BatchTimeout: 5 * time.Millisecond, Handle: func(context.Context, *stages.Batch[int]) error { return nil }},
			"postgres": {BatchSize: 5, BatchTimeout: 5 * time.Millisecond, Handle: func(_ context.Context, b *stages.Batch[int]) error {
				for _, m := range b.Messages {
					if m.Data%7 == 0 {
						m.Fail(errors.New("insert into postgres://app:hunter2@db:5432/x: row refused"))
					}
				}
				return nil
			}},
		},
		HandleFailed: HandleFailed[int](f.errs, nil),
		Hooks:        f.errs.Hooks(stages.Hooks{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.top = top
	f.stop = topologytest.Start(t, top)
	return f
}

// push sends 1..n and waits for their acknowledgements.
func (f *fixture) push(t *testing.T, n int) {
	t.Helper()
	data := make([]int, n)
	for i := range data {
		data[i] = i + 1
	}
	f.prod.Push(data...).Await(t, 10*time.Second)
}

// newServer mounts d at /causeway/ as the package doc says.
func newServer(t *testing.T, d *Dashboard) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/causeway/", d)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { d.Close(); srv.Close() })
	return srv
}

func getJSON(t *testing.T, url string) sampleSet {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	var s sampleSet
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAPIMatchesStats(t *testing.T) {
	f := newFixture(t)
	d := New(Options{Interval: time.Hour, Panels: []Panel{{Name: "extra", Data: func() any { return map[string]int{"answer": 42} }}}},
		WithErrors(f.top, f.errs))
	srv := newServer(t, d)
	f.push(t, 100)
	if err := f.stop(); err != nil { // after the drain, every counter is final
		t.Fatal(err)
	}
	d.sample(time.Now()) // the test drives the sampler; its ticker is an hour away
	want := f.top.Stats()
	s := getJSON(t, srv.URL+"/causeway/api/topologies")
	if len(s.Topologies) != 1 {
		t.Fatalf("got %d topologies, want 1", len(s.Topologies))
	}
	got := s.Topologies[0]
	if got.Name != "numbers" || got.Description.Name != "numbers" || len(got.Description.Batchers) != 2 {
		t.Errorf("name %q, description %+v", got.Name, got.Description)
	}
	// 100 numbers: 10 fail in processors; of the other 90, the multiples
	// of 7 that are not multiples of 10 (14 - 1 = 13) fail in postgres.
	c := got.Conservation
	if c.Emitted != 100 || c.Acked != 77 || c.Failed != 23 || c.Dropped != 0 || c.InFlight != 0 || !c.Holds || c.Text != "holds" {
		t.Errorf("conservation %+v, want emitted 100 = acked 77 + failed 23", c)
	}
	if got.Stats.Acked != want.Acked || got.Stats.Failed != want.Failed || got.Stats.Producer.Emitted != want.Producer.Emitted ||
		got.Stats.Processors.Failed != want.Processors.Failed || got.Stats.Batchers[1].Failed != want.Batchers[1].Failed {
		t.Errorf("stats %+v\nwant %+v", got.Stats, want)
	}
	if len(got.History) != 1 || got.History[0].Batchers[0].Name != "kafka" {
		t.Errorf("history %+v, want one point with batchers", got.History)
	}
	counts := map[string]int64{}
	for _, e := range got.Errors {
		counts[e.Stage] += e.Count
		if strings.Contains(e.Message, "hunter2") {
			t.Errorf("error not redacted: %q", e.Message)
		}
	}
	if counts["processors"] != 10 || counts["kafka+postgres"] != 13 || len(counts) != 2 {
		t.Errorf("errors by stage %v, want processors 10, kafka+postgres 13", counts)
	}
	if len(s.Panels) != 1 || s.Panels[0].Title != "extra" || fmt.Sprint(s.Panels[0].Data) != "map[answer:42]" {
		t.Errorf("panels %+v", s.Panels)
	}
}

func TestMounts(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, pattern, page, api string
		strip                    string
	}{
		{"root", "/", "/", "/api/topologies", ""},
		{"prefix", "/causeway/", "/causeway/", "/causeway/api/topologies", ""},
		{"strip", "/ops/dash/", "/ops/dash/", "/ops/dash/api/topologies", "/ops/dash"},
		{"strip slash", "/ops/", "/ops/", "/ops/api/topologies", "/ops/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Options{Interval: time.Hour}, f.top)
			var h http.Handler = d
			if tc.strip != "" {
				h = http.StripPrefix(tc.strip, d)
			}
			mux := http.NewServeMux()
			mux.Handle(tc.pattern, h)
			srv := httptest.NewServer(mux)
			defer func() { srv.Close(); d.Close() }()
			resp, err := http.Get(srv.URL + tc.page)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(body), `href="`+tc.api+`"`) || !strings.Contains(string(body), `src="`+tc.page+`app.js"`) {
				t.Fatalf("page at %s does not link %s and %sapp.js:\n%s", tc.page, tc.api, tc.page, body)
			}
			for _, p := range []string{tc.page + "app.js", tc.page + "style.css", tc.api} {
				resp, err := http.Get(srv.URL + p)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("GET %s: %s", p, resp.Status)
				}
			}
			resp, _ = http.Get(srv.URL + tc.page + "nothing")
			resp.Body.Close()
			if resp.StatusCode != 404 {
				t.Errorf("GET %snothing: %s, want 404", tc.page, resp.Status)
			}
		})
	}
}

// readEvent reads one SSE event: its fields until a blank line.
func readEvent(t *testing.T, r *bufio.Reader) map[string]string {
	t.Helper()
	ev := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the event stream: %v (so far %q)", err, ev)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			return ev
		}
		k, v, _ := strings.Cut(line, ": ")
		ev[k] += v
	}
}

func TestEventsFraming(t *testing.T) {
	f := newFixture(t)
	d := New(Options{Interval: 20 * time.Millisecond}, f.top)
	srv := newServer(t, d)
	resp, err := http.Get(srv.URL + "/causeway/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	if ev := readEvent(t, r); ev["retry"] != "2000" || len(ev) != 1 {
		t.Errorf("first event %q, want the retry interval", ev)
	}
	f.push(t, 30)
	var last int64
	for i := 0; i < 200; i++ { // the samples after the push
		ev := readEvent(t, r)
		if ev["event"] != "sample" {
			t.Fatalf("event %q, want sample", ev)
		}
		var s sampleSet
		if err := json.Unmarshal([]byte(ev["data"]), &s); err != nil {
			t.Fatalf("data is not JSON: %v", err)
		}
		if len(s.Topologies) != 1 || s.Topologies[0].History != nil {
			t.Fatalf("event carries %d topologies (history %v), want 1 without history", len(s.Topologies), s.Topologies[0].History)
		}
		if c := s.Topologies[0].Conservation; !c.Holds {
			t.Fatalf("conservation does not hold in an event: %+v", c)
		}
		if last = s.Topologies[0].Stats.Producer.Emitted; last == 30 {
			return
		}
	}
	t.Fatalf("no event showed the 30 messages (last emitted %d)", last)
}

// TestSlowClient: a client that never reads neither blocks the sampler
// nor keeps its handler once it is gone.
func TestSlowClient(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("x", 256<<10) // a quarter megabyte per event fills the socket buffers quickly
	d := New(Options{Interval: time.Hour, Panels: []Panel{{Name: "big", Data: func() any { return big }}}}, f.top)
	srv := newServer(t, d)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /causeway/events HTTP/1.1\r\nHost: x\r\n\r\n")
	waitClients(t, d, 1)
	start := time.Now()
	for range 40 { // 10 MB offered to a reader that reads nothing
		d.sample(time.Now())
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("40 samples took %v with a stuck client", took)
	}
	conn.Close()
	waitClients(t, d, 0) // its handler returned
}

func waitClients(t *testing.T, d *Dashboard, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		got := len(d.clients)
		d.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d event clients, want %d", got, n)
		}
		// The handler's exit has no channel to wait on from here; poll briefly.
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBroadcastNeverBlocks(t *testing.T) {
	d := &Dashboard{clients: map[chan []byte]struct{}{}}
	ch := make(chan []byte, 1)
	d.clients[ch] = struct{}{}
	for i := range 10 {
		d.broadcastLocked([]byte{byte(i)})
	}
	if got := <-ch; len(got) != 1 || got[0] != 9 {
		t.Errorf("a slow client holds %v, want the newest event [9]", got)
	}
}

func TestPanelPanic(t *testing.T) {
	p := readPanel(Panel{Name: "boom", Data: func() any { panic("no data") }})
	if p.Error != `panel "boom": panic: no data` || p.Title != "boom" {
		t.Errorf("%+v", p)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"dial postgres://app:hunter2@db:5432/x failed", "dial postgres://app:xxx@db:5432/x failed"},
		{"Authorization: Bearer AAAA%2Fbb.cc", "Authorization: Bearer xxx"},
		{"connect: password=s3cret host=db", "connect: password=xxx host=db"},
		{`sasl.password="a b" failed`, `sasl.password=xxx failed`},
		{"token: abc123, next", "token: xxx, next"},
		{"plain error", "plain error"},
		{strings.Repeat("é", 200), strings.Repeat("é", 148) + "..."},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestErrorsRepeatAndCap(t *testing.T) {
	e := &Errors{Max: 3}
	for i := range 5 {
		e.Record("kafka", 2, fmt.Errorf("error %d", i))
	}
	e.Record("kafka", 2, errors.New("error 3"))
	e.Record("kafka", 1, nil)
	got := e.LatestErrors()
	if len(got) != 3 || got[0].Message != "error 3" || got[0].Count != 4 || got[1].Message != "error 4" || got[2].Message != "error 2" {
		t.Errorf("%+v", got)
	}
}

// A station-map panel's kind and data are in the JSON as the program gave
// them, and the page's script and style draw that kind.
func TestStationMapPanel(t *testing.T) {
	stations := []map[string]any{
		{"station_id": "a", "name": "Abbey Rd", "lat": 51.53, "lon": -0.18, "capacity": 12, "bikes": 3, "docks": 9, "installed": true, "renting": true},
		{"station_id": "b", "name": "Bridge St", "lat": 51.5, "lon": -0.12, "capacity": 20, "bikes": 0, "docks": 0, "installed": false, "renting": false},
	}
	d := New(Options{Interval: time.Hour, Panels: []Panel{
		{Name: "map", Title: "Stations", Kind: KindStationMap, Data: func() any { return stations }},
		{Name: "plain", Data: func() any { return 1 }},
	}})
	srv := newServer(t, d)
	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get(srv.URL + "/causeway/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %v", path, resp.Status, err)
		}
		return b
	}
	var api struct {
		Panels []struct {
			Name, Title, Kind string
			Data              json.RawMessage
		}
	}
	if err := json.Unmarshal(get("api/topologies"), &api); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(stations)
	if len(api.Panels) != 2 {
		t.Fatalf("panels %+v", api.Panels)
	}
	var data bytes.Buffer
	json.Compact(&data, api.Panels[0].Data)
	if p := api.Panels[0]; p.Name != "map" || p.Title != "Stations" || p.Kind != "station-map" || data.String() != string(want) {
		t.Errorf("map panel %s %q %q, data %s, want data %s", p.Name, p.Title, p.Kind, data.String(), want)
	}
	if p := api.Panels[1]; p.Kind != "" || string(p.Data) != "1" {
		t.Errorf("plain panel %+v", p)
	}
	if raw := string(get("api/topologies")); strings.Count(raw, `"kind"`) != 1 {
		t.Errorf("a panel without a kind has one in the JSON:\n%s", raw)
	}
	js := string(get("app.js"))
	for _, s := range []string{`var kinds = { "station-map": stationMap }`, "function stationMap(data, box)", `el("circle"`, `el("title"`, "Math.cos(", "kinds[p.kind]"} {
		if !strings.Contains(js, s) {
			t.Errorf("app.js lacks %q", s)
		}
	}
	if css := string(get("style.css")); !strings.Contains(css, "svg.station-map") || !strings.Contains(css, ".map-legend") {
		t.Error("style.css does not style the station map")
	}
}
