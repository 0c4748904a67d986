package twitter

import (
	"fmt"
	"sync/atomic"
	"time"
)

// counters are the stream's atomic counters.
type counters struct {
	attempts, connects        atomic.Int64
	bytes, keepAlives         atomic.Int64
	received, tweets, emitted atomic.Int64
	deduplicated, abandoned   atomic.Int64
	malformed, oversized      atomic.Int64
	streamErrors, ignored     atomic.Int64
	reconnects                [8]atomic.Int64 // by reasonIndex
	lastBackoff               atomic.Int64
}

func reasonIndex(r Reason) int {
	for i, x := range Reasons {
		if x == r {
			return i
		}
	}
	return len(Reasons)
}

// Stats is a snapshot of a Stream's counters. Every message line received is
// counted once in exactly one outcome:
//
//	Received = Emitted + Deduplicated + Abandoned + Malformed + StreamErrors + Ignored
//	Tweets   = Emitted + Deduplicated + Abandoned
//
// Emitted is what the producer stage took; the stage's own counters add what
// its bounded buffer dropped (stages.Stats.Dropped).
type Stats struct {
	State ConnState
	// Attempts counts connection attempts, Connects the ones the server
	// accepted (HTTP 200).
	Attempts, Connects int64
	// Reconnects counts reconnect decisions by reason.
	Reconnects map[Reason]int64
	// LastBackoff is the back-off chosen by the latest reconnect.
	LastBackoff time.Duration

	Bytes      int64 // body bytes read
	KeepAlives int64 // bare CRLF lines
	Received   int64 // message lines: everything but keep-alives
	Tweets     int64 // well-formed tweet messages

	Emitted      int64 // tweets handed to the producer stage
	Deduplicated int64 // tweets dropped as already seen
	Abandoned    int64 // tweets decoded after the topology stopped taking input
	Malformed    int64 // lines that are not a well-formed message, oversized ones included
	Oversized    int64 // lines over Config.MaxLineSize (also counted in Malformed)
	// MalformedLate counts tweet lines emitted undecoded (DeferDecode) that
	// Stream.Decode found malformed. They are within Emitted (and Tweets):
	// the stream handed them on, and their messages failed.
	MalformedLate int64
	StreamErrors  int64 // in-stream error messages
	Ignored       int64 // well-formed messages of other kinds
}

// Stats returns a snapshot of the stream's counters; it is safe to call at
// any time.
func (s *Stream) Stats() Stats {
	c := &s.c
	st := Stats{
		State:         ConnState(s.state.Load()),
		Attempts:      c.attempts.Load(),
		Connects:      c.connects.Load(),
		Reconnects:    make(map[Reason]int64, len(Reasons)),
		LastBackoff:   time.Duration(c.lastBackoff.Load()),
		Bytes:         c.bytes.Load(),
		KeepAlives:    c.keepAlives.Load(),
		Emitted:       c.emitted.Load(),
		Deduplicated:  c.deduplicated.Load(),
		Abandoned:     c.abandoned.Load(),
		Malformed:     c.malformed.Load(),
		Oversized:     c.oversized.Load(),
		MalformedLate: s.late.n.Load(),
		StreamErrors:  c.streamErrors.Load(),
		Ignored:       c.ignored.Load(),
	}
	// Outcomes are counted after what they came from, so reading these
	// last keeps a live snapshot's sums from exceeding them.
	st.Tweets = c.tweets.Load()
	st.Received = c.received.Load()
	for i, r := range Reasons {
		st.Reconnects[r] = c.reconnects[i].Load()
	}
	return st
}

// Check returns an error unless the snapshot's counts balance. Call it on a
// stopped stream (a live one may have lines being counted).
func (st Stats) Check() error {
	tweets := st.Emitted + st.Deduplicated + st.Abandoned
	if out := tweets + st.Malformed + st.StreamErrors + st.Ignored; out != st.Received {
		return fmt.Errorf("twitter: stats do not balance: received %d != emitted %d + deduplicated %d + abandoned %d + malformed %d + stream errors %d + ignored %d",
			st.Received, st.Emitted, st.Deduplicated, st.Abandoned, st.Malformed, st.StreamErrors, st.Ignored)
	}
	if tweets != st.Tweets {
		return fmt.Errorf("twitter: stats do not balance: tweets %d != emitted %d + deduplicated %d + abandoned %d",
			st.Tweets, st.Emitted, st.Deduplicated, st.Abandoned)
	}
	return nil
}
