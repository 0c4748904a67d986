package core

import (
	"context"
	"fmt"
	"reflect"
	"unsafe"
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
	firstID := ackerID(first)
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
		if id := ackerID(m.Acker); same && (id[0] != firstID[0] || id[1] != firstID[1]) && !sameAcker(m.Acker, first) {
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
// Messages without an acknowledger are told to nobody.
func (s *settler[T]) group(ok, failed []*Message[T]) {
	ackers := s.ackers[:0]
	seen := func(a Acknowledger[T]) bool {
		for _, x := range ackers {
			if sameAcker(x, a) {
				return true
			}
		}
		return false
	}
	orphans := false // some message has no acknowledger
	for _, list := range [2][]*Message[T]{ok, failed} {
		for _, m := range list {
			if a := m.Acker; a == nil {
				orphans = true
			} else if !seen(a) {
				ackers = append(ackers, a)
			}
		}
	}
	if len(ackers) == 1 && !orphans {
		s.ack(ackers[0], ok, failed)
	} else {
		for _, a := range ackers {
			gok, gfailed := s.gok[:0], s.gfailed[:0]
			for _, m := range ok {
				if sameAcker(m.Acker, a) {
					gok = append(gok, m)
				}
			}
			for _, m := range failed {
				if sameAcker(m.Acker, a) {
					gfailed = append(gfailed, m)
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

// sameAcker reports whether a and b are the same acknowledger without ever
// panicking: == on interface values panics when their dynamic values are
// not comparable (a struct holding a slice, say). Such a value is the same
// acknowledger only as the very same interface value (one boxed copy shared
// by several messages); otherwise each is told of its own messages.
func sameAcker[T any](a, b Acknowledger[T]) bool {
	if ia, ib := ackerID(a), ackerID(b); ia[0] == ib[0] && ia[1] == ib[1] {
		return true // the very same interface value (both nil included)
	}
	return a != nil && b != nil && sameDynamic(a, b)
}

// ackerID is the identity of an interface value: its type and data words.
func ackerID[T any](a Acknowledger[T]) [2]unsafe.Pointer {
	return *(*[2]unsafe.Pointer)(unsafe.Pointer(&a))
}

// sameDynamic compares two acknowledgers that are not the same interface
// value, without letting == panic.
func sameDynamic[T any](a, b Acknowledger[T]) bool {
	ta := reflect.TypeOf(a)
	if ta != reflect.TypeOf(b) {
		return false
	}
	switch ta.Kind() {
	case reflect.Pointer, reflect.Chan, reflect.UnsafePointer, reflect.Int, reflect.String:
		return a == b
	}
	return reflect.ValueOf(a).Comparable() && reflect.ValueOf(b).Comparable() && a == b
}

func (s *settler[T]) ack(a Acknowledger[T], ok, failed []*Message[T]) {
	safely(s.e.cfg.Logger, "acknowledger", func() { a.Ack(ok, failed) },
		"topology", s.e.cfg.Name, "acknowledger", fmt.Sprintf("%T", a), "successful", len(ok), "failed", len(failed),
		"outcome", "its messages count as acknowledged")
}

func (s *settler[T]) handleFailed(ctx context.Context, failed []*Message[T]) {
	safely(s.e.cfg.Logger, "HandleFailed", func() { s.e.cfg.HandleFailed(ctx, failed) },
		"topology", s.e.cfg.Name, "failed", len(failed), "outcome", "the messages are still acknowledged as failed")
	// HandleFailed may not un-fail a message: it is acknowledged as failed.
	for i := range failed {
		if failed[i].err == nil {
			failed[i].err = ErrFailed
		}
	}
}
