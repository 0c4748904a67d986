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

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	pgsink "github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
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
	for _, strategy := range []string{"cooperative-sticky", "range"} {
		t.Run(strategy, func(t *testing.T) {
			t.Parallel()
			testGroupTakeover(t, strategy)
		})
	}
}

func testGroupTakeover(t *testing.T, strategy string) {
	pool, _ := pgtest.Schema(t)
	c := kafkatest.Start(t, kfake.SeedTopics(4, "events"))
	const n = 4000

	newMember := func(name string) *member {
		m := &member{name: name, parts: map[int32]bool{}}
		m.cons = newConsumer(t, c, "loaders", func(cfg *kafka.Config[string]) {
			cfg.Properties = maps.Clone(fastGroup)
			cfg.Properties["partition.assignment.strategy"] = strategy
		})
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

// TestLateAcksAfterRevocation: member a holds a batch of each partition
// when b joins and takes one of them. a's revocation waits RevokeTimeout,
// commits up to the held batch and lets the partition go; b resumes exactly
// at that commit. When a's batches are released, its acknowledgements for
// the partition it lost are ignored (counted as late), and the group's
// commits stay b's.
func TestLateAcksAfterRevocation(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(2, "events"))
	produce(t, c, "events", 0, 200)
	ends := endOffsets(t, c, "events")
	if ends[0] < 10 || ends[1] < 10 {
		t.Fatalf("end offsets %v: want at least 10 records per partition", ends)
	}
	short := func(cfg *kafka.Config[string]) { cfg.RevokeTimeout = 200 * time.Millisecond }

	a := newConsumer(t, c, "g", short)
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	held := make(chan int32, 2)
	colA := newCollector()
	colA.hold = func(m *stages.Message[string]) {
		if md := m.Metadata.(*kafka.Metadata); md.Offset == 5 {
			held <- md.Partition
			<-release
		}
	}
	// One processor and one batch processor per partition, so each
	// partition's batch holding offset 5 blocks only that partition.
	byPartition := func(m *stages.Message[string]) uint64 { return uint64(m.Metadata.(*kafka.Metadata).Partition) }
	topA, err := topology.New(topology.Spec[string]{
		Name:       "a",
		Producer:   topology.ProducerSpec[string]{Producer: a, Keep: stages.Block},
		Processors: topology.ProcessorSpec[string]{Concurrency: 2, PartitionBy: byPartition},
		Batchers: map[string]topology.BatcherSpec[string]{
			"sink": {BatchSize: 10, BatchTimeout: 10 * time.Millisecond, Concurrency: 2, PartitionBy: byPartition, Handle: colA.handle},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopA := topologytest.Start(t, topA)
	t.Cleanup(free) // before the topology stops
	<-held
	<-held
	if got := a.Stats().Partitions["events"]; len(got) != 2 {
		t.Fatalf("a holds %v, want both partitions", got)
	}

	b := newConsumer(t, c, "g", short)
	colB := newCollector()
	topB, stopB := startTopology(t, b, colB.handle, topoOpts{})
	var moved int32
	waitFor(t, 60*time.Second, "b to take a partition", func() bool {
		pb := b.Stats().Partitions["events"]
		if len(pb) == 1 && len(a.Stats().Partitions["events"]) == 1 {
			moved = pb[0]
			return true
		}
		return false
	})
	// a committed the moved partition up to its held batch, no further.
	from := committed(t, c, "g", "events")[moved]
	if from > 5 {
		t.Fatalf("partition %d committed at %d, past a's unacknowledged offset 5", moved, from)
	}
	from = max(from, 0) // nothing committed: b starts at the beginning
	waitFor(t, 60*time.Second, "b to consume the moved partition", func() bool {
		return topB.Stats().Acked >= ends[moved]-from
	})
	free()
	waitFor(t, 60*time.Second, "a to finish its partition", func() bool {
		return committed(t, c, "g", "events")[1-moved] == ends[1-moved]
	})
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	if a.Stats().LateAcks == 0 {
		t.Fatal("a counted no late acknowledgement for the partition it lost")
	}
	// b read the moved partition from the commit, each record once, to its end.
	var offs []int64
	for _, r := range colB.records() {
		if r.Partition != moved {
			t.Fatalf("b handled %v of a partition it never held", r)
		}
		offs = append(offs, r.Offset)
	}
	slices.Sort(offs)
	want := make([]int64, 0, ends[moved]-from)
	for o := from; o < ends[moved]; o++ {
		want = append(want, o)
	}
	if !slices.Equal(offs, want) {
		t.Fatalf("b handled %d offsets %v… of partition %d, want %d..%d once each", len(offs), offs[:min(5, len(offs))], moved, from, ends[moved]-1)
	}
	if got := committed(t, c, "g", "events"); !maps.Equal(got, ends) {
		t.Fatalf("committed %v, want the end offsets %v", got, ends)
	}
	t.Logf("a: %d acked, %d late acks ignored; b: %d acked from offset %d", topA.Stats().Acked, a.Stats().LateAcks, topB.Stats().Acked, from)
}
