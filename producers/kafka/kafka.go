// Package kafka is a Causeway pull producer that consumes Kafka topics as a
// member of a consumer group, with confluent-kafka-go (librdkafka, so it
// needs cgo), and a dead-letter helper that keeps failed messages in a
// Kafka topic.
//
// It fetches on demand: Run asks the topology how many messages its
// processors want and polls at most that many records. Between demands
// librdkafka keeps fetching into its local queue, bounded by
// queued.max.messages.kbytes, so a demand is met from memory; only when the
// topology has wanted nothing for so long that the consumer holds a full
// queue does it pause its partitions.
//
// Offsets are committed only for messages that are done, per partition, up
// to the first message that is not: a message is done when it was
// acknowledged successful, or failed and dead-lettered (its error satisfies
// stages.IsDeadLettered, as DeadLetter's HandleFailed leaves it). A message
// that failed and was not dead-lettered is never committed past: the
// partition's commit stops at its offset (logged, and counted in Stats as
// uncommittable) until the partition's next owner, or this group after a
// restart, reads it again. Commits happen every CommitInterval, when
// partitions are revoked (after waiting, up to RevokeTimeout, for their
// messages in flight) and on Close. Acknowledgements that arrive for a
// partition after it was revoked are ignored: its new owner starts from the
// last committed offset. Delivery is at least once; pair it with an
// idempotent sink (stages/postgres) for exactly-once results.
//
// With Config.OffsetStore (stages/postgres' TxSink), the consumed offsets
// live in the database, written in the transaction that applies the
// results: each assigned partition starts from the stored offset (or the
// beginning when none is stored), not from Kafka's committed one, and the
// Kafka commits above serve monitoring only. That makes the results exactly
// once.
//
// Run N instances with one GroupID to share a topic's partitions, on one
// machine or many; within one process, producer Concurrency n makes n group
// members, so that polling and decoding run on n goroutines.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/causeway-go/causeway/internal/ratelog"
	"github.com/causeway-go/causeway/stages"
)

// Config configures a Consumer producing messages of type T.
type Config[T any] struct {
	// Brokers is the bootstrap list, "host:port,host:port". Required.
	Brokers string
	// GroupID is the consumer group. Required.
	GroupID string
	// Topics are the topics to consume. Required.
	Topics []string
	// Decode turns a record into message data. An error does not stop the
	// stream: the message is emitted already failed with it (marked
	// permanent: stages.IsPermanent holds for it), so it reaches
	// HandleFailed (which may dead-letter it; only then is its offset
	// committed past). Required unless T is []byte (then the value is the
	// data).
	Decode func(value []byte, md *Metadata) (T, error)
	// CommitInterval is the time between periodic commits. Default 1s.
	CommitInterval time.Duration
	// RevokeTimeout bounds how long a revocation waits for the messages in
	// flight from the revoked partitions to be acknowledged before it
	// commits what was and lets them go. Default 10s.
	RevokeTimeout time.Duration
	// PollInterval is the longest Run waits for demand or for records
	// before it serves the client's events and commits. Default 100ms.
	PollInterval time.Duration
	// SessionTimeout is how long the group coordinator waits without a
	// heartbeat from a member before it declares the member dead and
	// moves its partitions to the others (session.timeout.ms): a killed
	// member's partitions move after about SessionTimeout +
	// HeartbeatInterval. Heartbeats come from librdkafka's own thread, so a
	// busy program does not miss them. Default 6s, the lowest a Kafka
	// broker accepts unless its group.min.session.timeout.ms is lowered
	// (librdkafka's own default is 45s).
	SessionTimeout time.Duration
	// HeartbeatInterval is the time between a member's heartbeats
	// (heartbeat.interval.ms); it is also how soon a live member learns of
	// a rebalance. It must be less than SessionTimeout. Default 1s.
	HeartbeatInterval time.Duration
	// Properties are extra librdkafka properties; they override the
	// defaults (auto.offset.reset=earliest,
	// partition.assignment.strategy=cooperative-sticky,
	// fetch.queue.backoff.ms=10, queued.max.messages.kbytes=32768, the
	// timeouts above, ...). enable.auto.commit and enable.auto.offset.store
	// are always false.
	Properties ckafka.ConfigMap
	// OffsetStore, if set, is where each assigned partition starts: the
	// stored offset (exactly-once with a transactional sink), or the
	// beginning when none is stored. Offsets are still committed to Kafka.
	OffsetStore OffsetStore
	// Logger receives the consumer's logs and librdkafka's. Default
	// slog.Default().
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultCommitInterval    = time.Second
	DefaultRevokeTimeout     = 10 * time.Second
	DefaultPollInterval      = 100 * time.Millisecond
	DefaultSessionTimeout    = 6 * time.Second
	DefaultHeartbeatInterval = time.Second
)

