package gbfstest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/gbfs/gbfstest"
	"github.com/causeway-go/causeway/internal/memnet"
)

var t0 = time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)

// start runs a fake over loopback TLS on a manual clock.
func start(t *testing.T, cfg gbfstest.Config) (*gbfstest.Server, *gbfstest.ManualClock) {
	t.Helper()
	clock := gbfstest.NewManualClock(t0)
	cfg.Clock = clock.Now
	srv, err := gbfstest.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, clock
}

// get fetches url with optional headers (name, value, name, value…).
func get(t *testing.T, c *http.Client, url string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// Both versions: discovery lists the feeds at the server's URLs, every
// file parses, names are localised in v3.0, times are POSIX seconds in
// v2.3 and RFC 3339 in v3.0, and the transport is HTTP/2.
func TestServesBothVersions(t *testing.T) {
	for _, version := range []string{gbfs.V23, gbfs.V30} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			srv, _ := start(t, gbfstest.Config{Version: version, Stations: 250})
			c := srv.Client()
			resp, body := get(t, c, srv.DiscoveryURL())
			if resp.ProtoMajor != 2 {
				t.Errorf("served over %s, want HTTP/2", resp.Proto)
			}
			d, err := gbfs.ParseDiscovery(body, "en")
			if err != nil || d.Version != version {
				t.Fatalf("discovery %s: %+v, %v", body, d, err)
			}
			for _, name := range []string{gbfs.FeedSystemInformation, gbfs.FeedStationInformation, gbfs.FeedStationStatus} {
				if got := d.URL(name); got != srv.FeedURL(name) {
					t.Errorf("discovery URL of %s = %q, want %q", name, got, srv.FeedURL(name))
				}
			}

			_, body = get(t, c, d.URL(gbfs.FeedSystemInformation))
			_, si, err := gbfs.ParseSystemInformation(body, "fr")
			if err != nil || si.SystemID == "" || si.Timezone != "America/Toronto" {
				t.Errorf("system_information = %+v, %v", si, err)
			}
			if version == gbfs.V30 && (si.Name != "Vélos Causeway (simulé)" || len(si.Languages) != 2) {
				t.Errorf("v3.0 system name in fr = %q, languages %v", si.Name, si.Languages)
			}

			_, body = get(t, c, d.URL(gbfs.FeedStationInformation))
			info, err := gbfs.ParseStationInformation(body, "fr")
			if err != nil || len(info.Stations) != 250 {
				t.Fatalf("station_information: %d stations, %v", len(info.Stations), err)
			}
			truth := srv.Stations()
			for i, st := range info.Stations {
				if err := st.Validate(); err != nil {
					t.Error(err)
				}
				wantName := truth[i].Name
				if version == gbfs.V30 {
					wantName = "rue " // the French translation
				}
				if st.StationID != truth[i].StationID || !strings.HasPrefix(st.Name, wantName) || st.Capacity != truth[i].Capacity {
					t.Errorf("station %d = %+v, want %+v (name %q…)", i, st, truth[i], wantName)
				}
			}

			_, body = get(t, c, d.URL(gbfs.FeedStationStatus))
			status, err := gbfs.ParseStationStatus(body)
			if err != nil || len(status.Stations) != 250 || !status.LastUpdated.Equal(t0) || status.TTL != gbfstest.DefaultTTL {
				t.Fatalf("station_status: %d stations, header %+v, %v", len(status.Stations), status.Header, err)
			}
			var raw struct {
				Data struct {
					Stations []map[string]any `json:"stations"`
				} `json:"data"`
			}
			json.Unmarshal(body, &raw)
			first := raw.Data.Stations[0]
			switch version {
			case gbfs.V23:
				if _, ok := first["last_reported"].(float64); !ok || first["num_bikes_available"] == nil {
					t.Errorf("v2.3 station = %v: want POSIX seconds and num_bikes_available", first)
				}
			case gbfs.V30:
				if s, ok := first["last_reported"].(string); !ok || !strings.HasSuffix(s, "-05:00") || first["num_vehicles_available"] == nil {
					t.Errorf("v3.0 station = %v: want RFC 3339 and num_vehicles_available", first)
				}
			}
			for i, st := range status.Stations {
				if err := st.Validate(); err != nil {
					t.Error(err)
				}
				total := st.NumBikesAvailable + st.NumBikesDisabled + st.NumDocksAvailable + st.NumDocksDisabled
				if total != truth[i].Capacity {
					t.Errorf("station %s: bikes and docks add up to %d, capacity %d", st.StationID, total, truth[i].Capacity)
				}
			}
		})
	}
}

