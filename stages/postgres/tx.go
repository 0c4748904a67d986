package postgres

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/stages"
)

// Position is what TxSink needs from a message's Metadata: the Kafka record
// it came from. producers/kafka's *Metadata implements it.
type Position interface {
	KafkaPosition() (topic string, partition int32, offset int64)
}

// TxConfig configures a TxSink: exactly-once batches from a Kafka consumer
// group into Postgres.
type TxConfig[T any] struct {
	// Pool is the connection pool; either Pool or URL is required (a pool
	// made from URL is closed by Close).
	Pool *pgxpool.Pool
	// URL is a connection string, used when Pool is nil.
	URL string
	// Group is the consumer group whose offsets the sink stores. Required:
	// the same GroupID the Kafka consumer uses.
	Group string
	// Apply writes a batch's messages through tx, the transaction that
	// also stores the offsets. It may fail single messages with
	// TxBatch.Fail (they are dead-lettered in the same transaction) and
	// read or change the stored state of each partition (TxBatch.State).
	// An error it returns that is about the data (SQLSTATE classes 22 and
	// 23) is isolated: the batch is applied again by halves, each under a
	// savepoint, down to the single messages Postgres refuses, which are
	// dead-lettered. Required.
	Apply func(ctx context.Context, tx pgx.Tx, b *TxBatch[T]) error
	// Payload returns what the dead-letter table keeps of a failed
	// message. Default: the record's value when the Metadata has a
	// RecordValue() []byte method, else nothing.
	Payload func(m *stages.Message[T]) []byte
	// OffsetsTable is the table of stored offsets. Default
	// "causeway_offsets".
	OffsetsTable string
	// DeadLetterTable is the table failed messages go to, in the
	// transaction that moves the offset past them. Default
	// "causeway_dead_letters".
	DeadLetterTable string
	// Migrate runs once in NewTx after the offsets and dead-letter tables
	// are created: the statements that create the tables Apply writes.
	Migrate []string
	// Retry bounds the retries of transient errors.
	Retry Retry
	// Logger receives retry and isolation logs. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports every field of c that is missing.
func (c *TxConfig[T]) Validate() error {
	var errs []error
	if c.Pool == nil && c.URL == "" {
		errs = append(errs, errors.New("postgres: TxConfig.Pool or TxConfig.URL is required"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("postgres: TxConfig.Group is required (the consumer group whose offsets are stored)"))
	}
	if c.Apply == nil {
		errs = append(errs, errors.New("postgres: TxConfig.Apply is required"))
	}
	if r := c.Retry; r.Attempts < 0 || r.Backoff < 0 || r.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("postgres: TxConfig.Retry must not be negative, got %d attempts, backoff %v, max %v",
			r.Attempts, r.Backoff, r.MaxBackoff))
	}
	return errors.Join(errs...)
}

// TxBatch is what TxConfig.Apply is given: the messages to apply (those of
// the handler's batch that are not applied yet, in offset order per
// partition) and the stored state of each partition they come from.
type TxBatch[T any] struct {
	// Messages are the messages to apply.
	Messages []*stages.Message[T]

	parts  map[partKey]*PartitionState
	failed map[*stages.Message[T]]error
	hooks  *[]func()
}

// OnCommit registers f to run after the transaction commits (for counters
// that must not count a try that was rolled back).
func (b *TxBatch[T]) OnCommit(f func()) { *b.hooks = append(*b.hooks, f) }

// PartitionState is a partition's row in the offsets table, as this
// transaction sees it.
type PartitionState struct {
	Topic     string
	Partition int32
	// NextOffset is the stored next offset before this batch.
	NextOffset int64
	// State is the partition's stored state (for example a window
	// watermark). Apply may replace it; it is stored with the new offset.
	State []byte
}

// State returns the stored state of the partition m comes from.
func (b *TxBatch[T]) State(m *stages.Message[T]) *PartitionState {
	p, ok := m.Metadata.(Position)
	if !ok {
		return nil
	}
	topic, part, _ := p.KafkaPosition()
	return b.parts[partKey{topic, part}]
}

