package gbfs

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages/postgres/pgtest"
)

// The kinds of change, most significant first, as the processors compute
// them and as the view station_changes_lag does.
func TestChangeKinds(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := []state{
		{bikes: 5, docks: 5, installed: true, renting: true, returning: true},
		{bikes: 4, docks: 6, installed: true, renting: true, returning: true},  // bikes_taken
		{bikes: 4, docks: 6, installed: true, renting: true, returning: true},  // no change
		{bikes: 6, docks: 4, installed: true, renting: true, returning: true},  // bikes_returned
		{bikes: 0, docks: 10, installed: true, renting: true, returning: true}, // became_empty
		{bikes: 10, docks: 0, installed: true, renting: true, returning: true}, // became_full
		{bikes: 10, docks: 0, installed: true},                                 // went_offline
		{bikes: 10, docks: 0},                                                  // status_changed
		{bikes: 9, docks: 0},                                                   // bikes_taken, still offline
		{bikes: 9, docks: 1, installed: true, renting: true, returning: true},  // back_online
		{bikes: 9, docks: 0, installed: true, renting: true, returning: true},  // became_full
		{bikes: 9, docks: 1, installed: true, renting: true, returning: true},  // docks_changed
	}
	want := []string{ChangeBikesTaken, ChangeBikesReturned, ChangeBecameEmpty, ChangeBecameFull,
		ChangeWentOffline, ChangeStatusChanged, ChangeBikesTaken, ChangeBackOnline, ChangeBecameFull, ChangeDocksChanged}
	var kinds []string
	for i := range rows {
		rows[i].at = at.Add(time.Duration(i) * time.Minute)
		if i > 0 {
			if c := diff("X", rows[i-1], rows[i]); c != nil {
				kinds = append(kinds, c.Kind)
			}
		}
	}
	if !slices.Equal(kinds, want) {
		t.Errorf("processors' kinds %v, want %v", kinds, want)
	}

	pool, _ := pgtest.Schema(t)
	ctx := context.Background()
	for _, st := range Schema {
		if _, err := pool.Exec(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO station_status (station_id, last_reported, num_bikes_available,
			num_docks_available, is_installed, is_renting, is_returning) VALUES ('X', $1, $2, $3, $4, $5, $6)`,
			r.at, r.bikes, r.docks, r.installed, r.renting, r.returning); err != nil {
			t.Fatal(err)
		}
	}
	res, err := pool.Query(ctx, `SELECT kind FROM station_changes_lag ORDER BY at`)
	if err != nil {
		t.Fatal(err)
	}
	var viewKinds []string
	for res.Next() {
		var k string
		if err := res.Scan(&k); err != nil {
			t.Fatal(err)
		}
		viewKinds = append(viewKinds, k)
	}
	if !slices.Equal(viewKinds, want) {
		t.Errorf("view's kinds %v, want %v", viewKinds, want)
	}
}
