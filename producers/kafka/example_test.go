package kafka_test

import (
	"context"
	"encoding/json"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topology"
)

// ExampleNew is a loader that scales out: run it on N machines with one
// group id, and the topic's partitions are shared among them. Offsets are
// committed only once Postgres has the rows, so a crash re-delivers what
// was in flight, and the idempotent sink keeps every row once.
func ExampleNew() {
	type event struct {
		ID   int64  `json:"id"`
		Kind string `json:"kind"`
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	source, err := kafka.New(kafka.Config[event]{
		Brokers: "127.0.0.1:9092",
		GroupID: "event-loaders",
		Topics:  []string{"events"},
		Decode: func(value []byte, _ *kafka.Metadata) (event, error) {
			var e event
			err := json.Unmarshal(value, &e)
			return e, err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	sink, err := postgres.New(ctx, postgres.Config[event]{
		URL:     "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Table:   "events",
		Columns: []string{"id", "kind"},
		Migrate: []string{`CREATE TABLE IF NOT EXISTS events (id bigint PRIMARY KEY, kind text)`},
		Row:     func(m *stages.Message[event]) ([]any, error) { return []any{m.Data.ID, m.Data.Kind}, nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	top, err := topology.New(topology.Spec[event]{
		// Block: a pull producer is never asked for more than demand, and
		// no message may be dropped uncommitted.
		Producer: topology.ProducerSpec[event]{Producer: source, Keep: stages.Block},
		Batchers: map[string]topology.BatcherSpec[event]{
			"postgres": {BatchSize: 5000, BatchTimeout: time.Second, Concurrency: 2, Handle: sink.HandleBatch},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Run drains on SIGINT/SIGTERM, then closes source: final commit, group left.
	if err := top.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// ExampleDeadLetter keeps what the database refuses in "events.dlq": the
// Postgres batch handler fails only the rows it refuses for good (it
// retries transient errors itself), DeadLetter stores them with the reason
// and their origin in headers, and the source commits past a failed row only
// once the dead-letter topic holds it.
func ExampleDeadLetter() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	source, err := kafka.New(kafka.Config[[]byte]{
		Brokers: "127.0.0.1:9092",
		GroupID: "event-loaders",
		Topics:  []string{"events"},
	})
	if err != nil {
		log.Fatal(err)
	}
	dlq, err := kafka.NewDeadLetter(kafka.DeadLetterConfig[[]byte]{Brokers: "127.0.0.1:9092"}) // to events.dlq
	if err != nil {
		log.Fatal(err)
	}
	defer dlq.Close()
	sink, err := postgres.New(ctx, postgres.Config[[]byte]{
		URL:     "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Table:   "events",
		Columns: []string{"doc"},
		Migrate: []string{`CREATE TABLE IF NOT EXISTS events (doc jsonb)`},
		Row:     func(m *stages.Message[[]byte]) ([]any, error) { return []any{m.Data}, nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	top, err := topology.New(topology.Spec[[]byte]{
		Producer: topology.ProducerSpec[[]byte]{Producer: source, Keep: stages.Block},
		Batchers: map[string]topology.BatcherSpec[[]byte]{
			"postgres": {BatchSize: 5000, BatchTimeout: time.Second, Handle: sink.HandleBatch},
		},
		HandleFailed: dlq.HandleFailed,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := top.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
