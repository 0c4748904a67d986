package topology_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

func noop(context.Context, *stages.Batch[int]) error { return nil }

func TestValidateNamesEveryBadField(t *testing.T) {
	spec := topology.Spec[int]{
		Name:       "tweets",
		Producer:   topology.ProducerSpec[int]{BufferSize: -1, Keep: 9, RateLimit: stages.RateLimit{Messages: 5}},
		Processors: topology.ProcessorSpec[int]{Concurrency: -2, MaxDemand: 10, MinDemand: 10},
		Batchers: map[string]topology.BatcherSpec[int]{
			"kafka":    {BatchSize: -5, BatchTimeout: -time.Second, Handle: noop},
			"postgres": {Concurrency: -1, Retry: stages.RetryPolicy{Attempts: -1}},
		},
		DefaultBatcher:  "s3",
		ShutdownTimeout: -time.Second,
	}
	err := spec.Validate()
	if err == nil {
		t.Fatal("Validate accepted a broken spec")
	}
	for _, want := range []string{
		`topology "tweets": invalid spec`,
		"Producer.Producer is required, got nil",
		"Producer.BufferSize must be between 1 and 16777216, got -1",
		"Producer.Keep must be KeepLast, KeepFirst or Block, got Keep(9)",
		"Producer.RateLimit needs Messages > 0 and Interval > 0, got 5 per 0s",
		"Processors.Concurrency must be > 0, got -2",
		"Processors.MinDemand must be >= 0 and < MaxDemand (10), got 10",
		`Batchers["kafka"].BatchSize must be > 0, got -5`,
		`Batchers["kafka"].BatchTimeout must be > 0, got -1s`,
		`Batchers["postgres"].Concurrency must be > 0, got -1`,
		`Batchers["postgres"].Handle is required, got nil`,
		`Batchers["postgres"].Retry must not be negative`,
		`DefaultBatcher names no declared batcher: "s3" (known: [kafka postgres])`,
		"ShutdownTimeout must be > 0, got -1s",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if _, err := topology.New(spec); err == nil {
		t.Fatal("New accepted a broken spec")
	}
}

func TestDefaultsAndDescribe(t *testing.T) {
	p := topologytest.NewProducer[int]()
	top := mustNew(t, topology.Spec[int]{
		Name:     "tweets",
		Producer: topology.ProducerSpec[int]{Producer: p, Keep: stages.KeepFirst},
		Processors: topology.ProcessorSpec[int]{Concurrency: 8, MaxDemand: 20,
			PartitionBy: func(m *stages.Message[int]) uint64 { return uint64(m.Data) }},
		Batchers: map[string]topology.BatcherSpec[int]{
			"postgres": {BatchSize: 5000, Concurrency: 2, Handle: noop, Retry: stages.RetryPolicy{Attempts: 3}},
			"kafka":    {Handle: noop, SizeFunc: func(*stages.Message[int]) int { return 1 }},
		},
	})
	d := top.Describe()
	if d.Name != "tweets" || d.Producer.BufferSize != topology.DefaultBufferSize || d.Producer.Keep != stages.KeepFirst ||
		d.Producer.Concurrency != 1 || d.Producer.Type != "*topologytest.Producer[int]" {
		t.Fatalf("producer %+v", d.Producer)
	}
	if d.Processors != (topology.ProcessorDescription{Concurrency: 8, MaxDemand: 20, MinDemand: 10, Partitioned: true}) {
		t.Fatalf("processors %+v", d.Processors)
	}
	want := []topology.BatcherDescription{
		{Name: "kafka", BatchSize: 100, SizedBy: "size function", BatchTimeout: time.Second, Concurrency: 1, RetryAttempts: 1},
		{Name: "postgres", BatchSize: 5000, SizedBy: "messages", BatchTimeout: time.Second, Concurrency: 2, RetryAttempts: 3},
	}
	if len(d.Batchers) != 2 || d.Batchers[0] != want[0] || d.Batchers[1] != want[1] {
		t.Fatalf("batchers %+v", d.Batchers)
	}
	if d.DefaultBatcher != "" || d.ShutdownTimeout != topology.DefaultShutdownTimeout {
		t.Fatalf("default batcher %q, shutdown %v: two batchers, none named default, means none", d.DefaultBatcher, d.ShutdownTimeout)
	}
	out := d.String()
	for _, line := range []string{
		"topology tweets",
		"producer *topologytest.Producer[int]: concurrency 1, buffer 10000 (keep-first)",
		"processors: concurrency 8, demand 10..20, partitioned",
		`batcher "kafka": batch 100 size function or 1s, concurrency 1`,
		`batcher "postgres": batch 5000 messages or 1s, concurrency 2, 3 attempts`,
	} {
		if !strings.Contains(out, line) {
			t.Errorf("Describe().String() lacks %q:\n%s", line, out)
		}
	}
}

// Stats balance while messages are in flight and after the drain.
func TestStatsConservation(t *testing.T) {
	p := topologytest.NewProducer[int]()
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 7, BatchTimeout: time.Millisecond,
			Handle: func(_ context.Context, b *stages.Batch[int]) error {
				b.Messages[0].Fail(nil)
				return nil
			}}},
	})
	stop := run(t, top)
	pd := p.Push(ints(1000)...)
	for range 20 {
		s := top.Stats()
		if s.Producer.Emitted != s.Acked+s.Failed+s.Dropped+s.InFlight || s.InFlight < 0 {
			t.Fatalf("snapshot does not balance: %+v", s)
		}
	}
	acks := pd.Await(t, wait)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	s := top.Stats()
	if s.Acked != int64(len(acks.Successful)) || s.Failed != int64(len(acks.Failed)) || s.Acked+s.Failed != 1000 {
		t.Fatalf("stats %d acked %d failed; acknowledger saw %d and %d", s.Acked, s.Failed, len(acks.Successful), len(acks.Failed))
	}
	b := s.Batchers[0]
	if b.BatchSize.Count != uint64(b.Batches) || b.Latency.Count != uint64(b.Batches) || b.Pending != 0 || b.Received != 1000 {
		t.Fatalf("batcher stats %+v", b)
	}
	if s.Processors.Received != 1000 || s.Processors.Latency.Count == 0 {
		t.Fatalf("processor stats %+v", s.Processors)
	}
}
