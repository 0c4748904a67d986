// Package hashtags is the reference windowed-aggregation topology, declared
// in Go: a Kafka consumer group on the tweets topic → processors (decode,
// normalise hashtags as the tweets table does) → the "counts" batcher,
// whose postgres.TxSink adds each tweet's hashtags to hashtag_counts
// (window_start, hashtag, tweets) and stores the consumed offsets, the
// partition's watermark and the tweet ids seen in one transaction.
//
// The counts are exact through crashes and restarts: a batch commits with
// its offsets or not at all, and the consumer starts each partition from
// the stored offset. Tweets are counted once however many listeners wrote
// them to the topic: the ids seen recently (a retention window) are kept in
// a table in the same transaction, and a repeated id is counted as a
// duplicate, not again. Tweets whose windows are final (older than the
// partition's watermark minus the grace period) are counted as late and
// dead-lettered, not applied.
//
// cmd/causeway's "hashtags" mode configures this package.
package hashtags

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/window"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// Tweet is what the topology needs of a tweet: its id, event time and
// normalised hashtags, or why the record is not a tweet (carried, not
// failed, so that the record reaches the transaction that dead-letters it
// and moves the offset past it).
type Tweet struct {
	ID        string
	CreatedAt time.Time
	Hashtags  []string
	Err       error
}