// Fail fails m with err: it is written to the dead-letter table in this
// transaction, and acknowledged failed and dead-lettered once it commits.
func (b *TxBatch[T]) Fail(m *stages.Message[T], err error) {
	if err == nil {
		err = stages.ErrFailed
	}
	b.failed[m] = err
}

type partKey struct {
	topic string
	part  int32
}

// TxStats counts what a TxSink did.
type TxStats struct {
	// Batches counts committed transactions.
	Batches int64
	// Applied counts messages given to Apply in committed transactions.
	Applied int64
	// Skipped counts messages already applied by an earlier transaction
	// (a replay, or a late batch of a partition that moved to another
	// member): acknowledged, not applied again.
	Skipped int64
	// DeadLettered counts messages written to the dead-letter table.
	DeadLettered int64
	// HeldBack counts messages failed without being applied because an
	// earlier batch of their partition failed: applying them would move
	// the stored offset past messages never applied. They are not
	// dead-lettered, so the Kafka consumer commits nothing past them; the
	// partition is read again from the stored offset after a rebalance or
	// a restart.
	HeldBack int64
}

// TxSink is a batch handler that applies each batch and stores the next
// offset of every Kafka partition the batch covers in one Postgres
// transaction; it is also the kafka.OffsetStore (StoredOffsets) the
// consumer starts its partitions from. Results are exactly once: a batch
// either commits with its offsets or not at all, and a message whose offset
// is below its partition's stored offset was applied already and is
// skipped (the fencing check that makes a revoked partition's late batch,
// or a replay, a no-op).
//
// The stored offset is a contiguous watermark only if every message of a
// partition reaches the handler, in offset order: declare the topology
// with Processors.PartitionBy and the batcher's PartitionBy set to
// PartitionBy, and carry errors in the data instead of failing messages
// before the batcher (a failed message is not batched; Apply fails it with
// TxBatch.Fail, which dead-letters it in the transaction). Should a batch
// fail all the same (an error that outlasts the retries), the sink holds
// back the later batches of its partitions (ErrHeldBack) until a batch
// reaching back to it arrives, so the stored offset never passes a message
// that was not applied.
type TxSink[T any] struct {
	pool     *pgxpool.Pool
	ownPool  bool
	group    string
	apply    func(ctx context.Context, tx pgx.Tx, b *TxBatch[T]) error
	payload  func(m *stages.Message[T]) []byte
	offsets  string // sanitized
	dead     string // sanitized
	deadName string
	retry    Retry
	log      *slog.Logger

	batches, applied, skipped, deadLettered, held atomic.Int64

	mu    sync.Mutex
	holes map[partKey]int64 // per partition, the first offset of a batch that failed
}

