package kafka_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/internal/kafkatest"
	"github.com/causeway-go/causeway/internal/pgtest"
	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	pgsink "github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// member is one topology instance: Kafka consumer → processors → Postgres
// batcher.
type member struct {
	name  string
	cons  *kafka.Consumer[string]
	top   *topology.Topology[string]
	stop  func() error
	mu    sync.Mutex
	parts map[int32]bool // partitions it handled records of
}

func (m *member) partitions() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.parts))
}

// TestGroupSharesWorkAndTakesOver runs two topology instances in one
// consumer group on a 4-partition topic, writing to one Postgres table.
// Both get two partitions and work on them; one is stopped mid-stream and
// the other takes its partitions over from the committed offsets. Delivery
// is at least once and the sink idempotent: every record is in the table
// exactly once.
func TestGroupSharesWorkAndTakesOver(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	c := kafkatest.Start(t, kfake.SeedTopics(4, "events"))
	const n = 4000

	newMember := func(name string) *member {
		m := &member{name: name, parts: map[int32]bool{}}
		m.cons = newConsumer(t, c, "loaders", nil)
		sink, err := pgsink.New(t.Context(), pgsink.Config[string]{
			Pool:    pool,
			Table:   "records",
			Columns: []string{"id", "part", "off", "value"},
			Migrate: []string{`CREATE TABLE IF NOT EXISTS records (id bigint PRIMARY KEY, part int NOT NULL, off bigint NOT NULL, value text NOT NULL)`},
			Row: func(msg *stages.Message[string]) ([]any, error) {
				md := msg.Metadata.(*kafka.Metadata)
				id, err := strconv.ParseInt(string(md.Key[1:]), 10, 64)
				if err != nil {
					return nil, err
				}
				return []any{id, md.Partition, md.Offset, msg.Data}, nil
			},
			Logger: quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		m.top, err = topology.New(topology.Spec[string]{
			Name: name,
			Producer: topology.ProducerSpec[string]{Producer: m.cons, Keep: stages.Block,
				RateLimit: stages.RateLimit{Messages: 100, Interval: 100 * time.Millisecond}},
			Processors: topology.ProcessorSpec[string]{Concurrency: 2, Handle: func(_ context.Context, msg *stages.Message[string]) error {
				m.mu.Lock()
				m.parts[msg.Metadata.(*kafka.Metadata).Partition] = true
				m.mu.Unlock()
				return nil
			}},
			Batchers: map[string]topology.BatcherSpec[string]{
				"postgres": {BatchSize: 100, BatchTimeout: 20 * time.Millisecond, Concurrency: 2, Handle: sink.HandleBatch},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		m.stop = topologytest.Start(t, m.top)
		return m
	}
	a, b := newMember("a"), newMember("b")
	var assignedA, assignedB []int32
	waitFor(t, 60*time.Second, "two partitions each", func() bool {
		assignedA, assignedB = a.cons.Stats().Partitions["events"], b.cons.Stats().Partitions["events"]
		return len(assignedA) == 2 && len(assignedB) == 2
	})
	if slices.ContainsFunc(assignedA, func(p int32) bool { return slices.Contains(assignedB, p) }) {
		t.Fatalf("members hold partitions %v and %v: not disjoint", assignedA, assignedB)
	}
	produce(t, c, "events", 0, n)

	waitFor(t, 60*time.Second, "both members to work", func() bool {
		return a.top.Stats().Acked >= 500 && b.top.Stats().Acked >= 500
	})
	// Each worked only on its own partitions.
	subset := func(xs, of []int32) bool {
		return !slices.ContainsFunc(xs, func(p int32) bool { return !slices.Contains(of, p) })
	}
	if pa, pb := a.partitions(), b.partitions(); !subset(pa, assignedA) || !subset(pb, assignedB) {
		t.Fatalf("members handled partitions %v and %v, holding %v and %v", pa, pb, assignedA, assignedB)
	}

	// Stop a mid-stream: it drains, commits what it acknowledged and
	// leaves; b takes over a's partitions.
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	if got := a.top.Stats().Acked; got >= n/2 {
		t.Fatalf("a acknowledged %d records before it stopped: not mid-stream", got)
	}
	b.top.SetRateLimit(stages.RateLimit{})
	waitFor(t, 60*time.Second, "b to hold all four partitions", func() bool {
		return len(b.cons.Stats().Partitions["events"]) == 4
	})
	var rows int
	waitFor(t, 60*time.Second, fmt.Sprintf("%d rows", n), func() bool {
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM records").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		return rows >= n
	})
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	if err := topologytest.CheckConservation(b.top.Stats()); err != nil {
		t.Fatal(err)
	}

	// Exactly once in the table: ids 0..n-1, each where Kafka put it.
	type row struct {
		ID   int64
		Part int32
		Off  int64
		Val  string
	}
	r, err := pool.Query(t.Context(), "SELECT id, part, off, value FROM records ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(r, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("table holds %d rows, want %d", len(got), n)
	}
	perPart := map[int32][]int64{}
	for i, x := range got {
		if x.ID != int64(i) || x.Val != "v"+strconv.Itoa(i) {
			t.Fatalf("row %d = %+v, want id %d value v%d", i, x, i, i)
		}
		perPart[x.Part] = append(perPart[x.Part], x.Off)
	}
	ends := endOffsets(t, c, "events")
	for p, offs := range perPart {
		slices.Sort(offs)
		for i, o := range offs {
			if o != int64(i) {
				t.Fatalf("partition %d: offsets in the table are not 0..%d", p, len(offs)-1)
			}
		}
		if int64(len(offs)) != ends[p] {
			t.Fatalf("partition %d: %d rows, end offset %d", p, len(offs), ends[p])
		}
	}
	if got := committed(t, c, "loaders", "events"); !maps.Equal(got, ends) {
		t.Fatalf("committed %v, want the end offsets %v", got, ends)
	}
	handled := a.top.Stats().Acked + b.top.Stats().Acked
	if handled < n {
		t.Fatalf("the members acknowledged %d records in all, fewer than the %d in the table", handled, n)
	}
	t.Logf("a acknowledged %d, b %d; %d redelivered after the takeover", a.top.Stats().Acked, b.top.Stats().Acked, handled-n)
}
