package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topologies/gbfs"
)

// runGBFSBinary runs causeway gbfs in-process and returns its status,
// stderr and summary.
func runGBFSBinary(t *testing.T, args ...string) (int, string, gbfsSummary) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "summary.json")
	args = append([]string{"gbfs"}, append(args, "-summary-json", path, "-progress", "0", "-log-level", "warn")...)
	var stdout, stderr syncBuffer
	env := func(string) (string, bool) { return "", false }
	status := run(context.Background(), args, env, &stdout, &stderr, make(chan os.Signal), nil)
	var sum gbfsSummary
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &sum); err != nil {
			t.Fatalf("summary JSON: %v", err)
		}
	}
	return status, stderr.String(), sum
}

// causeway gbfs on the embedded fake system, twice on one database (the
// second run continues the change log from the states the first stored):
// every status row once, Kafka has what Postgres has, and the change log
// equals the LAG view.
func TestGBFSEmbedded(t *testing.T) {
	pool, schema := pgtest.Schema(t)
	db := withSearchPath(pgtest.URL(t), schema)
	args := []string{"-database-url", db, "-max-polls", "3", "-poll-interval", "1s", "-fake-ttl", "1s", "-fake-stations", "80"}
	var rows, changes int64
	for i := range 2 {
		status, stderr, sum := runGBFSBinary(t, args...)
		if status != 0 {
			t.Fatalf("run %d: exit %d\n%s", i+1, status, tail(stderr, 2000))
		}
		if sum.Polls < 3 || sum.StationRowsNew == 0 || sum.KafkaRecords != sum.RowsNew || sum.StationRowsNew != sum.RowsNew ||
			sum.Stations != 80 || sum.Failed != 0 || sum.Acked+sum.Failed+sum.Dropped != sum.RowsEmitted+sum.Unfinished {
			t.Errorf("run %d: summary %+v", i+1, sum)
		}
		if i == 1 && sum.Restored != 80 {
			t.Errorf("run 2 restored %d stations, want 80", sum.Restored)
		}
		rows += sum.StationRowsNew
		changes += sum.ChangesRecorded
	}
	ctx := context.Background()
	var n, distinct, logged, diff int64
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT (station_id, last_reported)) FROM station_status`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != rows || distinct != n {
		t.Errorf("station_status: %d rows (%d distinct), the summaries say %d", n, distinct, rows)
	}
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM station_changes),
		(SELECT count(*) FROM (SELECT * FROM station_changes EXCEPT ALL SELECT * FROM station_changes_lag
			UNION ALL (SELECT * FROM station_changes_lag EXCEPT ALL SELECT * FROM station_changes)) x)`).Scan(&logged, &diff); err != nil {
		t.Fatal(err)
	}
	if logged != changes || diff != 0 {
		t.Errorf("station_changes: %d rows (the summaries say %d), %d differ from the LAG view", logged, changes, diff)
	}
}

func TestGBFSFlags(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseGBFSConfig([]string{"-h"}, nil, &stderr); err == nil {
		t.Fatal("-h did not stop")
	}
	for _, f := range []string{"-feed-url", "-database-url", "DATABASE_URL", "-kafka-brokers", "-kafka-topic", "-poll-interval",
		"-duration", "-max-polls", "-progress", "-summary-json", "-metrics-addr", "-log-level"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("causeway gbfs -h does not mention %s", f)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-database-url (or $DATABASE_URL) is required"},
		{[]string{"-database-url", "postgres://x/y", "-feed-url", "ftp://x/gbfs.json"}, `-feed-url "ftp://x/gbfs.json": want an http:// or https:// URL`},
		{[]string{"-database-url", "postgres://x/y", "-poll-interval", "10ms"}, "-poll-interval must be 0 (the feed's ttl) or at least 1s, got 10ms"},
		{[]string{"-database-url", "postgres://x/y", "-max-polls", "-1"}, "-max-polls must be >= 0, got -1"},
		{[]string{"-database-url", "postgres://x/y", "-fake-version", "4.0"}, `-fake-version must be 2.3 or 3.0, got "4.0"`},
	} {
		_, err := parseGBFSConfig(tc.args, func(string) (string, bool) { return "", false }, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	status, out, _ := runGBFSBinary(t, "-database-url", "postgres://x/y", "-max-polls", "x")
	if status != 2 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "-max-polls") {
		t.Errorf("a bad flag: exit %d, stderr %q; want 2 and one line naming it (and see -h)", status, out)
	}
}

// The dashboard's table of latest changes names each station as
// station_information describes it, by id when it does not.
func TestGBFSChangeRows(t *testing.T) {
	at := time.Date(2026, 5, 1, 8, 0, 3, 0, time.UTC)
	rows := gbfsChangeRows([]gbfs.Change{
		{StationID: "a", At: at, PreviousAt: at.Add(-3 * time.Second), BikesBefore: 1, BikesAfter: 0, DocksBefore: 9, DocksAfter: 10, Kind: gbfs.ChangeBecameEmpty},
		{StationID: "q", At: at.Add(-time.Second).In(time.FixedZone("CEST", 2*3600)), BikesBefore: 4, BikesAfter: 5, DocksBefore: 2, DocksAfter: 1, Kind: gbfs.ChangeBikesReturned},
	}, []gbfs.Station{{StationID: "a", Name: "Abbey Rd"}, {StationID: "b", Name: "Bridge St"}})
	want := []gbfsChangeRow{
		{At: "2026-05-01 08:00:03 UTC", Station: "Abbey Rd (a)", Kind: "became_empty", Bikes: "1 → 0", Docks: "9 → 10"},
		{At: "2026-05-01 08:00:02 UTC", Station: "q", Kind: "bikes_returned", Bikes: "4 → 5", Docks: "2 → 1"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows\n got %+v\nwant %+v", rows, want)
	}
	if rows := gbfsChangeRows(nil, nil); rows == nil || len(rows) != 0 {
		t.Errorf("no change: %#v, want an empty table", rows)
	}
}
