package postgres_test

import (
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
	"github.com/causeway-go/causeway/topology/topologytest/sinktest"
)

// BenchmarkPostgresBatcher measures rows/s of posts (~400 bytes of raw
// JSON each, like a tweet) into a fresh posts table: through a topology
// whose "postgres" batcher is the sink (COPY straight into the table, the
// staged upsert only for a batch that conflicts) with a fixed pool of 1, 2,
// 4 and 8 batch processors and an adaptive one of 1..8, with a raw
// pgx CopyFrom loop of 10,000-row batches straight into the table on one
// connection, and with one autocommitted INSERT per row (what a naive
// pipeline does).
func BenchmarkPostgresBatcher(b *testing.B) {
	if os.Getenv("DATABASE_URL") == "" {
		b.Skip("DATABASE_URL is not set: run with `make bench` or `scripts/with-pg .data/pg -- go test -bench ...`")
	}
	for _, pool := range []struct {
		name          string
		conc, maxConc int
	}{{"fixed=1", 1, 0}, {"fixed=2", 2, 0}, {"fixed=4", 4, 0}, {"fixed=8", 8, 0}, {"adaptive=1..8", 2, 8}} {
		b.Run("impl=topology/"+pool.name, func(b *testing.B) {
			pgPool, _ := pgtest.Schema(b)
			sink := newPosts(b, pgPool)
			data := postRange(0, b.N)
			src := sinktest.NewSliceSource(data)
			top, err := topology.New(topology.Spec[post]{
				Producer:   topology.ProducerSpec[post]{Producer: src, Keep: stages.Block},
				Processors: topology.ProcessorSpec[post]{Concurrency: 2, MaxDemand: 1000},
				Batchers: map[string]topology.BatcherSpec[post]{
					"postgres": {BatchSize: 10_000, BatchTimeout: 50 * time.Millisecond, Concurrency: pool.conc,
						MaxConcurrency: pool.maxConc, Handle: sink.HandleBatch},
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
			b.ReportMetric(float64(top.Stats().Batchers[0].Concurrency), "limit")
		})
	}
	b.Run("impl=copyfrom", func(b *testing.B) {
		pool, _ := pgtest.Schema(b)
		newPosts(b, pool)
		data := postRange(0, b.N)
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
				m := stages.Message[post]{Data: data[i]}
				r, err := postRow(&m)
				if err != nil {
					b.Fatal(err)
				}
				rows = append(rows, r)
			}
			if _, err := conn.CopyFrom(b.Context(), pgx.Identifier{"posts"}, postColumns, pgx.CopyFromRows(rows)); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
	})
	b.Run("impl=insert-per-row", func(b *testing.B) {
		pool, _ := pgtest.Schema(b)
		newPosts(b, pool)
		data := postRange(0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := range data {
			m := stages.Message[post]{Data: data[i]}
			r, err := postRow(&m)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pool.Exec(b.Context(), `INSERT INTO posts (id, author, at, lang, text, tags, raw)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`, r...); err != nil {
				b.Fatal(err)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
	})
}
