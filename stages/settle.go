package stages

import (
	"context"
	"fmt"
)

// settler acknowledges messages: it resolves fan-out copies, shows failures
// to HandleFailed, groups messages by acknowledger and calls each once. Each
// goroutine that acknowledges owns one, for its scratch space.
type settler[T any] struct {
	e            *Engine[T]
	ok, failed   []*Message[T]
	gok, gfailed []*Message[T]
	ackers       []Acknowledger[T]
}

func (s *settler[T]) init(e *Engine[T]) { s.e = e }

// settle acknowledges msgs. Messages that are one of several fan-out copies
// count only when they are the last copy to finish. bs, if not nil, gets the
// outcome of every copy.
func (s *settler[T]) settle(ctx context.Context, msgs []*Message[T], bs *batcher[T]) {
	if len(msgs) == 0 {
		return
	}
	nfail, skipped := 0, false
	first := msgs[0].Acker
	same := true
	copiesFailed := 0
	for _, m := range msgs {
		if m.err != nil {
			copiesFailed++
		}
		if m.fan != nil {
			last, final := m.fan.done(m.err)
			m.fan = nil
			if !last {
				m.slot = -1
				skipped = true
				continue
			}
			if m.err == nil && final != nil {
				m.err = final
			}
		}
		m.slot = 0
		if m.err != nil {
			nfail++
		}
		if same && m.Acker != first {
			same = false
		}
	}
	if bs != nil {
		bs.failed.Add(int64(copiesFailed))
		bs.acked.Add(int64(len(msgs) - copiesFailed))
	}
	if !skipped && nfail == 0 && same {
		if first != nil {
			s.ack(first, msgs, nil)
		}
		s.e.acked.Add(int64(len(msgs)))
		return
	}

	ok, failed := s.ok[:0], s.failed[:0]
	for _, m := range msgs {
		switch {
		case m.slot < 0:
			m.slot = 0
		case m.err != nil:
			failed = append(failed, m)
		default:
			ok = append(ok, m)
		}
	}
	if len(failed) > 0 && s.e.cfg.HandleFailed != nil {
		s.handleFailed(ctx, failed)
	}
	s.group(ok, failed)
	s.e.acked.Add(int64(len(ok)))
	s.e.failed.Add(int64(len(failed)))
	clear(ok)
	clear(failed)
	s.ok, s.failed = ok[:0], failed[:0]
}

// group calls each acknowledger once with its share of ok and failed.
func (s *settler[T]) group(ok, failed []*Message[T]) {
	ackers := s.ackers[:0]
	seen := func(a Acknowledger[T]) bool {
		for _, x := range ackers {
			if x == a {
				return true
			}
		}
		return false
	}
	for _, list := range [2][]*Message[T]{ok, failed} {
		for i := range list {
			if a := list[i].Acker; a != nil && !seen(a) {
				ackers = append(ackers, a)
			}
		}
	}
	if len(ackers) == 1 {
		s.ack(ackers[0], ok, failed)
	} else {
		for _, a := range ackers {
			gok, gfailed := s.gok[:0], s.gfailed[:0]
			for i := range ok {
				if ok[i].Acker == a {
					gok = append(gok, ok[i])
				}
			}
			for i := range failed {
				if failed[i].Acker == a {
					gfailed = append(gfailed, failed[i])
				}
			}
			s.ack(a, gok, gfailed)
			clear(gok)
			clear(gfailed)
			s.gok, s.gfailed = gok[:0], gfailed[:0]
		}
	}
	clear(ackers)
	s.ackers = ackers[:0]
}

func (s *settler[T]) ack(a Acknowledger[T], ok, failed []*Message[T]) {
	defer func() {
		if v := recover(); v != nil {
			s.e.cfg.Logger.Error("stages: acknowledger panicked; its messages count as acknowledged",
				"topology", s.e.cfg.Name, "acknowledger", fmt.Sprintf("%T", a),
				"successful", len(ok), "failed", len(failed), "panic", v)
		}
	}()
	a.Ack(ok, failed)
}

func (s *settler[T]) handleFailed(ctx context.Context, failed []*Message[T]) {
	defer func() {
		if v := recover(); v != nil {
			s.e.cfg.Logger.Error("stages: HandleFailed panicked; the messages are still acknowledged as failed",
				"topology", s.e.cfg.Name, "failed", len(failed), "panic", v)
		}
	}()
	s.e.cfg.HandleFailed(ctx, failed)
	// HandleFailed may not un-fail a message: it is acknowledged as failed.
	for i := range failed {
		if failed[i].err == nil {
			failed[i].err = ErrFailed
		}
	}
}
