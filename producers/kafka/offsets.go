package kafka

import "sort"

// partKey names a partition.
type partKey struct {
	topic     string
	partition int32
}

// partState tracks one assigned partition's messages in flight and the
// offset a commit may store: the contiguous watermark of what is done.
//
// A message is done when it succeeded or failed dead-lettered. A message
// that failed without being dead-lettered is stuck: the watermark stops at
// it for the rest of the assignment (the partition's next owner, or this
// member after a restart, reads it again), and the messages after it are
// only counted as they finish.
type partState struct {
	gen       uint64
	inflight  []entry // emitted, in offset order; inflight[head:] are live
	head      int
	next      int64 // offset to commit: after the last of the done prefix; -1 if none yet
	committed int64 // last offset committed, -1 if none
	// stuck is the offset of the first message that failed without being
	// dead-lettered, -1 if none; next never moves past it.
	stuck int64
}

// entry is one emitted message's state.
type entry struct {
	offset int64
	state  uint8
}

// The states of an entry.
const (
	stPending uint8 = iota // in the topology
	stDone                 // succeeded, or failed and dead-lettered
	stFailed               // failed without being dead-lettered
)

func newPartState(gen uint64) *partState {
	return &partState{gen: gen, next: -1, committed: -1, stuck: -1}
}

func (p *partState) live() []entry { return p.inflight[p.head:] }

// pending counts the live entries still in the topology.
func (p *partState) pending() int {
	n := 0
	for _, e := range p.live() {
		if e.state == stPending {
			n++
		}
	}
	return n
}

// finish records the outcome of the message at offset: done, or failed
// (stuck). It moves next past the done prefix, up to the first stuck
// offset, and reports false if the offset is not in flight (an ack twice,
// or late).
func (p *partState) finish(offset int64, state uint8) bool {
	live := p.live()
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	if i == len(live) || live[i].offset != offset || live[i].state != stPending {
		return false
	}
	live[i].state = state
	for p.head < len(p.inflight) && p.inflight[p.head].state != stPending {
		e := p.inflight[p.head]
		if e.state == stFailed && p.stuck < 0 {
			p.stuck = e.offset
			p.next = e.offset
		}
		if p.stuck < 0 {
			p.next = e.offset + 1
		}
		p.head++
	}
	if p.head == len(p.inflight) {
		p.inflight, p.head = p.inflight[:0], 0
	} else if p.head > 1024 && p.head > len(p.inflight)/2 {
		n := copy(p.inflight, p.inflight[p.head:])
		p.inflight, p.head = p.inflight[:n], 0
	}
	return true
}

// cut forgets the entries from offset on (messages the topology never
// took).
func (p *partState) cut(offset int64) {
	live := p.live()
	if j := sort.Search(len(live), func(j int) bool { return live[j].offset >= offset }); j < len(live) {
		p.inflight = p.inflight[:p.head+j]
	}
}
