// Package window is the pure logic of event-time windowed aggregation:
// tumbling and hopping windows, a watermark with a grace period that
// decides which events are late, and a counter that aggregates events by
// key and window within a batch.
//
// It keeps no state of its own between batches and does no I/O: a sink
// stores the Watermark beside the consumed offsets (stages/postgres'
// TxSink keeps it per Kafka partition, in the transaction that applies the
// counts), so that a replay after a crash reads the same watermark back and
// makes the same on-time and late decisions.
package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Windows describes a family of event-time windows aligned to the Unix
// epoch: tumbling when Hop is zero or equals Size (each instant in exactly
// one window), hopping when 0 < Hop < Size (windows of length Size starting
// every Hop, each instant in Size/Hop of them).
type Windows struct {
	// Size is the length of a window. Required.
	Size time.Duration
	// Hop is the distance between the starts of two windows. Zero means
	// Size (tumbling).
	Hop time.Duration
}

// Validate reports a Size or Hop out of range.
func (w Windows) Validate() error {
	var errs []error
	if w.Size <= 0 {
		errs = append(errs, fmt.Errorf("window: Windows.Size must be > 0, got %v", w.Size))
	}
	if w.Hop < 0 || (w.Size > 0 && w.Hop > w.Size) {
		errs = append(errs, fmt.Errorf("window: Windows.Hop must be 0 (tumbling) or in (0, Size=%v], got %v", w.Size, w.Hop))
	} else if w.Hop > 0 && w.Size%w.Hop != 0 {
		errs = append(errs, fmt.Errorf("window: Windows.Size (%v) must be a multiple of Hop, got %v", w.Size, w.Hop))
	}
	return errors.Join(errs...)
}

func (w Windows) hop() time.Duration {
	if w.Hop == 0 {
		return w.Size
	}
	return w.Hop
}

// Starts appends to dst the starts (Unix nanoseconds) of the windows that
// contain t, oldest first, and returns it.
func (w Windows) Starts(t time.Time, dst []int64) []int64 {
	hop, size := int64(w.hop()), int64(w.Size)
	ns := t.UnixNano()
	last := floorDiv(ns, hop) * hop // the newest window containing t
	for s := last - size + hop; s <= last; s += hop {
		dst = append(dst, s)
	}
	return dst
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Watermark is the event-time progress of one ordered stream (a Kafka
// partition): the newest event time it has seen. A window [s, s+Size) is
// final once the watermark reaches s+Size+Grace; an event whose windows
// are all final is late. The zero Watermark has seen nothing.
type Watermark struct {
	// Max is the newest event time seen, in Unix nanoseconds; 0 for none.
	Max int64
}

// Closed reports whether the window starting at start (Unix nanoseconds)
// is final for watermark w.
func (w Watermark) Closed(start int64, size, grace time.Duration) bool {
	return w.Max != 0 && start+int64(size)+int64(grace) <= w.Max
}

// Observe advances the watermark to t if t is newer.
func (w *Watermark) Observe(t time.Time) {
	if ns := t.UnixNano(); ns > w.Max {
		w.Max = ns
	}
}

// Time returns the watermark as a time (the zero time for none).
func (w Watermark) Time() time.Time {
	if w.Max == 0 {
		return time.Time{}
	}
	return time.Unix(0, w.Max).UTC()
}

// MarshalBinary encodes the watermark in 8 bytes.
func (w Watermark) MarshalBinary() ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(w.Max)), nil
}

// UnmarshalBinary decodes what MarshalBinary encoded; empty data is the
// zero Watermark.
func (w *Watermark) UnmarshalBinary(b []byte) error {
	switch len(b) {
	case 0:
		*w = Watermark{}
	case 8:
		w.Max = int64(binary.BigEndian.Uint64(b))
	default:
		return fmt.Errorf("window: a stored watermark is 8 bytes, got %d", len(b))
	}
	return nil
}

// Cell is one key in one window.
type Cell[K comparable] struct {
	Start int64 // the window's start, Unix nanoseconds
	Key   K
}

// StartTime returns the cell's window start as a UTC time.
func (c Cell[K]) StartTime() time.Time { return time.Unix(0, c.Start).UTC() }

// Counter counts events by key and window within one batch. Its zero
// value needs Windows set before use. It is not safe for concurrent use.
type Counter[K comparable] struct {
	// Windows are the windows events are counted in.
	Windows Windows
	// Grace is how long after a window's end events may still change it.
	Grace time.Duration

	// Counts holds each cell's count in this batch.
	Counts map[Cell[K]]int64
	// OnTime counts the events counted in at least one window; Late those
	// counted in none because all of their windows were final; LateCells
	// the (event, window) pairs left out because the window was final.
	OnTime, Late, LateCells int64

	starts []int64
}

// Add decides, against the watermark of the event's stream, whether the
// event at t is late, counts it under each of keys in each of its windows
// that is not final, and then advances the watermark. It reports whether
// the event was late (counted nowhere). The decision depends only on the
// watermark and t, so replaying a stream's events in order from a stored
// watermark repeats it.
func (c *Counter[K]) Add(wm *Watermark, t time.Time, keys ...K) (late bool) {
	if c.Counts == nil {
		c.Counts = map[Cell[K]]int64{}
	}
	c.starts = c.Windows.Starts(t, c.starts[:0])
	open := 0
	for _, s := range c.starts {
		if wm.Closed(s, c.Windows.Size, c.Grace) {
			c.LateCells++
			continue
		}
		open++
		for _, k := range keys {
			c.Counts[Cell[K]{Start: s, Key: k}]++
		}
	}
	wm.Observe(t)
	if open == 0 {
		c.Late++
		return true
	}
	c.OnTime++
	return false
}

// LateError is the error of an event that arrived after all of its windows
// were final: it is counted, not applied.
type LateError struct {
	At        time.Time // the event time
	Watermark time.Time // the stream's watermark when it arrived
	Grace     time.Duration
}

func (e *LateError) Error() string {
	return fmt.Sprintf("window: event at %s is late: its windows were final (watermark %s, grace %v)",
		e.At.UTC().Format(time.RFC3339Nano), e.Watermark.Format(time.RFC3339Nano), e.Grace)
}

// Permanent reports true: replaying a late event does not make it on time.
func (e *LateError) Permanent() bool { return true }
