package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/internal/ratelog"
)

// EngineConfig is a complete, validated description of a topology's stages.
// Package topology builds it from a Spec after checking every field; the
// engine trusts it.
type EngineConfig[T any] struct {
	Name                string
	Producer            Producer[T]
	ProducerConcurrency int
	Buffer              BufferConfig[T] // Consumers and PartitionBy come from Processors
	Processors          ProcessorConfig[T]
	Batchers            []BatcherConfig[T]
	// DefaultBatcher receives messages no handler routed; "" means none.
	DefaultBatcher string
	// HandleFailed sees failed messages before they are acknowledged. It may
	// change them (their Acker too). A panic is logged and contained.
	HandleFailed    func(ctx context.Context, failed []*Message[T])
	ShutdownTimeout time.Duration
	Hooks           Hooks
	Logger          *slog.Logger
}

// ProcessorConfig configures the processor pool.
type ProcessorConfig[T any] struct {
	Concurrency int
	MaxDemand   int
	MinDemand   int
	PartitionBy func(*Message[T]) uint64
	// Handle processes one message; an error or a panic fails it.
	Handle func(ctx context.Context, m *Message[T]) error
}

// BatcherConfig configures one named batcher and its batch processors.
type BatcherConfig[T any] struct {
	Name string
	// BatchSize closes a batch when it holds that many messages, or, with
	// SizeFunc, when the sizes of its messages add up to at least BatchSize.
	BatchSize int
	// SizeFunc, if set, measures a message (in bytes, say). A message that
	// would take a non-empty batch over BatchSize starts a new batch.
	SizeFunc func(*Message[T]) int
	// BatchTimeout closes a batch that long after its first message.
	BatchTimeout time.Duration
	// Concurrency is how many batch processors handle batches at once: the
	// fixed size of the pool, or, with MaxConcurrency, where its adaptive
	// limit starts.
	Concurrency int
	// MinConcurrency and MaxConcurrency, when MaxConcurrency > 0, make the
	// pool adaptive: MaxConcurrency batch processors run, and the limit on
	// how many handle batches at once moves between MinConcurrency
	// (default 1) and MaxConcurrency by AIMD on the handler's latency and
	// errors (limiter).
	MinConcurrency int
	MaxConcurrency int
	// PartitionBy, if set, sends each message's batches to partition
	// PartitionBy(m) % the pool size (MaxConcurrency, else Concurrency);
	// one partition's batches are handled one at a time, in order.
	PartitionBy func(*Message[T]) uint64
	Handle      BatchHandler[T]
	Retry       RetryPolicy
	// Outage says what to do while the sink fails batches transiently.
	Outage Outage
	// Spill configures the write-ahead log of OutageSpill.
	Spill *SpillConfig[T]
}

func (cfg EngineConfig[T]) check() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("stages: engine config: "+format, args...))
	}
	if cfg.Producer == nil || cfg.ProducerConcurrency < 1 {
		bad("need a producer and ProducerConcurrency > 0, got %v and %d", cfg.Producer, cfg.ProducerConcurrency)
	}
	if cfg.Buffer.Size < 1 {
		bad("Buffer.Size must be > 0, got %d", cfg.Buffer.Size)
	}
	if err := cfg.Buffer.RateLimit.Validate(); err != nil {
		errs = append(errs, err)
	}
	p := cfg.Processors
	if p.Concurrency < 1 || p.MaxDemand < 1 || p.MinDemand < 0 || p.MinDemand >= p.MaxDemand || p.Handle == nil {
		bad("processors need Concurrency > 0, MaxDemand > 0, 0 <= MinDemand < MaxDemand and a Handle, got %d, %d, %d, %v",
			p.Concurrency, p.MaxDemand, p.MinDemand, p.Handle != nil)
	}
	for _, b := range cfg.Batchers {
		if b.Outage == OutageSpill && (b.Spill == nil || b.Spill.Dir == "" || b.Spill.Encode == nil || b.Spill.Decode == nil) {
			bad("batcher %q: OutageSpill needs a Spill with Dir, Encode and Decode", b.Name)
		}
		if b.BatchSize < 1 || b.BatchTimeout <= 0 || b.Concurrency < 1 || b.Handle == nil {
			bad("batcher %q needs BatchSize > 0, BatchTimeout > 0, Concurrency > 0 and a Handle, got %d, %v, %d, %v",
				b.Name, b.BatchSize, b.BatchTimeout, b.Concurrency, b.Handle != nil)
		}
	}
	if cfg.ShutdownTimeout <= 0 {
		bad("ShutdownTimeout must be > 0, got %v", cfg.ShutdownTimeout)
	}
	return errors.Join(errs...)
}

