package gbfs

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	spec "github.com/causeway-go/causeway/gbfs"
)

// The ring keeps the newest changes, newest first, forgetting the oldest
// once full.
func TestChangeRing(t *testing.T) {
	t.Parallel()
	ids := func(cs []Change) string { return fmt.Sprint(len(cs), cs == nil, stationIDs(cs)) }
	r := newChangeRing(3)
	if got := ids(r.latest(5)); got != "0 false []" {
		t.Errorf("empty ring: %s", got)
	}
	for i := 1; i <= 2; i++ {
		r.add(Change{StationID: fmt.Sprint(i)})
	}
	if got := ids(r.latest(5)); got != "2 false [2 1]" {
		t.Errorf("after 2: %s", got)
	}
	for i := 3; i <= 7; i++ {
		r.add(Change{StationID: fmt.Sprint(i)})
	}
	for n, want := range map[int]string{10: "3 false [7 6 5]", 3: "3 false [7 6 5]", 2: "2 false [7 6]", 0: "0 false []", -1: "0 false []"} {
		if got := ids(r.latest(n)); got != want {
			t.Errorf("after 7, latest(%d): %s, want %s", n, got, want)
		}
	}
	off := newChangeRing(0)
	off.add(Change{StationID: "x"})
	if got := ids(off.latest(5)); got != "0 false []" {
		t.Errorf("ring of 0: %s", got)
	}
}

func stationIDs(cs []Change) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.StationID
	}
	return out
}

// Stations joins each described station with its newest status row, in
// id order; a station not described is left out, one without a status
// row has a zero state.
func TestTrackerStations(t *testing.T) {
	t.Parallel()
	tr := newTracker(nil) // no row is stale: Postgres is never asked
	at := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	for _, i := range []spec.StationInformation{
		{StationID: "b", Name: "Bridge St", Lat: 51.5, Lon: -0.12, Capacity: 20},
		{StationID: "a", Name: "Abbey Rd", Lat: 51.53, Lon: -0.18, Capacity: 10},
		{StationID: "c", Name: "Canal", Lat: 51.54, Lon: -0.1},
		{StationID: "a", Name: "Abbey Road", Lat: 51.53, Lon: -0.18, Capacity: 12}, // described again
	} {
		tr.describe(i)
	}
	for _, s := range []spec.StationStatus{
		{StationID: "a", LastReported: at, NumBikesAvailable: 3, NumDocksAvailable: 9, IsInstalled: true, IsRenting: true, IsReturning: true},
		{StationID: "a", LastReported: at.Add(time.Minute), NumBikesAvailable: 2, NumDocksAvailable: 10, IsInstalled: true, IsRenting: true, IsReturning: true},
		{StationID: "a", LastReported: at.Add(-time.Minute), NumBikesAvailable: 7}, // older: ignored
		{StationID: "b", LastReported: at, NumBikesAvailable: 0, NumDocksAvailable: 0, IsInstalled: true},
		{StationID: "z", LastReported: at, NumBikesAvailable: 5, NumDocksAvailable: 5}, // not described
	} {
		if _, _, err := tr.observe(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	want := []Station{
		{StationID: "a", Name: "Abbey Road", Lat: 51.53, Lon: -0.18, Capacity: 12, Bikes: 2, Docks: 10,
			Installed: true, Renting: true, Returning: true, LastReported: at.Add(time.Minute)},
		{StationID: "b", Name: "Bridge St", Lat: 51.5, Lon: -0.12, Capacity: 20, Installed: true, LastReported: at},
		{StationID: "c", Name: "Canal", Lat: 51.54, Lon: -0.1},
	}
	if got := tr.stations(); !reflect.DeepEqual(got, want) {
		t.Errorf("stations:\n got %+v\nwant %+v", got, want)
	}
	if got := newTracker(nil).stations(); got == nil || len(got) != 0 {
		t.Errorf("no station described: %#v, want an empty slice", got)
	}
}

// The dashboard reads Stations and the latest changes while processors
// write them.
func TestStationsConcurrently(t *testing.T) {
	t.Parallel()
	tr := newTracker(nil)
	ring := newChangeRing(8)
	at := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				id := fmt.Sprintf("s%d-%d", w, i%20)
				tr.describe(spec.StationInformation{StationID: id, Name: id, Capacity: 10})
				ch, _, err := tr.observe(context.Background(), spec.StationStatus{StationID: id, LastReported: at.Add(time.Duration(i) * time.Second),
					NumBikesAvailable: i % 7, NumDocksAvailable: 10 - i%7})
				if err != nil {
					t.Error(err)
					return
				}
				if ch != nil {
					ring.add(*ch)
				}
			}
		}()
	}
	for range 50 {
		tr.stations()
		ring.latest(8)
	}
	wg.Wait()
	got := tr.stations()
	if len(got) != 80 {
		t.Fatalf("%d stations, want 80", len(got))
	}
	for _, s := range got { // station sW-k's last row is i = 180+k
		var w, k int
		fmt.Sscanf(s.StationID, "s%d-%d", &w, &k)
		if i := 180 + k; s.Bikes != i%7 || !s.LastReported.Equal(at.Add(time.Duration(i)*time.Second)) {
			t.Errorf("station %+v: want row %d", s, i)
		}
	}
	if n := len(ring.latest(100)); n != 8 {
		t.Errorf("ring holds %d changes, want 8", n)
	}
}

// BenchmarkStationsCopy measures one call of Stations on a system of 5,000
// described stations: what the dashboard pays once per sample.
func BenchmarkStationsCopy(b *testing.B) {
	tr := newTracker(nil)
	at := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	const n = 5000
	for i := range n {
		id := fmt.Sprintf("S%05d", i)
		tr.describe(spec.StationInformation{StationID: id, Name: id, Lat: 45, Lon: -73, Capacity: 20})
		tr.observe(context.Background(), spec.StationStatus{StationID: id, LastReported: at, NumBikesAvailable: i % 20})
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(tr.stations()) != n {
			b.Fatal("stations lost")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/call")
}
