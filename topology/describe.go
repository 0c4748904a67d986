package topology

import (
	"fmt"
	"strings"
	"time"

	"github.com/causeway-go/causeway/stages"
)

// Description is a topology's stages and their settings, defaults applied.
type Description struct {
	Name            string
	Producer        ProducerDescription
	Processors      ProcessorDescription
	Batchers        []BatcherDescription // by name
	DefaultBatcher  string               // "" if none
	ShutdownTimeout time.Duration
}

// ProducerDescription describes the producer stage.
type ProducerDescription struct {
	Type        string // the producer's Go type
	Concurrency int
	BufferSize  int
	Keep        stages.Keep
	RateLimit   stages.RateLimit
}

// ProcessorDescription describes the processor pool.
type ProcessorDescription struct {
	Concurrency int
	MaxDemand   int
	MinDemand   int
	Partitioned bool
}

// BatcherDescription describes one batcher.
type BatcherDescription struct {
	Name         string
	BatchSize    int
	SizedBy      string // "messages" or "size function"
	BatchTimeout time.Duration
	Concurrency  int
	// MinConcurrency and MaxConcurrency bound an adaptive pool (both 0:
	// fixed at Concurrency).
	MinConcurrency int
	MaxConcurrency int
	Partitioned    bool
	RetryAttempts  int
}

// Describe returns the topology's stages and settings.
func (t *Topology[T]) Describe() Description {
	s := t.spec
	d := Description{
		Name: s.Name,
		Producer: ProducerDescription{
			Type:        fmt.Sprintf("%T", s.Producer.Producer),
			Concurrency: s.Producer.Concurrency,
			BufferSize:  s.Producer.BufferSize,
			Keep:        s.Producer.Keep,
			RateLimit:   t.engine.Buffer().RateLimit(),
		},
		Processors: ProcessorDescription{
			Concurrency: s.Processors.Concurrency,
			MaxDemand:   s.Processors.MaxDemand,
			MinDemand:   s.Processors.MinDemand,
			Partitioned: s.Processors.PartitionBy != nil,
		},
		ShutdownTimeout: s.ShutdownTimeout,
	}
	if s.DefaultBatcher != NoBatcher {
		d.DefaultBatcher = s.DefaultBatcher
	}
	for _, name := range sortedNames(s.Batchers) {
		b := s.Batchers[name]
		by := "messages"
		if b.SizeFunc != nil {
			by = "size function"
		}
		d.Batchers = append(d.Batchers, BatcherDescription{
			Name: name, BatchSize: b.BatchSize, SizedBy: by, BatchTimeout: b.BatchTimeout,
			Concurrency: b.Concurrency, MinConcurrency: b.MinConcurrency, MaxConcurrency: b.MaxConcurrency,
			Partitioned: b.PartitionBy != nil, RetryAttempts: max(1, b.Retry.Attempts),
		})
	}
	return d
}

// String renders the description as an indented outline.
func (d Description) String() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "topology %s\n", d.Name)
	p := d.Producer
	fmt.Fprintf(&sb, "  producer %s: concurrency %d, buffer %d (%v)", p.Type, p.Concurrency, p.BufferSize, p.Keep)
	if p.RateLimit.Enabled() {
		fmt.Fprintf(&sb, ", at most %d per %v", p.RateLimit.Messages, p.RateLimit.Interval)
	}
	sb.WriteString("\n")
	q := d.Processors
	fmt.Fprintf(&sb, "  processors: concurrency %d, demand %d..%d", q.Concurrency, q.MinDemand, q.MaxDemand)
	if q.Partitioned {
		sb.WriteString(", partitioned")
	}
	sb.WriteString("\n")
	for _, b := range d.Batchers {
		fmt.Fprintf(&sb, "  batcher %q: batch %d %s or %v, concurrency %d", b.Name, b.BatchSize, b.SizedBy, b.BatchTimeout, b.Concurrency)
		if b.MaxConcurrency > 0 {
			fmt.Fprintf(&sb, " (adaptive %d..%d)", max(1, b.MinConcurrency), max(b.Concurrency, b.MaxConcurrency))
		}
		if b.Partitioned {
			sb.WriteString(", partitioned")
		}
		if b.RetryAttempts > 1 {
			fmt.Fprintf(&sb, ", %d attempts", b.RetryAttempts)
		}
		if b.Name == d.DefaultBatcher {
			sb.WriteString(" (default)")
		}
		sb.WriteString("\n")
	}
	return sb.String()
}
