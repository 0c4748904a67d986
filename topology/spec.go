package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"time"

	"github.com/causeway-go/causeway/stages"
)

// Spec declares a topology: one producer stage, a processor pool and any
// number of named batchers. Zero values take the documented defaults;
// Validate reports every field that is out of range.
type Spec[T any] struct {
	// Name names the topology in logs, metrics and errors. Default "topology".
	Name string
	// Producer is the producer stage.
	Producer ProducerSpec[T]
	// Processors is the processor pool.
	Processors ProcessorSpec[T]
	// Batchers are the named batchers processors route messages to. With
	// none, messages are acknowledged right after processing.
	Batchers map[string]BatcherSpec[T]
	// DefaultBatcher receives messages that no handler routed. Default: the
	// batcher named "default" if declared, else the only batcher if there is
	// exactly one, else none (unrouted messages are acknowledged after
	// processing). NoBatcher makes it none explicitly.
	DefaultBatcher string
	// HandleFailed, if set, sees failed messages before they are
	// acknowledged (once per batch or processor chunk): to log them, send
	// them to a dead-letter queue, or change their Acker. A panic in it is
	// logged and the messages are still acknowledged as failed.
	HandleFailed func(ctx context.Context, failed []*stages.Message[T])
	// ShutdownTimeout bounds the drain after Run's context ends. Default 30s.
	ShutdownTimeout time.Duration
	// Hooks are optional callbacks on stage events.
	Hooks stages.Hooks
	// Logger receives the topology's logs. Default slog.Default().
	Logger *slog.Logger
}

// NoBatcher, as Spec.DefaultBatcher, sends unrouted messages to no batcher.
const NoBatcher = "-"

// ProducerSpec declares the producer stage.
type ProducerSpec[T any] struct {
	// Producer is the source of messages. Required.
	Producer stages.Producer[T]
	// Concurrency is how many goroutines run Producer.Run, each with its own
	// Emitter. Default 1; above 1 the producer must be safe for concurrent use.
	Concurrency int
	// BufferSize is how many messages the stage holds that processors have
	// not asked for yet, at most MaxBufferSize. Default 10,000. Its storage
	// grows as bursts need it.
	BufferSize int
	// Keep is what a full buffer does: KeepLast (default) drops the oldest,
	// KeepFirst the newest, Block makes the producer wait.
	Keep stages.Keep
	// RateLimit, if set, lets at most RateLimit.Messages messages out per
	// RateLimit.Interval. Topology.SetRateLimit changes it while running.
	RateLimit stages.RateLimit
	// OnDrop sees every message a full buffer drops. It must not block.
	OnDrop func(dropped []stages.Message[T])
}

// ProcessorSpec declares the processor pool.
type ProcessorSpec[T any] struct {
	// Concurrency is the number of processor goroutines. Default
	// 2 × GOMAXPROCS.
	Concurrency int
	// MaxDemand is the most messages a processor holds or has asked for.
	// Default 64.
	MaxDemand int
	// MinDemand: a processor asks for more once what it holds or has asked
	// for falls to MinDemand. Default MaxDemand/2; must be < MaxDemand.
	MinDemand int
	// PartitionBy, if set, sends every message to processor
	// PartitionBy(m) % Concurrency, so messages with the same partition are
	// handled in arrival order. Each processor then gets BufferSize/Concurrency
	// of the buffer.
	PartitionBy func(m *stages.Message[T]) uint64
	// Handle processes one message: it may change Data, route the message
	// (m.Route), set its batch key, or fail it by returning an error. A panic
	// fails the message and the processor goes on. Nil passes messages
	// through unchanged.
	Handle func(ctx context.Context, m *stages.Message[T]) error
}

