package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topology"
)

// decodeRecord turns a Kafka record holding a raw stream line into a tweet.
func decodeRecord(value []byte, md *kafka.Metadata) (twitter.Tweet, error) {
	var l twitter.Line
	if err := twitter.Decode(value, &l); err != nil {
		return twitter.Tweet{}, fmt.Errorf("record %s/%d@%d: %w", md.Topic, md.Partition, md.Offset, err)
	}
	if l.Kind != twitter.KindTweet {
		return twitter.Tweet{}, fmt.Errorf("record %s/%d@%d: a %v line, not a tweet", md.Topic, md.Partition, md.Offset, l.Kind)
	}
	return l.Tweet, nil
}

// runLoad reads the Kafka topic as a member of -kafka-group and loads the
// tweets into Postgres, committing offsets only for what Postgres holds.
// It runs until ctx ends, -duration, or -max-tweets records were consumed.
func runLoad(ctx context.Context, cfg *config, log *slog.Logger, stdout, stderr io.Writer) error {
	if cfg.kafkaBrokers == "" {
		return errors.New("load: -kafka-brokers (or $KAFKA_BROKERS) is required: there is nothing to load from an embedded Kafka")
	}
	consumer, err := kafka.New(kafka.Config[twitter.Tweet]{
		Brokers: cfg.kafkaBrokers, GroupID: cfg.kafkaGroup, Topics: []string{cfg.kafkaTopic},
		Decode: decodeRecord, Logger: log.With("component", "kafka-consumer"),
	})
	if err != nil {
		return err
	}
	pg, err := postgres.NewTweets(ctx, postgres.TweetsConfig{URL: cfg.databaseURL, Table: cfg.pgTable, Logger: log.With("component", "postgres")})
	if err != nil {
		consumer.Close()
		return fmt.Errorf("postgres %s: %w", redactURL(cfg.databaseURL), err)
	}
	defer pg.Close()
	rowsBefore, _ := countRows(ctx, pg.Pool(), cfg.pgTable)
	top, err := topology.New(topology.Spec[twitter.Tweet]{
		Name: "load",
		// The consumer can wait: Block, so nothing it fetched is dropped.
		Producer:   topology.ProducerSpec[twitter.Tweet]{Producer: consumer, BufferSize: cfg.buffer, Keep: stages.Block},
		Processors: topology.ProcessorSpec[twitter.Tweet]{Concurrency: cfg.processors, Handle: loadHandler},
		Batchers: map[string]topology.BatcherSpec[twitter.Tweet]{
			"postgres": {BatchSize: cfg.pgBatchSize, BatchTimeout: cfg.pgBatchTimeout, Concurrency: cfg.pgConcurrency, Handle: pg.HandleBatch},
		},
		HandleFailed:    newFailureLog(log).handle,
		ShutdownTimeout: cfg.shutdownTimeout,
		Logger:          log,
	})
	if err != nil {
		consumer.Close()
		return err
	}
	log.Info("causeway: loading\n" + top.Describe().String())
	srv, err := serveMetrics(cfg.metricsAddr, top.Stats, nil, log)
	if err != nil {
		consumer.Close()
		return err
	}
	defer srv.close()

	// Run closes the consumer (its final commit) after the drain.
	elapsed, err := runUntil(ctx, top, cfg.duration, log, loadCheck(cfg, top, consumer, log))
	sum := newSummary("load", top.Stats(), elapsed)
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer qcancel()
	sum.addPostgres(qctx, pg.Pool(), cfg.pgTable, rowsBefore)
	sum.print(stdout)
	return errors.Join(err, sum.writeJSON(cfg.summaryJSON))
}

// loadCheck logs progress and says when the load is done: at -max-tweets.
func loadCheck(cfg *config, top *topology.Topology[twitter.Tweet], c *kafka.Consumer[twitter.Tweet], log *slog.Logger) func() string {
	last := time.Now()
	return func() string {
		ks := c.Stats()
		if cfg.maxTweets > 0 && ks.Consumed >= int64(cfg.maxTweets) {
			return fmt.Sprintf("-max-tweets %d reached", cfg.maxTweets)
		}
		if cfg.progress > 0 && time.Since(last) >= cfg.progress {
			last = time.Now()
			s := top.Stats()
			var parts []string
			for topic, ps := range ks.Partitions {
				parts = append(parts, fmt.Sprintf("%s%v", topic, ps))
			}
			log.Info("causeway: progress", "consumed", ks.Consumed, "acked", s.Acked, "failed", s.Failed,
				"in_flight", s.InFlight, "partitions", strings.Join(parts, " "))
		}
		return ""
	}
}
