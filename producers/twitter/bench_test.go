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
// whose processors only decode (a no-op for tweets the stream decoded);
// one op is one tweet. decode=producer has the stream decode every line,
// decode=processors defers it (Config.DeferDecode) to the processors, so
// the dropped tweets are never decoded. tweets/s is what the producer
// received, acked/s what the topology acknowledged, decoded (the rest
// was dropped by its bounded buffer, counted).
func BenchmarkStreamEndToEnd(b *testing.B) {
	for _, tc := range []struct {
		name        string
		h2c, defer_ bool
	}{{"h2c/decode=producer", true, false}, {"h2c/decode=processors", true, true}, {"tls/decode=producer", false, false}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := newServer(b, twittertest.Config{H2C: tc.h2c, Loop: true}, nil)
			s := newStream(srv, nil, Config{Sample: true, DeferDecode: tc.defer_})
			top, err := topology.New(topology.Spec[Tweet]{
				Name:     "bench",
				Producer: topology.ProducerSpec[Tweet]{Producer: s, BufferSize: 10_000, Keep: stages.KeepLast},
				Processors: topology.ProcessorSpec[Tweet]{Concurrency: 2, MaxDemand: 256,
					Handle: func(_ context.Context, m *stages.Message[Tweet]) error { return s.Decode(&m.Data) }},
				Logger: quiet,
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
			// At most one malformed line: the one the stop cut short.
			if st.Malformed > 1 || st.MalformedLate != 0 || st.Deduplicated != 0 || st.Emitted != ts.Producer.Emitted {
				b.Fatalf("malformed %d, deduplicated %d, emitted %d (stage %d)", st.Malformed, st.Deduplicated, st.Emitted, ts.Producer.Emitted)
			}
			b.ReportMetric(float64(st.Tweets)/elapsed.Seconds(), "tweets/s")
			b.ReportMetric(float64(ts.Acked)/elapsed.Seconds(), "acked/s")
			b.ReportMetric(float64(st.Bytes)/elapsed.Seconds()/1e6, "MB/s")
			b.ReportMetric(float64(ts.Dropped)/float64(st.Tweets), "dropped/tweet")
		})
	}
}
