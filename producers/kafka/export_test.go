package kafka

// IdleTicks counts the poll intervals Run spent without demand.
func (c *Consumer[T]) IdleTicks() int64 { return c.idle.Load() }

// CommitTicks counts Run's periodic commit rounds.
func (c *Consumer[T]) CommitTicks() int64 { return c.commitTicks.Load() }

// Tracker exposes a partition's offset tracking to tests.
type Tracker struct{ p *partState }

// NewTracker returns a tracker with nothing in flight.
func NewTracker() *Tracker { return &Tracker{p: newPartState(1)} }

// Emit records offsets as in flight.
func (t *Tracker) Emit(offsets ...int64) {
	for _, o := range offsets {
		t.p.inflight = append(t.p.inflight, entry{offset: o})
	}
}

// Done marks an offset acknowledged; false if it is not in flight.
func (t *Tracker) Done(offset int64) bool { return t.p.finish(offset, stDone) }

// Fail marks an offset failed without a dead letter; false if it is not in
// flight.
func (t *Tracker) Fail(offset int64) bool { return t.p.finish(offset, stFailed) }

// Next is the offset a commit would store, -1 for none.
func (t *Tracker) Next() int64 { return t.p.next }

// Stuck is the offset the commit is held at, -1 for none.
func (t *Tracker) Stuck() int64 { return t.p.stuck }

// InFlight counts offsets not yet acknowledged or passed.
func (t *Tracker) InFlight() int { return len(t.p.live()) }

// Pending counts offsets still in the topology.
func (t *Tracker) Pending() int { return t.p.pending() }
