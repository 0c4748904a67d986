package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
)

// BenchmarkEndToEnd streams b.N tweets from a fake X API, as fast as it
// serves them over HTTP/2, through the reference topology into an
// in-process Kafka (kfake) and Postgres. It reports tweets/s into both
// sinks, the share the bounded buffer dropped, and the process's peak RSS.
//
//	scripts/with-pg .data/pg-bench -- go test -run '^$' -bench EndToEnd -benchtime 200000x ./cmd/causeway/
func BenchmarkEndToEnd(b *testing.B) {
	c := testCorpus(b)
	fake, err := twittertest.NewServer(twittertest.Config{Addr: "127.0.0.1:0", Token: "bench", Lines: c.lines, Loop: true, H2C: true})
	if err != nil {
		b.Fatal(err)
	}
	defer fake.Close()
	k := kafkatest.Start(b, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(b, k.Brokers)
	b.ResetTimer()
	start := time.Now()
	r := runBinary(b, append(s.args(), "-stream-url", fake.URL(), "-bearer-token", "bench", "-max-tweets", strconv.Itoa(b.N)), nil)
	elapsed := time.Since(start)
	b.StopTimer()
	sum := r.sum
	if sum.Emitted < int64(b.N) || sum.Unfinished != 0 || sum.Emitted != sum.Acked+sum.Failed+sum.Dropped {
		b.Fatalf("emitted %d of %d, acked %d, failed %d, dropped %d, unfinished %d",
			sum.Emitted, b.N, sum.Acked, sum.Failed, sum.Dropped, sum.Unfinished)
	}
	b.ReportMetric(float64(sum.Acked+sum.Failed)/elapsed.Seconds(), "tweets/s")
	b.ReportMetric(float64(sum.Dropped)/float64(sum.Emitted), "drop-rate")
	if rss := peakRSS(); rss > 0 {
		b.ReportMetric(rss/(1<<20), "peak-RSS-MB")
	}
}

// peakRSS returns the process's peak resident set size in bytes (Linux's
// VmHWM), or 0 if it cannot tell.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb * 1024
		}
	}
	return 0
}
