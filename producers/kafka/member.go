package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/causeway-go/causeway/internal/ratelog"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkalog"
)

// maxCarry bounds the bytes of records a member takes out of the client's
// queue while the topology wants nothing (to reach the group's events
// queued behind them); once it holds that much it pauses its partitions.
const maxCarry = 8 << 20

// member is one consumer-group member: a client, the partitions it holds
// and their offsets. It acknowledges its own messages.
type member[T any] struct {
	c      *Consumer[T]
	log    *slog.Logger
	cons   *ckafka.Consumer
	logsWG sync.WaitGroup
	// errLog bounds the consumer-error warnings (every poll repeats "all
	// brokers are down" while a cluster is unreachable) to one per 10s,
	// with the count of the ones held back.
	errLog ratelog.Limiter

	// Run's goroutine only:
	paused     bool
	carry      []*ckafka.Message // polled, not yet emitted
	carryBytes int

	mu      sync.Mutex
	parts   map[partKey]*partState
	gen     uint64
	changed chan struct{} // closed when an ack lands while a revocation waits

	closeOnce sync.Once
	closeErr  error

	fatal atomic.Pointer[error] // set by rebalance when the offset store cannot be read; Run returns it
}

func (c *Consumer[T]) newMember(id int) (*member[T], error) {
	conf := ckafka.ConfigMap{}
	for k, v := range c.conf {
		conf[k] = v
	}
	if id > 0 {
		if cid, ok := conf["client.id"].(string); ok {
			conf["client.id"] = fmt.Sprintf("%s-%d", cid, id)
		}
	}
	cons, err := ckafka.NewConsumer(&conf)
	if err != nil {
		return nil, fmt.Errorf("kafka: new consumer: %w", err)
	}
	m := &member[T]{c: c, log: c.log.With("member", id), cons: cons, parts: map[partKey]*partState{},
		errLog: ratelog.Limiter{Every: 10 * time.Second}}
	m.logsWG.Go(func() { kafkalog.Forward(m.log, cons.Logs()) })
	return m, nil
}