// NewTx validates cfg, connects if needed, creates the offsets and
// dead-letter tables, runs cfg.Migrate and returns the sink.
func NewTx[T any](ctx context.Context, cfg TxConfig[T]) (*TxSink[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.OffsetsTable == "" {
		cfg.OffsetsTable = "causeway_offsets"
	}
	if cfg.DeadLetterTable == "" {
		cfg.DeadLetterTable = "causeway_dead_letters"
	}
	s := &TxSink[T]{pool: cfg.Pool, group: cfg.Group, apply: cfg.Apply, payload: cfg.Payload,
		offsets: parseIdentifier(cfg.OffsetsTable).Sanitize(), dead: parseIdentifier(cfg.DeadLetterTable).Sanitize(),
		deadName: cfg.DeadLetterTable, retry: cfg.Retry.withDefaults(), log: cfg.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("sink", "postgres-tx", "group", cfg.Group)
	if s.payload == nil {
		s.payload = defaultPayload[T]
	}
	if s.pool == nil {
		pool, err := pgxpool.New(ctx, cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("postgres: connect: %w", err)
		}
		s.pool, s.ownPool = pool, true
	}
	stmts := append([]string{
		`CREATE TABLE IF NOT EXISTS ` + s.offsets + ` (
			consumer_group text NOT NULL,
			topic text NOT NULL,
			partition integer NOT NULL,
			next_offset bigint NOT NULL,
			state bytea,
			updated_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (consumer_group, topic, partition))`,
		`CREATE TABLE IF NOT EXISTS ` + s.dead + ` (
			consumer_group text NOT NULL,
			topic text NOT NULL,
			partition integer NOT NULL,
			"offset" bigint NOT NULL,
			error text NOT NULL,
			payload bytea,
			failed_at timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (consumer_group, topic, partition, "offset"))`,
	}, cfg.Migrate...)
	sk := &Sink[T]{pool: s.pool, retry: s.retry, log: s.log}
	if err := sk.migrate(ctx, cfg.OffsetsTable, stmts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func defaultPayload[T any](m *stages.Message[T]) []byte {
	if v, ok := m.Metadata.(interface{ RecordValue() []byte }); ok {
		return v.RecordValue()
	}
	return nil
}

// Pool returns the pool the sink writes through.
func (s *TxSink[T]) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool if the sink created it.
func (s *TxSink[T]) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// Stats returns a snapshot of the sink's counters.
func (s *TxSink[T]) Stats() TxStats {
	return TxStats{Batches: s.batches.Load(), Applied: s.applied.Load(), Skipped: s.skipped.Load(),
		DeadLettered: s.deadLettered.Load(), HeldBack: s.held.Load()}
}

// PartitionBy returns a number that is the same for every message of one
// Kafka partition: set it as the processors' and the batcher's PartitionBy
// so that a partition's messages reach the sink in offset order, one batch
// at a time.
func PartitionBy[T any](m *stages.Message[T]) uint64 {
	p, ok := m.Metadata.(Position)
	if !ok {
		return 0
	}
	topic, part, _ := p.KafkaPosition()
	h := fnv.New64a()
	h.Write([]byte(topic))
	return h.Sum64() + uint64(part)
}

// StoredOffsets returns the stored next offsets of topic's partitions for
// group: it makes the sink the Kafka consumer's kafka.OffsetStore.
func (s *TxSink[T]) StoredOffsets(ctx context.Context, group, topic string, partitions []int32) (map[int32]int64, error) {
	out := map[int32]int64{}
	err := s.withRetry(ctx, "read offsets", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, `SELECT partition, next_offset FROM `+s.offsets+
			` WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3)`, group, topic, partitions)
		if err != nil {
			return err
		}
		var p int32
		var off int64
		_, err = pgx.ForEachRow(rows, []any{&p, &off}, func() error { out[p] = off; return nil })
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: read stored offsets of %s/%s from %s: %w", group, topic, s.offsets, err)
	}
	return out, nil
}

func (s *TxSink[T]) withRetry(ctx context.Context, what string, f func(context.Context) error) error {
	sk := Sink[T]{retry: s.retry, log: s.log}
	return sk.withRetry(ctx, what, f)
}

// positioned is a message with its Kafka position.
type positioned[T any] struct {
	m      *stages.Message[T]
	key    partKey
	offset int64
}

// HandleBatch applies the batch and stores the offsets in one transaction;
// it is a stages.BatchHandler. Transient errors are retried; an error that
// outlasts them, or that is not about the data, fails the whole batch
// (nothing of it is stored).
func (s *TxSink[T]) HandleBatch(ctx context.Context, b *stages.Batch[T]) error {
	msgs := make([]positioned[T], 0, len(b.Messages))
	for _, m := range b.Messages {
		p, ok := m.Metadata.(Position)
		if !ok {
			return fmt.Errorf("postgres: TxSink needs messages whose Metadata has KafkaPosition() (a Kafka consumer's), got %T", m.Metadata)
		}
		topic, part, off := p.KafkaPosition()
		msgs = append(msgs, positioned[T]{m: m, key: partKey{topic, part}, offset: off})
	}
	slices.SortStableFunc(msgs, func(a, b positioned[T]) int {
		return cmp.Or(cmp.Compare(a.key.topic, b.key.topic), cmp.Compare(a.key.part, b.key.part), cmp.Compare(a.offset, b.offset))
	})
	if msgs = s.holdBack(msgs); len(msgs) == 0 {
		return nil
	}
	var res *txResult[T]
	isolate := false // the first try runs Apply without savepoints
	err := s.withRetry(ctx, "transaction", func(ctx context.Context) error {
		var err error
		res, err = s.transact(ctx, msgs, isolate)
		if !isolate && isDataError(err) {
			// Postgres refused something: run the transaction again,
			// isolating the refused messages under savepoints.
			isolate = true
			res, err = s.transact(ctx, msgs, true)
		}
		return err
	})
	if err != nil {
		s.markHoles(msgs)
		return fmt.Errorf("postgres: transaction of %d messages (group %s): %w", len(msgs), s.group, err)
	}
	for m, ferr := range res.failed {
		m.Fail(&stages.DeadLetteredError{Err: ferr, Destination: s.deadName})
	}
	s.batches.Add(1)
	s.applied.Add(int64(res.applied))
	s.skipped.Add(int64(res.skipped))
	s.deadLettered.Add(int64(len(res.failed)))
	return nil
}

// ErrHeldBack is the error of a message the sink did not apply because an
// earlier batch of its partition failed (see TxStats.HeldBack).
var ErrHeldBack = errors.New("postgres: held back: an earlier batch of this partition failed; the partition is read again from the stored offset")

// holdBack fails, and leaves out, the messages of partitions with a hole
// (a failed batch) below them: msgs are sorted by partition and offset.
func (s *TxSink[T]) holdBack(msgs []positioned[T]) []positioned[T] {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.holes) == 0 {
		return msgs
	}
	kept := make([]positioned[T], 0, len(msgs))
	held := 0
	for i, p := range msgs {
		hole, ok := s.holes[p.key]
		first := i == 0 || msgs[i-1].key != p.key // the partition's lowest offset here
		if ok && first && p.offset <= hole {
			// This batch reaches back to the hole (a re-delivery): it may
			// fill it.
			delete(s.holes, p.key)
			ok = false
		}
		if ok {
			p.m.Fail(ErrHeldBack)
			held++
			continue
		}
		kept = append(kept, p)
	}
	s.held.Add(int64(held))
	return kept
}

// markHoles records, for each partition of a failed batch, its first
// offset.
func (s *TxSink[T]) markHoles(msgs []positioned[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holes == nil {
		s.holes = map[partKey]int64{}
	}
	for i, p := range msgs {
		if i > 0 && msgs[i-1].key == p.key {
			continue
		}
		if h, ok := s.holes[p.key]; !ok || p.offset < h {
			s.holes[p.key] = p.offset
		}
	}
}

type txResult[T any] struct {
	applied, skipped int
	failed           map[*stages.Message[T]]error
}

// transact runs one try of a batch's transaction. Without isolate, Apply
// runs on the transaction itself and a data error ends it; with isolate,
// under savepoints that find the messages Postgres refuses.
func (s *TxSink[T]) transact(ctx context.Context, msgs []positioned[T], isolate bool) (*txResult[T], error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var keys []partKey
	for _, p := range msgs {
		if len(keys) == 0 || keys[len(keys)-1] != p.key {
			keys = append(keys, p.key)
		}
	}
	parts, err := s.lock(ctx, tx, keys)
	if err != nil {
		return nil, err
	}
	batch := &TxBatch[T]{parts: parts, failed: map[*stages.Message[T]]error{}, hooks: new([]func())}
	res := &txResult[T]{}
	next := map[partKey]int64{}
	for _, p := range msgs {
		st := parts[p.key]
		if p.offset < st.NextOffset {
			res.skipped++ // applied by an earlier transaction
			continue
		}
		batch.Messages = append(batch.Messages, p.m)
		next[p.key] = max(next[p.key], p.offset+1)
	}
	if len(batch.Messages) == 0 {
		return res, nil // nothing new: nothing to store
	}
	if isolate {
		if err := s.isolate(ctx, tx, batch, batch.Messages); err != nil {
			return nil, err
		}
	} else if err := s.safeApply(ctx, tx, batch); err != nil {
		return nil, err
	}
	if err := s.deadLetter(ctx, tx, batch); err != nil {
		return nil, err
	}
	up := &pgx.Batch{}
	for _, k := range keys {
		if n, ok := next[k]; ok {
			up.Queue(`UPDATE `+s.offsets+` SET next_offset = $4, state = $5, updated_at = now()
				WHERE consumer_group = $1 AND topic = $2 AND partition = $3`, s.group, k.topic, k.part, n, parts[k].State)
		}
	}
	if err := tx.SendBatch(ctx, up).Close(); err != nil {
		return nil, fmt.Errorf("store offsets in %s: %w", s.offsets, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	res.applied = len(batch.Messages)
	res.failed = batch.failed
	for _, f := range *batch.hooks {
		f()
	}
	return res, nil
}

// lock creates the partitions' offset rows if missing and locks them, in
// key order (so that concurrent transactions cannot deadlock), returning
// their stored state.
func (s *TxSink[T]) lock(ctx context.Context, tx pgx.Tx, keys []partKey) (map[partKey]*PartitionState, error) {
	b := &pgx.Batch{}
	for _, k := range keys {
		b.Queue(`INSERT INTO `+s.offsets+` (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 0)
			ON CONFLICT DO NOTHING`, s.group, k.topic, k.part)
	}
	parts := make(map[partKey]*PartitionState, len(keys))
	for _, k := range keys {
		st := &PartitionState{Topic: k.topic, Partition: k.part}
		parts[k] = st
		b.Queue(`SELECT next_offset, state FROM `+s.offsets+` WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
			s.group, k.topic, k.part).QueryRow(func(row pgx.Row) error { return row.Scan(&st.NextOffset, &st.State) })
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("lock offsets in %s: %w", s.offsets, err)
	}
	return parts, nil
}

// isolate runs Apply on msgs under a savepoint. On a data error it rolls
// back to the savepoint, restores the partitions' state and applies the
// halves, down to single messages, which it fails. Other errors end the
// transaction.
func (s *TxSink[T]) isolate(ctx context.Context, tx pgx.Tx, batch *TxBatch[T], msgs []*stages.Message[T]) error {
	saved := make(map[partKey][]byte, len(batch.parts))
	for k, st := range batch.parts {
		saved[k] = bytes.Clone(st.State)
	}
	failedBefore, hooksBefore := len(batch.failed), len(*batch.hooks)
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	sub := &TxBatch[T]{Messages: msgs, parts: batch.parts, failed: batch.failed, hooks: batch.hooks}
	err = s.safeApply(ctx, sp, sub)
	if err == nil {
		return sp.Commit(ctx)
	}
	if rerr := sp.Rollback(ctx); rerr != nil {
		return errors.Join(err, rerr)
	}
	if !isDataError(err) {
		return err
	}
	for k, st := range batch.parts {
		st.State = saved[k]
	}
	*batch.hooks = (*batch.hooks)[:hooksBefore]
	if len(batch.failed) > failedBefore {
		for _, m := range msgs {
			delete(batch.failed, m)
		}
	}
	if len(msgs) == 1 {
		s.log.Debug("postgres: message refused by Postgres, dead-lettered", "err", err)
		batch.failed[msgs[0]] = &RowError{Table: "(TxConfig.Apply)", Err: err}
		return nil
	}
	half := len(msgs) / 2
	if err := s.isolate(ctx, tx, batch, msgs[:half]); err != nil {
		return err
	}
	return s.isolate(ctx, tx, batch, msgs[half:])
}

// safeApply calls Apply, turning a panic into an error (a permanent one:
// the batch fails).
func (s *TxSink[T]) safeApply(ctx context.Context, tx pgx.Tx, b *TxBatch[T]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &stages.PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return s.apply(ctx, tx, b)
}

// deadLetter writes the batch's failed messages to the dead-letter table.
func (s *TxSink[T]) deadLetter(ctx context.Context, tx pgx.Tx, batch *TxBatch[T]) error {
	if len(batch.failed) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for m, ferr := range batch.failed {
		topic, part, off := m.Metadata.(Position).KafkaPosition()
		b.Queue(`INSERT INTO `+s.dead+` (consumer_group, topic, partition, "offset", error, payload)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
			s.group, topic, part, off, validText(ferr.Error()), s.payload(m))
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("dead-letter %d messages into %s: %w", len(batch.failed), s.dead, err)
	}
	return nil
}

// validText makes s storable in a text column: valid UTF-8 without NUL.
func validText(s string) string {
	return string(bytes.ReplaceAll(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")), []byte{0}, []byte("\\u0000")))
}
