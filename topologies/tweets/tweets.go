// Package tweets is the reference tweet topology, declared in Go: one X API
// v2 stream (HTTP/2) → a pool of processors (Enrich) → fan-out to the
// batchers "kafka" and "postgres", each tweet acknowledged once every
// batcher it went to has it.
//
// It also holds what the generic sinks are told about tweets: the Kafka
// record of a tweet (Key, Value) and the tweets table (Schema, Columns,
// Row). cmd/causeway merely configures this package; a program can embed
// the same topology with New and Run, or build its own from the pieces.
package tweets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topology"
	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Config configures the reference tweet topology. Zero values take the
// documented defaults; at least one sink (Kafka, Postgres or one of
// Batchers) is required.
type Config struct {
	// Name names the topology in logs and metrics. Default "tweets".
	Name string
	// Stream is the X API stream the tweets come from; twitter.Config
	// documents it. URL and Token are required.
	Stream twitter.Config
	// Kafka is the topic every tweet is produced to. Off when
	// Kafka.Brokers is "".
	Kafka KafkaConfig
	// Postgres is the table every tweet is stored in. Off when neither
	// Postgres.URL nor Postgres.Pool is set.
	Postgres PostgresConfig
	// Batchers are further batchers every tweet fans out to, beside
	// "kafka" and "postgres": an archive, say, or a test's recorder.
	Batchers map[string]topology.BatcherSpec[twitter.Tweet]
	// Processors is the number of processor goroutines. Default
	// 2 × GOMAXPROCS.
	Processors int
	// DecodeInProducer makes the stream decode every line itself. By
	// default it only frames lines (twitter.Config.DeferDecode) and the
	// processors decode the tweets, in parallel, before Enrich: the
	// tweets a full buffer drops are never decoded. A line only the
	// processor's decode finds malformed fails its message with a
	// *twitter.LateMalformedError (counted in the stream's
	// Stats.MalformedLate).
	DecodeInProducer bool
	// BufferSize is how many tweets the stream's stage holds that
	// processors have not asked for yet. Default 10,000.
	BufferSize int
	// Keep is what a full buffer does: KeepLast (default) drops the oldest
	// tweet, counted; a stream cannot be slowed down.
	Keep stages.Keep
	// ShutdownTimeout bounds the drain after Run's context ends. Default
	// 30s.
	ShutdownTimeout time.Duration
	// StateFile, if set, is where the pipeline keeps its resume point: the
	// time of the last tweet every sink holds (a few seconds early, so that
	// tweets acknowledged out of order are covered). At New it is read into
	// Stream.ResumeFrom (when Stream.BackfillMinutes is set and ResumeFrom
	// is not), so the first connection after a restart asks the X API to
	// replay what the last run did not store; Run saves it every second and
	// at the end.
	StateFile string
	// Spill, when Spill.Dir is set, gives the Kafka and Postgres batchers
	// OutageSpill: while a sink is down, its tweets are held on local disk
	// (Dir/kafka, Dir/postgres), acknowledged, and replayed in order when it
	// returns, so one sink's outage neither drops tweets nor stalls the
	// other sink. A non-empty spill is replayed first at the next start.
	Spill SpillConfig
	// HandleFailed, if set, sees failed tweets before they are acknowledged.
	// A *kafka.RecordError or *postgres.RowError in m.Err() is a permanent
	// data error; other errors are outages.
	HandleFailed func(ctx context.Context, failed []*stages.Message[twitter.Tweet])
	// Hooks are optional callbacks on stage events.
	Hooks stages.Hooks
	// Logger receives the topology's and the sinks' logs. Default
	// slog.Default().
	Logger *slog.Logger
}

// SpillConfig places the sinks' spills.
type SpillConfig struct {
	// Dir holds one spill directory per sink. Empty: no spill (a sink's
	// transient failures fail its tweets once its retries are spent).
	Dir string
	// MaxBytes bounds each sink's spill. Default 1 GiB. A full spill holds
	// its batcher back until there is room.
	MaxBytes int64
}

