package postgres_test

import (
	"context"
	"errors"
	"log"
	"log/slog"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topology"
)

// ExampleNew wires a Postgres sink as the "postgres" batcher of a topology
// of sensor readings. The topology describes the table (its schema, the
// columns written, the conflict key) and maps each message to a row; the
// sink creates or migrates the table at start, and replays never duplicate
// rows. Rows Postgres refuses fail alone with a *postgres.RowError, a
// permanent data error that a dead-letter step can keep.
func ExampleNew() {
	type reading struct {
		Sensor string
		At     time.Time
		Value  float64
	}
	ctx := context.Background()
	sink, err := postgres.New(ctx, postgres.Config[reading]{
		URL:         "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Table:       "readings",
		Columns:     []string{"sensor", "at", "value"},
		ConflictKey: []string{"sensor", "at"},
		Migrate:     []string{`CREATE TABLE IF NOT EXISTS readings (sensor text, at timestamptz, value float8, PRIMARY KEY (sensor, at))`},
		Row: func(m *stages.Message[reading]) ([]any, error) {
			return []any{m.Data.Sensor, m.Data.At, m.Data.Value}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	var source stages.Producer[reading] // a Kafka consumer, say
	top, err := topology.New(topology.Spec[reading]{
		Producer: topology.ProducerSpec[reading]{Producer: source},
		Batchers: map[string]topology.BatcherSpec[reading]{
			"postgres": {BatchSize: 5000, BatchTimeout: time.Second, Concurrency: 2, Handle: sink.HandleBatch},
		},
		HandleFailed: func(_ context.Context, failed []*stages.Message[reading]) {
			for _, m := range failed {
				var rowErr *postgres.RowError
				slog.Warn("reading not stored", "sensor", m.Data.Sensor, "permanent", errors.As(m.Err(), &rowErr), "err", m.Err())
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = top.Run(ctx)
}