// Config configures the hashtag topology. Zero values take the defaults.
type Config struct {
	// Name names the topology in logs and metrics. Default "hashtags".
	Name string
	// Brokers is the Kafka bootstrap list. Required.
	Brokers string
	// Group is the consumer group id. Default "causeway-hashtags".
	Group string
	// Topic is the topic of raw tweet lines. Default "tweets".
	Topic string
	// Postgres is where the counts, offsets and ids go: Pool or URL
	// required.
	Postgres postgres.TxConfig[Tweet]
	// Table is the counts table. Default "hashtag_counts".
	Table string
	// Windows are the windows tweets are counted in. Default: tumbling,
	// one minute.
	Windows window.Windows
	// Grace is how long after its end a window still takes tweets.
	// Default 5m.
	Grace time.Duration
	// Retention is how long (in event time, behind the partition's
	// watermark) a tweet id is remembered for de-duplication. Default
	// Windows.Size + Grace + 1m: a repeat older than that would be late
	// anyway (a tweet id always hashes to one partition).
	Retention time.Duration
	// NoDedup turns de-duplication by tweet id off (then no seen-ids
	// table is written).
	NoDedup bool
	// Trending, if not zero, adds the live view (Pipeline.Trending): the
	// top hashtags of the tweets consumed in the last Trending, through a
	// go-streams sliding window fed by a "live" batcher. It is in memory
	// only and counts repeats; hashtag_counts is the exact record.
	Trending time.Duration
	// TrendingEvery is how often the live view slides. Default Trending/5.
	TrendingEvery time.Duration
	// Processors is the number of processor goroutines. Default 4.
	Processors int
	// BatchSize and BatchTimeout shape the counts batches. Defaults 2000
	// and 200ms.
	BatchSize    int
	BatchTimeout time.Duration
	// Concurrency is the number of batch processors (partitions are
	// spread over them). Default 4.
	Concurrency int
	// ShutdownTimeout bounds the drain. Default 30s.
	ShutdownTimeout time.Duration
	// HandleFailed, if set, sees failed tweets (late ones, records that
	// are not tweets) after the transaction dead-lettered them.
	HandleFailed func(ctx context.Context, failed []*stages.Message[Tweet])
	// Hooks are optional callbacks on stage events.
	Hooks stages.Hooks
	// Logger receives the logs. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports every field of c that is missing or out of range.
func (c *Config) Validate() error {
	var errs []error
	if c.Brokers == "" {
		errs = append(errs, errors.New("hashtags: Config.Brokers is required"))
	}
	if c.Postgres.Pool == nil && c.Postgres.URL == "" {
		errs = append(errs, errors.New("hashtags: Config.Postgres.Pool or Config.Postgres.URL is required"))
	}
	if c.Windows != (window.Windows{}) {
		if err := c.Windows.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("hashtags: Config.Windows: %w", err))
		}
	}
	if c.Trending < 0 || c.TrendingEvery < 0 || c.TrendingEvery > c.Trending {
		errs = append(errs, fmt.Errorf("hashtags: Config.Trending (%v) must be >= 0 and TrendingEvery (%v) in [0, Trending]", c.Trending, c.TrendingEvery))
	}
	if c.Grace < 0 || c.Retention < 0 {
		errs = append(errs, fmt.Errorf("hashtags: Config.Grace and Retention must be >= 0, got %v and %v", c.Grace, c.Retention))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "hashtags"
	}
	if c.Group == "" {
		c.Group = "causeway-hashtags"
	}
	if c.Topic == "" {
		c.Topic = "tweets"
	}
	if c.Table == "" {
		c.Table = "hashtag_counts"
	}
	if c.Windows == (window.Windows{}) {
		c.Windows = window.Windows{Size: time.Minute}
	}
	if c.Grace == 0 {
		c.Grace = 5 * time.Minute
	}
	if c.Retention == 0 {
		c.Retention = c.Windows.Size + c.Grace + time.Minute
	}
	if c.Processors == 0 {
		c.Processors = 4
	}
	if c.Trending > 0 && c.TrendingEvery == 0 {
		c.TrendingEvery = c.Trending / 5
	}
	if c.BatchSize == 0 {
		c.BatchSize = 2000
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = 200 * time.Millisecond
	}
	if c.Concurrency == 0 {
		c.Concurrency = 4
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Stats counts what the aggregation decided, over committed transactions.
type Stats struct {
	// Counted tweets were added to their windows; Late ones were not
	// (their windows were final); Duplicates were seen before (by id);
	// Invalid records were not tweets. All but Counted are dead-lettered
	// (Duplicates are acknowledged, not dead-lettered).
	Counted, Late, Duplicates, Invalid int64
	// Hashtags counts the (tweet, hashtag, window) increments applied.
	Hashtags int64
	// Tx is the transactional sink's counters.
	Tx postgres.TxStats
}

// Pipeline is a declared hashtag topology, its consumer and its sink.
type Pipeline struct {
	cfg      Config
	top      *topology.Topology[Tweet]
	consumer *kafka.Consumer[Tweet]
	sink     *postgres.TxSink[Tweet]
	counts   postgres.CountsTable
	seen     string // sanitized seen-ids table
	live     *trending

	counted, late, dups, invalid, hashtags atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, creates the tables (counts, seen ids, offsets,
// dead letters) and the consumer, and declares the topology.
func New(ctx context.Context, cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Pipeline{cfg: cfg, counts: postgres.CountsTable{Name: cfg.Table, Key: "hashtag", Count: "tweets"}}
	p.seen = pgx.Identifier{cfg.Table + "_seen"}.Sanitize()
	tc := cfg.Postgres
	tc.Group = cfg.Group
	tc.Apply = p.apply
	tc.Logger = cfg.Logger.With("component", "postgres")
	tc.Migrate = append(append(p.counts.Schema(),
		`CREATE TABLE IF NOT EXISTS `+p.seen+` (id text PRIMARY KEY, topic text NOT NULL, partition integer NOT NULL,
			event_time timestamptz NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS `+pgx.Identifier{cfg.Table + "_seen_time"}.Sanitize()+` ON `+p.seen+` (topic, partition, event_time)`),
		tc.Migrate...)
	var err error
	if p.sink, err = postgres.NewTx(ctx, tc); err != nil {
		return nil, fmt.Errorf("hashtags: postgres table %s: %w", cfg.Table, err)
	}
	p.consumer, err = kafka.New(kafka.Config[Tweet]{
		Brokers: cfg.Brokers, GroupID: cfg.Group, Topics: []string{cfg.Topic},
		Decode: Decode, OffsetStore: p.sink, Logger: cfg.Logger.With("component", "kafka-consumer"),
	})
	if err != nil {
		p.sink.Close()
		return nil, err
	}
	batchers := map[string]topology.BatcherSpec[Tweet]{"counts": {
		BatchSize: cfg.BatchSize, BatchTimeout: cfg.BatchTimeout, Concurrency: cfg.Concurrency,
		PartitionBy: postgres.PartitionBy[Tweet], Outage: stages.OutageBlock, Handle: p.sink.HandleBatch}}
	route := func(_ context.Context, m *stages.Message[Tweet]) error { m.Route("counts"); return nil }
	if cfg.Trending > 0 {
		p.live = newTrending(cfg.Trending, cfg.TrendingEvery)
		batchers["live"] = topology.BatcherSpec[Tweet]{BatchSize: 500, BatchTimeout: 100 * time.Millisecond, Handle: p.live.outlet.HandleBatch}
		route = func(_ context.Context, m *stages.Message[Tweet]) error {
			if m.Data.Err != nil {
				m.Route("counts")
			} else {
				m.Route("counts", "live") // acknowledged once both have it
			}
			return nil
		}
	}
	p.top, err = topology.New(topology.Spec[Tweet]{
		Name:     cfg.Name,
		Producer: topology.ProducerSpec[Tweet]{Producer: p.consumer, Keep: stages.Block},
		Processors: topology.ProcessorSpec[Tweet]{Concurrency: cfg.Processors, PartitionBy: postgres.PartitionBy[Tweet],
			Handle: route},
		Batchers:        batchers,
		HandleFailed:    cfg.HandleFailed,
		ShutdownTimeout: cfg.ShutdownTimeout,
		Hooks:           cfg.Hooks,
		Logger:          cfg.Logger,
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Decode turns a raw stream line into a Tweet with its hashtags normalised
// as the tweets table's hashtags column has them (tweets.Enrich). It never
// fails: a record that is not a tweet carries its error in Err.
func Decode(value []byte, md *kafka.Metadata) (Tweet, error) {
	var l twitter.Line
	if err := twitter.Decode(value, &l); err != nil {
		return Tweet{Err: fmt.Errorf("record %s/%d@%d: %w", md.Topic, md.Partition, md.Offset, err)}, nil
	}
	if l.Kind != twitter.KindTweet {
		return Tweet{Err: fmt.Errorf("record %s/%d@%d: a %v line, not a tweet", md.Topic, md.Partition, md.Offset, l.Kind)}, nil
	}
	m := stages.Message[twitter.Tweet]{Data: l.Tweet}
	if err := tweets.Enrich(context.Background(), &m); err != nil {
		return Tweet{Err: err}, nil
	}
	t := m.Data
	if t.CreatedAt.IsZero() {
		return Tweet{ID: t.ID, Err: fmt.Errorf("record %s/%d@%d: tweet %s has no created_at", md.Topic, md.Partition, md.Offset, t.ID)}, nil
	}
	return Tweet{ID: t.ID, CreatedAt: t.CreatedAt, Hashtags: t.Hashtags}, nil
}

// apply is the TxSink's Apply: de-duplicate by id, decide late or on time
// against each partition's stored watermark, add the counts.
func (p *Pipeline) apply(ctx context.Context, tx pgx.Tx, b *postgres.TxBatch[Tweet]) error {
	fresh, err := p.dedup(ctx, tx, b)
	if err != nil {
		return err
	}
	c := window.Counter[string]{Windows: p.cfg.Windows, Grace: p.cfg.Grace}
	wms := map[*postgres.PartitionState]*window.Watermark{}
	var counted, late, dups, invalid int64
	for _, m := range b.Messages {
		t := &m.Data
		if t.Err != nil {
			b.Fail(m, stages.Permanent(t.Err))
			invalid++
			continue
		}
		if fresh != nil && !fresh[m] {
			dups++
			continue
		}
		st := b.State(m)
		wm := wms[st]
		if wm == nil {
			wm = &window.Watermark{}
			if err := wm.UnmarshalBinary(st.State); err != nil {
				return fmt.Errorf("partition %s/%d: %w", st.Topic, st.Partition, err)
			}
			wms[st] = wm
		}
		before := wm.Time()
		if c.Add(wm, t.CreatedAt, t.Hashtags...) {
			b.Fail(m, &window.LateError{At: t.CreatedAt, Watermark: before, Grace: p.cfg.Grace})
			late++
			continue
		}
		counted++
	}
	var tags int64
	for _, n := range c.Counts {
		tags += n
	}
	for st, wm := range wms {
		st.State, _ = wm.MarshalBinary()
	}
	if err := postgres.AddCounts(ctx, tx, p.counts, c.Counts); err != nil {
		return err
	}
	if err := p.expire(ctx, tx, wms); err != nil {
		return err
	}
	// Counted once the transaction commits: a try rolled back (isolation,
	// retry) counts nothing.
	b.OnCommit(func() {
		p.counted.Add(counted)
		p.late.Add(late)
		p.dups.Add(dups)
		p.invalid.Add(invalid)
		p.hashtags.Add(tags)
	})
	return nil
}

// dedup records the batch's tweet ids in the seen table and returns the
// messages whose id was new (the first of repeats within the batch); nil
// when de-duplication is off.
func (p *Pipeline) dedup(ctx context.Context, tx pgx.Tx, b *postgres.TxBatch[Tweet]) (map[*stages.Message[Tweet]]bool, error) {
	if p.cfg.NoDedup {
		return nil, nil
	}
	first := map[string]*stages.Message[Tweet]{}
	var (
		ids, topics []string
		parts       []int32
		times       []time.Time
	)
	for _, m := range b.Messages {
		if m.Data.Err != nil || first[m.Data.ID] != nil {
			continue
		}
		first[m.Data.ID] = m
		st := b.State(m)
		ids, topics, parts = append(ids, m.Data.ID), append(topics, st.Topic), append(parts, st.Partition)
		times = append(times, m.Data.CreatedAt)
	}
	fresh := make(map[*stages.Message[Tweet]]bool, len(ids))
	if len(ids) == 0 {
		return fresh, nil
	}
	rows, err := tx.Query(ctx, `INSERT INTO `+p.seen+` (id, topic, partition, event_time)
		SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::timestamptz[])
		ON CONFLICT DO NOTHING RETURNING id`, ids, topics, parts, times)
	if err != nil {
		return nil, fmt.Errorf("record ids in %s: %w", p.seen, err)
	}
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { fresh[first[id]] = true; return nil }); err != nil {
		return nil, fmt.Errorf("record ids in %s: %w", p.seen, err)
	}
	return fresh, nil
}

// expire forgets the ids of each of the batch's partitions that are older
// than the retention behind that partition's watermark. Each partition is
// judged by its own watermark: a tweet id always hashes to one partition,
// so its repeats meet the same watermark, however far other partitions
// have gone.
func (p *Pipeline) expire(ctx context.Context, tx pgx.Tx, wms map[*postgres.PartitionState]*window.Watermark) error {
	if p.cfg.NoDedup || len(wms) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for st, wm := range wms {
		if wm.Max == 0 {
			continue
		}
		b.Queue(`DELETE FROM `+p.seen+` WHERE topic = $1 AND partition = $2 AND event_time < $3`,
			st.Topic, st.Partition, wm.Time().Add(-p.cfg.Retention))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("expire ids in %s: %w", p.seen, err)
	}
	return nil
}

// Run runs the topology until ctx ends, then drains it: every record
// fetched is applied (or dead-lettered) in a committed transaction, and the
// consumer commits to Kafka and leaves the group.
func (p *Pipeline) Run(ctx context.Context) error {
	err := p.top.Run(ctx)
	return errors.Join(err, p.Close())
}

// Close closes the consumer, the sink and the live view. Run calls it.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		if p.live != nil {
			p.live.close()
		}
		var errs []error
		if p.consumer != nil {
			errs = append(errs, p.consumer.Close())
		}
		errs = append(errs, p.sink.Close())
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// Stats returns the aggregation's counters.
func (p *Pipeline) Stats() Stats {
	return Stats{Counted: p.counted.Load(), Late: p.late.Load(), Duplicates: p.dups.Load(), Invalid: p.invalid.Load(),
		Hashtags: p.hashtags.Load(), Tx: p.sink.Stats()}
}

// Trending returns the live view's latest window (zero when
// Config.Trending is 0). After Run returns it holds the final window.
func (p *Pipeline) Trending() Trending {
	if p.live == nil {
		return Trending{}
	}
	return p.live.snapshot()
}

// TopologyStats returns a snapshot of the topology's counters.
func (p *Pipeline) TopologyStats() stages.Stats { return p.top.Stats() }

// Topology returns the declared topology.
func (p *Pipeline) Topology() *topology.Topology[Tweet] { return p.top }

// Consumer returns the Kafka consumer.
func (p *Pipeline) Consumer() *kafka.Consumer[Tweet] { return p.consumer }

// Sink returns the transactional sink (its StoredOffsets, its Stats).
func (p *Pipeline) Sink() *postgres.TxSink[Tweet] { return p.sink }
