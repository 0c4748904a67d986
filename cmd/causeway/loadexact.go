package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/topologies/load"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// runLoadExactlyOnce is causeway load -exactly-once: the rows and the
// consumed offsets commit in one Postgres transaction, and the consumer
// starts each partition from the offsets stored there.
func runLoadExactlyOnce(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	pool, err := pgxpool.New(ctx, cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", redactURL(cfg.databaseURL), err)
	}
	defer pool.Close()
	p, err := load.NewExactlyOnce(ctx, load.Config{
		Brokers: cfg.kafkaBrokers, Group: cfg.kafkaGroup, Topic: cfg.kafkaTopic,
		Postgres: tweets.PostgresConfig{Pool: pool, Table: cfg.pgTable,
			Batcher: topology.BatcherSpec[twitter.Tweet]{BatchSize: cfg.pgBatchSize, BatchTimeout: cfg.pgBatchTimeout,
				Concurrency: cfg.pgConcurrency}},
		Processors:      cfg.processors,
		BufferSize:      cfg.buffer,
		HandleFailed:    newFailureLog(log).handle,
		ShutdownTimeout: cfg.shutdownTimeout,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	defer p.Close()
	rowsBefore, _ := countRows(ctx, pool, cfg.pgTable)
	log.Info("causeway: loading exactly once\n" + p.Topology().Describe().String())
	srv, err := serveMetrics(cfg.metricsAddr, p.Topology(), nil, log)
	if err != nil {
		return err
	}
	defer srv.close()
	last := time.Now()
	elapsed, err := runUntil(ctx, p.Run, cfg.duration, log, func() string {
		ks := p.Consumer().Stats()
		if cfg.maxTweets > 0 && ks.Consumed >= int64(cfg.maxTweets) {
			return fmt.Sprintf("-max-tweets %d reached", cfg.maxTweets)
		}
		if cfg.progress > 0 && time.Since(last) >= cfg.progress {
			last = time.Now()
			s, ts := p.Stats(), p.Sink().Stats()
			log.Info("causeway: progress", "consumed", ks.Consumed, "acked", s.Acked, "failed", s.Failed,
				"transactions", ts.Batches, "skipped", ts.Skipped, "dead_lettered", ts.DeadLettered)
		}
		return ""
	})
	sum := newSummary("load", p.Stats(), elapsed)
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer qcancel()
	sum.addPostgres(qctx, pool, cfg.pgTable, rowsBefore)
	sum.print(stdout)
	ts := p.Sink().Stats()
	fmt.Fprintf(stdout, "  exactly-once %d transactions; %d records skipped as already applied; %d dead-lettered in causeway_dead_letters\n",
		ts.Batches, ts.Skipped, ts.DeadLettered)
	return errors.Join(err, sum.writeJSON(cfg.summaryJSON))
}
