package topology_test

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/causeway-go/causeway/stages"
)

const (
	outOK = iota
	outFail
	outUnknown
)

// expect is the outcome message id must be acknowledged with, from what
// its handlers did, and, when a copy never reached a handler, which batcher
// lost it (-1 if none).
func (r *propRun) expect(id int) (out int, lostIn int) {
	f := &r.c.fates[id]
	if f.preFail || f.partPnc {
		// Failed by its producer, or by the processor PartitionBy panicking
		// (DESIGN 3a: the panic becomes the message's failure).
		return outFail, -1
	}
	if r.procSeen[id] == 0 {
		return outUnknown, -1
	}
	if r.procFailed[id] {
		return outFail, -1
	}
	out, lostIn = outOK, -1
	for _, bi := range r.forwardTo[id] {
		switch fail, known := r.copyOutcome(bi, id); {
		case !known:
			if out != outFail {
				out = outUnknown
			}
			lostIn = bi
		case fail:
			out = outFail
		}
	}
	return out, lostIn
}

// copyOutcome is whether message id's copy in batcher bi failed, and
// whether that is known.
func (r *propRun) copyOutcome(bi, id int) (failed, known bool) {
	f := &r.c.fates[id]
	if f.sizePnc[bi] || f.bpartPnc[bi] {
		return true, true // the SizeFunc or PartitionBy panic fails it
	}
	co := r.copies[bi][id]
	if co == nil {
		return false, false
	}
	return co.failed, true
}

// check compares what was observed with the core's promises and returns
// every violation.
func (r *propRun) check() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stalled {
		return r.problems
	}
	c, s := r.c, r.final
	bad := r.problemLocked
	timedOut := errors.Is(r.runErr, stages.ErrShutdownTimeout)
	r.checkRun(timedOut)

	// What was emitted and dropped.
	emitted := map[int]bool{}
	for id, n := range r.taken {
		emitted[id] = true
		if n > 1 {
			bad("message %d taken %d times", id, n)
		}
	}
	if s.Producer.Emitted != int64(len(emitted)) {
		bad("Stats.Producer.Emitted = %d, producers had %d messages taken", s.Producer.Emitted, len(emitted))
	}
	for id, n := range r.dropped {
		if n > 1 || !emitted[id] {
			bad("OnDrop saw message %d %d times (emitted: %v)", id, n, emitted[id])
		}
	}
	if int64(len(r.dropped)) != s.Dropped {
		bad("OnDrop saw %d messages, Stats.Dropped = %d", len(r.dropped), s.Dropped)
	}
	if c.hooks && int64(r.dropEvents) != s.Dropped {
		bad("Drop hook counted %d messages, Stats.Dropped = %d", r.dropEvents, s.Dropped)
	}
	allPull := true
	for _, p := range c.prods {
		allPull = allPull && !p.push
	}
	if allPull && s.Dropped != 0 {
		bad("pull producers emit only what was asked for, yet %d messages were dropped", s.Dropped)
	}

	// Every message: processed at most once, acknowledged exactly once (or
	// dropped) with the outcome its handlers gave it.
	for id := range r.procSeen {
		if n := r.procSeen[id]; n > 1 || !emitted[id] || r.dropped[id] > 0 {
			bad("message %d processed %d times (emitted %v, dropped %v)", id, n, emitted[id], r.dropped[id] > 0)
		}
	}
	for id := range r.acked {
		if !emitted[id] {
			bad("message %d acknowledged but never emitted", id)
		}
	}
	wantFailed, wantOK := 0, 0
	for _, id := range sortedIDs(emitted) {
		f := &c.fates[id]
		n, hf := r.acked[id], r.hf[id]
		if r.dropped[id] > 0 {
			if n > 0 || hf > 0 {
				bad("message %d was dropped and acknowledged (%d) / seen by HandleFailed (%d)", id, n, hf)
			}
			continue
		}
		if n > 1 {
			bad("message %d acknowledged %d times", id, n)
		}
		if hf > 1 {
			bad("HandleFailed saw message %d %d times", id, hf)
		}
		want, lostIn := r.expect(id)
		if want == outUnknown {
			if !timedOut {
				if lostIn >= 0 {
					bad("message %d: its copy for batcher %q never reached a batch handler (acked %d)", id, c.batchers[lostIn].name, n)
				} else {
					bad("message %d never reached a processor (acked %d)", id, n)
				}
			}
			continue
		}
		if want == outFail {
			wantFailed++
		} else {
			wantOK++
		}
		if f.acker >= 0 {
			switch {
			case n == 0 && !timedOut:
				bad("message %d (acknowledger %d) never acknowledged; want %s", id, f.acker, outName(want))
			case n == 1 && r.ackFailed[id] != (want == outFail):
				bad("message %d acknowledged as %s, want %s (%s)", id, outName(b2out(r.ackFailed[id])), outName(want), r.whyLocked(id))
			}
		}
		if c.handleFail && (n == 1 || f.acker < 0) && !timedOut && (hf == 1) != (want == outFail) {
			bad("HandleFailed saw message %d %d times, want it %s (%s)", id, hf, outName(want), r.whyLocked(id))
		}
	}

	if timedOut {
		if s.Producer.Emitted != s.Acked+s.Failed+s.Dropped+s.InFlight || s.InFlight < 0 {
			bad("conservation: emitted %d != acked %d + failed %d + dropped %d + in flight %d", s.Producer.Emitted, s.Acked, s.Failed, s.Dropped, s.InFlight)
		}
	} else {
		r.checkStats(len(emitted), wantOK, wantFailed)
	}
	r.checkOrder()
	r.checkRate()
	return r.problems
}

