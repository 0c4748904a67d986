// Package kafka is a Causeway pull producer that consumes Kafka topics as a
// member of a consumer group, with confluent-kafka-go (librdkafka, so it
// needs cgo).
//
// It fetches on demand: Run asks the topology how many messages its
// processors want and polls at most that many records; while the topology
// wants nothing it pauses its partitions, so the client stops fetching
// (beyond a small prefetch bounded by queued.max.messages.kbytes).
//
// Offsets are committed only for acknowledged messages: per partition, up
// to the first message not yet acknowledged (a failed message counts as done
// once HandleFailed has seen it). Commits happen every CommitInterval, when
// partitions are revoked (after waiting, up to RevokeTimeout, for their
// messages in flight) and on Close. Acknowledgements that arrive for a
// partition after it was revoked are ignored: its new owner starts from the
// last committed offset. Delivery is at least once; pair it with an
// idempotent sink (stages/postgres) for exactly-once results.
//
// Run N instances with one GroupID to share a topic's partitions.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkalog"
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
	// stream: the message is emitted already failed with it, so it reaches
	// HandleFailed and its offset is committed like any other. Required
	// unless T is []byte (then the value is the data).
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
	// Properties are extra librdkafka properties; they override the
	// defaults (auto.offset.reset=earliest,
	// partition.assignment.strategy=cooperative-sticky,
	// queued.max.messages.kbytes=4096, ...). enable.auto.commit and
	// enable.auto.offset.store are always false.
	Properties ckafka.ConfigMap
	// Logger receives the consumer's logs and librdkafka's. Default
	// slog.Default().
	Logger *slog.Logger
}

// Metadata is the Metadata of every message a Consumer emits.
type Metadata struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
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
	if c.CommitInterval < 0 || c.RevokeTimeout < 0 || c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("kafka: Config intervals must not be negative, got CommitInterval %v, RevokeTimeout %v, PollInterval %v",
			c.CommitInterval, c.RevokeTimeout, c.PollInterval))
	}
	return errors.Join(errs...)
}

type partKey struct {
	topic     string
	partition int32
}

// partState tracks one assigned partition's messages in flight.
type partState struct {
	gen       uint64
	inflight  []entry // emitted, in offset order; inflight[head:] are live
	head      int
	next      int64 // offset to commit: after the last of the done prefix; -1 if none yet
	committed int64 // last offset committed, -1 if none
}

type entry struct {
	offset int64
	done   bool
}

func (p *partState) live() []entry { return p.inflight[p.head:] }

// markDone marks offset done and moves next past the done prefix. It
// reports false if the offset is not in flight.
func (p *partState) markDone(offset int64) bool {
	live := p.live()
	i := sort.Search(len(live), func(i int) bool { return live[i].offset >= offset })
	if i == len(live) || live[i].offset != offset {
		return false
	}
	live[i].done = true
	for p.head < len(p.inflight) && p.inflight[p.head].done {
		p.next = p.inflight[p.head].offset + 1
		p.head++
	}
	if p.head == len(p.inflight) {
		p.inflight, p.head = p.inflight[:0], 0
	} else if p.head > 1024 && p.head > len(p.inflight)/2 {
		n := copy(p.inflight, p.inflight[p.head:])
		p.inflight, p.head = p.inflight[:n], 0
	}
	return true
}

// Consumer is a consumer-group member and a stages.Producer. Run it with
// producer Concurrency 1 (the default) and Keep: stages.Block; the topology
// closes it (it is an io.Closer) after draining, which commits the final
// offsets and leaves the group.
type Consumer[T any] struct {
	cfg    Config[T]
	log    *slog.Logger
	cons   *ckafka.Consumer
	acker  *acker[T]
	logsWG sync.WaitGroup

	running atomic.Bool
	paused  bool // Run's goroutine only
	carry   []*ckafka.Message

	mu      sync.Mutex
	parts   map[partKey]*partState
	gen     uint64
	changed chan struct{} // closed when an ack lands while a revocation waits

	closeOnce sync.Once
	closeErr  error

	consumed atomic.Int64
	late     atomic.Int64
	idle     atomic.Int64 // PollIntervals spent without demand
	// commitTicks counts periodic commit rounds.
	commitTicks atomic.Int64
}

