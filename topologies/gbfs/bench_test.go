package gbfs_test

import (
	"testing"
	"time"

	spec "github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/topologies/gbfs"
)

// BenchmarkStations measures stations per second through the whole
// pipeline on a simulated system of 20,000 stations: each iteration is one
// poll of station_status (HTTP/2, about 3 MB of JSON) after a simulated
// minute, whose stations are parsed, compared with their last state
// (about two thirds reported since the last poll), and the new rows
// produced to Kafka (kfake) and stored with their changes in Postgres.
// stations/s counts every station of every document; rows/s the new rows
// stored.
func BenchmarkStations(b *testing.B) {
	const stations = 20_000
	h := newHarness(b, spec.V23, stations)
	b.ReportAllocs()
	polls := b.N
	var p *gbfs.Pipeline
	b.ResetTimer()
	p = h.run(runSpec{polls: polls, step: time.Minute, config: func(c *gbfs.Config) { c.Processors = 8 }})
	b.StopTimer()
	elapsed := h.settledAt.Sub(h.firstPoll).Seconds()
	items := float64(p.Producer().Stats().Feeds[0].Items)
	b.ReportMetric(items/elapsed, "stations/s")
	b.ReportMetric(float64(p.Counters().Rows)/elapsed, "rows/s")
	b.ReportMetric(float64(p.Counters().Changes)/elapsed, "changes/s")
}