// KafkaConfig is the Kafka batcher of a tweet topology: record key the
// tweet id, value its raw JSON line (Key, Value).
type KafkaConfig struct {
	// Brokers is the bootstrap list, "host:port,...". Empty: no Kafka
	// batcher.
	Brokers string
	// Topic is where the tweets go. Default "tweets".
	Topic string
	// Batcher is the "kafka" batcher; its Handle is the sink's. Zero
	// fields default to batches of 500, a 100ms timeout and an adaptive
	// pool of 1 to DefaultKafkaMaxConcurrency batch processors starting at
	// 8 (a Concurrency with no MaxConcurrency fixes the pool).
	Batcher topology.BatcherSpec[twitter.Tweet]
	// Options, if set, adjusts the sink's configuration (compression,
	// timeouts, librdkafka properties) before it starts.
	Options func(*kafka.Config[twitter.Tweet])
}

// PostgresConfig is the Postgres batcher of a tweet topology: the tweets
// table, created or migrated at start (Schema), one row per tweet (Row),
// a tweet stored already skipped.
type PostgresConfig struct {
	// Pool is the pool to write through; Run does not close it. Either
	// Pool or URL turns the Postgres batcher on.
	Pool *pgxpool.Pool
	// URL is a connection string, used when Pool is nil; the pool made
	// from it is closed when Run returns.
	URL string
	// Table is the tweets table, optionally schema-qualified. Default
	// "tweets".
	Table string
	// Batcher is the "postgres" batcher; its Handle is the sink's. Zero
	// fields default to batches of 5,000, a 1s timeout and an adaptive
	// pool of 1 to DefaultMaxConcurrency batch processors starting at 2
	// (a Concurrency with no MaxConcurrency fixes the pool).
	Batcher topology.BatcherSpec[twitter.Tweet]
	// Retry bounds the retries of transient errors.
	Retry postgres.Retry
}

// DefaultMaxConcurrency bounds the adaptive pool of the Postgres batcher
// when its Batcher spec sets no concurrency: each batch processor holds a
// connection and a server process.
const DefaultMaxConcurrency = 8

// DefaultKafkaMaxConcurrency bounds the adaptive pool of the Kafka batcher
// when its Batcher spec sets no concurrency. Its batch processors share
// one producer and mostly wait for delivery reports, so a batch in flight
// costs little but its records, and the pool needs many of them to keep
// the producer busy: on 2 shared cores the Kafka batcher took 2.5 times
// as many tweets per second with 16 batches of 500 in flight as with 2.
// It starts at 8, so that a short run does not spend itself growing there.
const DefaultKafkaMaxConcurrency = 32

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "tweets"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Kafka.Topic == "" {
		c.Kafka.Topic = "tweets"
	}
	if c.Postgres.Table == "" {
		c.Postgres.Table = "tweets"
	}
	c.Kafka.Batcher = batcherDefaults(c.Kafka.Batcher, 500, 100*time.Millisecond, 8, DefaultKafkaMaxConcurrency)
	c.Postgres.Batcher = batcherDefaults(c.Postgres.Batcher, 5000, time.Second, 2, DefaultMaxConcurrency)
	return c
}

func batcherDefaults(b topology.BatcherSpec[twitter.Tweet], size int, timeout time.Duration, start, maxConc int) topology.BatcherSpec[twitter.Tweet] {
	if b.BatchSize == 0 {
		b.BatchSize = size
	}
	if b.BatchTimeout == 0 {
		b.BatchTimeout = timeout
	}
	if b.Concurrency == 0 && b.MaxConcurrency == 0 {
		b.MaxConcurrency = maxConc
	}
	if b.Concurrency == 0 {
		b.Concurrency = min(start, b.MaxConcurrency)
	}
	return b
}

