// Package load is the reference loader topology, declared in Go: a Kafka
// consumer group reading the raw tweet lines the tweet topology produced →
// processors (tweets.Enrich) → the "postgres" batcher (the tweets table).
// Offsets are committed only for records whose messages were
// acknowledged; run several loaders with one group to share the topic's
// partitions.
//
// cmd/causeway's "load" mode merely configures this package.
package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// Config configures a loader. Zero values take the documented defaults.
type Config struct {
	// Name names the topology in logs and metrics. Default "load".
	Name string
	// Brokers is the Kafka bootstrap list, "host:port,...". Required.
	Brokers string
	// Group is the consumer group id; loaders with one group share the
	// topic. Default "causeway-loader".
	Group string
	// Topic is the topic of raw tweet lines to load. Default "tweets".
	Topic string
	// Postgres is the tweets table the loader writes (Pool or URL
	// required); tweets.PostgresConfig documents it.
	Postgres tweets.PostgresConfig
	// Processors is the number of processor goroutines. Default
	// 2 × GOMAXPROCS.
	Processors int
	// BufferSize is how many records the consumer's stage holds ahead of
	// the processors. Default 10,000. The consumer waits when it is full
	// (Block): nothing fetched is dropped.
	BufferSize int
	// ShutdownTimeout bounds the drain after Run's context ends. Default
	// 30s.
	ShutdownTimeout time.Duration
	// DeadLetterTopic is where tweets Postgres refuses for good (rows it
	// rejects, records that do not decode) go, with the error in a header,
	// before their offsets are committed. Default "<Topic>.dlq"; "-" turns
	// dead-lettering off, and such tweets then hold their partition's
	// commit (they are read again after a restart). Tweets that fail
	// transiently are never dead-lettered: the Postgres batcher retries them
	// without a budget (OutageBlock), holding the consumer back meanwhile.
	DeadLetterTopic string
	// HandleFailed, if set, sees failed tweets before they are acknowledged.
	// A *postgres.RowError in m.Err() is a permanent data error; other
	// errors are outages.
	HandleFailed func(ctx context.Context, failed []*stages.Message[twitter.Tweet])
	// Hooks are optional callbacks on stage events.
	Hooks stages.Hooks
	// Logger receives the topology's, the consumer's and the sink's logs.
	// Default slog.Default().
	Logger *slog.Logger
}

