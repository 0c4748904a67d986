package load

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// Record is what the exactly-once loader carries: a decoded tweet, or why
// the record is not one. The error travels in the data, not as a failed
// message, so that the record reaches the transaction that dead-letters it
// and moves its partition's stored offset past it.
type Record struct {
	Tweet twitter.Tweet
	Err   error
}

// ExactPipeline is a loader whose rows and consumed offsets commit in one
// Postgres transaction (postgres.TxSink): the tweets table and the stored
// offsets (causeway_offsets) never disagree, and the consumer starts each
// partition from the stored offset. Records that are not tweets, and rows
// Postgres refuses, go to the dead-letter table (causeway_dead_letters) in
// the same transaction.
type ExactPipeline struct {
	top      *topology.Topology[Record]
	consumer *kafka.Consumer[Record]
	sink     *postgres.TxSink[Record]
	table    string // sanitized
	stage    string // the staging table, in pg_temp
	create   string
	move     string

	closeOnce sync.Once
	closeErr  error
}

// NewExactlyOnce is New for an exactly-once loader. cfg.DeadLetterTopic is
// not used: the dead letters go to a table in the same transaction.
func NewExactlyOnce(ctx context.Context, cfg Config) (*ExactPipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &ExactPipeline{table: pgx.Identifier(strings.Split(cfg.Postgres.Table, ".")).Sanitize(), stage: "causeway_load_stage"}
	cols := make([]string, len(tweets.Columns))
	for i, c := range tweets.Columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	list := strings.Join(cols, ", ")
	p.create = fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s ON COMMIT DELETE ROWS AS SELECT %s FROM %s WITH NO DATA", p.stage, list, p.table)
	p.move = fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM pg_temp.%s ON CONFLICT (id) DO NOTHING", p.table, list, list, p.stage)
	var err error
	p.sink, err = postgres.NewTx(ctx, postgres.TxConfig[Record]{
		Pool: cfg.Postgres.Pool, URL: cfg.Postgres.URL, Group: cfg.Group, Retry: cfg.Postgres.Retry,
		Apply: p.apply, Migrate: tweets.Schema(cfg.Postgres.Table), Logger: cfg.Logger.With("component", "postgres"),
	})
	if err != nil {
		return nil, fmt.Errorf("load: postgres table %s: %w", cfg.Postgres.Table, err)
	}
	p.consumer, err = kafka.New(kafka.Config[Record]{
		Brokers: cfg.Brokers, GroupID: cfg.Group, Topics: []string{cfg.Topic}, OffsetStore: p.sink,
		Decode: func(v []byte, md *kafka.Metadata) (Record, error) {
			t, err := Decode(v, md)
			return Record{Tweet: t, Err: err}, nil
		},
		Logger: cfg.Logger.With("component", "kafka-consumer"),
	})
	if err != nil {
		p.sink.Close()
		return nil, err
	}
	b := cfg.Postgres.Batcher
	var handleFailed func(ctx context.Context, failed []*stages.Message[Record])
	if log := cfg.HandleFailed; log != nil {
		handleFailed = func(ctx context.Context, failed []*stages.Message[Record]) {
			ms := make([]*stages.Message[twitter.Tweet], len(failed))
			for i, m := range failed {
				ms[i] = &stages.Message[twitter.Tweet]{Data: m.Data.Tweet, Metadata: m.Metadata}
				ms[i].Fail(m.Err())
			}
			log(ctx, ms)
		}
	}
	p.top, err = topology.New(topology.Spec[Record]{
		Name:     cfg.Name,
		Producer: topology.ProducerSpec[Record]{Producer: p.consumer, BufferSize: cfg.BufferSize, Keep: stages.Block},
		Processors: topology.ProcessorSpec[Record]{Concurrency: cfg.Processors, PartitionBy: postgres.PartitionBy[Record],
			Handle: handleRecord},
		Batchers: map[string]topology.BatcherSpec[Record]{"postgres": {
			BatchSize: b.BatchSize, BatchTimeout: b.BatchTimeout, Concurrency: b.Concurrency,
			PartitionBy: postgres.PartitionBy[Record], Outage: stages.OutageBlock, Handle: p.sink.HandleBatch}},
		HandleFailed:    handleFailed,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Logger:          cfg.Logger,
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// handleRecord enriches a tweet and routes every record, tweet or not, to
// the transactional batcher.
func handleRecord(ctx context.Context, m *stages.Message[Record]) error {
	if m.Data.Err == nil {
		tm := stages.Message[twitter.Tweet]{Data: m.Data.Tweet}
		if err := tweets.Enrich(ctx, &tm); err != nil {
			m.Data.Err = err
		} else {
			m.Data.Tweet = tm.Data
		}
	}
	m.Route("postgres")
	return nil
}

// apply COPYs the batch's tweets into a staging table and moves them into
// the tweets table (a tweet stored already is skipped); records that are
// not tweets, or whose row cannot be made, are dead-lettered.
func (p *ExactPipeline) apply(ctx context.Context, tx pgx.Tx, b *postgres.TxBatch[Record]) error {
	rows := make([][]any, 0, len(b.Messages))
	for _, m := range b.Messages {
		if m.Data.Err != nil {
			b.Fail(m, stages.Permanent(m.Data.Err))
			continue
		}
		tm := stages.Message[twitter.Tweet]{Data: m.Data.Tweet}
		vals, err := tweets.Row(&tm)
		if err != nil {
			b.Fail(m, &postgres.RowError{Table: p.table, Err: err})
			continue
		}
		rows = append(rows, vals)
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, p.create); err != nil {
		return fmt.Errorf("create staging table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", p.stage}, tweets.Columns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy into staging table: %w", err)
	}
	if _, err := tx.Exec(ctx, p.move); err != nil {
		return fmt.Errorf("insert from staging table: %w", err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM pg_temp."+p.stage); err != nil {
		return fmt.Errorf("empty staging table: %w", err)
	}
	return nil
}

// Run runs the loader until ctx ends, then drains it (every record fetched
// is in a committed transaction) and closes it.
func (p *ExactPipeline) Run(ctx context.Context) error {
	err := p.top.Run(ctx)
	return errors.Join(err, p.Close())
}

// Close closes the consumer and the sink. Run calls it.
func (p *ExactPipeline) Close() error {
	p.closeOnce.Do(func() {
		p.closeErr = errors.Join(p.consumer.Close(), p.sink.Close())
	})
	return p.closeErr
}

// Stats returns a snapshot of the topology's counters.
func (p *ExactPipeline) Stats() stages.Stats { return p.top.Stats() }

// Topology returns the declared topology.
func (p *ExactPipeline) Topology() *topology.Topology[Record] { return p.top }

// Consumer returns the Kafka consumer.
func (p *ExactPipeline) Consumer() *kafka.Consumer[Record] { return p.consumer }

// Sink returns the transactional sink (StoredOffsets, Stats).
func (p *ExactPipeline) Sink() *postgres.TxSink[Record] { return p.sink }
