package core

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/internal/backoff"
	"github.com/causeway-go/causeway/stages/spill"
)

// SpillConfig configures a batcher's spill, its write-ahead log for
// OutageSpill: where it lives, how large it may grow and how a message's
// Data is written and read back.
type SpillConfig[T any] struct {
	// Dir is the batcher's spill directory; one batcher, one directory.
	Dir string
	// MaxBytes bounds the spill on disk (default 1 GiB). A full spill holds
	// the batcher back as OutageBlock would until there is room again.
	MaxBytes int64
	// Encode writes a message's Data; an error fails the message
	// permanently (it could be neither stored nor held).
	Encode func(*Message[T]) ([]byte, error)
	// Decode reads Data back for the replay.
	Decode func([]byte) (T, error)
	// StallTimeout is how long every batch processor may be inside the
	// batch handler without one call returning before the sink counts as
	// stalled (a client that waits out an outage instead of failing, as a
	// Kafka producer waits for its delivery timeout). While it is stalled,
	// the batches queued behind the stuck calls go to the spill at once
	// instead of holding the topology back. Default 10s: a sink that is
	// merely slow returns well within it, or it would not be in use; it
	// applies to
	// batchers without PartitionBy (with it, a partition's batches must
	// keep their order behind the call in flight).
	StallTimeout time.Duration
}

// stallTimeout is cfg.StallTimeout or its default.
func (cfg *SpillConfig[T]) stallTimeout() time.Duration {
	if cfg.StallTimeout > 0 {
		return cfg.StallTimeout
	}
	return 10 * time.Second
}

// spiller is a batcher's spill: the log, the replay goroutine's state and
// counters. Messages in it were acknowledged as held; the replay hands them
// to the batch handler in order, with no Acker or Metadata.
type spiller[T any] struct {
	b   *batcher[T]
	cfg SpillConfig[T]
	log *spill.Log

	mu        sync.Mutex // orders appends against the replay's hand-over
	replaying bool       // the replay holds records it has not acknowledged

	draining   atomic.Bool
	drainStart atomic.Int64 // unix nanos
	stopWait   context.CancelFunc

	spilled, replayed, replayFailed, encodeFailed atomic.Int64
	down                                          atomic.Bool // the last replay attempt failed
	lastLog                                       time.Time
}

func openSpill[T any](b *batcher[T], cfg SpillConfig[T]) (*spiller[T], error) {
	l, err := spill.Open(cfg.Dir, spill.Options{MaxBytes: cfg.MaxBytes, Logger: b.e.cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("batcher %q: spill: %w", b.cfg.Name, err)
	}
	return &spiller[T]{b: b, cfg: cfg, log: l}, nil
}

// pending reports whether the spill holds records (or the replay is
// handing some over): new batches must then join the spill, behind them.
func (s *spiller[T]) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replaying || s.log.Len() > 0
}

// hold appends msgs to the spill and clears their errors: they count as
// acknowledged, held on disk. A message whose Data cannot be encoded is
// failed permanently instead. It returns the error of an Append that
// failed (spill.ErrFull, an I/O error), in which case nothing was held.
func (s *spiller[T]) hold(msgs []*Message[T]) error {
	recs := make([][]byte, 0, len(msgs))
	held := make([]*Message[T], 0, len(msgs))
	for _, m := range msgs {
		data, err := s.encode(m)
		if err != nil {
			m.Fail(Permanent(fmt.Errorf("spill: encode: %w", err)))
			s.encodeFailed.Add(1)
			continue
		}
		recs = append(recs, data)
		held = append(held, m)
	}
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	err := s.log.Append(recs)
	s.mu.Unlock()
	if errors.Is(err, spill.ErrTooLarge) {
		for _, m := range held {
			m.Fail(Permanent(fmt.Errorf("spill: %w", err)))
		}
		return nil
	}
	if err != nil {
		return err
	}
	for _, m := range held {
		m.err = nil
	}
	s.spilled.Add(int64(len(held)))
	return nil
}

