package kafka_test

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka"
	"github.com/causeway-go/causeway/topology"
)

// ExampleNew wires a Kafka sink as the "kafka" batcher of a topology of
// orders: the topology says what a record is (key = order id, value = the
// order as JSON); the sink produces each batch and lets the delivery
// reports decide every message's ack. Orders whose records could not be
// produced reach HandleFailed; a *kafka.RecordError there is a permanent
// data error (a dead-letter candidate), anything else an outage.
func ExampleNew() {
	type order struct {
		ID    string  `json:"id"`
		Total float64 `json:"total"`
	}
	sink, err := kafka.New(kafka.Config[order]{
		Brokers:     "127.0.0.1:9092",
		Topic:       "orders",
		Key:         func(m *stages.Message[order]) []byte { return []byte(m.Data.ID) },
		Value:       func(m *stages.Message[order]) ([]byte, error) { return json.Marshal(m.Data) },
		Compression: "lz4",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close() // after Run returned: flushes what is left

	var source stages.Producer[order] // a Kafka consumer, say
	top, err := topology.New(topology.Spec[order]{
		Producer: topology.ProducerSpec[order]{Producer: source},
		Batchers: map[string]topology.BatcherSpec[order]{
			"kafka": {BatchSize: 500, BatchTimeout: 100 * time.Millisecond, Concurrency: 2, Handle: sink.HandleBatch},
		},
		HandleFailed: func(_ context.Context, failed []*stages.Message[order]) {
			for _, m := range failed {
				slog.Warn("order not produced", "id", m.Data.ID, "err", m.Err())
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = top.Run(context.Background())
}
