package core

import (
	"sort"
	"sync/atomic"
	"time"
)

// Histogram counts observations into fixed buckets. It is safe for
// concurrent use; Observe costs a binary search and two atomic adds.
type Histogram struct {
	bounds []int64 // upper bounds, inclusive, in the unit of observation
	counts []atomic.Uint64
	sum    atomic.Int64
	div    float64 // divides bounds and sum into the snapshot's unit
}

// NewHistogram returns a histogram with the given inclusive upper bounds
// (ascending), plus an overflow bucket. Bounds and the sum are divided by
// div in snapshots (for example 1e9 to report nanoseconds as seconds).
func NewHistogram(bounds []int64, div float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1), div: div}
}

// NewLatencyHistogram returns a histogram of durations from 1µs to ~30s,
// reported in seconds.
func NewLatencyHistogram() *Histogram {
	var b []int64
	for d := time.Microsecond; d <= 30*time.Second; d *= 2 {
		b = append(b, int64(d))
	}
	return NewHistogram(b, 1e9)
}

// NewSizeHistogram returns a histogram of counts from 1 to ~1M.
func NewSizeHistogram() *Histogram {
	var b []int64
	for _, decade := range []int64{1, 10, 100, 1000, 10000, 100000} {
		b = append(b, decade, 2*decade, 5*decade)
	}
	b = append(b, 1000000)
	return NewHistogram(b, 1)
}

// Observe records v.
func (h *Histogram) Observe(v int64) { h.ObserveN(v, 1) }

// ObserveN records v n times.
func (h *Histogram) ObserveN(v int64, n int) {
	i := sort.Search(len(h.bounds), func(i int) bool { return h.bounds[i] >= v })
	h.counts[i].Add(uint64(n))
	h.sum.Add(v * int64(n))
}

// ObserveDuration records d.
func (h *Histogram) ObserveDuration(d time.Duration) { h.Observe(int64(d)) }

// Snapshot returns the histogram's current counts.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{
		Bounds: make([]float64, len(h.bounds)),
		Counts: make([]uint64, len(h.counts)),
		Sum:    float64(h.sum.Load()) / h.div,
	}
	for i, b := range h.bounds {
		s.Bounds[i] = float64(b) / h.div
	}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.Count += c
	}
	return s
}

// HistogramSnapshot is a histogram's state at one moment. Counts[i] counts
// observations in (Bounds[i-1], Bounds[i]]; the last count is the overflow
// bucket above the last bound.
type HistogramSnapshot struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Cumulative returns the count of observations at or below each bound, the
// shape Prometheus histograms use.
func (s HistogramSnapshot) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(s.Bounds))
	var c uint64
	for i, b := range s.Bounds {
		c += s.Counts[i]
		out[b] = c
	}
	return out
}

// Mean returns the mean observation, or 0 with none.
func (s HistogramSnapshot) Mean() float64 {
	if s.Count == 0 {
		return 0
	}
	return s.Sum / float64(s.Count)
}

// Quantile estimates the q-quantile (0..1) as the upper bound of the bucket
// that holds it; observations above the last bound report the last bound.
func (s HistogramSnapshot) Quantile(q float64) float64 {
	if s.Count == 0 {
		return 0
	}
	rank := uint64(q * float64(s.Count))
	var c uint64
	for i, n := range s.Counts {
		c += n
		if c > rank || (c == s.Count && c > 0) {
			if i < len(s.Bounds) {
				return s.Bounds[i]
			}
			return s.Bounds[len(s.Bounds)-1]
		}
	}
	return s.Bounds[len(s.Bounds)-1]
}

// ProcessorStats counts what the processor pool did.
type ProcessorStats struct {
	Concurrency int
	Received    int64 // messages taken from the producer stage
	Failed      int64 // messages failed by the handler (errors and panics)
	Panics      int64 // handler panics
	Forwarded   int64 // message copies sent to batchers
	// Latency is the handler time per message, measured per chunk.
	Latency HistogramSnapshot
}

// BatcherStats counts what one batcher and its batch processors did.
type BatcherStats struct {
	Name string
	// Concurrency is the pool's current limit: how many batch processors
	// may handle batches at once. It moves within MinConcurrency and
	// MaxConcurrency while Adaptive, and ConcurrencyChanges counts its
	// moves (SetConcurrency's included).
	Concurrency        int
	MinConcurrency     int
	MaxConcurrency     int
	Adaptive           bool
	ConcurrencyChanges int64
	Received           int64       // message copies routed to the batcher
	Pending            int64       // message copies in open batches or waiting to be handled
	Batches            int64       // handler calls, retries included
	BatchesFailed      int64       // handler calls that returned an error or panicked
	Retries            int64       // retry attempts
	Missing            int64       // messages handlers dropped from their batch
	Blocked            bool        // a batch the sink failed is being retried (OutageBlock, or a full spill)
	Spill              *SpillStats // OutageSpill; nil otherwise
	Acked              int64       // message copies the batcher's handler succeeded
	Failed             int64       // message copies the batcher's handler failed
	BatchSize          HistogramSnapshot
	Latency            HistogramSnapshot // per handler call
}

// Stats is a snapshot of a running (or finished) engine. Conservation holds
// at every snapshot: Producer.Emitted = Acked + Failed + Dropped + InFlight.
type Stats struct {
	Name       string
	Producer   BufferStats
	Processors ProcessorStats
	Batchers   []BatcherStats
	Acked      int64 // messages acknowledged as successful
	Failed     int64 // messages acknowledged as failed
	Dropped    int64 // messages the producer stage's buffer dropped
	InFlight   int64 // messages emitted and not yet acknowledged or dropped
}