func (s *spiller[T]) encode(m *Message[T]) (data []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return s.cfg.Encode(m)
}

// maxReplayWait caps the replay's back-off while the sink is down.
const maxReplayWait = 2 * time.Second

// drain tells the replay to stop once the spill is empty, the sink fails
// or half of ShutdownTimeout has passed: what is left stays on disk for
// the next start.
func (s *spiller[T]) drain() {
	s.drainStart.Store(time.Now().UnixNano())
	s.draining.Store(true)
	s.mu.Lock()
	if s.stopWait != nil {
		s.stopWait()
	}
	s.mu.Unlock()
}

// run replays the spill in order until ctx ends or, once draining, the
// spill is empty or the sink refuses. Records are acknowledged in the
// spill only after the handler took them (or failed them permanently, and
// HandleFailed saw them).
func (s *spiller[T]) run(ctx context.Context) {
	b := s.b
	limit := b.cfg.BatchSize
	if b.policy.sized {
		limit = 500
	}
	// The replay runs as many batches at once as the batcher has batch
	// processors (they put their batches in the spill meanwhile, so the
	// sink sees no more calls than usual), so that a spill drains at the
	// sink's speed, not one batch's. Batchers with PartitionBy replay one
	// batch at a time: a partition's order must hold.
	par := b.cfg.Concurrency
	if b.cfg.PartitionBy != nil {
		par = 1
	}
	var st settler[T]
	st.init(b.e)
	type chunk struct {
		recs   []spill.Record
		msgs   []*Message[T]
		failed []*Message[T]
		ok     bool
	}
	chunks := make([]chunk, par)
	for attempt := 0; ctx.Err() == nil; {
		if s.draining.Load() && time.Since(time.Unix(0, s.drainStart.Load())) > b.e.cfg.ShutdownTimeout/2 {
			b.e.cfg.Logger.Warn("stages: drain: spill kept for the next start", "batcher", b.cfg.Name, "records", s.log.Len())
			return
		}
		s.mu.Lock()
		recs, err := s.log.Peek(limit * par)
		s.replaying = len(recs) > 0
		s.mu.Unlock()
		if err != nil {
			b.e.cfg.Logger.Error("stages: spill: cannot read back", "batcher", b.cfg.Name, "err", err)
			return
		}
		if len(recs) == 0 {
			if s.draining.Load() || !s.waitForRecords(ctx) {
				return
			}
			continue
		}
		n := 0
		for ; len(recs) > 0; n++ {
			k := min(limit, len(recs))
			chunks[n] = chunk{recs: recs[:k], msgs: s.decode(recs[:k])}
			recs = recs[k:]
		}
		var wg sync.WaitGroup
		for i := range chunks[:n] {
			c := &chunks[i]
			wg.Go(func() { c.failed, c.ok = s.replay(ctx, c.msgs, attempt+1) })
		}
		wg.Wait()
		// Acknowledge the chunks that went through, up to the first that
		// did not: the spill is a log, read back in order. A later chunk
		// the sink took is replayed again with it (at least once).
		done := 0
		for _, c := range chunks[:n] {
			if !c.ok {
				break
			}
			if len(c.failed) > 0 && b.e.cfg.HandleFailed != nil {
				st.handleFailed(ctx, c.failed)
			}
			s.mu.Lock()
			err = s.log.Ack(c.recs[len(c.recs)-1].End)
			s.mu.Unlock()
			if err != nil {
				b.e.cfg.Logger.Error("stages: spill: cannot acknowledge replayed records", "batcher", b.cfg.Name, "err", err)
				return
			}
			s.replayed.Add(int64(len(c.msgs) - len(c.failed)))
			s.replayFailed.Add(int64(len(c.failed)))
			done++
		}
		clear(chunks)
		if done == n {
			attempt = 0
			continue
		}
		attempt++
		// Probe a down sink at least every maxReplayWait: a replay
		// attempt is a few batches, and the sooner the spill empties
		// after an outage the less the drain leaves on disk.
		if s.draining.Load() || backoff.Sleep(ctx, min(b.cfg.Retry.wait(attempt), maxReplayWait), nil) != nil {
			return
		}
	}
}

