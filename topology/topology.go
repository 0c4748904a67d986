package topology

import (
	"context"

	"github.com/causeway-go/causeway/internal/core"
	"github.com/causeway-go/causeway/stages"
)

// Topology is a declared, validated topology, ready to Run.
type Topology[T any] struct {
	spec   Spec[T]
	engine *core.Engine[T]
}

// New validates spec and builds its topology. The error names every bad
// field.
func New[T any](spec Spec[T]) (*Topology[T], error) {
	s := spec.withDefaults()
	if err := s.validate(); err != nil {
		return nil, err
	}
	handle := s.Processors.Handle
	if handle == nil {
		handle = func(context.Context, *stages.Message[T]) error { return nil }
	}
	cfg := core.EngineConfig[T]{
		Name:                s.Name,
		Producer:            s.Producer.Producer,
		ProducerConcurrency: s.Producer.Concurrency,
		Buffer: core.BufferConfig[T]{
			Size:      s.Producer.BufferSize,
			Keep:      s.Producer.Keep,
			OnDrop:    s.Producer.OnDrop,
			RateLimit: s.Producer.RateLimit,
			Logger:    s.Logger,
		},
		Processors: core.ProcessorConfig[T]{
			Concurrency: s.Processors.Concurrency,
			MaxDemand:   s.Processors.MaxDemand,
			MinDemand:   s.Processors.MinDemand,
			PartitionBy: s.Processors.PartitionBy,
			Handle:      handle,
		},
		HandleFailed:    s.HandleFailed,
		ShutdownTimeout: s.ShutdownTimeout,
		Hooks:           s.Hooks,
		Logger:          s.Logger,
	}
	if s.DefaultBatcher != NoBatcher {
		cfg.DefaultBatcher = s.DefaultBatcher
	}
	for _, name := range sortedNames(s.Batchers) {
		b := s.Batchers[name]
		var sp *core.SpillConfig[T]
		if b.Outage == stages.OutageSpill {
			sp = &b.Spill
		}
		cfg.Batchers = append(cfg.Batchers, core.BatcherConfig[T]{
			Spill:          sp,
			Name:           name,
			BatchSize:      b.BatchSize,
			SizeFunc:       b.SizeFunc,
			BatchTimeout:   b.BatchTimeout,
			Concurrency:    b.Concurrency,
			MinConcurrency: b.MinConcurrency,
			MaxConcurrency: b.MaxConcurrency,
			PartitionBy:    b.PartitionBy,
			Handle:         b.Handle,
			Retry:          b.Retry,
			Outage:         b.Outage,
		})
	}
	e, err := core.NewEngine(cfg)
	if err != nil {
		return nil, err
	}
	return &Topology[T]{spec: s, engine: e}, nil
}

// Run runs the topology until ctx ends or its producer is exhausted, then
// drains it: the producer stops, everything inside is processed, batched,
// handled and acknowledged, and Run returns. A clean drain returns nil; a
// producer failure returns its error (after the drain); a drain longer than
// Spec.ShutdownTimeout cancels the handlers' context and returns an error
// wrapping stages.ErrShutdownTimeout that counts what was left. Run may be
// called once.
func (t *Topology[T]) Run(ctx context.Context) error { return t.engine.Run(ctx) }

// Stats returns a snapshot of every stage's counters. It is safe to call
// while the topology runs.
func (t *Topology[T]) Stats() stages.Stats { return t.engine.Stats() }

// SetRateLimit changes the producer stage's rate limit while running; the
// zero RateLimit removes it. It applies at once: processors waiting for the
// old interval to end are woken. A limit that New would reject changes
// nothing and is returned as an error.
func (t *Topology[T]) SetRateLimit(r stages.RateLimit) error { return t.engine.SetRateLimit(r) }

// SetConcurrency pins how many batch processors of the named batcher handle
// batches at once, at n (clamped to 1..its MaxConcurrency, else its
// Concurrency), at once and while the topology runs; an adaptive batcher
// stops adapting. n 0 lets an adaptive batcher adapt again. It returns the
// limit now in force, or an error naming an unknown batcher. Per-partition
// order (PartitionBy) holds across the change.
func (t *Topology[T]) SetConcurrency(batcher string, n int) (int, error) {
	return t.engine.SetConcurrency(batcher, n)
}

// Name returns the topology's name.
func (t *Topology[T]) Name() string { return t.spec.Name }
