package gbfs_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/causeway-go/causeway/topologies/gbfs"
)

// A program that loads a bike-share system into Kafka and Postgres until
// it is interrupted, then prints what it did. (Not run as a test: it needs
// a GBFS feed, Kafka and Postgres.)
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	p, err := gbfs.New(ctx, gbfs.Config{
		FeedURL:             "https://gbfs.example-bikes.com/gbfs/gbfs.json",
		Kafka:               gbfs.KafkaConfig{Brokers: "kafka-1:9092"},           // topic station_status
		Postgres:            gbfs.PostgresConfig{URL: os.Getenv("DATABASE_URL")}, // tables created at start
		InformationInterval: 10 * time.Minute,                                    // station_status: at the feed's ttl
	})
	if err != nil {
		log.Fatal(err) // e.g. the discovery file's URL and what was wrong with it
	}
	if err := p.Run(ctx); err != nil { // drains on interrupt
		log.Print(err)
	}
	c := p.Counters()
	fmt.Printf("%d new rows, %d changes, %d re-sent rows dropped\n", c.Rows, c.Changes, c.Resent)
	for _, s := range p.TopChanged(5) {
		fmt.Println(s.StationID, s.Changes)
	}
}
