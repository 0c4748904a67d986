package gbfs

import (
	"slices"
	"strings"
	"sync"
	"time"

	spec "github.com/causeway-go/causeway/gbfs"
)

// DefaultRecentChanges is how many changes LatestChanges keeps when
// Config.RecentChanges is 0.
const DefaultRecentChanges = 100

// Station is one station as the processors last saw it: its description
// from station_information and the state of its newest status row. It is
// what a map of the system draws.
type Station struct {
	StationID string  `json:"station_id"`
	Name      string  `json:"name"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	// Capacity is the number of docks; 0 when the feed does not say.
	Capacity int `json:"capacity"`
	// Bikes and Docks are the bikes and docks available.
	Bikes     int  `json:"bikes"`
	Docks     int  `json:"docks"`
	Installed bool `json:"installed"`
	Renting   bool `json:"renting"`
	Returning bool `json:"returning"`
	// LastReported is the time of the station's newest status row; zero
	// (and left out of the JSON) while none has been seen, when Bikes,
	// Docks and the flags are zero too.
	LastReported time.Time `json:"last_reported,omitzero"`
}

// Stations returns every station station_information described, sorted by
// id, each with the state of its newest status row: the row the change log
// last compared against (read back from Postgres at start, then as rows
// flow, including rows a sink has yet to store). A station with status rows
// but no description yet is left out: it has no position. Each call copies;
// it is safe for concurrent use.
func (p *Pipeline) Stations() []Station { return p.state.stations() }

// LatestChanges returns the n changes the processors computed most
// recently, newest first: at most Config.RecentChanges of them. They are in
// the order the processors emitted them, which is last_reported order for
// one station but only roughly so across stations. A change whose row a
// sink refused may appear twice: once as first computed, once as computed
// again after the station's last state was read back. Safe for concurrent
// use.
func (p *Pipeline) LatestChanges(n int) []Change { return p.recent.latest(n) }

// describe keeps a station's description for Stations.
func (t *tracker) describe(i spec.StationInformation) {
	sh := t.shard(i.StationID)
	sh.mu.Lock()
	sh.info[i.StationID] = i
	sh.mu.Unlock()
}

// stations joins each described station with its last state.
func (t *tracker) stations() []Station {
	out := []Station{}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, in := range sh.info {
			s := Station{StationID: id, Name: in.Name, Lat: in.Lat, Lon: in.Lon, Capacity: in.Capacity}
			if st, ok := sh.last[id]; ok {
				s.Bikes, s.Docks, s.LastReported = st.bikes, st.docks, st.at
				s.Installed, s.Renting, s.Returning = st.installed, st.renting, st.returning
			}
			out = append(out, s)
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Station) int { return strings.Compare(a.StationID, b.StationID) })
	return out
}

// changeRing keeps the latest changes emitted, up to its capacity.
type changeRing struct {
	mu   sync.Mutex
	buf  []Change // a ring once full; next is the oldest
	next int
}

func newChangeRing(capacity int) *changeRing {
	return &changeRing{buf: make([]Change, 0, capacity)}
}

// add records c, forgetting the oldest change when the ring is full.
func (r *changeRing) add(c Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cap(r.buf) == 0 {
		return
	}
	if len(r.buf) < cap(r.buf) {
		r.buf = append(r.buf, c)
		return
	}
	r.buf[r.next] = c
	r.next = (r.next + 1) % len(r.buf)
}

// latest returns up to n changes, newest first; never nil.
func (r *changeRing) latest(n int) []Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = max(0, min(n, len(r.buf)))
	out := make([]Change, n)
	for i := range out {
		// The newest is just before next (or at the end while filling).
		j := (r.next - 1 - i + 2*len(r.buf)) % len(r.buf)
		out[i] = r.buf[j]
	}
	return out
}