func outName(o int) string { return [...]string{"ok", "failed", "unknown"}[o] }

func b2out(failed bool) int {
	if failed {
		return outFail
	}
	return outOK
}

// whyLocked explains a message's expected outcome.
func (r *propRun) whyLocked(id int) string {
	f := &r.c.fates[id]
	s := fmt.Sprintf("preFail %v, partition panic %v, processed %d, processor failed %v, routed to %v", f.preFail, f.partPnc, r.procSeen[id], r.procFailed[id], r.forwardTo[id])
	for _, bi := range r.forwardTo[id] {
		fail, known := r.copyOutcome(bi, id)
		s += fmt.Sprintf("; %q: failed %v known %v", r.c.batchers[bi].name, fail, known)
		if co := r.copies[bi][id]; co != nil {
			s += fmt.Sprintf(" (attempts to %d)", co.last)
		}
	}
	return s
}

func sortedIDs(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Ints(out)
	return out
}

// checkRun checks Run's error and how long it took.
func (r *propRun) checkRun(timedOut bool) {
	bad := r.problemLocked
	drainStart := r.cancelledAt
	if r.prodFailAt >= 0 && (drainStart < 0 || r.prodFailAt < drainStart) {
		drainStart = r.prodFailAt
	}
	switch {
	case r.prodFailed && r.runErr == nil:
		bad("a producer failed, Run returned nil")
	case r.prodErrSeen && !errors.Is(r.runErr, errProducer):
		bad("a producer returned %v, Run returned %v", errProducer, r.runErr)
	case !r.prodFailed && !timedOut && r.runErr != nil:
		bad("Run returned %v; no producer failed and the drain did not time out", r.runErr)
	}
	if timedOut {
		if drainStart < 0 {
			bad("Run timed out, but its context was never cancelled and no producer failed: %v", r.runErr)
		} else if took := r.runAt - drainStart; took < r.shutdown() {
			bad("Run reported a shutdown timeout %v after the drain began, ShutdownTimeout is %v", took, r.shutdown())
		}
	}
	if drainStart >= 0 {
		if took := r.runAt - drainStart; took > r.shutdown()+propGrace {
			bad("Run returned %v after the drain began; ShutdownTimeout %v + grace %v", took, r.shutdown(), propGrace)
		}
	}
	if r.closedRun > 0 && !timedOut {
		bad("%d messages a running producer had read were refused with ErrClosed", r.closedRun)
	}
}

// checkStats checks the Stats snapshot after a clean drain.
func (r *propRun) checkStats(emitted, wantOK, wantFailed int) {
	c, s := r.c, r.final
	bad := r.problemLocked
	delivered := int64(emitted) - s.Dropped
	if s.InFlight != 0 || s.Acked+s.Failed != delivered {
		bad("Stats: acked %d + failed %d != emitted %d - dropped %d (in flight %d)", s.Acked, s.Failed, emitted, s.Dropped, s.InFlight)
	}
	if s.Acked != int64(wantOK) || s.Failed != int64(wantFailed) {
		bad("Stats: acked %d, failed %d; handlers made %d ok, %d failed", s.Acked, s.Failed, wantOK, wantFailed)
	}
	if pre := countPrefailed(r); s.Processors.Received != delivered {
		bad("Stats.Processors.Received = %d, want %d (%d failed before processing)", s.Processors.Received, delivered, pre)
	}
	if s.Processors.Failed != int64(r.procFails) {
		bad("Stats.Processors.Failed = %d, handlers failed %d (errors, m.Fail, panics, unknown routes)", s.Processors.Failed, r.procFails)
	}
	if s.Processors.Panics != int64(r.procPanics) {
		bad("Stats.Processors.Panics = %d, handlers panicked %d times", s.Processors.Panics, r.procPanics)
	}
	copies := make([]int, len(c.batchers))
	total := 0
	for _, to := range r.forwardTo {
		for _, bi := range to {
			copies[bi]++
			total++
		}
	}
	if s.Processors.Forwarded != int64(total) {
		bad("Stats.Processors.Forwarded = %d, handlers routed %d copies", s.Processors.Forwarded, total)
	}
	if len(s.Batchers) != len(c.batchers) {
		bad("Stats has %d batchers, want %d", len(s.Batchers), len(c.batchers))
		return
	}
	calls := 0
	for bi, bs := range s.Batchers {
		name := c.batchers[bi].name
		if bs.Name != name {
			bad("Stats.Batchers[%d] is %q, want %q", bi, bs.Name, name)
			continue
		}
		failed := 0
		for id, to := range r.forwardTo {
			for _, b := range to {
				if b == bi {
					if f, _ := r.copyOutcome(bi, id); f {
						failed++
					}
				}
			}
		}
		calls += r.calls[bi]
		if bs.Received != int64(copies[bi]) || bs.Pending != 0 || bs.Acked+bs.Failed != bs.Received || bs.Failed != int64(failed) {
			bad("batcher %q: received %d, pending %d, acked %d, failed %d; want %d received, %d failed", name,
				bs.Received, bs.Pending, bs.Acked, bs.Failed, copies[bi], failed)
		}
		if bs.Batches != int64(r.calls[bi]) || bs.BatchesFailed != int64(r.failedCalls[bi]) || bs.Retries != int64(r.retryCalls[bi]) || bs.Missing != int64(r.missing[bi]) {
			bad("batcher %q: batches %d (failed %d, retries %d, missing %d); handlers saw %d calls (%d failed, %d retries, %d left out)", name,
				bs.Batches, bs.BatchesFailed, bs.Retries, bs.Missing, r.calls[bi], r.failedCalls[bi], r.retryCalls[bi], r.missing[bi])
		}
	}
	if c.hooks {
		if r.procStart != c.procs || r.procStop != c.procs {
			bad("hooks: %d ProcessorStart, %d ProcessorStop, want %d each", r.procStart, r.procStop, c.procs)
		}
		if r.batchStart != calls || r.batchStop != calls {
			bad("hooks: %d BatchStart, %d BatchStop, want one per handler call (%d)", r.batchStart, r.batchStop, calls)
		}
	}
}

