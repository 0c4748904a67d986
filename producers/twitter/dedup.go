package twitter

import (
	"hash/maphash"
	"strconv"
	"sync"
)

// dedup remembers the last n tweet ids.
type dedup struct {
	mu   sync.Mutex
	set  map[uint64]struct{}
	ring []uint64
	next int
	full bool
}

var dedupSeed = maphash.MakeSeed()

func newDedup(n int) *dedup {
	return &dedup{set: make(map[uint64]struct{}, n), ring: make([]uint64, n)}
}

// seen reports whether id is in the window, and adds it if not.
func (d *dedup) seen(id string) bool {
	k, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		k = maphash.String(dedupSeed, id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.set[k]; ok {
		return true
	}
	if d.full {
		delete(d.set, d.ring[d.next])
	}
	d.ring[d.next] = k
	d.set[k] = struct{}{}
	d.next++
	if d.next == len(d.ring) {
		d.next, d.full = 0, true
	}
	return false
}