// New validates cfg and creates the consumer; Run joins the group.
func New[T any](cfg Config[T]) (*Consumer[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Decode == nil {
		cfg.Decode = func(v []byte, _ *Metadata) (T, error) { return any(v).(T), nil }
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = time.Second
	}
	if cfg.RevokeTimeout == 0 {
		cfg.RevokeTimeout = 10 * time.Second
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conf := ckafka.ConfigMap{
		"bootstrap.servers":             cfg.Brokers,
		"group.id":                      cfg.GroupID,
		"client.id":                     "causeway",
		"auto.offset.reset":             "earliest",
		"partition.assignment.strategy": "cooperative-sticky",
		"queued.max.messages.kbytes":    4096,
		"enable.metrics.push":           false,
		"go.logs.channel.enable":        true,
	}
	for k, v := range cfg.Properties {
		conf[k] = v
	}
	conf["enable.auto.commit"] = false
	conf["enable.auto.offset.store"] = false
	cons, err := ckafka.NewConsumer(&conf)
	if err != nil {
		return nil, fmt.Errorf("kafka: new consumer: %w", err)
	}
	c := &Consumer[T]{
		cfg:   cfg,
		log:   cfg.Logger.With("producer", "kafka", "group", cfg.GroupID),
		cons:  cons,
		parts: map[partKey]*partState{},
	}
	c.acker = &acker[T]{c: c}
	c.logsWG.Go(func() { kafkalog.Forward(c.log, cons.Logs()) })
	return c, nil
}

// Run subscribes to the topics and emits records as the topology demands
// them, until the topology drains (nil) or a fatal client error.
func (c *Consumer[T]) Run(ctx context.Context, out *stages.Emitter[T]) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("kafka: Consumer.Run called twice or concurrently (use producer Concurrency 1)")
	}
	if err := c.cons.SubscribeTopics(c.cfg.Topics, c.rebalance); err != nil {
		return fmt.Errorf("kafka: subscribe to %v: %w", c.cfg.Topics, err)
	}
	pollMs := int(c.cfg.PollInterval / time.Millisecond)
	var (
		recs       []*ckafka.Message
		msgs       []stages.Message[T]
		lastCommit = time.Now()
	)
	for {
		if time.Since(lastCommit) >= c.cfg.CommitInterval {
			c.commit(nil)
			c.commitTicks.Add(1)
			lastCommit = time.Now()
		}
		dctx, cancel := context.WithTimeout(ctx, c.cfg.PollInterval)
		n, err := out.Demand(dctx)
		cancel()
		if err != nil {
			if errors.Is(err, stages.ErrClosed) || ctx.Err() != nil {
				c.pause()
				return nil
			}
			// No demand for a while: stop fetching, but keep serving the
			// group (rebalances, errors).
			c.pause()
			c.idle.Add(1)
			if err := c.poll(0, &recs); err != nil {
				return err
			}
			continue
		}
		c.resume()
		// Take up to n records: what was polled without demand first, then
		// the client's queue; wait for the first one at most PollInterval.
		k := min(n, len(c.carry))
		recs = append(recs[:0], c.carry[:k]...)
		c.carry = append(c.carry[:0], c.carry[k:]...)
		for len(recs) < n {
			timeout := 0
			if len(recs) == 0 {
				timeout = pollMs
			}
			before := len(recs)
			if err := c.poll(timeout, &recs); err != nil {
				return err
			}
			if len(recs) == before && (len(recs) > 0 || timeout > 0) {
				break
			}
		}
		// poll may return more than n when recs was topped up by carry:
		// keep the excess for the next demand.
		if len(recs) > n {
			c.carry = append(c.carry, recs[n:]...)
			recs = recs[:n]
		}
		if len(recs) == 0 {
			continue
		}
		msgs = c.track(recs, msgs[:0])
		clear(recs)
		if len(msgs) == 0 {
			continue
		}
		if taken, err := out.EmitAll(ctx, msgs); err != nil {
			// The taken ones are inside the topology and will be
			// acknowledged; the rest were never seen.
			c.consumed.Add(int64(taken))
			c.untrack(msgs[taken:])
			clear(msgs)
			c.pause()
			return nil
		}
		c.consumed.Add(int64(len(msgs)))
		clear(msgs)
	}
}

// poll serves one client event, waiting up to timeoutMs: a record is
// appended to recs, a rebalance is handled by c.rebalance, a fatal error is
// returned.
func (c *Consumer[T]) poll(timeoutMs int, recs *[]*ckafka.Message) error {
	switch e := c.cons.Poll(timeoutMs).(type) {
	case nil:
	case *ckafka.Message:
		if err := e.TopicPartition.Error; err != nil {
			c.log.Warn("kafka: consume error", "topic", topicOf(e), "partition", e.TopicPartition.Partition, "err", err)
			return nil
		}
		*recs = append(*recs, e)
	case ckafka.Error:
		if e.IsFatal() {
			return fmt.Errorf("kafka: fatal consumer error: %w", e)
		}
		c.log.Warn("kafka: consumer error", "code", e.Code().String(), "err", e)
	default:
		c.log.Debug("kafka: consumer event", "event", e.String())
	}
	return nil
}