func (c *Config) kafkaOn() bool    { return c.Kafka.Brokers != "" }
func (c *Config) postgresOn() bool { return c.Postgres.Pool != nil || c.Postgres.URL != "" }

// Validate reports every field of c that is missing or out of range (the
// topology's own fields are checked by New, through topology.New).
func (c *Config) Validate() error {
	var errs []error
	if err := c.Stream.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("tweets: Config.Stream: %w", err))
	}
	if !c.kafkaOn() && !c.postgresOn() && len(c.Batchers) == 0 {
		errs = append(errs, errors.New("tweets: no sink: set Config.Kafka.Brokers, Config.Postgres.URL or .Pool, or Config.Batchers"))
	}
	for name := range c.Batchers {
		if name == "kafka" || name == "postgres" {
			errs = append(errs, fmt.Errorf("tweets: Config.Batchers[%q]: the name is the pipeline's own batcher's", name))
		}
	}
	return errors.Join(errs...)
}

// Pipeline is a declared tweet topology and the sinks it writes to.
type Pipeline struct {
	state  *twitter.StateFile
	stored storedMark
	top    *topology.Topology[twitter.Tweet]
	stream *twitter.Stream
	kafka  *kafka.Sink[twitter.Tweet]
	pg     *postgres.Sink[twitter.Tweet]

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, starts the sinks (the Postgres table is created or
// migrated now) and declares the topology; Run runs it.
func New(ctx context.Context, cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Pipeline{}
	if cfg.StateFile != "" {
		p.state = &twitter.StateFile{Path: cfg.StateFile}
		st, err := p.state.LoadState()
		if err != nil {
			return nil, fmt.Errorf("tweets: %w", err)
		}
		if cfg.Stream.BackfillMinutes > 0 && cfg.Stream.ResumeFrom.IsZero() && !st.LastStored.IsZero() {
			cfg.Stream.ResumeFrom = st.LastStored
			// The backfill brings back tweets stored already: the ones
			// the state names are dropped by the stream's de-duplication
			// instead of reaching Kafka twice.
			cfg.Stream.StoredIDs = append(cfg.Stream.StoredIDs, st.StoredIDs...)
			cfg.Logger.Info("tweets: resuming: the first connection asks for what the last run did not store",
				"from", st.LastStored, "stored_ids", len(st.StoredIDs))
		}
	}
	cfg.Stream.DeferDecode = !cfg.DecodeInProducer
	p.stream = twitter.NewStream(cfg.Stream)
	batchers := make(map[string]topology.BatcherSpec[twitter.Tweet], len(cfg.Batchers)+2)
	for name, b := range cfg.Batchers {
		batchers[name] = b
	}
	if cfg.postgresOn() {
		pc := PostgresSinkConfig(cfg.Postgres.Table)
		pc.Pool, pc.URL, pc.Retry = cfg.Postgres.Pool, cfg.Postgres.URL, cfg.Postgres.Retry
		if cfg.Spill.Dir != "" && pc.Retry == (postgres.Retry{}) {
			// With a spill, an outage is the spill's to ride out: a short
			// retry for blips, then the batch goes to the spill.
			pc.Retry = postgres.Retry{Attempts: 3, Backoff: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
		}
		pc.Logger = cfg.Logger.With("component", "postgres")
		pg, err := postgres.New(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("tweets: postgres table %s: %w", cfg.Postgres.Table, err)
		}
		p.pg = pg
		b := cfg.Postgres.Batcher
		b.Handle = pg.HandleBatch
		batchers["postgres"] = cfg.spill(b, "postgres")
	}
	if cfg.kafkaOn() {
		kc := KafkaSinkConfig(cfg.Kafka.Brokers, cfg.Kafka.Topic)
		kc.Logger = cfg.Logger.With("component", "kafka")
		// The producer takes every line the stream takes (plus room for the
		// key and headers), so only the broker's own limit can refuse a
		// tweet: it is then failed as a permanent *kafka.RecordError that
		// names the limit, never dropped unexplained.
		kc.Properties = ckafka.ConfigMap{"message.max.bytes": p.stream.MaxLineSize() + 64<<10}
		if cfg.Spill.Dir != "" {
			// With a spill, a broker that does not take a batch within a
			// few seconds is down for this topology: the batch fails
			// (transiently) and goes to the spill, instead of waiting out
			// librdkafka's 30s while the stream's buffer fills.
			kc.DeliveryTimeout = spillDeliveryTimeout
			// Reconnect to a broker that was down within a second (not
			// librdkafka's 10s), so the spill replays soon after.
			kc.Properties["reconnect.backoff.max.ms"] = 1000
		}
		if cfg.Kafka.Options != nil {
			cfg.Kafka.Options(&kc)
		}
		ks, err := kafka.New(kc)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("tweets: kafka %s: %w", cfg.Kafka.Brokers, err)
		}
		p.kafka = ks
		b := cfg.Kafka.Batcher
		b.Handle = ks.HandleBatch
		batchers["kafka"] = cfg.spill(b, "kafka")
	}
	routes := make([]string, 0, len(batchers))
	for name := range batchers {
		routes = append(routes, name)
	}
	slices.Sort(routes)
	top, err := topology.New(topology.Spec[twitter.Tweet]{
		Name:     cfg.Name,
		Producer: topology.ProducerSpec[twitter.Tweet]{Producer: p.stream, BufferSize: cfg.BufferSize, Keep: cfg.Keep},
		Processors: topology.ProcessorSpec[twitter.Tweet]{Concurrency: cfg.Processors,
			Handle: func(ctx context.Context, m *stages.Message[twitter.Tweet]) error {
				if err := p.stream.Decode(&m.Data); err != nil {
					return err
				}
				if err := Enrich(ctx, m); err != nil {
					return err
				}
				if p.state != nil {
					m.Acker = &p.stored
				}
				m.Route(routes...) // fan-out: acknowledged once, after every batch it joined
				return nil
			}},
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
	p.top = top
	return p, nil
}

// spill gives b OutageSpill into Dir/name when the config has a spill.
func (c *Config) spill(b topology.BatcherSpec[twitter.Tweet], name string) topology.BatcherSpec[twitter.Tweet] {
	if c.Spill.Dir == "" || b.Outage != stages.OutageFail {
		return b
	}
	b.Outage = stages.OutageSpill
	b.Spill = SpillCodec()
	b.Spill.Dir = filepath.Join(c.Spill.Dir, name)
	b.Spill.MaxBytes = c.Spill.MaxBytes
	if name == "kafka" {
		// A Kafka producer waits out a broker outage (up to its delivery
		// timeout, longer for records already sent) instead of failing:
		// call it stalled soon after that timeout.
		b.Spill.StallTimeout = spillDeliveryTimeout + 2*time.Second
	}
	if b.Retry.Backoff == 0 && b.Retry.MaxBackoff == 0 {
		// The wait between replay attempts while the sink is down.
		b.Retry = stages.RetryPolicy{Backoff: 250 * time.Millisecond, MaxBackoff: 2 * time.Second}
	}
	return b
}

// Run runs the topology until ctx ends or the stream stops for good, then
// drains it: every tweet already read is produced, stored and acknowledged
// (or failed) within the shutdown timeout. It then closes the sinks (the
// Kafka producer flushes). Run is called once.
func (p *Pipeline) Run(ctx context.Context) error {
	if p.state == nil {
		return errors.Join(p.top.Run(ctx), p.Close())
	}
	saved := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(saved)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.saveState()
			case <-stop:
				return
			}
		}
	}()
	err := p.top.Run(ctx)
	close(stop)
	<-saved
	return errors.Join(err, p.saveState(), p.Close())
}

// saveState stores the resume point and the ids stored since, if it moved.
func (p *Pipeline) saveState() error {
	st, ok := p.stored.resumeState()
	if !ok {
		return nil
	}
	if err := p.state.SaveState(st); err != nil {
		return fmt.Errorf("tweets: %w", err)
	}
	return nil
}

// spillDeliveryTimeout is the Kafka sink's delivery timeout when the
// pipeline spills: at 2,000 tweets/s, 3s is 6,000 tweets waiting, within
// the default 10,000-tweet buffer.
const spillDeliveryTimeout = 3 * time.Second

// resumeMargin is how much earlier than the newest tweet every sink holds
// the resume point is saved: batches are acknowledged out of order, so an
// older tweet may still be on its way when a newer one is done.
const resumeMargin = 5 * time.Second

// The state also names the tweets stored during the minute before the
// resume point and since (at most maxStateIDs, the newest), so that the
// backfill after a restart, which reaches back whole minutes, brings them
// back only to the stream's de-duplication, not to Kafka a second time.
const (
	stateIDsReach = time.Minute
	maxStateIDs   = 50_000
)

// storedMark is the acknowledger of a pipeline with a state file: it
// follows the newest tweet that left the topology (stored by every sink,
// or failed and handed to HandleFailed) and remembers the recent ones.
type storedMark struct {
	mu     sync.Mutex
	last   time.Time
	saved  time.Time
	recent []storedID // in acknowledgement order
}

type storedID struct {
	id string
	at time.Time // ReceivedAt
}

// Ack moves the mark to the newest tweet of the call.
func (s *storedMark) Ack(ok, failed []*stages.Message[twitter.Tweet]) {
	var newest time.Time
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, list := range [2][]*stages.Message[twitter.Tweet]{ok, failed} {
		for _, m := range list {
			if m.Data.ReceivedAt.After(newest) {
				newest = m.Data.ReceivedAt
			}
			if m.Data.ID != "" {
				// A copy: the id may point into the stream's read buffer
				// (decoding without copying), which it would keep alive.
				s.recent = append(s.recent, storedID{strings.Clone(m.Data.ID), m.Data.ReceivedAt})
			}
		}
	}
	if newest.After(s.last) {
		s.last = newest
	}
	if len(s.recent) > 2*maxStateIDs {
		s.recent = append(s.recent[:0], s.recent[len(s.recent)-maxStateIDs:]...)
	}
}

// resumeState returns the state to save, and false if the mark did not
// move since the last call.
func (s *storedMark) resumeState() (twitter.State, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last.IsZero() || !s.last.After(s.saved) {
		return twitter.State{}, false
	}
	s.saved = s.last
	point := s.last.Add(-resumeMargin)
	keepFrom := point.Add(-stateIDsReach)
	// Forget what is older than the reach; keep at most maxStateIDs.
	i := 0
	for i < len(s.recent) && s.recent[i].at.Before(keepFrom) {
		i++
	}
	s.recent = append(s.recent[:0], s.recent[max(i, len(s.recent)-maxStateIDs):]...)
	st := twitter.State{LastStored: point, StoredIDs: make([]string, 0, len(s.recent))}
	for _, r := range s.recent {
		if !r.at.Before(keepFrom) {
			st.StoredIDs = append(st.StoredIDs, r.id)
		}
	}
	return st, true
}

// Close closes the sinks: the Kafka producer flushes what it still holds,
// and a Postgres pool made from Config.Postgres.URL is closed. Run calls
// it; call it yourself only for a Pipeline that never runs. It is safe to
// call more than once.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		if p.kafka != nil {
			errs = append(errs, p.kafka.Close())
		}
		if p.pg != nil {
			errs = append(errs, p.pg.Close())
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// Stats returns a snapshot of the topology's counters.
func (p *Pipeline) Stats() stages.Stats { return p.top.Stats() }

// Topology returns the declared topology (for Describe, SetRateLimit).
func (p *Pipeline) Topology() *topology.Topology[twitter.Tweet] { return p.top }

// Stream returns the X stream producer (for its Stats and state).
func (p *Pipeline) Stream() *twitter.Stream { return p.stream }