// BatcherSpec declares one named batcher and its batch processors.
type BatcherSpec[T any] struct {
	// BatchSize closes a batch at that many messages (or, with SizeFunc, at
	// that total size). Default 100.
	BatchSize int
	// SizeFunc, if set, measures messages (in bytes, say) for BatchSize. A
	// message that would take a batch over BatchSize starts the next one.
	SizeFunc func(m *stages.Message[T]) int
	// BatchTimeout closes a batch that long after its first message.
	// Default 1s.
	BatchTimeout time.Duration
	// Concurrency is the number of batch processors handling batches at
	// once. Default 1. With MaxConcurrency it is where the adaptive limit
	// starts.
	Concurrency int
	// MinConcurrency and MaxConcurrency, when MaxConcurrency > 0, make the
	// pool adaptive: the limit on batch processors handling batches at once
	// grows by one while the pool is saturated and the handler's latency
	// per message holds, drops by a quarter when that latency climbs to
	// 1.5× the best seen lately (the sink is past its knee), and halves
	// when a handler call fails; always within MinConcurrency (default 1)
	// and MaxConcurrency. Topology.SetConcurrency pins it at run time;
	// Stats().Batchers[i].Concurrency is the limit now. With both 0 the
	// pool is fixed at Concurrency.
	MinConcurrency int
	MaxConcurrency int
	// PartitionBy, if set, runs the batches of each partition one at a
	// time, in order: partition PartitionBy(m) % the pool size
	// (MaxConcurrency, else Concurrency). Order holds while the pool's
	// limit changes.
	PartitionBy func(m *stages.Message[T]) uint64
	// Handle handles a batch. Required.
	Handle stages.BatchHandler[T]
	// Retry re-runs failed batches (or their failed messages) before the
	// messages count as failed. The zero value never retries.
	Retry stages.RetryPolicy
	// Outage says what the batcher does while its sink fails batches with
	// transient errors: OutageFail (default: Retry, then fail), OutageBlock
	// (retry without a budget, holding back-pressure; for pull sources) or
	// OutageSpill (to a local write-ahead log, replayed in order; for push
	// sources).
	Outage stages.Outage
	// Spill configures OutageSpill's write-ahead log: its directory (one per
	// batcher), size bound and how Data is encoded and decoded. Required
	// with OutageSpill.
	Spill stages.SpillConfig[T]
}

// Defaults.
const (
	DefaultBufferSize      = 10_000
	DefaultMaxDemand       = 64
	DefaultBatchSize       = 100
	DefaultBatchTimeout    = time.Second
	DefaultShutdownTimeout = 30 * time.Second
	// MaxBufferSize bounds BufferSize. The buffer's storage grows with use,
	// so a large bound costs memory only when a burst fills it.
	MaxBufferSize = 1 << 24
)

// withDefaults returns a copy of s with zero values replaced by defaults.
func (s Spec[T]) withDefaults() Spec[T] {
	if s.Name == "" {
		s.Name = "topology"
	}
	p := &s.Producer
	if p.Concurrency == 0 {
		p.Concurrency = 1
	}
	if p.BufferSize == 0 {
		p.BufferSize = DefaultBufferSize
	}
	q := &s.Processors
	if q.Concurrency == 0 {
		q.Concurrency = 2 * runtime.GOMAXPROCS(0)
	}
	if q.MaxDemand == 0 {
		q.MaxDemand = DefaultMaxDemand
	}
	if q.MinDemand == 0 {
		q.MinDemand = q.MaxDemand / 2
	}
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = DefaultShutdownTimeout
	}
	if len(s.Batchers) > 0 {
		bs := make(map[string]BatcherSpec[T], len(s.Batchers))
		for name, b := range s.Batchers {
			if b.BatchSize == 0 {
				b.BatchSize = DefaultBatchSize
			}
			if b.BatchTimeout == 0 {
				b.BatchTimeout = DefaultBatchTimeout
			}
			if b.Concurrency == 0 {
				b.Concurrency = 1
			}
			bs[name] = b
		}
		s.Batchers = bs
	}
	if s.DefaultBatcher == "" {
		if _, ok := s.Batchers["default"]; ok {
			s.DefaultBatcher = "default"
		} else if len(s.Batchers) == 1 {
			for name := range s.Batchers {
				s.DefaultBatcher = name
			}
		}
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	return s
}

// Validate reports every field of s that is out of range, each error naming
// the field, its value and what it must be. Zero values are not errors: they
// take defaults.
func (s Spec[T]) Validate() error {
	return s.withDefaults().validate()
}