func countPrefailed(r *propRun) int {
	n := 0
	for id := range r.taken {
		if f := &r.c.fates[id]; f.preFail || f.partPnc {
			n++
		}
	}
	return n
}

// checkOrder checks per-key order: messages of one key from one producer
// are handled in the order it emitted them, by processors when one
// processor sees the whole key, and by each batcher when one batch
// processor does as well.
func (r *propRun) checkOrder() {
	c := r.c
	inOrder := func(stage string, seqs [][]int, skip func(id int) bool) {
		for w, seq := range seqs {
			last := map[[2]int]int{}
			for _, id := range seq {
				if skip(id) {
					continue
				}
				f := &c.fates[id]
				k := [2]int{r.prodOf(id), f.key}
				if prev, ok := last[k]; ok && prev > id {
					r.problemLocked("%s %d: key %d of producer %d out of order: %d after %d", stage, w, f.key, k[0], id, prev)
				}
				last[k] = id
			}
		}
	}
	procOrdered := c.procPart || c.procs == 1
	if !procOrdered {
		return
	}
	inOrder("processor", r.procOrder, func(id int) bool { return c.fates[id].partPnc })
	for bi, bp := range c.batchers {
		if !bp.part && bp.conc > 1 {
			continue
		}
		inOrder(fmt.Sprintf("batcher %q batch processor", bp.name), r.batchOrder[bi], func(id int) bool {
			f := &c.fates[id]
			return f.partPnc || f.sizePnc[bi] || f.bpartPnc[bi]
		})
	}
}

func (r *propRun) prodOf(id int) int {
	for g, p := range r.c.prods {
		if len(p.ids) > 0 && id >= p.ids[0] && id <= p.ids[len(p.ids)-1] {
			for _, x := range p.ids {
				if x == id {
					return g
				}
			}
		}
	}
	return -1
}

// checkRate checks that no more messages reached the processors than the
// rate limit in force let out, until the drain lifted it. Handler start
// times lag the take by at most what processors hold, MaxDemand each.
func (r *propRun) checkRate() {
	c := r.c
	end := r.runAt
	if r.cancelledAt >= 0 {
		end = r.cancelledAt
	}
	if r.prodFailAt >= 0 && r.prodFailAt < end {
		end = r.prodFailAt
	}
	type phase struct {
		from, to time.Duration
		limit    stages.RateLimit
	}
	phases := []phase{{0, end, c.rate}}
	if r.rateSetAt >= 0 && r.rateSetAt < end {
		phases = []phase{{0, r.rateSetAt, c.rate}, {r.rateSetAt, end, c.rateNew}}
	}
	for _, p := range phases {
		if !p.limit.Enabled() || p.to <= p.from {
			continue
		}
		n := 0
		for _, at := range r.procTimes {
			if at >= p.from && at < p.to {
				n++
			}
		}
		if os.Getenv("PROP_DEBUG") != "" {
			hist := map[time.Duration]int{}
			for _, at := range r.procTimes {
				hist[at.Truncate(p.limit.Interval)]++
			}
			fmt.Println("DEBUG", hist)
		}
		windows := int((p.to-p.from)/p.limit.Interval) + 2
		if most := p.limit.Messages*windows + c.procs*c.maxD; n > most {
			r.problemLocked("rate limit %d per %v from %v to %v: %d messages handled, at most %d could be",
				p.limit.Messages, p.limit.Interval, p.from, p.to, n, most)
		}
	}
}
