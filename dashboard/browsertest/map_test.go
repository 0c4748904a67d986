package browsertest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/causeway-go/causeway/dashboard"
)

// mapStations are fixed stations for the map: a square of four around
// London, one far west, one with no position (not drawn).
var mapStations = []map[string]any{
	{"station_id": "n", "name": "North Yard", "lat": 51.55, "lon": -0.12, "capacity": 10, "bikes": 10, "docks": 0, "installed": true, "renting": true, "returning": true, "last_reported": "2026-05-01T08:00:00Z"},
	{"station_id": "s", "name": "South Quay", "lat": 51.45, "lon": -0.12, "capacity": 10, "bikes": 0, "docks": 10, "installed": true, "renting": true, "returning": true},
	{"station_id": "e", "name": "East Gate", "lat": 51.5, "lon": -0.02, "capacity": 20, "bikes": 10, "docks": 10, "installed": true, "renting": true, "returning": true},
	{"station_id": "w", "name": "West End", "lat": 51.5, "lon": -0.3, "capacity": 0, "bikes": 3, "docks": 1, "installed": true, "renting": true, "returning": true},
	{"station_id": "x", "name": "Closed Mews", "lat": 51.52, "lon": -0.15, "capacity": 8, "bikes": 4, "docks": 4, "installed": true, "renting": false, "returning": false},
	{"station_id": "u", "name": "Unplaced", "capacity": 5, "bikes": 1, "docks": 4},
}

// A station-map panel is drawn in the browser as one circle per located
// station, placed by position (north up, west left) and coloured by bikes
// over capacity, with a tooltip, a legend and a scale; a plain panel beside
// it is a table.
func TestStationMapInChromium(t *testing.T) {
	exe := chromium(t)
	changes := []map[string]any{
		{"at": "2026-05-01 08:00:00", "station": "North Yard (n)", "kind": "became_full", "bikes": "9 → 10"},
		{"at": "2026-05-01 07:59:57", "station": "South Quay (s)", "kind": "became_empty", "bikes": "1 → 0"},
	}
	var shown atomic.Pointer[[]map[string]any]
	shown.Store(&mapStations)
	d := dashboard.New(dashboard.Options{Interval: interval, Panels: []dashboard.Panel{
		{Name: "stations", Title: "Stations", Kind: dashboard.KindStationMap, Data: func() any { return *shown.Load() }},
		{Name: "changes", Title: "Latest changes", Data: func() any { return changes }},
	}})
	mux := http.NewServeMux()
	mux.Handle("/causeway/", d)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { d.Close(); srv.Close() })

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1100, 1000))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, 60*time.Second)
	defer tcancel()
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/causeway/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-panel="stations"] svg.station-map circle`))); err != nil {
		t.Fatalf("loading the page: %v", err)
	}

	type circle struct {
		ID, Fill, Title string
		X, Y            float64
	}
	circles, err := chromedp.Run(bctx, chromedp.Evaluate[[]circle](`[...document.querySelectorAll('[data-panel="stations"] svg.station-map circle')].map(c => ({
		ID: c.getAttribute("data-station"), Fill: c.getAttribute("fill"), Title: c.querySelector("title").textContent,
		X: +c.getAttribute("cx"), Y: +c.getAttribute("cy")}))`))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	at := map[string]circle{}
	for _, c := range circles {
		ids = append(ids, c.ID)
		at[c.ID] = c
	}
	if want := []string{"n", "s", "e", "w", "x"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("circles for stations %v, want one per located station %v", ids, want)
	}
	// North up, west left: the projection keeps the stations' layout.
	if !(at["n"].Y < at["e"].Y && at["e"].Y < at["s"].Y && at["w"].X < at["n"].X && at["n"].X < at["e"].X) {
		t.Errorf("stations misplaced: %+v", circles)
	}
	if at["n"].X != at["s"].X || at["e"].Y != at["w"].Y {
		t.Errorf("stations on one meridian or parallel are not aligned: %+v", circles)
	}
	for id, fill := range map[string]string{
		"n": "hsl(120, 72%, 42%)", // full
		"s": "hsl(0, 72%, 42%)",   // empty
		"e": "hsl(60, 72%, 42%)",  // half
		"w": "hsl(90, 72%, 42%)",  // no capacity: 3 bikes of 3 + 1 docks
		"x": "#9aa0a8",            // not renting
	} {
		if at[id].Fill != fill {
			t.Errorf("station %s filled %q, want %q", id, at[id].Fill, fill)
		}
	}
	for id, want := range map[string][]string{
		"n": {"North Yard (n)", "bikes 10 of 10 · docks 0", "reported "},
		"w": {"West End (w)", "bikes 3 · docks 1"},
		"x": {"Closed Mews (x)", "out of service: not renting"},
	} {
		for _, s := range want {
			if !strings.Contains(at[id].Title, s) {
				t.Errorf("station %s's tooltip %q lacks %q", id, at[id].Title, s)
			}
		}
	}

	text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("panels").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"empty → full", "out of service", "5 stations · 27 bikes · 1 empty · 1 full · 1 out of service", "km",
		"Latest changes", "became_full", "South Quay (s)", "1 → 0"} {
		if !strings.Contains(text, s) {
			t.Errorf("the panels do not show %q:\n%s", s, text)
		}
	}
	rows, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('[data-panel="changes"] table tr').length`))
	if err != nil || rows != 3 {
		t.Errorf("changes table has %d rows (%v), want a header and 2", rows, err)
	}

	// Updates with the same data keep the drawing (and a tooltip being
	// read); new data redraws it.
	mark := `document.querySelector('[data-panel="stations"] svg.station-map').dataset.mark = "kept"`
	marked := `document.querySelector('[data-panel="stations"] svg.station-map').dataset.mark || ""`
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[string](mark)); err != nil {
		t.Fatal(err)
	}
	waitUpdates(t, bctx, 2)
	if m, err := chromedp.Run(bctx, chromedp.Evaluate[string](marked)); err != nil || m != "kept" {
		t.Errorf("the map was redrawn with the same data (mark %q, %v)", m, err)
	}
	next := make([]map[string]any, len(mapStations))
	copy(next, mapStations)
	next[1] = map[string]any{"station_id": "s", "name": "South Quay", "lat": 51.45, "lon": -0.12, "capacity": 10, "bikes": 10, "docks": 0, "installed": true, "renting": true}
	shown.Store(&next)
	fill := `document.querySelector('[data-station="s"]').getAttribute("fill")`
	waitFor(t, "the map to show the new data", 10*time.Second, func() bool {
		f, err := chromedp.Run(bctx, chromedp.Evaluate[string](fill))
		return err == nil && f == "hsl(120, 72%, 42%)"
	})
	if m, err := chromedp.Run(bctx, chromedp.Evaluate[string](marked)); err != nil || m != "" {
		t.Errorf("new data did not redraw the map (mark %q, %v)", m, err)
	}

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("CAUSEWAY_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, "dashboard-map-test.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitUpdates waits until the page has shown n more samples.
func waitUpdates(t *testing.T, bctx context.Context, n int) {
	t.Helper()
	updated := `document.body.getAttribute("data-updated") || ""`
	last, err := chromedp.Run(bctx, chromedp.Evaluate[string](updated))
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		waitFor(t, "an update of the page", 10*time.Second, func() bool {
			u, err := chromedp.Run(bctx, chromedp.Evaluate[string](updated))
			if err != nil || u == last {
				return false
			}
			last = u
			return true
		})
	}
}
