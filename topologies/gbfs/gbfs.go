// Package gbfs is the reference bike-share topology, declared in Go: a
// GBFS system's auto-discovery file → the HTTP polling producer on
// station_status (at the feed's own ttl) and station_information (slowly)
// → processors partitioned by station (normalise either GBFS version,
// validate, drop rows whose last_reported did not move, compute the change
// log) → fan-out to the batchers "kafka" (topic station_status, key
// station_id, value the normalised row as JSON) and "postgres".
//
// The "postgres" batcher writes, in one transaction per batch, each new
// status row into station_status (idempotent on (station_id,
// last_reported)), its change, if any, into station_changes, and station
// rows into station_information (upserted). The change log is computed
// incrementally: the processors keep each station's last state and, for
// a row whose state (bikes, docks, installed, renting, returning) differs,
// emit a Change against that previous row. Rows are kept only when their
// last_reported is newer than the station's last, so station_status grows
// in last_reported order per station and each change is taken against the
// row LAG(…) OVER (PARTITION BY station_id ORDER BY last_reported) would
// take; a status row and its change commit together, and at start the
// last states are read back from station_status, so a restart (even after
// a kill) leaves neither gaps nor duplicates. The view station_changes_lag
// computes the same log with LAG.
//
// cmd/causeway's gbfs mode merely configures this package.
package gbfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	spec "github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/producers/poll"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topology"
)

// Defaults of Config's zero values.
const (
	DefaultTopic               = "station_status"
	DefaultLanguage            = "en"
	DefaultInformationInterval = 5 * time.Minute
)

// Config configures the bike-share topology. Zero values take the
// documented defaults.
type Config struct {
	// Name names the topology in logs and metrics. Default "gbfs".
	Name string
	// FeedURL is the system's auto-discovery URL (…/gbfs.json). Required
	// unless Feeds.StationStatus is set.
	FeedURL string
	// Feeds, if its StationStatus is set, are polled as they are, without
	// discovery. Without a StationInformation URL no station_information
	// is polled.
	Feeds Feeds
	// Language picks the feeds (v2.3) and names (v3.0) of one language.
	// Default "en".
	Language string
	// Client makes the requests. Default: the poll producer's own (HTTP/2
	// where the server offers it).
	Client *http.Client
	// PollInterval is the time between polls of station_status. Default 0:
	// when the feed says it changes (its last_updated + ttl), at least 1 s
	// apart.
	PollInterval time.Duration
	// InformationInterval is the time between polls of
	// station_information. Default 5 min.
	InformationInterval time.Duration
	// Poll, if set, adjusts the producer's configuration before it is made
	// (back-off classes, jitter, an OnPoll hook).
	Poll func(*poll.Config[Record])

	// Kafka is the topic every new status row is produced to. Off when
	// Kafka.Brokers is "".
	Kafka KafkaConfig
	// Postgres holds the tables. Required: the change log continues from
	// the states stored there.
	Postgres PostgresConfig

	// RecentChanges is how many of the latest changes LatestChanges
	// keeps. Default 100 (DefaultRecentChanges).
	RecentChanges int

	// Processors is the number of processor goroutines. Default
	// 2 × GOMAXPROCS.
	Processors int
	// ShutdownTimeout bounds the drain after Run's context ends. Default
	// 30 s.
	ShutdownTimeout time.Duration
	// HandleFailed, if set, sees failed records (invalid rows, rows a sink
	// refused) before they are acknowledged.
	HandleFailed func(ctx context.Context, failed []*stages.Message[Record])
	// Hooks are optional callbacks on stage events.
	Hooks stages.Hooks
	// Logger receives the topology's, the producer's and the sinks' logs.
	// Default slog.Default().
	Logger *slog.Logger
}

// KafkaConfig is the "kafka" batcher.
type KafkaConfig struct {
	// Brokers is the bootstrap list, "host:port,...". Empty: no Kafka.
	Brokers string
	// Topic is where the status rows go. Default "station_status".
	Topic string
	// Batcher is the "kafka" batcher; its Handle is the sink's. Zero
	// fields default to batches of 1,000, a 100 ms timeout and 2 batch
	// processors, blocking while Kafka is down.
	Batcher topology.BatcherSpec[Record]
	// Options, if set, adjusts the sink's configuration before it starts.
	Options func(*kafka.Config[Record])
}

