package gbfs_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	spec "github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/topologies/gbfs"
)

// After a run on a known feed, Stations is the fake's stations, each with
// the last state the fake served for it, and LatestChanges holds exactly
// the change log Postgres holds, each station's newest first.
func TestStationsAndLatestChanges(t *testing.T) {
	t.Parallel()
	const stations = 40
	h := newHarness(t, spec.V23, stations)
	p := h.run(runSpec{polls: 8, config: func(c *gbfs.Config) { c.RecentChanges = 100_000 }})

	last := map[string]spec.StationStatus{}
	for _, s := range h.srv.Served() { // each station's in time order
		last[s.StationID] = s
	}
	infos := h.srv.Stations()
	slices.SortFunc(infos, func(a, b spec.StationInformation) int { return strings.Compare(a.StationID, b.StationID) })
	var want []gbfs.Station
	for _, in := range infos {
		s, ok := last[in.StationID]
		if !ok {
			t.Fatalf("the fake served no status for station %s", in.StationID)
		}
		want = append(want, gbfs.Station{StationID: in.StationID, Name: in.Name, Lat: in.Lat, Lon: in.Lon, Capacity: in.Capacity,
			Bikes: s.NumBikesAvailable, Docks: s.NumDocksAvailable, Installed: s.IsInstalled, Renting: s.IsRenting, Returning: s.IsReturning,
			LastReported: s.LastReported.UTC()})
	}
	got := p.Stations()
	if len(got) != stations {
		t.Fatalf("%d stations, want %d", len(got), stations)
	}
	for i := range got {
		if !got[i].LastReported.Equal(want[i].LastReported) {
			t.Errorf("station %s last reported %v, want %v", got[i].StationID, got[i].LastReported, want[i].LastReported)
		}
		g, w := got[i], want[i]
		g.LastReported, w.LastReported = time.Time{}, time.Time{}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("station %d:\n got %+v\nwant %+v", i, g, w)
		}
	}

	stored := storedChanges(t, h)
	changes := p.LatestChanges(1_000_000)
	if len(stored) == 0 || int64(len(changes)) != p.Counters().Changes {
		t.Fatalf("%d changes kept, %d stored, %d counted", len(changes), len(stored), p.Counters().Changes)
	}
	kept := map[string]int{}
	newest := map[string]time.Time{}
	for _, c := range changes {
		kept[changeKey(c)]++
		if n, ok := newest[c.StationID]; ok && !c.At.Before(n) {
			t.Errorf("station %s: change at %v listed after one at %v: not newest first", c.StationID, c.At, n)
		}
		newest[c.StationID] = c.At
	}
	if !reflect.DeepEqual(kept, stored) {
		t.Errorf("LatestChanges differs from station_changes:\n kept   %v\n stored %v", kept, stored)
	}
	if few := p.LatestChanges(5); !reflect.DeepEqual(few, changes[:5]) {
		t.Errorf("LatestChanges(5) = %+v, want the first 5 of all: %+v", few, changes[:5])
	}
}

func changeKey(c gbfs.Change) string {
	return fmt.Sprintf("%s %s %s %d>%d %d>%d %s", c.StationID, c.At.UTC().Format(time.RFC3339Nano), c.PreviousAt.UTC().Format(time.RFC3339Nano),
		c.BikesBefore, c.BikesAfter, c.DocksBefore, c.DocksAfter, c.Kind)
}

// storedChanges counts station_changes' rows by changeKey.
func storedChanges(t *testing.T, h *harness) map[string]int {
	t.Helper()
	rows, err := h.pool.Query(context.Background(),
		`SELECT station_id, at, previous_at, bikes_before, bikes_after, docks_before, docks_after, kind FROM station_changes`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var c gbfs.Change
		if err := rows.Scan(&c.StationID, &c.At, &c.PreviousAt, &c.BikesBefore, &c.BikesAfter, &c.DocksBefore, &c.DocksAfter, &c.Kind); err != nil {
			t.Fatal(err)
		}
		out[changeKey(c)]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