// ErrShutdownTimeout is wrapped by Run's error when the drain did not finish
// within ShutdownTimeout.
var ErrShutdownTimeout = errors.New("stages: shutdown timeout")

// Engine runs a topology's stages.
type Engine[T any] struct {
	cfg      EngineConfig[T]
	buf      *Buffer[T]
	table    *RouteTable
	batchers []*batcher[T]
	chunks   sync.Pool
	started  atomic.Bool

	received  atomic.Int64
	procFail  atomic.Int64
	panics    atomic.Int64
	forwarded atomic.Int64
	latency   *Histogram
	acked     atomic.Int64
	failed    atomic.Int64

	// What each worker is doing, so a drain that times out can name the
	// ones stuck in user code.
	procState []atomic.Int32
	producing atomic.Int32 // producer goroutines that have not returned

	routeLog ratelog.Limiter // unknown batcher names
}

// What a worker is doing, for the report of a drain that timed out.
const (
	workerIdle int32 = iota
	workerHandling
	workerAcking
)

// chunk is the storage a processor takes messages into. Batches point into
// it rather than copying messages, so it goes back to the pool only when the
// processor and every batch holding its messages have let go.
type chunk[T any] struct {
	msgs []Message[T]
	refs atomic.Int32
}

// NewEngine returns an engine for cfg. Package topology validates what
// users declare and names their fields; NewEngine still refuses a config
// that could not run (one that would deadlock or divide by zero).
func NewEngine[T any](cfg EngineConfig[T]) (*Engine[T], error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	names := make([]string, len(cfg.Batchers))
	for i, b := range cfg.Batchers {
		names[i] = b.Name
	}
	table, err := NewRouteTable(names, cfg.DefaultBatcher)
	if err != nil {
		return nil, err
	}
	e := &Engine[T]{cfg: cfg, table: table, latency: NewLatencyHistogram(),
		procState: make([]atomic.Int32, cfg.Processors.Concurrency)}
	bc := cfg.Buffer
	bc.Consumers = cfg.Processors.Concurrency
	bc.PartitionBy = cfg.Processors.PartitionBy
	if bc.Logger == nil {
		bc.Logger = cfg.Logger
	}
	if userDrop, hook := bc.OnDrop, cfg.Hooks.Drop; hook != nil {
		name, keep, log := cfg.Name, bc.Keep, cfg.Logger
		bc.OnDrop = func(d []Message[T]) {
			if userDrop != nil {
				safely(log, "OnDrop", func() { userDrop(d) }, "topology", name, "dropped", len(d))
			}
			safely(log, "Drop hook", func() { hook(DropEvent{Topology: name, Count: len(d), Keep: keep}) }, "topology", name)
		}
	}
	e.buf = NewBuffer(bc)
	maxDemand := cfg.Processors.MaxDemand
	e.chunks.New = func() any { return &chunk[T]{msgs: make([]Message[T], 0, maxDemand)} }
	for i, b := range cfg.Batchers {
		e.batchers = append(e.batchers, newBatcher(e, i, b))
	}
	return e, nil
}

// Buffer returns the producer stage's buffer.
func (e *Engine[T]) Buffer() *Buffer[T] { return e.buf }

// shutdownGrace is how long Run waits, after ShutdownTimeout, for workers
// to return once their context is cancelled. Those still in user code then
// are named in Run's error and left behind.
const shutdownGrace = time.Second

