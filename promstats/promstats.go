// Package promstats exports a topology's Stats to Prometheus. It reads one
// stages.Stats snapshot per scrape, so the hot path pays nothing for it.
package promstats

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway-go/causeway/stages"
)

// Collector is a prometheus.Collector over a topology's Stats.
type Collector struct {
	stats func() stages.Stats

	emitted, dropped, buffered, bufferCap, demand            *prometheus.Desc
	acked, failed, inFlight                                  *prometheus.Desc
	procReceived, procFailed, procPanics, procLatency        *prometheus.Desc
	bReceived, bPending, bBatches, bBatchesFailed, bRetries  *prometheus.Desc
	bMissing, bAcked, bFailed, bSize, bLatency, bConcurrency *prometheus.Desc
	bBlocked, spillRecords, spillBytes, spilled, replayed    *prometheus.Desc
	replayFailed, spillFull, sinkDown                        *prometheus.Desc
}

// New returns a collector that calls stats once per scrape; pass
// top.Stats. Metric names start with namespace_ (e.g. "causeway") and
// carry a topology label.
func New(namespace string, stats func() stages.Stats) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, append([]string{"topology"}, labels...), nil)
	}
	return &Collector{
		stats:          stats,
		emitted:        d("producer_emitted_total", "Messages producers emitted into the producer stage, dropped ones included."),
		dropped:        d("producer_dropped_total", "Messages the producer stage's full buffer dropped."),
		buffered:       d("producer_buffered", "Messages waiting in the producer stage's buffer."),
		bufferCap:      d("producer_buffer_capacity", "How many messages the producer stage's buffer holds."),
		demand:         d("producer_demand", "Messages processors asked for and have not received."),
		acked:          d("messages_acked_total", "Messages acknowledged as successful."),
		failed:         d("messages_failed_total", "Messages acknowledged as failed."),
		inFlight:       d("messages_in_flight", "Messages emitted and not yet acknowledged or dropped."),
		procReceived:   d("processor_received_total", "Messages processors took from the producer stage."),
		procFailed:     d("processor_failed_total", "Messages processor handlers failed (errors and panics)."),
		procPanics:     d("processor_panics_total", "Processor handler panics."),
		procLatency:    d("processor_handle_seconds", "Processor handler time per message (sampled per chunk)."),
		bReceived:      d("batcher_received_total", "Message copies routed to the batcher.", "batcher"),
		bPending:       d("batcher_pending", "Message copies in open batches or being handled.", "batcher"),
		bBatches:       d("batcher_batches_total", "Batch handler calls, retries included.", "batcher"),
		bBatchesFailed: d("batcher_batches_failed_total", "Batch handler calls that returned an error or panicked.", "batcher"),
		bRetries:       d("batcher_retries_total", "Batch retry attempts.", "batcher"),
		bMissing:       d("batcher_missing_total", "Messages batch handlers dropped from their batch (failed).", "batcher"),
		bAcked:         d("batcher_acked_total", "Message copies the batch handler succeeded.", "batcher"),
		bFailed:        d("batcher_failed_total", "Message copies the batch handler failed.", "batcher"),
		bSize:          d("batcher_batch_size", "Messages per batch.", "batcher"),
		bLatency:       d("batcher_handle_seconds", "Batch handler time per call.", "batcher"),
		bConcurrency:   d("batcher_concurrency", "Batch processors of the batcher allowed to handle batches at once: the adaptive limit now, or the fixed pool.", "batcher"),
		bBlocked:       d("batcher_blocked", "1 while the batcher holds a batch its sink failed (retrying, or its spill full).", "batcher"),
		spillRecords:   d("spill_records", "Messages held in the batcher's spill, waiting for replay.", "batcher"),
		spillBytes:     d("spill_bytes", "Bytes of the batcher's spill on disk.", "batcher"),
		spilled:        d("spill_held_total", "Messages the batcher held in its spill while its sink was down.", "batcher"),
		replayed:       d("spill_replayed_total", "Spilled messages the sink took on replay.", "batcher"),
		replayFailed:   d("spill_replay_failed_total", "Spilled messages the sink failed permanently on replay.", "batcher"),
		spillFull:      d("spill_full", "1 while the batcher's spill refuses messages for lack of room.", "batcher"),
		sinkDown:       d("sink_down", "1 while the last replay of the batcher's spill failed: its sink is down.", "batcher"),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.emitted, c.dropped, c.buffered, c.bufferCap, c.demand, c.acked, c.failed,
		c.inFlight, c.procReceived, c.procFailed, c.procPanics, c.procLatency, c.bReceived, c.bPending, c.bBatches,
		c.bBatchesFailed, c.bRetries, c.bMissing, c.bAcked, c.bFailed, c.bSize, c.bLatency, c.bConcurrency,
		c.bBlocked, c.spillRecords, c.spillBytes, c.spilled, c.replayed, c.replayFailed, c.spillFull, c.sinkDown} {
		ch <- d
	}
}

// Collect takes one Stats snapshot and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	n := s.Name
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{n}, labels...)...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), append([]string{n}, labels...)...)
	}
	histogram := func(d *prometheus.Desc, h stages.HistogramSnapshot, labels ...string) {
		ch <- prometheus.MustNewConstHistogram(d, h.Count, h.Sum, h.Cumulative(), append([]string{n}, labels...)...)
	}
	counter(c.emitted, s.Producer.Emitted)
	counter(c.dropped, s.Dropped)
	gauge(c.buffered, int64(s.Producer.Buffered))
	gauge(c.bufferCap, int64(s.Producer.Capacity))
	gauge(c.demand, int64(s.Producer.Demand))
	counter(c.acked, s.Acked)
	counter(c.failed, s.Failed)
	gauge(c.inFlight, s.InFlight)
	counter(c.procReceived, s.Processors.Received)
	counter(c.procFailed, s.Processors.Failed)
	counter(c.procPanics, s.Processors.Panics)
	histogram(c.procLatency, s.Processors.Latency)
	for _, b := range s.Batchers {
		counter(c.bReceived, b.Received, b.Name)
		gauge(c.bPending, b.Pending, b.Name)
		counter(c.bBatches, b.Batches, b.Name)
		counter(c.bBatchesFailed, b.BatchesFailed, b.Name)
		counter(c.bRetries, b.Retries, b.Name)
		counter(c.bMissing, b.Missing, b.Name)
		counter(c.bAcked, b.Acked, b.Name)
		counter(c.bFailed, b.Failed, b.Name)
		histogram(c.bSize, b.BatchSize, b.Name)
		histogram(c.bLatency, b.Latency, b.Name)
		gauge(c.bConcurrency, int64(b.Concurrency), b.Name)
		gauge(c.bBlocked, b2i(b.Blocked), b.Name)
		if sp := b.Spill; sp != nil {
			gauge(c.spillRecords, int64(sp.Records), b.Name)
			gauge(c.spillBytes, sp.Bytes, b.Name)
			counter(c.spilled, sp.Spilled, b.Name)
			counter(c.replayed, sp.Replayed, b.Name)
			counter(c.replayFailed, sp.ReplayFailed, b.Name)
			gauge(c.spillFull, b2i(sp.Full), b.Name)
			gauge(c.sinkDown, b2i(sp.SinkDown), b.Name)
		}
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
