package tweets_test

import (
	"context"
	"fmt"
	"log"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// Example embeds the reference tweet topology in a program: the X stream
// (here the fake X API, serving three tweets) → Enrich → fan-out to the
// "kafka" batcher (here an in-process Kafka) and a batcher of the
// program's own that keeps the hashtags. A Postgres table joins the same
// way with Config.Postgres. Each tweet is acknowledged once both batchers
// have it.
func Example() {
	fake, err := twittertest.NewServer(twittertest.Config{Addr: "127.0.0.1:0", Token: "example-token", H2C: true, Lines: [][]byte{
		[]byte(`{"data":{"id":"1001","text":"Hello #Go and #golang","author_id":"7","lang":"en"}}`),
		[]byte(`{"data":{"id":"1002","text":"#Kafka meets #Postgres","author_id":"8","lang":"en"}}`),
		[]byte(`{"data":{"id":"1003","text":"no tags, @someone","author_id":"9","lang":"en"}}`),
	}})
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	cluster, err := kafkatest.New(kfake.SeedTopics(1, "tweets"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	// The program's own batcher: it keeps each tweet's hashtags.
	var (
		mu       sync.Mutex
		hashtags = map[string][]string{}
		allSeen  = make(chan struct{})
		once     sync.Once
	)
	keep := func(_ context.Context, b *stages.Batch[twitter.Tweet]) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range b.Messages {
			hashtags[m.Data.ID] = m.Data.Hashtags
		}
		if len(hashtags) == 3 {
			once.Do(func() { close(allSeen) })
		}
		return nil
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	p, err := tweets.New(ctx, tweets.Config{
		Stream:   twitter.Config{URL: fake.URL(), Token: "example-token", Sample: true, Logger: quiet},
		Kafka:    tweets.KafkaConfig{Brokers: cluster.Brokers, Topic: "tweets"},
		Batchers: map[string]topology.BatcherSpec[twitter.Tweet]{"hashtags": {BatchTimeout: 10 * time.Millisecond, Handle: keep}},
		Logger:   quiet,
	})
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-allSeen:
	case <-time.After(time.Minute):
		log.Fatal("the tweets did not arrive")
	}
	stop() // Run drains: both batchers finish, the Kafka producer flushes
	if err := <-done; err != nil {
		log.Fatal(err)
	}

	st := p.Stats()
	fmt.Printf("acked %d, failed %d, dropped %d\n", st.Acked, st.Failed, st.Dropped)
	recs, err := cluster.ReadAll(context.Background(), "tweets")
	if err != nil {
		log.Fatal(err)
	}
	var keys []string
	for _, r := range recs {
		keys = append(keys, string(r.Key))
	}
	slices.Sort(keys)
	fmt.Println("kafka:", strings.Join(keys, " "))
	for _, id := range []string{"1001", "1002", "1003"} {
		fmt.Printf("%s %v\n", id, hashtags[id])
	}
	// Output:
	// acked 3, failed 0, dropped 0
	// kafka: 1001 1002 1003
	// 1001 [go golang]
	// 1002 [kafka postgres]
	// 1003 []
}
