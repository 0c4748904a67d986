package load_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topologies/load"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestLoad loads a topic of raw tweet lines into the tweets table: every
// tweet is stored once, enriched; the one whose raw JSON Postgres refuses
// fails alone with a *postgres.RowError and goes to the dead-letter topic
// (so its offset can be committed); the counters balance.
func TestLoad(t *testing.T) {
	t.Parallel()
	const n = 300
	c := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	var recs []*kgo.Record
	for i := range n {
		id := fmt.Sprint(2_000_000 + i)
		text := fmt.Sprintf("tweet %d about #Load and #go", i)
		if i == 77 {
			text = `nul \u0000 here`
		}
		line := fmt.Sprintf(`{"data":{"id":"%s","text":"%s","author_id":"7","lang":"en"}}`, id, text)
		recs = append(recs, &kgo.Record{Topic: "tweets", Key: []byte(id), Value: []byte(line)})
	}
	c.Produce(t, recs...)
	pool, _ := pgtest.Schema(t)

	var (
		batched atomic.Int64
		all     = make(chan struct{})
		once    sync.Once
		mu      sync.Mutex
		failed  = map[string]error{}
	)
	p, err := load.New(t.Context(), load.Config{
		Brokers:  c.Brokers,
		Group:    "loaders",
		Postgres: tweets.PostgresConfig{Pool: pool, Batcher: topology.BatcherSpec[twitter.Tweet]{BatchSize: 100, BatchTimeout: 50 * time.Millisecond}},
		HandleFailed: func(_ context.Context, msgs []*stages.Message[twitter.Tweet]) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				failed[m.Data.ID] = m.Err()
			}
		},
		Hooks: stages.Hooks{BatchStop: func(e stages.BatchEvent) {
			if batched.Add(int64(e.Size)) >= n {
				once.Do(func() { close(all) })
			}
		}},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		t.Fatalf("only %d of %d records reached the batcher", batched.Load(), n)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	st := p.Stats()
	if st.Producer.Emitted != n || st.Acked != n-1 || st.Failed != 1 || st.InFlight != 0 {
		t.Fatalf("emitted %d, acked %d, failed %d, in flight %d; want %d, %d, 1, 0", st.Producer.Emitted, st.Acked, st.Failed, st.InFlight, n, n-1)
	}
	var rowErr *postgres.RowError
	if err := failed["2000077"]; len(failed) != 1 || !errors.As(err, &rowErr) {
		t.Fatalf("failed %v, want tweet 2000077 alone, with a *postgres.RowError", failed)
	}
	dlq, err := kafkatest.ReadAllFrom(t.Context(), c.Brokers, "tweets.dlq")
	if err != nil || len(dlq) != 1 || string(dlq[0].Key) != "2000077" {
		t.Fatalf("dead-letter topic holds %d records (%v), want tweet 2000077 alone", len(dlq), err)
	}
	rows, err := pool.Query(t.Context(), "SELECT id, hashtags FROM tweets ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID       int64
		Hashtags []string
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n-1 {
		t.Fatalf("table holds %d tweets, want %d", len(got), n-1)
	}
	for i, r := range got {
		want := int64(2_000_000 + i)
		if i >= 77 {
			want++
		}
		if r.ID != want || !slices.Equal(r.Hashtags, []string{"load", "go"}) {
			t.Fatalf("row %d = %+v, want id %d with hashtags [load go] (enriched)", i, r, want)
		}
	}
}
