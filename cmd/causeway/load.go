package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/dashboard"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topologies/load"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// runLoad reads the Kafka topic as a member of -kafka-group and loads the
// tweets into Postgres, committing offsets only for what Postgres holds.
// It runs until ctx ends, -duration, or -max-tweets records were consumed.
func runLoad(ctx context.Context, cfg *config, log *slog.Logger, stdout, stderr io.Writer) error {
	if cfg.kafkaBrokers == "" {
		return errors.New("load: -kafka-brokers (or $KAFKA_BROKERS) is required: there is nothing to load from an embedded Kafka")
	}
	if cfg.exactlyOnce {
		return runLoadExactlyOnce(ctx, cfg, log, stdout)
	}
	pool, err := pgxpool.New(ctx, cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", redactURL(cfg.databaseURL), err)
	}
	defer pool.Close()
	if err := checkPostgres(ctx, pool, cfg.databaseURL, cfg.connectTimeout); err != nil {
		return err
	}
	if err := checkKafka(cfg.kafkaBrokers, cfg.connectTimeout); err != nil {
		return err
	}
	errs := &dashboard.Errors{} // the latest errors, for the dashboard
	p, err := load.New(ctx, load.Config{
		Brokers: cfg.kafkaBrokers, Group: cfg.kafkaGroup, Topic: cfg.kafkaTopic, DeadLetterTopic: cfg.dlqTopic,
		Postgres: tweets.PostgresConfig{Pool: pool, Table: cfg.pgTable,
			Batcher: topology.BatcherSpec[twitter.Tweet]{BatchSize: cfg.pgBatchSize, BatchTimeout: cfg.pgBatchTimeout,
				Concurrency: cfg.pgConcurrency, MaxConcurrency: adaptiveMax(cfg.pgConcurrency, cfg.pgMaxConc)}},
		Processors:      cfg.processors,
		BufferSize:      cfg.buffer,
		HandleFailed:    dashboard.HandleFailed(errs, newFailureLog(log).handle),
		Hooks:           errs.Hooks(stages.Hooks{}),
		ShutdownTimeout: cfg.shutdownTimeout,
		Logger:          log,
	})
	if err != nil {
		return err // it names the sink (table, brokers) that failed
	}
	defer p.Close()
	rowsBefore, _ := countRows(ctx, pool, cfg.pgTable)
	log.Info("causeway: loading\n" + p.Topology().Describe().String())
	srv, err := serveMetrics(cfg.metricsAddr, dashboard.WithErrors(p.Topology(), errs), nil, log)
	if err != nil {
		return err
	}
	defer srv.close()

	// Run closes the consumer (its final commit) after the drain.
	elapsed, err := runUntil(ctx, p.Run, cfg.duration, log, loadCheck(cfg, p, log))
	sum := newSummary("load", p.Stats(), elapsed)
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer qcancel()
	sum.addPostgres(qctx, pool, cfg.pgTable, rowsBefore)
	sum.print(stdout)
	return errors.Join(err, sum.writeJSON(cfg.summaryJSON))
}

// loadCheck logs progress and says when the load is done: at -max-tweets.
func loadCheck(cfg *config, p *load.Pipeline, log *slog.Logger) func() string {
	last := time.Now()
	return func() string {
		ks := p.Consumer().Stats()
		if cfg.maxTweets > 0 && ks.Consumed >= int64(cfg.maxTweets) {
			return fmt.Sprintf("-max-tweets %d reached", cfg.maxTweets)
		}
		if cfg.progress > 0 && time.Since(last) >= cfg.progress {
			last = time.Now()
			s := p.Stats()
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
