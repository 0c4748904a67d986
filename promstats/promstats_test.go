package promstats_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/causeway-go/causeway/promstats"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

func TestCollectorExportsStats(t *testing.T) {
	top, err := topology.New(topology.Spec[int]{
		Name:     "demo",
		Producer: topology.ProducerSpec[int]{Producer: stages.FromSlice(1, 2, 3, 4, 5, 6, 7)},
		Batchers: map[string]topology.BatcherSpec[int]{"sink": {BatchSize: 3, BatchTimeout: time.Millisecond,
			Handle: func(_ context.Context, b *stages.Batch[int]) error {
				for _, m := range b.Messages {
					if m.Data == 4 {
						m.Fail(nil)
					}
				}
				return nil
			}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := top.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := promstats.New("causeway", top.Stats)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `
# HELP causeway_messages_acked_total Messages acknowledged as successful.
# TYPE causeway_messages_acked_total counter
causeway_messages_acked_total{topology="demo"} 6
# HELP causeway_messages_failed_total Messages acknowledged as failed.
# TYPE causeway_messages_failed_total counter
causeway_messages_failed_total{topology="demo"} 1
# HELP causeway_producer_emitted_total Messages producers emitted into the producer stage, dropped ones included.
# TYPE causeway_producer_emitted_total counter
causeway_producer_emitted_total{topology="demo"} 7
# HELP causeway_batcher_batches_total Batch handler calls, retries included.
# TYPE causeway_batcher_batches_total counter
causeway_batcher_batches_total{batcher="sink",topology="demo"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"causeway_messages_acked_total", "causeway_messages_failed_total",
		"causeway_producer_emitted_total", "causeway_batcher_batches_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 20 {
		t.Fatalf("gathered %d metrics (%v), want every stage's", n, err)
	}
	if n := testutil.CollectAndCount(c, "causeway_batcher_batch_size"); n != 1 {
		t.Fatalf("batch size histograms: %d", n)
	}
}

// A batcher's spill and hold-back state are exported.
func TestSpillMetrics(t *testing.T) {
	st := stages.Stats{Name: "t", Batchers: []stages.BatcherStats{{Name: "pg", Blocked: true,
		Spill: &stages.SpillStats{Records: 7, Bytes: 700, Spilled: 9, Replayed: 2, SinkDown: true}}}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(promstats.New("x", func() stages.Stats { return st }))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if g := m.GetGauge(); g != nil {
				got[mf.GetName()] = g.GetValue()
			} else if c := m.GetCounter(); c != nil {
				got[mf.GetName()] = c.GetValue()
			}
		}
	}
	for name, want := range map[string]float64{"x_batcher_blocked": 1, "x_spill_records": 7, "x_spill_bytes": 700,
		"x_spill_held_total": 9, "x_spill_replayed_total": 2, "x_spill_full": 0, "x_sink_down": 1} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}