// The same seed and clock give the same documents, however the clock got
// there; another seed gives others.
func TestDeterministic(t *testing.T) {
	body := func(seed uint64, steps ...time.Duration) []byte {
		clock := gbfstest.NewManualClock(t0)
		srv, err := gbfstest.NewServer(gbfstest.Config{Seed: seed, Clock: clock.Now, TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var last []byte
		for _, d := range steps {
			clock.Advance(d)
			rec := newRecorder()
			srv.ServeHTTP(rec, httpGet("/station_status.json"))
			last = rec.body.Bytes()
		}
		return last
	}
	a := body(7, 10*time.Minute)
	b := body(7, time.Second, time.Minute, 3*time.Minute, 5*time.Minute+59*time.Second)
	if !bytes.Equal(a, b) {
		t.Error("same seed, same time, different documents")
	}
	if bytes.Equal(a, body(8, 10*time.Minute)) {
		t.Error("different seeds, same documents")
	}
}

// Over half a simulated hour bikes are taken and returned, stations go out of
// service and come back, and last_reported moves only for stations that
// reported: a station whose row is unchanged keeps its last_reported.
func TestSimulation(t *testing.T) {
	clock := gbfstest.NewManualClock(t0)
	srv, err := gbfstest.NewServer(gbfstest.Config{Clock: clock.Now, Stations: 200})
	if err != nil {
		t.Fatal(err)
	}
	fetch := func() gbfs.StationStatusFeed {
		rec := newRecorder()
		srv.ServeHTTP(rec, httpGet("/station_status.json"))
		f, err := gbfs.ParseStationStatus(rec.body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	prev := fetch()
	var taken, returned, offline, online, heartbeats, moved int
	for range 180 { // half an hour, every 10 s
		clock.Advance(10 * time.Second)
		cur := fetch()
		if !cur.LastUpdated.Equal(clock.Now()) {
			t.Fatalf("last_updated %v, want the publication time %v", cur.LastUpdated, clock.Now())
		}
		for i, s := range cur.Stations {
			p := prev.Stations[i]
			if s.LastReported.Before(p.LastReported) || s.LastReported.After(cur.LastUpdated) {
				t.Fatalf("station %s: last_reported %v after %v, published %v", s.StationID, s.LastReported, p.LastReported, cur.LastUpdated)
			}
			if s.LastReported.Equal(p.LastReported) {
				if !s.Equal(p) {
					t.Fatalf("station %s changed without reporting: %+v then %+v", s.StationID, p, s)
				}
				continue
			}
			moved++
			inService := func(s gbfs.StationStatus) bool { return s.IsInstalled && s.IsRenting && s.IsReturning }
			switch {
			case inService(p) && !inService(s):
				offline++
			case !inService(p) && inService(s):
				online++
			case s.NumBikesAvailable < p.NumBikesAvailable:
				taken++
			case s.NumBikesAvailable > p.NumBikesAvailable:
				returned++
			case s.SameState(p):
				heartbeats++
			}
		}
		prev = cur
	}
	t.Logf("half an hour of 200 stations: %d reports, %d taken, %d returned, %d offline, %d online, %d heartbeats",
		moved, taken, returned, offline, online, heartbeats)
	if taken < 1000 || returned < 1000 || offline < 15 || online < 15 || heartbeats < 300 {
		t.Errorf("too quiet: %d taken, %d returned, %d offline, %d online, %d heartbeats", taken, returned, offline, online, heartbeats)
	}
}

// ETag and If-Modified-Since get 304s within a publication period; the
// next publication is a 200 with a later last_updated; Cache-Control says
// how long is left.
func TestConditionalRequests(t *testing.T) {
	srv, clock := start(t, gbfstest.Config{Version: gbfs.V30, TTL: 15 * time.Second})
	c := srv.Client()
	url := srv.FeedURL(gbfs.FeedStationStatus)
	resp, body := get(t, c, url)
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp.StatusCode != 200 || etag == "" || lm != t0.Format(http.TimeFormat) || resp.Header.Get("Cache-Control") != "public, max-age=15" {
		t.Fatalf("first response: %s, headers %v", resp.Status, resp.Header)
	}
	clock.Advance(9 * time.Second)
	resp, _ = get(t, c, url, "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || resp.Header.Get("Cache-Control") != "public, max-age=6" {
		t.Errorf("same period, If-None-Match: %s, Cache-Control %q", resp.Status, resp.Header.Get("Cache-Control"))
	}
	resp, _ = get(t, c, url, "If-Modified-Since", lm)
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("same period, If-Modified-Since: %s", resp.Status)
	}
	resp, again := get(t, c, url)
	if resp.StatusCode != 200 || !bytes.Equal(again, body) {
		t.Errorf("same period, unconditional: %s, same body %v", resp.Status, bytes.Equal(again, body))
	}
	clock.Advance(6 * time.Second)
	resp, body2 := get(t, c, url, "If-None-Match", etag)
	f, err := gbfs.ParseStationStatus(body2)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag || err != nil || !f.LastUpdated.Equal(t0.Add(15*time.Second)) {
		t.Errorf("next period: %s, ETag %q, last_updated %v, %v", resp.Status, resp.Header.Get("ETag"), f.LastUpdated, err)
	}
	resp, _ = get(t, c, srv.FeedURL(gbfs.FeedStationInformation))
	resp2, _ := get(t, c, srv.FeedURL(gbfs.FeedStationInformation), "If-None-Match", resp.Header.Get("ETag"))
	if resp2.StatusCode != http.StatusNotModified {
		t.Errorf("station_information with its ETag: %s", resp2.Status)
	}
	st := srv.Stats()
	if st.NotModified != 3 || st.OK != 4 || st.Publications != 2 || st.ByFeed[gbfs.FeedStationStatus] != 5 {
		t.Errorf("stats = %+v", st)
	}
}

// Each fault, in both versions: what the client gets, and that only whole
// documents count as served.
func TestFaults(t *testing.T) {
	for _, version := range []string{gbfs.V23, gbfs.V30} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			srv, clock := start(t, gbfstest.Config{Version: version, Stations: 50})
			c := srv.Client()
			url := srv.FeedURL(gbfs.FeedStationStatus)
			_, first := get(t, c, url)
			clock.Advance(gbfstest.DefaultTTL)
			_, second := get(t, c, url)
			served := srv.Served()

			srv.InjectFaults(gbfstest.Faults{ServerErrors: 1, Throttled: 1, RetryAfter: 3 * time.Second, Backwards: 1, Malformed: 1, Truncated: 1})
			resp, _ := get(t, c, url)
			if resp.StatusCode != 503 {
				t.Errorf("1st faulty request: %s, want 503", resp.Status)
			}
			resp, _ = get(t, c, url)
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
				t.Errorf("2nd faulty request: %s, Retry-After %q; want 429, 3", resp.Status, resp.Header.Get("Retry-After"))
			}
			resp, body := get(t, c, url)
			f, err := gbfs.ParseStationStatus(body)
			if resp.StatusCode != 200 || !bytes.Equal(body, first) || err != nil || !f.LastUpdated.Equal(t0) {
				t.Errorf("backwards: %s, last_updated %v (want %v), %v", resp.Status, f.LastUpdated, t0, err)
			}
			for _, name := range []string{"malformed", "truncated"} {
				resp, body = get(t, c, url, "If-None-Match", `"something else"`)
				if _, err := gbfs.ParseStationStatus(body); resp.StatusCode != 200 || err == nil || resp.Header.Get("ETag") == "" {
					t.Errorf("%s: %s, parse error %v, ETag %q", name, resp.Status, err, resp.Header.Get("ETag"))
				}
			}
			if resp, body = get(t, c, url); !bytes.Equal(body, second) {
				t.Errorf("after the faults: %s, not the current document", resp.Status)
			}
			if got := srv.Served(); !reflect.DeepEqual(got, served) {
				t.Errorf("faulty responses changed what counts as served: %d rows, then %d", len(served), len(got))
			}
			st := srv.Stats()
			if st.ServerErrors != 1 || st.Throttled != 1 || st.Backwards != 1 || st.Malformed != 1 || st.Truncated != 1 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

// Delay holds responses (here under synctest, on an in-memory network),
// and a client that gives up is let go.
func TestDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := gbfstest.NewServer(gbfstest.Config{Faults: gbfstest.Faults{Delay: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		c, stop := memnet.Serve(srv.Handler())
		defer stop()
		start := time.Now()
		resp, err := c.Get("http://gbfs.test/station_status.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("response after %v, want 5s", d)
		}
		resp, err = c.Get("http://gbfs.test/system_information.json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("another feed was delayed too: %v", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://gbfs.test/station_status.json", nil)
		if _, err := c.Do(req); err == nil {
			t.Error("a client that gave up after 1s got a response")
		}
	})
}

// Served holds every distinct (station_id, last_reported) of the documents
// served whole, with the state it was served with.
func TestServedRecordsWhatWasServed(t *testing.T) {
	clock := gbfstest.NewManualClock(t0)
	srv, err := gbfstest.NewServer(gbfstest.Config{Clock: clock.Now, Stations: 100, TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := map[gbfs.Key]gbfs.StationStatus{}
	for i := range 200 {
		clock.Advance(time.Duration(1+i%7) * time.Second) // some periods are never fetched
		rec := newRecorder()
		srv.ServeHTTP(rec, httpGet("/station_status.json"))
		f, err := gbfs.ParseStationStatus(rec.body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range f.Stations {
			if old, ok := want[s.Key()]; ok && !old.Equal(s) {
				t.Fatalf("(%s, %v) served as %+v and as %+v", s.StationID, s.LastReported, old, s)
			}
			want[s.Key()] = s
		}
	}
	got := srv.Served()
	if len(got) != len(want) || int64(len(got)) != srv.Stats().Reports {
		t.Fatalf("Served has %d rows, the documents %d (stats %d)", len(got), len(want), srv.Stats().Reports)
	}
	for i, s := range got {
		if !want[s.Key()].Equal(s) {
			t.Errorf("Served[%d] = %+v, served %+v", i, s, want[s.Key()])
		}
		if i > 0 && (got[i-1].StationID > s.StationID || got[i-1].StationID == s.StationID && !got[i-1].LastReported.Before(s.LastReported)) {
			t.Errorf("Served not sorted at %d", i)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  gbfstest.Config
		want string
	}{
		{gbfstest.Config{Version: "2.2"}, "Config.Version"},
		{gbfstest.Config{Stations: -1}, "Config.Stations"},
		{gbfstest.Config{TTL: 1500 * time.Millisecond}, "Config.TTL"},
	} {
		if _, err := gbfstest.NewServer(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewServer(%+v) = %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
}

// recorder is a minimal ResponseWriter for calling the handler directly.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{header: http.Header{}, code: 200} }
func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func httpGet(path string) *http.Request         { return mustRequest(http.MethodGet, "http://gbfs.test"+path) }
func mustRequest(method, url string) *http.Request {
	r, _ := http.NewRequest(method, url, nil)
	return r
}