// Run runs the topology until ctx ends or the producers are exhausted, then
// drains: the producers stop (what they emit until they return is still
// taken), everything already inside is processed, batched, handled and
// acknowledged, and Run returns. It returns nil after a clean drain, the
// producer's error if one failed, and an error wrapping ErrShutdownTimeout
// if the drain went on longer than ShutdownTimeout after ctx ended (or a
// producer failed). At that point handlers' contexts are cancelled; Run
// waits at most shutdownGrace more, and names the workers still stuck in
// user code (which it leaves running) with the count of messages left
// unacknowledged.
//
// Run may be called once.
func (e *Engine[T]) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return fmt.Errorf("stages: topology %q: Run called twice", e.cfg.Name)
	}
	// Handlers run under hard: it survives ctx so the drain can finish, and
	// ends at the shutdown timeout.
	hard, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	prodCtx, stopProducers := context.WithCancel(ctx)
	defer stopProducers()

	for i, b := range e.batchers {
		if err := b.openSpill(); err != nil {
			for _, o := range e.batchers[:i] {
				o.closeSpill()
			}
			return fmt.Errorf("topology %q: %w", e.cfg.Name, err)
		}
	}
	defer func() {
		for _, b := range e.batchers {
			b.closeSpill()
		}
	}()
	var stagesWG sync.WaitGroup
	for _, b := range e.batchers {
		b.start(hard, &stagesWG)
	}
	var procWG sync.WaitGroup
	for id := range e.cfg.Processors.Concurrency {
		procWG.Go(func() { e.runProcessor(hard, id) })
	}
	stagesWG.Go(func() {
		procWG.Wait()
		for _, b := range e.batchers {
			b.close()
		}
	})
	stagesDone := make(chan struct{})
	go func() {
		stagesWG.Wait()
		close(stagesDone)
	}()

	var (
		errMu   sync.Mutex
		prodErr error
	)
	var prodWG sync.WaitGroup
	for range e.cfg.ProducerConcurrency {
		em := e.buf.NewEmitter()
		e.producing.Add(1)
		prodWG.Go(func() {
			defer e.producing.Add(-1)
			err := e.runProducer(prodCtx, em)
			em.done()
			if err != nil && !errors.Is(err, ErrClosed) && !(prodCtx.Err() != nil && errors.Is(err, context.Canceled)) {
				errMu.Lock()
				if prodErr == nil {
					prodErr = fmt.Errorf("producer: %w", err)
				}
				errMu.Unlock()
				stopProducers()
			}
		})
	}
	producersDone := make(chan struct{})
	go func() {
		prodWG.Wait()
		close(producersDone)
	}()

	// Run until the producers are exhausted and everything is acknowledged.
	// Once ctx ends (or a producer fails) the producers are told to stop,
	// the rate limit is lifted and the shutdown clock starts; the buffer
	// closes only when every producer has returned, so what they emit
	// meanwhile is not lost.
	var (
		deadline  <-chan time.Time
		stopTimer = func() bool { return false }
	)
	defer func() { stopTimer() }()
	startShutdown := func() {
		if deadline != nil {
			return
		}
		stopProducers()
		e.buf.Stop()
		t := time.NewTimer(e.cfg.ShutdownTimeout)
		deadline, stopTimer = t.C, t.Stop
	}
	ended, prodOut, stagesOut := prodCtx.Done(), producersDone, stagesDone
	timedOut := false
	for !timedOut && (prodOut != nil || stagesOut != nil) {
		select {
		case <-ended:
			ended = nil
			startShutdown()
		case <-prodOut:
			prodOut = nil
			e.buf.Close()
		case <-stagesOut:
			stagesOut = nil
		case <-deadline:
			timedOut = true
		}
	}

	var timeoutErr error
	if timedOut {
		timeoutErr = e.hardStop(hardStop, producersDone, stagesDone)
	}
	// Read the producers' error after the hard stop: one may fail while it
	// is being stopped.
	var errs []error
	errMu.Lock()
	if prodErr != nil {
		errs = append(errs, prodErr)
	}
	errMu.Unlock()
	if timeoutErr != nil {
		errs = append(errs, timeoutErr)
	}
	select {
	case <-producersDone:
		if c, ok := e.cfg.Producer.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("producer: close: %w", err))
			}
		}
	default: // a producer is stuck in Run: closing it under its feet is not safe
	}
	return errors.Join(errs...)
}

// hardStop ends a drain that ran past ShutdownTimeout: it closes the buffer,
// cancels the handlers' context, waits shutdownGrace for the workers to
// return, and describes what was left and who is stuck.
func (e *Engine[T]) hardStop(cancel context.CancelFunc, producersDone, stagesDone <-chan struct{}) error {
	e.buf.Close()
	cancel()
	grace := time.NewTimer(shutdownGrace)
	defer grace.Stop()
	for producersDone != nil || stagesDone != nil {
		select {
		case <-producersDone:
			producersDone = nil
		case <-stagesDone:
			stagesDone = nil
		case <-grace.C:
			s := e.Stats()
			return fmt.Errorf("topology %q: %w after %v: %d messages not acknowledged (%d buffered, %d in processors or batches); still running %v later, left behind: %s",
				e.cfg.Name, ErrShutdownTimeout, e.cfg.ShutdownTimeout, s.InFlight, s.Producer.Buffered, s.InFlight-int64(s.Producer.Buffered),
				shutdownGrace, e.stuck())
		}
	}
	s := e.Stats()
	return fmt.Errorf("topology %q: %w after %v: %d messages not acknowledged (%d buffered, %d in processors or batches)",
		e.cfg.Name, ErrShutdownTimeout, e.cfg.ShutdownTimeout, s.InFlight, s.Producer.Buffered, s.InFlight-int64(s.Producer.Buffered))
}