func (m *member[T]) run(ctx context.Context, out *stages.Emitter[T]) error {
	cfg := &m.c.cfg
	if err := m.cons.SubscribeTopics(cfg.Topics, m.rebalance); err != nil {
		return fmt.Errorf("kafka: subscribe to %v: %w", cfg.Topics, err)
	}
	var (
		recs       []*ckafka.Message
		msgs       []stages.Message[T]
		lastCommit = time.Now()
	)
	for {
		if fatal := m.fatal.Load(); fatal != nil {
			return *fatal
		}
		if time.Since(lastCommit) >= cfg.CommitInterval {
			m.commit(nil)
			m.c.commitTicks.Add(1)
			lastCommit = time.Now()
		}
		dctx, cancel := context.WithTimeout(ctx, cfg.PollInterval)
		n, err := out.Demand(dctx)
		cancel()
		if err != nil {
			if errors.Is(err, stages.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			// No demand for a while: serve the group's events, keeping
			// what the client fetched meanwhile.
			m.c.idle.Add(1)
			if err := m.idle(); err != nil {
				return err
			}
			continue
		}
		m.resume()
		if recs, err = m.take(n, recs[:0]); err != nil {
			return err
		}
		if len(recs) == 0 {
			continue
		}
		msgs = m.track(recs, msgs[:0])
		clear(recs)
		if len(msgs) == 0 {
			continue
		}
		if taken, err := out.EmitAll(ctx, msgs); err != nil {
			// The taken ones are inside the topology and will be
			// acknowledged; the rest were never seen.
			m.c.consumed.Add(int64(taken))
			m.untrack(msgs[taken:])
			clear(msgs)
			return nil
		}
		m.c.consumed.Add(int64(len(msgs)))
		clear(msgs)
	}
}

// take returns up to n records: first those polled without demand, then
// the client's queue, waiting for the first one at most PollInterval.
func (m *member[T]) take(n int, recs []*ckafka.Message) ([]*ckafka.Message, error) {
	k := min(n, len(m.carry))
	recs = append(recs, m.carry[:k]...)
	for _, r := range m.carry[:k] {
		m.carryBytes -= len(r.Value) + len(r.Key)
	}
	rest := copy(m.carry, m.carry[k:])
	clear(m.carry[rest:])
	m.carry = m.carry[:rest]
	pollMs := int(m.c.cfg.PollInterval / time.Millisecond)
	for len(recs) < n {
		timeout := 0
		if len(recs) == 0 {
			timeout = pollMs
		}
		before := len(recs)
		var err error
		if recs, err = m.poll(timeout, recs); err != nil {
			return recs, err
		}
		if len(recs) == before && (len(recs) > 0 || timeout > 0) {
			break
		}
	}
	return recs, nil
}

// idle serves the client's events while the topology wants nothing. The
// group's events (a rebalance) queue behind fetched records, so it moves
// records into the carry until the queue is empty; when the carry is full
// it pauses the partitions, which empties the client's queue of them.
func (m *member[T]) idle() error {
	for {
		before := len(m.carry)
		var err error
		if m.carry, err = m.poll(0, m.carry); err != nil {
			return err
		}
		if len(m.carry) == before {
			return nil // no record: the queue is empty (events were served)
		}
		r := m.carry[len(m.carry)-1]
		m.carryBytes += len(r.Value) + len(r.Key)
		if m.carryBytes >= maxCarry {
			m.pause()
		}
	}
}

// poll serves one client event, waiting up to timeoutMs: a record is
// appended to recs, a rebalance is handled by m.rebalance, a fatal error is
// returned.
func (m *member[T]) poll(timeoutMs int, recs []*ckafka.Message) ([]*ckafka.Message, error) {
	switch e := m.cons.Poll(timeoutMs).(type) {
	case nil:
	case *ckafka.Message:
		if err := e.TopicPartition.Error; err != nil {
			m.log.Warn("kafka: consume error", "topic", topicOf(e), "partition", e.TopicPartition.Partition, "err", err)
			return recs, nil
		}
		recs = append(recs, e)
	case ckafka.Error:
		if e.IsFatal() {
			return recs, fmt.Errorf("kafka: fatal consumer error: %w", e)
		}
		if ok, n := m.errLog.Allow(1); ok {
			m.log.Warn("kafka: consumer error; still trying", "code", e.Code().String(), "err", e, "errors_since_last_report", n)
		}
	default:
		m.log.Debug("kafka: consumer event", "event", e.String())
	}
	return recs, nil
}

// track turns records into messages, recording each as in flight in its
// partition. Records of partitions no longer assigned are skipped.
func (m *member[T]) track(recs []*ckafka.Message, msgs []stages.Message[T]) []stages.Message[T] {
	mds := make([]Metadata, len(recs)) // one allocation for the lot
	n := 0
	m.mu.Lock()
	for _, r := range recs {
		tp := r.TopicPartition
		st := m.parts[partKey{topicOf(r), tp.Partition}]
		if st == nil {
			continue
		}
		md := &mds[n]
		n++
		*md = Metadata{Topic: topicOf(r), Partition: tp.Partition, Offset: int64(tp.Offset),
			Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp, gen: st.gen}
		st.inflight = append(st.inflight, entry{offset: md.Offset})
	}
	m.mu.Unlock()
	for i := range mds[:n] {
		md := &mds[i]
		msg := stages.Message[T]{Metadata: md, Acker: m}
		if data, err := m.decode(md); err != nil {
			msg.Fail(stages.Permanent(fmt.Errorf("kafka: decode %s/%d@%d: %w", md.Topic, md.Partition, md.Offset, err)))
		} else {
			msg.Data = data
		}
		msgs = append(msgs, msg)
	}
	return msgs
}

// decode runs Config.Decode; a panic in it becomes the message's error.
func (m *member[T]) decode(md *Metadata) (data T, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &stages.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return m.c.cfg.Decode(md.Value, md)
}

// untrack forgets messages the topology did not take: their offsets stay
// uncommitted, so the group delivers them again.
func (m *member[T]) untrack(msgs []stages.Message[T]) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cut := map[partKey]bool{}
	for i := range msgs {
		md := msgs[i].Metadata.(*Metadata)
		k := partKey{md.Topic, md.Partition}
		st := m.parts[k]
		if cut[k] || st == nil || st.gen != md.gen {
			continue
		}
		cut[k] = true
		// Messages are in offset order: drop this one and every later one.
		st.cut(md.Offset)
	}
}