// Metadata is the Metadata of every message a Consumer emits.
type Metadata struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	// Value is the record's value as consumed: what Decode was given, and
	// what DeadLetter stores by default. It lives as long as the message.
	Value     []byte
	Headers   []ckafka.Header
	Timestamp time.Time

	gen uint64 // the partition's assignment when the record was consumed
}

// RecordKey returns the record's key; with RecordHeaders it lets
// stages/kafka carry key and headers to the records it produces.
func (m *Metadata) RecordKey() []byte { return m.Key }

// RecordHeaders returns the record's headers.
func (m *Metadata) RecordHeaders() []ckafka.Header { return m.Headers }

// Validate reports the fields of c that are missing or out of range.
func (c *Config[T]) Validate() error {
	var errs []error
	if c.Brokers == "" {
		errs = append(errs, errors.New("kafka: Config.Brokers is required"))
	}
	if c.GroupID == "" {
		errs = append(errs, errors.New("kafka: Config.GroupID is required"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("kafka: Config.Topics must name at least one topic"))
	}
	if c.Decode == nil {
		if _, ok := any((*T)(nil)).(*[]byte); !ok {
			errs = append(errs, fmt.Errorf("kafka: Config.Decode is required for data of type %T", *new(T)))
		}
	}
	if c.CommitInterval < 0 || c.RevokeTimeout < 0 || c.PollInterval < 0 || c.SessionTimeout < 0 || c.HeartbeatInterval < 0 {
		errs = append(errs, fmt.Errorf("kafka: Config intervals must not be negative, got CommitInterval %v, RevokeTimeout %v, PollInterval %v, SessionTimeout %v, HeartbeatInterval %v",
			c.CommitInterval, c.RevokeTimeout, c.PollInterval, c.SessionTimeout, c.HeartbeatInterval))
	} else if s, h := orDefault(c.SessionTimeout, DefaultSessionTimeout), orDefault(c.HeartbeatInterval, DefaultHeartbeatInterval); h >= s {
		errs = append(errs, fmt.Errorf("kafka: Config.HeartbeatInterval must be less than SessionTimeout (%v), got %v", s, h))
	}
	return errors.Join(errs...)
}

// orDefault returns d, or def if d is zero.
func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Consumer is a consumer-group member (or several) and a stages.Producer.
// Run it with Keep: stages.Block. Each goroutine of the producer stage's
// Concurrency that calls Run is a group member of its own, with its own
// client, partitions and commits; the group shares the partitions among
// all members, here and in other processes. The topology closes the
// Consumer (it is an io.Closer) after draining, which commits the final
// offsets and leaves the group.
type Consumer[T any] struct {
	cfg  Config[T]
	conf ckafka.ConfigMap
	log  *slog.Logger

	mu      sync.Mutex
	members []*member[T]
	spare   *member[T] // made by New, so that a bad config fails there; the first Run takes it
	closed  bool

	closeOnce sync.Once
	closeErr  error

	consumed      atomic.Int64
	late          atomic.Int64
	uncommittable atomic.Int64
	idle          atomic.Int64 // PollIntervals spent without demand
	pauses        atomic.Int64 // times a member paused its partitions, its queue full
	commitTicks   atomic.Int64 // periodic commit rounds
	stuckLog      ratelog.Limiter
}

// New validates cfg and creates the consumer's first member; Run joins the
// group.
func New[T any](cfg Config[T]) (*Consumer[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Decode == nil {
		cfg.Decode = func(v []byte, _ *Metadata) (T, error) { return any(v).(T), nil }
	}
	cfg.CommitInterval = orDefault(cfg.CommitInterval, DefaultCommitInterval)
	cfg.RevokeTimeout = orDefault(cfg.RevokeTimeout, DefaultRevokeTimeout)
	cfg.PollInterval = orDefault(cfg.PollInterval, DefaultPollInterval)
	cfg.SessionTimeout = orDefault(cfg.SessionTimeout, DefaultSessionTimeout)
	cfg.HeartbeatInterval = orDefault(cfg.HeartbeatInterval, DefaultHeartbeatInterval)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conf := ckafka.ConfigMap{
		"bootstrap.servers":             cfg.Brokers,
		"group.id":                      cfg.GroupID,
		"client.id":                     "causeway",
		"auto.offset.reset":             "earliest",
		"partition.assignment.strategy": "cooperative-sticky",
		"session.timeout.ms":            int(cfg.SessionTimeout / time.Millisecond),
		"heartbeat.interval.ms":         int(cfg.HeartbeatInterval / time.Millisecond),
		// Keep fetching while the application catches up: librdkafka's
		// default backoff (1 s after its queue filled up) idles the
		// consumer for most of every second once records are ~1 KB.
		"fetch.queue.backoff.ms": 10,
		// A few fetches' worth: 8 partitions of 1 MiB fetches fit twice.
		"queued.max.messages.kbytes": 32768,
		"enable.metrics.push":        false,
		"go.logs.channel.enable":     true,
	}
	for k, v := range cfg.Properties {
		conf[k] = v
	}
	conf["enable.auto.commit"] = false
	conf["enable.auto.offset.store"] = false
	c := &Consumer[T]{
		cfg:      cfg,
		conf:     conf,
		log:      cfg.Logger.With("producer", "kafka", "group", cfg.GroupID),
		stuckLog: ratelog.Limiter{Every: 10 * time.Second},
	}
	m, err := c.newMember(0)
	if err != nil {
		return nil, err
	}
	c.spare = m
	return c, nil
}

// Run joins the group as a member of its own and emits records as the
// topology demands them, until the topology drains (nil) or a fatal client
// error.
func (c *Consumer[T]) Run(ctx context.Context, out *stages.Emitter[T]) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("kafka: Consumer.Run after Close")
	}
	m := c.spare
	c.spare = nil
	if m == nil {
		var err error
		if m, err = c.newMember(len(c.members)); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.members = append(c.members, m)
	c.mu.Unlock()
	return m.run(ctx, out)
}

// Close commits the acknowledged offsets of every member, leaves the group
// and closes the clients. The topology calls it after it drained and
// acknowledged every message. It is safe to call more than once.
func (c *Consumer[T]) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		ms := slices.Clone(c.members)
		if c.spare != nil {
			ms = append(ms, c.spare)
			c.spare = nil
		}
		c.mu.Unlock()
		errs := make([]error, len(ms))
		var wg sync.WaitGroup
		for i, m := range ms {
			wg.Go(func() { errs[i] = m.close() })
		}
		wg.Wait()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// Stats counts what the consumer did.
type Stats struct {
	// Members counts the group members this Consumer runs.
	Members int
	// Consumed counts records emitted into the topology.
	Consumed int64
	// LateAcks counts acknowledgements ignored because their partition had
	// been revoked since the record was consumed.
	LateAcks int64
	// Uncommittable counts messages that failed without being
	// dead-lettered: the commit of their partition stops at the first of
	// them until the partition is read again by its next owner.
	Uncommittable int64
	// Pauses counts the times a member paused its partitions because the
	// topology had wanted nothing until its local queue was full.
	Pauses int64
	// Partitions are the partitions the members hold, by topic, sorted.
	Partitions map[string][]int32
	// Committed is the last committed offset of each partition the members
	// hold (the next offset the group will read).
	Committed map[string]map[int32]int64
	// Stuck is, for each held partition whose commit is held back by a
	// message that failed without being dead-lettered, that message's
	// offset.
	Stuck map[string]map[int32]int64
}

// Stats returns a snapshot of the consumer's counters.
func (c *Consumer[T]) Stats() Stats {
	s := Stats{Consumed: c.consumed.Load(), LateAcks: c.late.Load(), Uncommittable: c.uncommittable.Load(),
		Pauses: c.pauses.Load(), Partitions: map[string][]int32{},
		Committed: map[string]map[int32]int64{}, Stuck: map[string]map[int32]int64{}}
	c.mu.Lock()
	ms := slices.Clone(c.members)
	c.mu.Unlock()
	s.Members = len(ms)
	put := func(to map[string]map[int32]int64, k partKey, v int64) {
		if to[k.topic] == nil {
			to[k.topic] = map[int32]int64{}
		}
		to[k.topic][k.partition] = v
	}
	for _, m := range ms {
		m.mu.Lock()
		for k, st := range m.parts {
			s.Partitions[k.topic] = append(s.Partitions[k.topic], k.partition)
			if st.committed >= 0 {
				put(s.Committed, k, st.committed)
			}
			if st.stuck >= 0 {
				put(s.Stuck, k, st.stuck)
			}
		}
		m.mu.Unlock()
	}
	for _, ps := range s.Partitions {
		slices.Sort(ps)
	}
	return s
}
