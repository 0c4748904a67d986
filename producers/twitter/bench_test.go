package twitter

import (
	"context"
	"testing"
	"time"

	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// BenchmarkStreamEndToEnd streams the recorded tweets from the fake server,
// looping as fast as the client reads, over loopback HTTP/2 into a topology
// with no-op processors; one op is one tweet. tweets/s is what the producer
// received and decoded, acked/s what the topology acknowledged (the rest
// was dropped by its bounded buffer, counted).
func BenchmarkStreamEndToEnd(b *testing.B) {
	for _, h2c := range []bool{true, false} {
		b.Run(map[bool]string{true: "h2c", false: "tls"}[h2c], func(b *testing.B) {
			srv := newServer(b, twittertest.Config{H2C: h2c, Loop: true}, nil)
			s := newStream(srv, nil, Config{Sample: true})
			top, err := topology.New(topology.Spec[Tweet]{
				Name:       "bench",
				Producer:   topology.ProducerSpec[Tweet]{Producer: s, BufferSize: 10_000, Keep: stages.KeepLast},
				Processors: topology.ProcessorSpec[Tweet]{Concurrency: 2, MaxDemand: 256},
				Logger:     quiet,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			go func() { done <- top.Run(ctx) }()
			tick := time.NewTicker(time.Millisecond)
			for s.Stats().Tweets < int64(b.N) {
				<-tick.C
			}
			elapsed := time.Since(start)
			b.StopTimer()
			tick.Stop()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			st, ts := s.Stats(), top.Stats()
			if err := topologytest.CheckConservation(ts); err != nil {
				b.Fatal(err)
			}
			if st.Malformed != 0 || st.Deduplicated != 0 || st.Emitted != ts.Producer.Emitted {
				b.Fatalf("malformed %d, deduplicated %d, emitted %d (stage %d)", st.Malformed, st.Deduplicated, st.Emitted, ts.Producer.Emitted)
			}
			b.ReportMetric(float64(st.Tweets)/elapsed.Seconds(), "tweets/s")
			b.ReportMetric(float64(ts.Acked)/elapsed.Seconds(), "acked/s")
			b.ReportMetric(float64(st.Bytes)/elapsed.Seconds()/1e6, "MB/s")
			b.ReportMetric(float64(ts.Dropped)/float64(st.Tweets), "dropped/tweet")
		})
	}
}
