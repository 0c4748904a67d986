package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/topology"
)

// mapStore is an OffsetStore in memory.
type mapStore struct {
	mu      sync.Mutex
	offsets map[int32]int64
	err     error
	asked   []string
}

func (s *mapStore) StoredOffsets(_ context.Context, group, topic string, parts []int32) (map[int32]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, fmt.Sprintf("%s/%s%v", group, topic, len(parts)))
	if s.err != nil {
		return nil, s.err
	}
	out := map[int32]int64{}
	for _, p := range parts {
		if o, ok := s.offsets[p]; ok {
			out[p] = o
		}
	}
	return out, nil
}

// TestStartsFromTheOffsetStore: a partition with a stored offset starts
// there, one without starts at the beginning although the group committed
// past it in Kafka, and the acknowledged offsets are still committed to
// Kafka.
func TestStartsFromTheOffsetStore(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(2, "events"))
	produce(t, c, "events", 0, 200)
	// The group consumes and commits everything the usual way first.
	first := newConsumer(t, c, "g", nil)
	top1, stop1 := startTopology(t, first, newCollector().handle, topoOpts{})
	waitFor(t, 30*time.Second, "200 records", func() bool { return top1.Stats().Acked >= 200 })
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	ends := endOffsets(t, c, "events")
	store := &mapStore{offsets: map[int32]int64{0: ends[0] - 10}}
	second := newConsumer(t, c, "g", func(cfg *kafka.Config[string]) { cfg.OffsetStore = store })
	col := newCollector()
	want := 10 + int(ends[1])
	top2, stop2 := startTopology(t, second, col.handle, topoOpts{})
	waitFor(t, 30*time.Second, "the stored ranges", func() bool { return top2.Stats().Acked >= int64(want) })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	got := map[int32][2]int64{}
	for _, r := range col.records() {
		g, ok := got[r.Partition]
		if !ok {
			g = [2]int64{r.Offset, r.Offset}
		}
		got[r.Partition] = [2]int64{min(g[0], r.Offset), max(g[1], r.Offset)}
	}
	if len(col.records()) != want || got[0] != [2]int64{ends[0] - 10, ends[0] - 1} || got[1] != [2]int64{0, ends[1] - 1} {
		t.Fatalf("consumed %d records, ranges %v; want %d: partition 0 from %d, partition 1 from 0", len(col.records()), got, want, ends[0]-10)
	}
	if c := committed(t, c, "g", "events"); !maps.Equal(c, ends) {
		t.Fatalf("committed to Kafka %v, want %v", c, ends)
	}
	if len(store.asked) == 0 || !strings.HasPrefix(store.asked[0], "g/events") {
		t.Fatalf("store asked %v", store.asked)
	}
}

// TestOffsetStoreFailureStopsRun: a store that cannot be read stops the
// consumer with its error instead of starting anywhere else.
func TestOffsetStoreFailureStopsRun(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "events"))
	produce(t, c, "events", 0, 10)
	store := &mapStore{err: errors.New("database down")}
	cons := newConsumer(t, c, "g", func(cfg *kafka.Config[string]) { cfg.OffsetStore = store })
	col := newCollector()
	top, err := topology.New(topology.Spec[string]{
		Producer: topology.ProducerSpec[string]{Producer: cons, Keep: stages.Block},
		Batchers: map[string]topology.BatcherSpec[string]{"sink": {BatchSize: 10, BatchTimeout: 10 * time.Millisecond, Handle: col.handle}},
		Logger:   quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Run returns by itself: the consumer stopped with the store's error.
	if err := top.Run(ctx); err == nil || !strings.Contains(err.Error(), "database down") || ctx.Err() != nil {
		t.Fatalf("Run: %v, want the store's error", err)
	}
	if n := len(col.records()); n != 0 {
		t.Fatalf("consumed %d records without the store", n)
	}
}
