package postgres_test

import (
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
	"github.com/causeway-go/causeway/topology/topologytest/sinktest"
)

// BenchmarkPostgresBatcher measures rows/s of tweets into a fresh tweets
// table: through a topology whose "postgres" batcher is the sink (COPY into
// staging + INSERT … ON CONFLICT DO NOTHING, 2 batch processors), with a raw
// pgx CopyFrom loop of 10,000-row batches straight into the table on one
// connection, and with one autocommitted INSERT per row (what a naive
// pipeline does).
func BenchmarkPostgresBatcher(b *testing.B) {
	if os.Getenv("DATABASE_URL") == "" {
		b.Skip("DATABASE_URL is not set: run with `make bench` or `scripts/with-pg .data/pg -- go test -bench ...`")
	}
	b.Run("impl=topology", func(b *testing.B) {
		pool, _ := pgtest.Schema(b)
		sink, err := postgres.NewTweets(b.Context(), postgres.TweetsConfig{Pool: pool, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		data := tweetRange(0, b.N)
		src := sinktest.NewSliceSource(data)
		top, err := topology.New(topology.Spec[twitter.Tweet]{
			Producer:   topology.ProducerSpec[twitter.Tweet]{Producer: src, Keep: stages.Block},
			Processors: topology.ProcessorSpec[twitter.Tweet]{Concurrency: 2, MaxDemand: 1000},
			Batchers: map[string]topology.BatcherSpec[twitter.Tweet]{
				"postgres": {BatchSize: 10_000, BatchTimeout: 50 * time.Millisecond, Concurrency: 2, Handle: sink.HandleBatch},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		stop := topologytest.Start(b, top)
		<-src.Done()
		elapsed := time.Since(start)
		b.StopTimer()
		if err := stop(); err != nil {
			b.Fatal(err)
		}
		if ok, _ := src.Counts(); ok != int64(b.N) {
			b.Fatalf("%d of %d rows written", ok, b.N)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
	})
	b.Run("impl=copyfrom", func(b *testing.B) {
		pool, _ := pgtest.Schema(b)
		if _, err := postgres.NewTweets(b.Context(), postgres.TweetsConfig{Pool: pool, Logger: quiet}); err != nil {
			b.Fatal(err)
		}
		data := tweetRange(0, b.N)
		conn, err := pool.Acquire(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Release()
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		rows := make([][]any, 0, 10_000)
		for i := 0; i < len(data); {
			rows = rows[:0]
			for ; i < len(data) && len(rows) < 10_000; i++ {
				m := stages.Message[twitter.Tweet]{Data: data[i]}
				r, err := postgres.TweetRow(&m)
				if err != nil {
					b.Fatal(err)
				}
				rows = append(rows, r)
			}
			if _, err := conn.CopyFrom(b.Context(), pgx.Identifier{"tweets"}, postgres.TweetColumns, pgx.CopyFromRows(rows)); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
	})
	b.Run("impl=insert-per-row", func(b *testing.B) {
		pool, _ := pgtest.Schema(b)
		if _, err := postgres.NewTweets(b.Context(), postgres.TweetsConfig{Pool: pool, Logger: quiet}); err != nil {
			b.Fatal(err)
		}
		data := tweetRange(0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := range data {
			m := stages.Message[twitter.Tweet]{Data: data[i]}
			r, err := postgres.TweetRow(&m)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pool.Exec(b.Context(), `INSERT INTO tweets (id, author_id, conversation_id, created_at, lang, text,
				hashtags, mentions, rule_tags, raw) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`, r...); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
	})
}