// stuck names the workers that are in user code or have not returned.
func (e *Engine[T]) stuck() string {
	var parts []string
	if n := e.producing.Load(); n > 0 {
		parts = append(parts, fmt.Sprintf("%d producer goroutine(s) in Run", n))
	}
	describe := func(what string, states []atomic.Int32) {
		var in [3][]int
		for i := range states {
			if st := states[i].Load(); st != workerIdle {
				in[st] = append(in[st], i)
			}
		}
		if len(in[workerHandling]) > 0 {
			parts = append(parts, fmt.Sprintf("%s %v in their handler", what, in[workerHandling]))
		}
		if len(in[workerAcking]) > 0 {
			parts = append(parts, fmt.Sprintf("%s %v acknowledging (Acknowledger or HandleFailed)", what, in[workerAcking]))
		}
	}
	describe("processors", e.procState)
	for _, b := range e.batchers {
		describe(fmt.Sprintf("batcher %q batch processors", b.cfg.Name), b.bpState)
	}
	if len(parts) == 0 {
		return "no worker in user code (they are between steps)"
	}
	return strings.Join(parts, "; ")
}

func (e *Engine[T]) runProducer(ctx context.Context, em *Emitter[T]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = newPanicError(v)
		}
	}()
	return e.cfg.Producer.Run(ctx, em)
}

// SetRateLimit changes the producer stage's rate limit while running; it
// applies at once. An invalid limit changes nothing and is returned.
func (e *Engine[T]) SetRateLimit(r RateLimit) error { return e.buf.SetRateLimit(r) }

// processors is the size of a batcher's pool: the batch processors it
// starts.
func (cfg *BatcherConfig[T]) processors() int { return max(cfg.Concurrency, cfg.MaxConcurrency) }

// SetConcurrency pins how many batch processors of the named batcher may
// handle batches at once, at n clamped to 1..its pool size (MaxConcurrency,
// else Concurrency), at once and while it runs; the batcher then stops
// adapting. n 0 lets an adaptive batcher adapt again from where it is. It
// returns the limit now in force. Per-partition order holds across the
// change: a partition's next batch waits for the one being handled.
func (e *Engine[T]) SetConcurrency(batcher string, n int) (int, error) {
	if n < 0 {
		return 0, fmt.Errorf("stages: SetConcurrency(%q, %d): want n >= 0", batcher, n)
	}
	for _, b := range e.batchers {
		if b.cfg.Name == batcher {
			return b.setConcurrency(n), nil
		}
	}
	return 0, fmt.Errorf("stages: SetConcurrency: topology %q has no batcher %q", e.cfg.Name, batcher)
}

// Stats returns a snapshot of every stage's counters.
func (e *Engine[T]) Stats() Stats {
	// Read acks before the buffer so that a message acknowledged between the
	// two reads shows as in flight, never as lost.
	acked, failed := e.acked.Load(), e.failed.Load()
	s := Stats{
		Name:     e.cfg.Name,
		Producer: e.buf.Stats(),
		Processors: ProcessorStats{
			Concurrency: e.cfg.Processors.Concurrency,
			Received:    e.received.Load(),
			Failed:      e.procFail.Load(),
			Panics:      e.panics.Load(),
			Forwarded:   e.forwarded.Load(),
			Latency:     e.latency.Snapshot(),
		},
		Acked:  acked,
		Failed: failed,
	}
	s.Dropped = s.Producer.Dropped
	s.InFlight = s.Producer.Emitted - s.Dropped - acked - failed
	for _, b := range e.batchers {
		s.Batchers = append(s.Batchers, b.stats())
	}
	return s
}

func (e *Engine[T]) getChunk() *chunk[T] { return e.chunks.Get().(*chunk[T]) }

// putChunk recycles c. Its stale messages are not cleared: they are
// overwritten on reuse, and the pool lets go of idle chunks at each GC.
func (e *Engine[T]) putChunk(c *chunk[T]) {
	c.msgs = c.msgs[:0]
	e.chunks.Put(c)
}

// release drops n holds on c and recycles it when none are left.
func (e *Engine[T]) release(c *chunk[T], n int32) {
	if c.refs.Add(-n) == 0 {
		e.putChunk(c)
	}
}