// PostgresConfig is the "postgres" batcher.
type PostgresConfig struct {
	// Pool is the pool to write through; Run does not close it. Pool or
	// URL is required.
	Pool *pgxpool.Pool
	// URL is a connection string, used when Pool is nil.
	URL string
	// Batcher is the "postgres" batcher; its Handle is the sink's. Zero
	// fields default to batches of 5,000, a 500 ms timeout and 2 batch
	// processors partitioned by station, blocking while Postgres is down.
	Batcher topology.BatcherSpec[Record]
	// Retry bounds the sink's retries of one transaction.
	Retry postgres.Retry
	// Wrap, if set, wraps the sink's HandleBatch (middleware: to observe,
	// delay or stop batches).
	Wrap func(stages.BatchHandler[Record]) stages.BatchHandler[Record]
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "gbfs"
	}
	if c.Language == "" {
		c.Language = DefaultLanguage
	}
	if c.InformationInterval == 0 {
		c.InformationInterval = DefaultInformationInterval
	}
	if c.RecentChanges == 0 {
		c.RecentChanges = DefaultRecentChanges
	}
	if c.Kafka.Topic == "" {
		c.Kafka.Topic = DefaultTopic
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Kafka.Batcher = batcherDefaults(c.Kafka.Batcher, 1000, 100*time.Millisecond)
	c.Postgres.Batcher = batcherDefaults(c.Postgres.Batcher, 5000, 500*time.Millisecond)
	return c
}

func batcherDefaults(b topology.BatcherSpec[Record], size int, timeout time.Duration) topology.BatcherSpec[Record] {
	if b.BatchSize == 0 {
		b.BatchSize = size
	}
	if b.BatchTimeout == 0 {
		b.BatchTimeout = timeout
	}
	if b.Concurrency == 0 {
		b.Concurrency = 2
	}
	if b.PartitionBy == nil {
		b.PartitionBy = byStation
	}
	if b.Outage == stages.OutageFail {
		// The source is a poll: it can wait, and the next document holds
		// the stations' latest state anyway.
		b.Outage = stages.OutageBlock
	}
	return b
}

// Validate reports every field of c that is missing or out of range.
func (c *Config) Validate() error {
	var errs []error
	if c.FeedURL == "" && c.Feeds.StationStatus == "" {
		errs = append(errs, errors.New("gbfs: Config.FeedURL (the system's gbfs.json) is required"))
	}
	if c.Postgres.Pool == nil && c.Postgres.URL == "" {
		errs = append(errs, errors.New("gbfs: Config.Postgres.Pool or .URL is required: the change log continues from the states stored there"))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("gbfs: Config.PollInterval must be >= 0, got %v", c.PollInterval))
	}
	if c.RecentChanges < 0 {
		errs = append(errs, fmt.Errorf("gbfs: Config.RecentChanges must be >= 0, got %d", c.RecentChanges))
	}
	if c.InformationInterval < 0 {
		errs = append(errs, fmt.Errorf("gbfs: Config.InformationInterval must be >= 0, got %v", c.InformationInterval))
	}
	return errors.Join(errs...)
}

// Counters count what the processors decided.
type Counters struct {
	// Restored is the number of stations whose last state was read back
	// from station_status at start.
	Restored int64 `json:"restored"`
	// Rows are status rows new to the pipeline: sent to the sinks.
	Rows int64 `json:"rows"`
	// Resent are status rows whose last_reported did not move; Older,
	// rows older than the station's last (from a stale document).
	Resent int64 `json:"resent"`
	Older  int64 `json:"older"`
	// Changes are rows whose state differed from the station's previous
	// one: the change log's rows.
	Changes int64 `json:"changes"`
	// Information are station_information rows.
	Information int64 `json:"information"`
	// Invalid are rows that failed validation (failed, not stored).
	Invalid int64 `json:"invalid"`
	// Failed are records a sink did not take.
	Failed int64 `json:"failed"`
}