// Validate reports every field of c that is missing.
func (c *Config) Validate() error {
	var errs []error
	if c.Brokers == "" {
		errs = append(errs, errors.New("load: Config.Brokers is required"))
	}
	if c.Postgres.Pool == nil && c.Postgres.URL == "" {
		errs = append(errs, errors.New("load: Config.Postgres.Pool or Config.Postgres.URL is required"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "load"
	}
	if c.Group == "" {
		c.Group = "causeway-loader"
	}
	if c.Topic == "" {
		c.Topic = "tweets"
	}
	if c.Postgres.Table == "" {
		c.Postgres.Table = "tweets"
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topic + ".dlq"
	}
	b := &c.Postgres.Batcher
	if b.Outage == stages.OutageFail {
		// A Kafka source keeps the data: hold back while Postgres is down.
		b.Outage = stages.OutageBlock
	}
	if b.BatchSize == 0 {
		b.BatchSize = 5000
	}
	if b.BatchTimeout == 0 {
		b.BatchTimeout = time.Second
	}
	if b.Concurrency == 0 && b.MaxConcurrency == 0 {
		b.MaxConcurrency = tweets.DefaultMaxConcurrency
	}
	if b.Concurrency == 0 {
		b.Concurrency = min(2, b.MaxConcurrency)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Pipeline is a declared loader topology, its consumer and its sink.
type Pipeline struct {
	top      *topology.Topology[twitter.Tweet]
	consumer *kafka.Consumer[twitter.Tweet]
	pg       *postgres.Sink[twitter.Tweet]
	dlq      *kafka.DeadLetter[twitter.Tweet]

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, creates the consumer and the sink (the tweets table is
// created or migrated now) and declares the topology; Run runs it.
func New(ctx context.Context, cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	consumer, err := kafka.New(kafka.Config[twitter.Tweet]{
		Brokers: cfg.Brokers, GroupID: cfg.Group, Topics: []string{cfg.Topic},
		Decode: Decode, Logger: cfg.Logger.With("component", "kafka-consumer"),
	})
	if err != nil {
		return nil, err
	}
	p := &Pipeline{consumer: consumer}
	pc := tweets.PostgresSinkConfig(cfg.Postgres.Table)
	pc.Pool, pc.URL, pc.Retry = cfg.Postgres.Pool, cfg.Postgres.URL, cfg.Postgres.Retry
	pc.Logger = cfg.Logger.With("component", "postgres")
	if p.pg, err = postgres.New(ctx, pc); err != nil {
		p.Close()
		return nil, fmt.Errorf("load: postgres table %s: %w", cfg.Postgres.Table, err)
	}
	b := cfg.Postgres.Batcher
	b.Handle = p.pg.HandleBatch
	handleFailed := cfg.HandleFailed
	if cfg.DeadLetterTopic != "-" {
		p.dlq, err = kafka.NewDeadLetter(kafka.DeadLetterConfig[twitter.Tweet]{
			Brokers: cfg.Brokers, Topic: cfg.DeadLetterTopic, Permanent: stages.IsPermanent, DeliveryTimeout: 10 * time.Second,
			Logger: cfg.Logger.With("component", "dead-letter"),
		})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("load: dead-letter topic %s: %w", cfg.DeadLetterTopic, err)
		}
		log := cfg.HandleFailed
		handleFailed = func(ctx context.Context, failed []*stages.Message[twitter.Tweet]) {
			if log != nil {
				log(ctx, failed)
			}
			p.dlq.HandleFailed(ctx, failed)
		}
	}
	p.top, err = topology.New(topology.Spec[twitter.Tweet]{
		Name: cfg.Name,
		// The consumer can wait: Block, so nothing it fetched is dropped.
		Producer:        topology.ProducerSpec[twitter.Tweet]{Producer: consumer, BufferSize: cfg.BufferSize, Keep: stages.Block},
		Processors:      topology.ProcessorSpec[twitter.Tweet]{Concurrency: cfg.Processors, Handle: handle},
		Batchers:        map[string]topology.BatcherSpec[twitter.Tweet]{"postgres": b},
		HandleFailed:    handleFailed,
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

// handle is the loader's processor: enrich, then Postgres.
func handle(ctx context.Context, m *stages.Message[twitter.Tweet]) error {
	if err := tweets.Enrich(ctx, m); err != nil {
		return err
	}
	m.Route("postgres")
	return nil
}

// Decode turns a Kafka record holding a raw stream line (as the tweet
// topology produces it) into a tweet; a record that is not a tweet line
// fails, naming its topic, partition and offset.
func Decode(value []byte, md *kafka.Metadata) (twitter.Tweet, error) {
	var l twitter.Line
	if err := twitter.Decode(value, &l); err != nil {
		return twitter.Tweet{}, fmt.Errorf("record %s/%d@%d: %w", md.Topic, md.Partition, md.Offset, err)
	}
	if l.Kind != twitter.KindTweet {
		return twitter.Tweet{}, fmt.Errorf("record %s/%d@%d: a %v line, not a tweet", md.Topic, md.Partition, md.Offset, l.Kind)
	}
	return l.Tweet, nil
}

// Run runs the loader until ctx ends, then drains it: every record fetched
// is stored (or failed) and acknowledged, the consumer commits the final
// offsets and leaves the group, and the sink is closed. Run is called
// once.
func (p *Pipeline) Run(ctx context.Context) error {
	err := p.top.Run(ctx) // closes the consumer after the drain
	return errors.Join(err, p.Close())
}

// Close closes the consumer (committing what was acknowledged) and the
// sink. Run calls it; call it yourself only for a Pipeline that never
// runs. It is safe to call more than once.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		errs := []error{p.consumer.Close()}
		if p.pg != nil {
			errs = append(errs, p.pg.Close())
		}
		if p.dlq != nil {
			errs = append(errs, p.dlq.Close())
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// Stats returns a snapshot of the topology's counters.
func (p *Pipeline) Stats() stages.Stats { return p.top.Stats() }

// Topology returns the declared topology.
func (p *Pipeline) Topology() *topology.Topology[twitter.Tweet] { return p.top }

// Consumer returns the Kafka consumer (for its Stats: partitions held,
// records consumed, offsets committed).
func (p *Pipeline) Consumer() *kafka.Consumer[twitter.Tweet] { return p.consumer }