// track turns records into messages, recording each as in flight in its
// partition. Records of partitions no longer assigned are skipped.
func (c *Consumer[T]) track(recs []*ckafka.Message, msgs []stages.Message[T]) []stages.Message[T] {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		tp := r.TopicPartition
		st := c.parts[partKey{topicOf(r), tp.Partition}]
		if st == nil {
			continue
		}
		md := &Metadata{Topic: topicOf(r), Partition: tp.Partition, Offset: int64(tp.Offset),
			Key: r.Key, Headers: r.Headers, Timestamp: r.Timestamp, gen: st.gen}
		st.inflight = append(st.inflight, entry{offset: md.Offset})
		m := stages.Message[T]{Metadata: md, Acker: c.acker}
		data, err := c.cfg.Decode(r.Value, md)
		if err != nil {
			m.Fail(fmt.Errorf("kafka: decode %s/%d@%d: %w", md.Topic, md.Partition, md.Offset, err))
		} else {
			m.Data = data
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// untrack forgets messages the topology did not take: their offsets stay
// uncommitted, so the group delivers them again.
func (c *Consumer[T]) untrack(msgs []stages.Message[T]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cut := map[partKey]bool{}
	for i := range msgs {
		md := msgs[i].Metadata.(*Metadata)
		k := partKey{md.Topic, md.Partition}
		st := c.parts[k]
		if cut[k] || st == nil || st.gen != md.gen {
			continue
		}
		cut[k] = true
		// Messages are in offset order: drop this one and every later one.
		live := st.live()
		if j := sort.Search(len(live), func(j int) bool { return live[j].offset >= md.Offset }); j < len(live) {
			st.inflight = st.inflight[:st.head+j]
		}
	}
}

// acker acknowledges a Consumer's messages.
type acker[T any] struct{ c *Consumer[T] }

// Ack marks the messages done for offset purposes; it never blocks on the
// network.
func (a *acker[T]) Ack(successful, failed []*stages.Message[T]) {
	c := a.c
	c.mu.Lock()
	defer c.mu.Unlock()
	late := 0
	for _, list := range [2][]*stages.Message[T]{successful, failed} {
		for i := range list {
			md, ok := list[i].Metadata.(*Metadata)
			if !ok {
				continue
			}
			st := c.parts[partKey{md.Topic, md.Partition}]
			if st == nil || st.gen != md.gen || !st.markDone(md.Offset) {
				late++
			}
		}
	}
	if late > 0 {
		c.late.Add(int64(late))
	}
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// commit commits the acknowledged offsets of the partitions keep accepts
// (all if keep is nil) that moved since their last commit.
func (c *Consumer[T]) commit(keep func(partKey) bool) {
	c.mu.Lock()
	var tps []ckafka.TopicPartition
	for k, st := range c.parts {
		if st.next > st.committed && (keep == nil || keep(k)) {
			topic := k.topic
			tps = append(tps, ckafka.TopicPartition{Topic: &topic, Partition: k.partition, Offset: ckafka.Offset(st.next)})
		}
	}
	c.mu.Unlock()
	if len(tps) == 0 {
		return
	}
	res, err := c.cons.CommitOffsets(tps)
	if err != nil {
		c.log.Warn("kafka: commit offsets", "partitions", len(tps), "err", err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range res {
		if tp.Error != nil {
			c.log.Warn("kafka: commit offset", "topic", *tp.Topic, "partition", tp.Partition, "err", tp.Error)
			continue
		}
		if st := c.parts[partKey{*tp.Topic, tp.Partition}]; st != nil && int64(tp.Offset) > st.committed {
			st.committed = int64(tp.Offset)
		}
	}
}

// rebalance handles assignments and revocations; librdkafka calls it from
// Poll (or Close) on the polling goroutine.
func (c *Consumer[T]) rebalance(cons *ckafka.Consumer, ev ckafka.Event) error {
	cooperative := cons.GetRebalanceProtocol() == "COOPERATIVE"
	switch e := ev.(type) {
	case ckafka.AssignedPartitions:
		c.mu.Lock()
		for _, tp := range e.Partitions {
			c.gen++
			c.parts[partKey{*tp.Topic, tp.Partition}] = &partState{gen: c.gen, next: -1, committed: -1}
		}
		c.mu.Unlock()
		c.paused = false
		c.log.Info("kafka: partitions assigned", "partitions", describe(e.Partitions), "protocol", cons.GetRebalanceProtocol())
		if cooperative {
			return cons.IncrementalAssign(e.Partitions)
		}
		return cons.Assign(e.Partitions)
	case ckafka.RevokedPartitions:
		revoked := map[partKey]bool{}
		for _, tp := range e.Partitions {
			revoked[partKey{*tp.Topic, tp.Partition}] = true
		}
		lost := cons.AssignmentLost()
		if !lost {
			c.awaitInflight(revoked)
			c.commit(func(k partKey) bool { return revoked[k] })
		}
		c.mu.Lock()
		for k := range revoked {
			delete(c.parts, k)
		}
		c.mu.Unlock()
		kept := c.carry[:0]
		for _, r := range c.carry {
			if !revoked[partKey{topicOf(r), r.TopicPartition.Partition}] {
				kept = append(kept, r)
			}
		}
		clear(c.carry[len(kept):])
		c.carry = kept
		c.log.Info("kafka: partitions revoked", "partitions", describe(e.Partitions), "lost", lost)
		if cooperative {
			return cons.IncrementalUnassign(e.Partitions)
		}
		return cons.Unassign()
	}
	return nil
}

// awaitInflight waits, up to RevokeTimeout, until the revoked partitions
// have no message in flight.
func (c *Consumer[T]) awaitInflight(revoked map[partKey]bool) {
	deadline := time.NewTimer(c.cfg.RevokeTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		busy := 0
		for k := range revoked {
			if st := c.parts[k]; st != nil {
				busy += len(st.live())
			}
		}
		if busy == 0 {
			c.mu.Unlock()
			return
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			c.log.Warn("kafka: revocation timed out waiting for acknowledgements; the new owner will see those messages again",
				"in_flight", busy, "timeout", c.cfg.RevokeTimeout)
			return
		}
	}
}

func (c *Consumer[T]) pause() {
	if c.paused {
		return
	}
	parts, err := c.cons.Assignment()
	if err != nil || len(parts) == 0 {
		return
	}
	if err := c.cons.Pause(parts); err != nil {
		c.log.Warn("kafka: pause", "err", err)
		return
	}
	c.paused = true
}

func (c *Consumer[T]) resume() {
	if !c.paused {
		return
	}
	c.paused = false
	parts, err := c.cons.Assignment()
	if err != nil || len(parts) == 0 {
		return
	}
	if err := c.cons.Resume(parts); err != nil {
		c.log.Warn("kafka: resume", "err", err)
	}
}

// Close commits the acknowledged offsets, leaves the group and closes the
// client. The topology calls it after it drained and acknowledged every
// message. It is safe to call more than once.
func (c *Consumer[T]) Close() error {
	c.closeOnce.Do(func() {
		c.commit(nil)
		if err := c.cons.Close(); err != nil {
			c.closeErr = fmt.Errorf("kafka: close consumer: %w", err)
		}
		c.logsWG.Wait()
	})
	return c.closeErr
}

// Stats counts what the consumer did.
type Stats struct {
	// Consumed counts records emitted into the topology.
	Consumed int64
	// LateAcks counts acknowledgements ignored because their partition had
	// been revoked since the record was consumed.
	LateAcks int64
	// Partitions are the partitions this member holds, by topic, sorted.
	Partitions map[string][]int32
	// Committed is the last committed offset of each partition this member
	// holds (the next offset the group will read).
	Committed map[string]map[int32]int64
}

// Stats returns a snapshot of the consumer's counters.
func (c *Consumer[T]) Stats() Stats {
	s := Stats{Consumed: c.consumed.Load(), LateAcks: c.late.Load(),
		Partitions: map[string][]int32{}, Committed: map[string]map[int32]int64{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, st := range c.parts {
		s.Partitions[k.topic] = append(s.Partitions[k.topic], k.partition)
		if st.committed < 0 {
			continue
		}
		if s.Committed[k.topic] == nil {
			s.Committed[k.topic] = map[int32]int64{}
		}
		s.Committed[k.topic][k.partition] = st.committed
	}
	for _, ps := range s.Partitions {
		slices.Sort(ps)
	}
	return s
}

func topicOf(m *ckafka.Message) string {
	if m.TopicPartition.Topic == nil {
		return ""
	}
	return *m.TopicPartition.Topic
}

func describe(tps []ckafka.TopicPartition) string {
	s := ""
	for i, tp := range tps {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s/%d", *tp.Topic, tp.Partition)
	}
	return s
}
