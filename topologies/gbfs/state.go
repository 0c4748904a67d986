package gbfs

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	spec "github.com/causeway-go/causeway/gbfs"
)

// tracker keeps each station's last stored state, so the processors can
// drop re-sent rows and compute the change log as rows flow. Processors are
// partitioned by station, so one station's rows are seen in order by one
// goroutine; the shards only keep different stations from contending.
type tracker struct {
	pool   *pgxpool.Pool
	seed   maphash.Seed
	shards [64]shard
}

type shard struct {
	mu      sync.Mutex
	last    map[string]state
	stale   map[string]bool // last state to be re-read from Postgres
	changes map[string]int64
	info    map[string]spec.StationInformation // for Stations
}

func newTracker(pool *pgxpool.Pool) *tracker {
	t := &tracker{pool: pool, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i] = shard{last: map[string]state{}, stale: map[string]bool{}, changes: map[string]int64{},
			info: map[string]spec.StationInformation{}}
	}
	return t
}

func (t *tracker) shard(id string) *shard {
	return &t.shards[maphash.String(t.seed, id)%uint64(len(t.shards))]
}

// lastStatesQuery reads every station's newest stored row: the state the
// change log continues from after a restart.
const lastStatesQuery = `SELECT DISTINCT ON (station_id) station_id, last_reported, num_bikes_available, num_docks_available,
	is_installed, is_renting, is_returning FROM station_status %s ORDER BY station_id, last_reported DESC`

// load reads every station's last stored state; it returns how many.
func (t *tracker) load(ctx context.Context) (int, error) {
	rows, err := t.pool.Query(ctx, fmt.Sprintf(lastStatesQuery, ""))
	if err != nil {
		return 0, fmt.Errorf("gbfs: read the stations' last states from station_status: %w", err)
	}
	n := 0
	for rows.Next() {
		id, s, err := scanState(rows)
		if err != nil {
			return n, fmt.Errorf("gbfs: read the stations' last states from station_status: %w", err)
		}
		sh := t.shard(id)
		sh.mu.Lock()
		sh.last[id] = s
		sh.mu.Unlock()
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("gbfs: read the stations' last states from station_status: %w", err)
	}
	return n, nil
}

func scanState(row pgx.Row) (string, state, error) {
	var id string
	var s state
	err := row.Scan(&id, &s.at, &s.bikes, &s.docks, &s.installed, &s.renting, &s.returning)
	s.at = s.at.UTC()
	return id, s, err
}

// reload re-reads one station's last stored state; ok is false if none is
// stored.
func (t *tracker) reload(ctx context.Context, id string) (s state, ok bool, err error) {
	_, s, err = scanState(t.pool.QueryRow(ctx, fmt.Sprintf(lastStatesQuery, "WHERE station_id = $1"), id))
	if errors.Is(err, pgx.ErrNoRows) {
		return state{}, false, nil
	}
	if err != nil {
		return state{}, false, fmt.Errorf("gbfs: re-read station %q's last state: %w", id, err)
	}
	return s, true, nil
}

// verdict is what observe decided about a row.
type verdict uint8

const (
	verdictNew   verdict = iota // newer than the station's last row: store it
	verdictSame                 // the station's last row again (re-sent)
	verdictOlder                // older than the station's last row
)

// observe compares a status row with its station's last one: a row whose
// last_reported did not move is not stored (verdictSame or verdictOlder);
// a newer one becomes the station's last, with the change from the
// previous one (nil if the state is the same, or for a first row).
func (t *tracker) observe(ctx context.Context, s spec.StationStatus) (*Change, verdict, error) {
	sh := t.shard(s.StationID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	last, ok := sh.last[s.StationID]
	if sh.stale[s.StationID] {
		var err error
		if last, ok, err = t.reload(ctx, s.StationID); err != nil {
			return nil, 0, err
		}
		delete(sh.stale, s.StationID)
	}
	cur := stateOf(s)
	if ok && !cur.at.After(last.at) {
		if cur.at.Equal(last.at) {
			return nil, verdictSame, nil
		}
		return nil, verdictOlder, nil
	}
	sh.last[s.StationID] = cur
	var ch *Change
	if ok {
		if ch = diff(s.StationID, last, cur); ch != nil {
			sh.changes[s.StationID]++
		}
	}
	return ch, verdictNew, nil
}

// forget marks stations whose rows Postgres did not take: their last state
// is re-read from Postgres before their next row is compared.
func (t *tracker) forget(ids []string) {
	for _, id := range ids {
		sh := t.shard(id)
		sh.mu.Lock()
		sh.stale[id] = true
		sh.mu.Unlock()
	}
}

// StationChanges is how many changes one station had in a run.
type StationChanges struct {
	StationID string `json:"station_id"`
	Changes   int64  `json:"changes"`
}

// top returns the n stations with the most changes this run, most first
// (ties by id).
func (t *tracker) top(n int) []StationChanges {
	var all []StationChanges
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, c := range sh.changes {
			all = append(all, StationChanges{id, c})
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(all, func(a, b StationChanges) int {
		if a.Changes != b.Changes {
			return int(b.Changes - a.Changes)
		}
		if a.StationID < b.StationID {
			return -1
		}
		return 1
	})
	if len(all) > n {
		all = all[:n]
	}
	return all
}