// Pipeline is a declared bike-share topology and its sinks.
type Pipeline struct {
	cfg    Config
	feeds  Feeds
	top    *topology.Topology[Record]
	poll   *poll.Producer[Record]
	kafka  *kafka.Sink[Record]
	pg     *postgres.Sink[Record]
	state  *tracker
	recent *changeRing

	restored                                            int64
	rows, resent, older, changes, info, invalid, failed atomic.Int64

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, discovers the feeds, creates the tables and the view
// (or brings them up to date), reads every station's last stored state and
// declares the topology; Run runs it.
func New(ctx context.Context, cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Pipeline{cfg: cfg, feeds: cfg.Feeds, recent: newChangeRing(cfg.RecentChanges)}
	if p.feeds.StationStatus == "" {
		f, err := Discover(ctx, cfg.Client, cfg.FeedURL, cfg.Language)
		if err != nil {
			return nil, err
		}
		p.feeds = f
	}
	if err := p.newProducer(); err != nil {
		return nil, err
	}
	pc := postgres.Config[Record]{
		Pool: cfg.Postgres.Pool, URL: cfg.Postgres.URL,
		Table: "station_status", Columns: StatusColumns, ConflictKey: []string{"station_id", "last_reported"}, Row: statusRow,
		Also: []postgres.Table[Record]{
			{Name: "station_changes", Columns: ChangeColumns, ConflictKey: []string{"station_id", "at"}, Row: changeRow},
			{Name: "station_information", Columns: InformationColumns, ConflictKey: []string{"station_id"},
				Update: InformationColumns[1:], Row: informationRow},
		},
		Migrate: Schema,
		Retry:   cfg.Postgres.Retry,
		Logger:  cfg.Logger.With("component", "postgres"),
	}
	pg, err := postgres.New(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("gbfs: %w", err)
	}
	p.pg = pg
	p.state = newTracker(pg.Pool())
	n, err := p.state.load(ctx)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.restored = int64(n)
	batchers := map[string]topology.BatcherSpec[Record]{}
	b := cfg.Postgres.Batcher
	b.Handle = pg.HandleBatch
	if cfg.Postgres.Wrap != nil {
		b.Handle = cfg.Postgres.Wrap(b.Handle)
	}
	batchers["postgres"] = b
	if cfg.Kafka.Brokers != "" {
		kc := kafka.Config[Record]{Brokers: cfg.Kafka.Brokers, Topic: cfg.Kafka.Topic, Key: KafkaKey, Value: KafkaValue,
			Logger: cfg.Logger.With("component", "kafka")}
		if cfg.Kafka.Options != nil {
			cfg.Kafka.Options(&kc)
		}
		ks, err := kafka.New(kc)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("gbfs: kafka %s: %w", cfg.Kafka.Brokers, err)
		}
		p.kafka = ks
		b := cfg.Kafka.Batcher
		b.Handle = ks.HandleBatch
		batchers["kafka"] = b
	}
	top, err := topology.New(topology.Spec[Record]{
		Name: cfg.Name,
		// A pull producer: it polls only on demand, and emits a document
		// as demand allows; nothing is dropped.
		Producer: topology.ProducerSpec[Record]{Producer: p.poll, Keep: stages.Block},
		Processors: topology.ProcessorSpec[Record]{
			Concurrency: cfg.Processors,
			MaxDemand:   512,
			PartitionBy: byStation, // one station's rows in order, on one processor
			Handle:      p.handle,
		},
		Batchers:        batchers,
		DefaultBatcher:  topology.NoBatcher,
		HandleFailed:    p.handleFailed,
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

// newProducer declares the poll producer on the discovered feeds.
func (p *Pipeline) newProducer() error {
	cfg := p.cfg
	status := poll.Feed[Record]{
		Name: spec.FeedStationStatus, URL: p.feeds.StationStatus, Freshness: spec.Freshness,
		Split: func(doc []byte) ([]Record, error) {
			stations, err := spec.SplitStationStatus(doc)
			out := make([]Record, len(stations))
			for i, s := range stations {
				out[i] = Record{Kind: KindStatus, Status: s}
			}
			return out, err
		},
		Interval: cfg.PollInterval, FollowHints: cfg.PollInterval == 0, MinInterval: time.Second,
	}
	pc := poll.Config[Record]{Feeds: []poll.Feed[Record]{status}, Client: cfg.Client, Logger: cfg.Logger.With("component", "poll")}
	if p.feeds.StationInformation != "" {
		split := spec.SplitStationInformation(cfg.Language)
		pc.Feeds = append(pc.Feeds, poll.Feed[Record]{
			Name: spec.FeedStationInformation, URL: p.feeds.StationInformation, Freshness: spec.Freshness,
			Split: func(doc []byte) ([]Record, error) {
				stations, err := split(doc)
				out := make([]Record, len(stations))
				for i, s := range stations {
					out[i] = Record{Kind: KindInformation, Info: s}
				}
				return out, err
			},
			Interval: cfg.InformationInterval,
		})
	}
	if cfg.Poll != nil {
		cfg.Poll(&pc)
	}
	prod, err := poll.New(pc)
	if err != nil {
		return fmt.Errorf("gbfs: %w", err)
	}
	p.poll = prod
	return nil
}

// byStation partitions records by station id (FNV-1a).
func byStation(m *stages.Message[Record]) uint64 {
	id := m.Data.StationID()
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// handle validates a record, drops a status row whose last_reported did
// not move, attaches the change from the station's previous row and routes
// the record to its sinks.
func (p *Pipeline) handle(ctx context.Context, m *stages.Message[Record]) error {
	r := &m.Data
	if r.Kind == KindInformation {
		if err := r.Info.Validate(); err != nil {
			p.invalid.Add(1)
			return stages.Permanent(fmt.Errorf("gbfs: invalid station_information row: %w", err))
		}
		p.info.Add(1)
		p.state.describe(r.Info)
		m.Route("postgres")
		return nil
	}
	if err := r.Status.Validate(); err != nil {
		p.invalid.Add(1)
		return stages.Permanent(fmt.Errorf("gbfs: invalid station_status row: %w", err))
	}
	r.Status.LastReported = r.Status.LastReported.UTC().Truncate(time.Microsecond) // as Postgres keeps it
	ch, v, err := p.state.observe(ctx, r.Status)
	if err != nil {
		return err
	}
	switch v {
	case verdictSame:
		p.resent.Add(1)
		m.Route() // acknowledged, stored nowhere
		return nil
	case verdictOlder:
		p.older.Add(1)
		m.Route()
		return nil
	}
	r.Change = ch
	p.rows.Add(1)
	if ch != nil {
		p.changes.Add(1)
		p.recent.add(*ch)
	}
	if p.kafka != nil {
		m.Route("kafka", "postgres")
	} else {
		m.Route("postgres")
	}
	return nil
}

// handleFailed counts failed records, has the stations of failed status
// rows re-read from Postgres before their next row (their last state may
// not be stored), and calls Config.HandleFailed.
func (p *Pipeline) handleFailed(ctx context.Context, failed []*stages.Message[Record]) {
	var ids []string
	for _, m := range failed {
		if m.Data.Kind == KindStatus && m.Data.Status.StationID != "" {
			ids = append(ids, m.Data.Status.StationID)
		}
	}
	p.state.forget(ids)
	p.failed.Add(int64(len(failed)))
	if p.cfg.HandleFailed != nil {
		p.cfg.HandleFailed(ctx, failed)
	}
}

// Run runs the topology until ctx ends or a feed answers with a status
// retrying cannot fix, then drains it: every record already emitted is
// produced, stored and acknowledged (or failed) within the shutdown
// timeout. It then closes the sinks. Run is called once.
func (p *Pipeline) Run(ctx context.Context) error {
	return errors.Join(p.top.Run(ctx), p.Close())
}

// Close closes the sinks (the Kafka producer flushes; a pool made from
// Postgres.URL is closed) and the producer's idle connections. Run calls
// it; it is safe to call more than once.
func (p *Pipeline) Close() error {
	p.closeOnce.Do(func() {
		var errs []error
		if p.kafka != nil {
			errs = append(errs, p.kafka.Close())
		}
		if p.pg != nil {
			errs = append(errs, p.pg.Close())
		}
		if p.poll != nil {
			errs = append(errs, p.poll.Close())
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// Counters returns what the processors decided so far.
func (p *Pipeline) Counters() Counters {
	return Counters{Restored: p.restored, Rows: p.rows.Load(), Resent: p.resent.Load(), Older: p.older.Load(),
		Changes: p.changes.Load(), Information: p.info.Load(), Invalid: p.invalid.Load(), Failed: p.failed.Load()}
}

// TopChanged returns the n stations with the most changes this run, most
// first.
func (p *Pipeline) TopChanged(n int) []StationChanges { return p.state.top(n) }

// Feeds returns the feeds polled.
func (p *Pipeline) Feeds() Feeds { return p.feeds }

// Stats returns a snapshot of the topology's counters.
func (p *Pipeline) Stats() stages.Stats { return p.top.Stats() }

// Topology returns the declared topology (for Describe).
func (p *Pipeline) Topology() *topology.Topology[Record] { return p.top }

// Producer returns the poll producer (for its Stats: polls, 304s, errors).
func (p *Pipeline) Producer() *poll.Producer[Record] { return p.poll }

// Pool returns the Postgres pool the pipeline writes through.
func (p *Pipeline) Pool() *pgxpool.Pool { return p.pg.Pool() }