func (s Spec[T]) validate() error {
	var errs []error
	bad := func(field string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %s", field, fmt.Sprintf(format, args...)))
	}
	p := s.Producer
	if p.Producer == nil {
		bad("Producer.Producer", "is required, got nil")
	}
	if p.Concurrency < 1 {
		bad("Producer.Concurrency", "must be > 0, got %d", p.Concurrency)
	}
	if p.BufferSize < 1 || p.BufferSize > MaxBufferSize {
		bad("Producer.BufferSize", "must be between 1 and %d, got %d", MaxBufferSize, p.BufferSize)
	}
	if p.Keep > stages.Block {
		bad("Producer.Keep", "must be KeepLast, KeepFirst or Block, got %v", p.Keep)
	}
	if r := p.RateLimit; r != (stages.RateLimit{}) && !r.Enabled() {
		bad("Producer.RateLimit", "needs Messages > 0 and Interval > 0, got %d per %v", r.Messages, r.Interval)
	}
	q := s.Processors
	if q.Concurrency < 1 {
		bad("Processors.Concurrency", "must be > 0, got %d", q.Concurrency)
	}
	if q.MaxDemand < 1 {
		bad("Processors.MaxDemand", "must be > 0, got %d", q.MaxDemand)
	}
	if q.MinDemand < 0 || q.MinDemand >= q.MaxDemand {
		bad("Processors.MinDemand", "must be >= 0 and < MaxDemand (%d), got %d", q.MaxDemand, q.MinDemand)
	}
	if len(s.Batchers) > stages.MaxBatchers {
		bad("Batchers", "may hold at most %d batchers, got %d", stages.MaxBatchers, len(s.Batchers))
	}
	for _, name := range sortedNames(s.Batchers) {
		b := s.Batchers[name]
		f := func(field string) string { return fmt.Sprintf("Batchers[%q].%s", name, field) }
		if name == "" || name == NoBatcher {
			bad(fmt.Sprintf("Batchers[%q]", name), "is not a usable batcher name")
		}
		if b.BatchSize < 1 {
			bad(f("BatchSize"), "must be > 0, got %d", b.BatchSize)
		}
		if b.BatchTimeout <= 0 {
			bad(f("BatchTimeout"), "must be > 0, got %v", b.BatchTimeout)
		}
		if b.Concurrency < 1 {
			bad(f("Concurrency"), "must be > 0, got %d", b.Concurrency)
		}
		if b.MinConcurrency < 0 || b.MaxConcurrency < 0 {
			bad(f("MinConcurrency"), "and MaxConcurrency must not be negative, got %d and %d", b.MinConcurrency, b.MaxConcurrency)
		} else if b.MaxConcurrency > 0 && max(1, b.MinConcurrency) > b.MaxConcurrency {
			bad(f("MinConcurrency"), "must be at most MaxConcurrency %d, got %d", b.MaxConcurrency, b.MinConcurrency)
		} else if b.MaxConcurrency == 0 && b.MinConcurrency > 0 {
			bad(f("MinConcurrency"), "needs MaxConcurrency (the adaptive pool's bound), got %d with MaxConcurrency 0", b.MinConcurrency)
		}
		if b.Handle == nil {
			bad(f("Handle"), "is required, got nil")
		}
		if b.Outage > stages.OutageSpill {
			bad(f("Outage"), "must be OutageFail, OutageBlock or OutageSpill, got %v", b.Outage)
		}
		if sp := b.Spill; b.Outage == stages.OutageSpill && (sp.Dir == "" || sp.Encode == nil || sp.Decode == nil || sp.MaxBytes < 0) {
			bad(f("Spill"), "needs Dir, Encode and Decode (and MaxBytes >= 0) with OutageSpill, got dir %q, encode %v, decode %v, max %d",
				sp.Dir, sp.Encode != nil, sp.Decode != nil, sp.MaxBytes)
		}
		if b.Retry.Attempts < 0 || b.Retry.Backoff < 0 || b.Retry.MaxBackoff < 0 {
			bad(f("Retry"), "must not be negative, got %d attempts, backoff %v, max %v",
				b.Retry.Attempts, b.Retry.Backoff, b.Retry.MaxBackoff)
		}
	}
	if d := s.DefaultBatcher; d != "" && d != NoBatcher {
		if _, ok := s.Batchers[d]; !ok {
			bad("DefaultBatcher", "names no declared batcher: %q (known: %v)", d, sortedNames(s.Batchers))
		}
	}
	if s.ShutdownTimeout < 0 {
		bad("ShutdownTimeout", "must be > 0, got %v", s.ShutdownTimeout)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("topology %q: invalid spec: %w", s.Name, errors.Join(errs...))
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
