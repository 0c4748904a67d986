package core

import "time"

// batchPolicy is a batcher's batching rules, apart from the goroutines and
// locks that apply them: when a message starts a new batch, how many of a
// run of messages join one, when a batch is closed and why, and when a
// partial batch is due. The batcher keeps one open batch per batch key (and
// partition) and asks the policy about each.
type batchPolicy struct {
	size    int           // BatchSize: messages, or summed sizes when sized
	sized   bool          // a SizeFunc measures messages
	timeout time.Duration // BatchTimeout, from a batch's first message
}

// fill is what an open batch holds: n messages whose sizes add up to size
// (size == n without a SizeFunc).
type fill struct{ n, size int }

// overflows reports whether a message of the given size must start a new
// batch rather than join f: only a sized batch that already holds something
// and would go over BatchSize with it. A message bigger than BatchSize
// alone still makes a batch of one.
func (p batchPolicy) overflows(f fill, size int) bool {
	return p.sized && f.n > 0 && f.size+size > p.size
}

// room is how many more unsized messages f takes.
func (p batchPolicy) room(f fill) int { return max(0, p.size-f.n) }

// closes reports whether f, having just taken a message that asked to
// flush its batch (flush) or not, is to be handed over now, and with which
// trigger.
func (p batchPolicy) closes(f fill, flush bool) (Trigger, bool) {
	switch {
	case f.size >= p.size:
		return TriggerSize, true
	case flush:
		return TriggerFlush, true
	}
	return 0, false
}

// deadline is when a batch whose first message came at first is due.
func (p batchPolicy) deadline(first time.Time) time.Time { return first.Add(p.timeout) }

// due reports whether a batch with that deadline is due at now.
func (p batchPolicy) due(deadline, now time.Time) bool { return !deadline.After(now) }
