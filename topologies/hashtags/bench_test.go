package hashtags_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/stages/window"
	"github.com/causeway-go/causeway/topologies/hashtags"
	"github.com/causeway-go/causeway/topology"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tweetRecords makes n tweet lines a second apart with two or three
// hashtags each.
func tweetRecords(n int) []*kgo.Record {
	tags := []string{"go", "rust", "kafka", "postgres", "windows", "exactly_once"}
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, n)
	for i := range n {
		id := 1_900_000_000_000_000_000 + int64(i)
		v := fmt.Appendf(nil, `{"data":{"id":"%d","text":"t #%s #%s #%s","created_at":"%s","edit_history_tweet_ids":["%d"]}}`,
			id, tags[i%6], tags[(i/6)%6], tags[(i/36)%6], base.Add(time.Duration(i)*time.Second).Format("2006-01-02T15:04:05.000Z"), id)
		recs[i] = &kgo.Record{Topic: "tweets", Key: fmt.Appendf(nil, "%d", id), Value: v}
	}
	return recs
}

// BenchmarkAggregate reports tweets/s aggregated into one-minute hashtag
// counts from a topic of 40,000 tweets, in the same run: exactly once
// (counts, offsets, watermark and seen ids in one transaction), exactly
// once without the seen-ids table, and at least once (the same counts in a
// transaction of their own, offsets committed to Kafka only: a crash
// between the two counts a batch twice). The time runs from the first
// acknowledgement to the last.
func BenchmarkAggregate(b *testing.B) {
	const n = 40_000
	k := kafkatest.Start(b, kfake.SeedTopics(4, "tweets"))
	k.Produce(b, tweetRecords(n)...)
	pool, _ := pgtest.Schema(b)
	ctx := context.Background()
	run := 0
	for _, mode := range []string{"exactly-once", "exactly-once-no-dedup", "at-least-once"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			var total time.Duration
			for b.Loop() {
				run++
				group, table := fmt.Sprintf("bench-%d", run), fmt.Sprintf("counts_%d", run)
				if mode == "at-least-once" {
					total += atLeastOnce(b, ctx, k.Brokers, group, table, pool, n)
				} else {
					total += exactlyOnce(b, ctx, k.Brokers, group, table, pool, n, mode == "exactly-once-no-dedup")
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "tweets/s")
		})
	}
}

func exactlyOnce(b *testing.B, ctx context.Context, brokers, group, table string, pool postgresPool, n int, noDedup bool) time.Duration {
	p, err := hashtags.New(ctx, hashtags.Config{Brokers: brokers, Group: group, Table: table, NoDedup: noDedup,
		Postgres: postgres.TxConfig[hashtags.Tweet]{Pool: pool}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	d := untilAcked(b, ctx, p.Run, func() int64 { return p.TopologyStats().Acked }, n)
	if s := p.Stats(); s.Counted != int64(n) {
		b.Fatalf("counted %d of %d", s.Counted, n)
	}
	return d
}

// atLeastOnce is the same aggregation with a plain transaction per batch
// and Kafka's own commits.
func atLeastOnce(b *testing.B, ctx context.Context, brokers, group, table string, pool postgresPool, n int) time.Duration {
	ct := postgres.CountsTable{Name: table, Key: "hashtag", Count: "tweets"}
	for _, st := range ct.Schema() {
		if _, err := pool.Exec(ctx, st); err != nil {
			b.Fatal(err)
		}
	}
	cons, err := kafka.New(kafka.Config[hashtags.Tweet]{Brokers: brokers, GroupID: group, Topics: []string{"tweets"},
		Decode: hashtags.Decode, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	wms := map[int32]*window.Watermark{} // in memory only: lost on a crash
	handle := func(ctx context.Context, batch *stages.Batch[hashtags.Tweet]) error {
		c := window.Counter[string]{Windows: window.Windows{Size: time.Minute}, Grace: 5 * time.Minute}
		mu.Lock()
		for _, m := range batch.Messages {
			md := m.Metadata.(*kafka.Metadata)
			wm := wms[md.Partition]
			if wm == nil {
				wm = &window.Watermark{}
				wms[md.Partition] = wm
			}
			c.Add(wm, m.Data.CreatedAt, m.Data.Hashtags...)
		}
		mu.Unlock()
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return postgres.AddCounts(ctx, tx, ct, c.Counts) })
	}
	top, err := topology.New(topology.Spec[hashtags.Tweet]{
		Name:       "alo",
		Producer:   topology.ProducerSpec[hashtags.Tweet]{Producer: cons, Keep: stages.Block},
		Processors: topology.ProcessorSpec[hashtags.Tweet]{Concurrency: 4, PartitionBy: postgres.PartitionBy[hashtags.Tweet]},
		Batchers: map[string]topology.BatcherSpec[hashtags.Tweet]{"counts": {BatchSize: 2000, BatchTimeout: 200 * time.Millisecond,
			Concurrency: 4, PartitionBy: postgres.PartitionBy[hashtags.Tweet], Outage: stages.OutageBlock, Handle: handle}},
		Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	return untilAcked(b, ctx, top.Run, func() int64 { return top.Stats().Acked }, n)
}

type postgresPool = *pgxpool.Pool

// untilAcked runs run until acked reaches n, then drains it. It returns
// the time from the first acknowledgement to the last (the group's join is
// not the aggregation's cost).
func untilAcked(b *testing.B, ctx context.Context, run func(context.Context) error, acked func() int64, n int) time.Duration {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	deadline := time.Now().Add(2 * time.Minute)
	var first time.Time
	for acked() < int64(n) {
		if first.IsZero() && acked() > 0 {
			first = time.Now()
		}
		if time.Now().After(deadline) {
			cancel()
			b.Fatalf("acked %d of %d", acked(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling the counters, bounded by the deadline
	}
	d := time.Since(first)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return d
}
