package postgres_test

import (
	"context"
	"log"
	"time"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topology"
)

// ExampleNewTweets wires a Postgres sink as the "postgres" batcher of a
// tweets topology. The tweets table is created (or migrated) by NewTweets;
// replays and duplicate tweets never duplicate rows.
func ExampleNewTweets() {
	ctx := context.Background()
	sink, err := postgres.NewTweets(ctx, postgres.TweetsConfig{
		URL:   "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Table: "tweets",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	var source stages.Producer[twitter.Tweet] // the X stream, say
	top, err := topology.New(topology.Spec[twitter.Tweet]{
		Producer: topology.ProducerSpec[twitter.Tweet]{Producer: source},
		Batchers: map[string]topology.BatcherSpec[twitter.Tweet]{
			"postgres": {BatchSize: 5000, BatchTimeout: time.Second, Concurrency: 2, Handle: sink.HandleBatch},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = top.Run(ctx)
}

// ExampleNew writes any type with a row function; the table needs a
// primary key or unique constraint for replays to be idempotent.
func ExampleNew() {
	type reading struct {
		Sensor string
		At     time.Time
		Value  float64
	}
	sink, err := postgres.New(context.Background(), postgres.Config[reading]{
		URL:     "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Table:   "readings",
		Columns: []string{"sensor", "at", "value"},
		Migrate: []string{`CREATE TABLE IF NOT EXISTS readings (sensor text, at timestamptz, value float8, PRIMARY KEY (sensor, at))`},
		Row: func(m *stages.Message[reading]) ([]any, error) {
			return []any{m.Data.Sensor, m.Data.At, m.Data.Value}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	// Use sink.HandleBatch as a batcher's Handle.
}