// Ack marks the successful messages, and the failed ones that were
// dead-lettered, done for offset purposes; a failed message that was not
// dead-lettered holds its partition's commit back. It never blocks on the
// network.
func (m *member[T]) Ack(successful, failed []*stages.Message[T]) {
	var stuck []*stages.Message[T]
	late := 0
	m.mu.Lock()
	finish := func(msg *stages.Message[T], state uint8) bool {
		md, ok := msg.Metadata.(*Metadata)
		if !ok {
			return false
		}
		st := m.parts[partKey{md.Topic, md.Partition}]
		if st == nil || st.gen != md.gen || !st.finish(md.Offset, state) {
			late++
			return false
		}
		return true
	}
	for _, msg := range successful {
		finish(msg, stDone)
	}
	for _, msg := range failed {
		if stages.IsDeadLettered(msg.Err()) {
			finish(msg, stDone)
		} else if finish(msg, stFailed) {
			stuck = append(stuck, msg)
		}
	}
	if m.changed != nil {
		close(m.changed)
		m.changed = nil
	}
	m.mu.Unlock()
	if late > 0 {
		m.c.late.Add(int64(late))
	}
	if len(stuck) > 0 {
		m.c.uncommittable.Add(int64(len(stuck)))
		if ok, count := m.c.stuckLog.Allow(int64(len(stuck))); ok {
			md := stuck[0].Metadata.(*Metadata)
			m.log.Warn("kafka: failed messages were not dead-lettered: their partitions' offsets are not committed past them until they are read again (after a rebalance or restart)",
				"failed", len(stuck), "topic", md.Topic, "partition", md.Partition, "offset", md.Offset,
				"err", errText(stuck[0].Err(), 300), "failed_since_last_line", count)
		}
	}
}

// errText returns err's text, cut to at most n bytes and a "…".
func errText(err error, n int) string {
	s := fmt.Sprint(err)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strings.ToValidUTF8(s, "")
}

// commit commits the done offsets of the partitions keep accepts (all if
// keep is nil) that moved since their last commit.
func (m *member[T]) commit(keep func(partKey) bool) {
	m.mu.Lock()
	var tps []ckafka.TopicPartition
	for k, st := range m.parts {
		if st.next > st.committed && (keep == nil || keep(k)) {
			topic := k.topic
			tps = append(tps, ckafka.TopicPartition{Topic: &topic, Partition: k.partition, Offset: ckafka.Offset(st.next)})
		}
	}
	m.mu.Unlock()
	if len(tps) == 0 {
		return
	}
	res, err := m.cons.CommitOffsets(tps)
	if err != nil {
		m.log.Warn("kafka: commit offsets", "partitions", len(tps), "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, tp := range res {
		if tp.Error != nil {
			m.log.Warn("kafka: commit offset", "topic", *tp.Topic, "partition", tp.Partition, "err", tp.Error)
			continue
		}
		if st := m.parts[partKey{*tp.Topic, tp.Partition}]; st != nil && int64(tp.Offset) > st.committed {
			st.committed = int64(tp.Offset)
		}
	}
}

// rebalance handles assignments and revocations; librdkafka calls it from
// Poll (or Close) on the polling goroutine.
func (m *member[T]) rebalance(cons *ckafka.Consumer, ev ckafka.Event) error {
	cooperative := cons.GetRebalanceProtocol() == "COOPERATIVE"
	switch e := ev.(type) {
	case ckafka.AssignedPartitions:
		if m.c.cfg.OffsetStore != nil {
			if err := m.startOffsets(e.Partitions); err != nil {
				m.log.Error("kafka: cannot start the assigned partitions without the offset store", "err", err)
				m.fatal.Store(&err)
				return nil
			}
		}
		m.mu.Lock()
		for _, tp := range e.Partitions {
			m.gen++
			m.parts[partKey{*tp.Topic, tp.Partition}] = newPartState(m.gen)
		}
		m.mu.Unlock()
		m.log.Info("kafka: partitions assigned", "partitions", describe(e.Partitions), "protocol", cons.GetRebalanceProtocol())
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
			m.awaitInflight(revoked)
			m.commit(func(k partKey) bool { return revoked[k] })
		}
		m.mu.Lock()
		for k := range revoked {
			if st := m.parts[k]; st != nil && st.stuck >= 0 {
				m.log.Warn("kafka: partition revoked with its commit held back by a failed message that was not dead-lettered; its next owner reads it again",
					"topic", k.topic, "partition", k.partition, "offset", st.stuck)
			}
			delete(m.parts, k)
		}
		m.mu.Unlock()
		kept := m.carry[:0]
		for _, r := range m.carry {
			if r == nil {
				continue
			}
			if !revoked[partKey{topicOf(r), r.TopicPartition.Partition}] {
				kept = append(kept, r)
			} else {
				m.carryBytes -= len(r.Value) + len(r.Key)
			}
		}
		clear(m.carry[len(kept):])
		m.carry = kept
		m.log.Info("kafka: partitions revoked", "partitions", describe(e.Partitions), "lost", lost)
		if cooperative {
			return cons.IncrementalUnassign(e.Partitions)
		}
		return cons.Unassign()
	}
	return nil
}