// waitForRecords waits until the spill holds records, ctx ends or drain is
// called; it reports whether there are records.
func (s *spiller[T]) waitForRecords(ctx context.Context) bool {
	wctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.stopWait = cancel
	s.mu.Unlock()
	defer cancel()
	if s.draining.Load() {
		return false
	}
	return s.log.Wait(wctx) == nil
}

func (s *spiller[T]) decode(recs []spill.Record) []*Message[T] {
	msgs := make([]*Message[T], 0, len(recs))
	for _, r := range recs {
		m := &Message[T]{}
		data, err := s.cfg.Decode(r.Data)
		if err != nil {
			m.Fail(Permanent(fmt.Errorf("spill: decode: %w", err)))
		}
		m.Data = data
		msgs = append(msgs, m)
	}
	return msgs
}

// replay hands msgs to the batch handler once. It reports false if the
// sink failed any of them transiently (the spill keeps them all; they are
// tried again), and otherwise the ones that failed permanently.
func (s *spiller[T]) replay(ctx context.Context, msgs []*Message[T], attempt int) (failed []*Message[T], ok bool) {
	b := s.b
	var todo []*Message[T]
	for i, m := range msgs {
		m.slot = int32(i)
		if m.err == nil {
			todo = append(todo, m)
		}
	}
	if len(todo) > 0 {
		batch := &Batch[T]{Messages: todo, BatchInfo: BatchInfo{Batcher: b.cfg.Name, Size: len(todo), Trigger: TriggerReplay, Attempt: attempt}}
		err := b.callHandler(ctx, batch)
		for _, m := range todo {
			if err != nil && m.err == nil {
				m.Fail(err)
			}
		}
	}
	for _, m := range msgs {
		if m.err == nil {
			continue
		}
		if !IsPermanent(m.err) {
			if !s.down.Swap(true) || time.Since(s.lastLog) > time.Minute {
				s.lastLog = time.Now()
				b.e.cfg.Logger.Warn("stages: sink still failing; spill kept for later replay",
					"batcher", b.cfg.Name, "spilled_records", s.log.Len(), "err", m.err)
			}
			for _, m := range msgs {
				if !IsPermanent(m.err) {
					m.err = nil
				}
			}
			return nil, false
		}
		failed = append(failed, m)
	}
	if s.down.Swap(false) {
		b.e.cfg.Logger.Info("stages: sink takes the spill again", "batcher", b.cfg.Name, "spilled_records", s.log.Len())
	}
	return failed, true
}

// SpillStats counts what a batcher's spill did.
type SpillStats struct {
	Records      int   // records on disk, waiting for replay
	Bytes        int64 // bytes on disk
	Spilled      int64 // messages held in the spill since start
	Replayed     int64 // messages the sink took from the spill
	ReplayFailed int64 // spilled messages the sink failed permanently
	EncodeFailed int64 // messages that could not be encoded, failed
	Full         bool  // the spill refused an append for lack of room
	SinkDown     bool  // the last replay attempt failed
}

func (s *spiller[T]) stats() *SpillStats {
	st := s.log.Stats()
	return &SpillStats{
		Records:      int(st.Records),
		Bytes:        st.DiskBytes,
		Spilled:      s.spilled.Load(),
		Replayed:     s.replayed.Load(),
		ReplayFailed: s.replayFailed.Load(),
		EncodeFailed: s.encodeFailed.Load(),
		Full:         s.b.spillFull.Load(),
		SinkDown:     s.down.Load(),
	}
}
