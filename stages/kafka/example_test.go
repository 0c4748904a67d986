package kafka_test

import (
	"context"
	"log"
	"log/slog"
	"time"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka"
	"github.com/causeway-go/causeway/topology"
)

// ExampleNewTweets wires a Kafka sink as the "kafka" batcher of a tweets
// topology: each tweet becomes a record keyed by its id whose value is the
// raw JSON line; tweets whose records could not be delivered reach
// HandleFailed.
func ExampleNewTweets() {
	sink, err := kafka.NewTweets(kafka.Config[twitter.Tweet]{
		Brokers:         "127.0.0.1:9092",
		Topic:           "tweets",
		Compression:     "lz4",
		DeliveryTimeout: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close() // after Run returned: flushes what is left

	var source stages.Producer[twitter.Tweet] // the X stream, say
	top, err := topology.New(topology.Spec[twitter.Tweet]{
		Producer: topology.ProducerSpec[twitter.Tweet]{Producer: source},
		Batchers: map[string]topology.BatcherSpec[twitter.Tweet]{
			"kafka": {BatchSize: 500, BatchTimeout: 100 * time.Millisecond, Concurrency: 2, Handle: sink.HandleBatch},
		},
		HandleFailed: func(_ context.Context, failed []*stages.Message[twitter.Tweet]) {
			for _, m := range failed {
				slog.Warn("tweet not produced", "id", m.Data.ID, "err", m.Err())
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = top.Run(context.Background())
}