// awaitInflight waits, up to RevokeTimeout, until the revoked partitions
// have no message in the topology.
func (m *member[T]) awaitInflight(revoked map[partKey]bool) {
	deadline := time.NewTimer(m.c.cfg.RevokeTimeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		busy := 0
		for k := range revoked {
			if st := m.parts[k]; st != nil {
				busy += st.pending()
			}
		}
		if busy == 0 {
			m.mu.Unlock()
			return
		}
		if m.changed == nil {
			m.changed = make(chan struct{})
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			m.log.Warn("kafka: revocation timed out waiting for acknowledgements; the new owner will see those messages again",
				"in_flight", busy, "timeout", m.c.cfg.RevokeTimeout)
			return
		}
	}
}

// pause stops fetching every assigned partition.
func (m *member[T]) pause() {
	parts, err := m.cons.Assignment()
	if err != nil || len(parts) == 0 {
		return
	}
	if err := m.cons.Pause(parts); err != nil {
		m.log.Warn("kafka: pause", "err", err)
		return
	}
	if !m.paused {
		m.paused = true
		m.c.pauses.Add(1)
	}
}

// resume fetches again after pause.
func (m *member[T]) resume() {
	if !m.paused {
		return
	}
	m.paused = false
	parts, err := m.cons.Assignment()
	if err != nil || len(parts) == 0 {
		return
	}
	if err := m.cons.Resume(parts); err != nil {
		m.log.Warn("kafka: resume", "err", err)
	}
}

// close commits the done offsets, leaves the group and closes the client.
// librdkafka's close has been seen (rarely, with several members of one
// group closing at once) not to finish: after closeTimeout close gives up
// waiting, reports it, and leaves the client to finish in the background
// (the group expires the member after SessionTimeout at worst).
func (m *member[T]) close() error {
	m.closeOnce.Do(func() {
		closed := make(chan error, 1)
		go func() {
			m.commit(nil)
			err := m.cons.Close()
			m.logsWG.Wait()
			closed <- err
		}()
		limit := m.c.cfg.RevokeTimeout + m.c.cfg.SessionTimeout + 10*time.Second
		timer := time.NewTimer(limit)
		defer timer.Stop()
		select {
		case err := <-closed:
			if err != nil {
				m.closeErr = fmt.Errorf("kafka: close consumer: %w", err)
			}
		case <-timer.C:
			m.closeErr = fmt.Errorf("kafka: close consumer: not closed after %v; left closing in the background", limit)
			m.log.Error("kafka: the client did not close in time; the group will expire this member", "after", limit)
		}
	})
	return m.closeErr
}

func topicOf(m *ckafka.Message) string {
	if m.TopicPartition.Topic == nil {
		return ""
	}
	return *m.TopicPartition.Topic
}

func describe(tps []ckafka.TopicPartition) string {
	var s strings.Builder
	for i, tp := range tps {
		if i > 0 {
			s.WriteByte(',')
		}
		fmt.Fprintf(&s, "%s/%d", *tp.Topic, tp.Partition)
	}
	return s.String()
}
