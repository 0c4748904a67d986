package topology_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// A topology with one batcher: processors uppercase words, the batcher
// writes them out ten at a time (or after 100ms).
func Example() {
	words := strings.Fields("demand flows upstream and data flows downstream so a stage never receives more than it asked for")
	var mu sync.Mutex
	var sizes []int
	top, err := topology.New(topology.Spec[string]{
		Name:     "words",
		Producer: topology.ProducerSpec[string]{Producer: stages.FromSlice(words...)},
		Processors: topology.ProcessorSpec[string]{
			Concurrency: 4,
			Handle: func(_ context.Context, m *stages.Message[string]) error {
				m.Data = strings.ToUpper(m.Data)
				return nil
			},
		},
		Batchers: map[string]topology.BatcherSpec[string]{
			"out": {BatchSize: 10, BatchTimeout: 100 * time.Millisecond, Handle: func(_ context.Context, b *stages.Batch[string]) error {
				mu.Lock()
				defer mu.Unlock()
				sizes = append(sizes, len(b.Messages))
				return nil
			}},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := top.Run(context.Background()); err != nil { // returns once the slice is drained
		fmt.Println(err)
	}
	slices.Sort(sizes)
	s := top.Stats()
	fmt.Println("batch sizes:", sizes, "acked:", s.Acked)
	// Output: batch sizes: [7 10] acked: 17
}

// Two batchers with routing: every number goes to "evens" or "odds", and
// multiples of three fan out to both; each is acknowledged once, after all
// of its batches are done.
func Example_routing() {
	var mu sync.Mutex
	got := map[string][]int{}
	collect := func(_ context.Context, b *stages.Batch[int]) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range b.Messages {
			got[b.Batcher] = append(got[b.Batcher], m.Data)
		}
		return nil
	}
	top, _ := topology.New(topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: stages.FromSlice(1, 2, 3, 4, 5, 6, 7, 8, 9)},
		Processors: topology.ProcessorSpec[int]{Handle: func(_ context.Context, m *stages.Message[int]) error {
			switch {
			case m.Data%3 == 0:
				m.Route("evens", "odds")
			case m.Data%2 == 0:
				m.Route("evens")
			default:
				m.Route("odds")
			}
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{"evens": {Handle: collect}, "odds": {Handle: collect}},
	})
	top.Run(context.Background())
	for _, name := range []string{"evens", "odds"} {
		slices.Sort(got[name])
		fmt.Println(name, got[name])
	}
	fmt.Println("acked:", top.Stats().Acked)
	// Output:
	// evens [2 3 4 6 8 9]
	// odds [1 3 5 6 7 9]
	// acked: 9
}

// Partitioned processing: PartitionBy pins each account to one processor
// and one batch processor, so each account's events are handled in order.
func Example_partitioned() {
	type event struct {
		Account string
		Seq     int
	}
	var events []event
	for seq := range 5 {
		for _, acct := range []string{"alice", "bob", "carol"} {
			events = append(events, event{acct, seq})
		}
	}
	byAccount := func(m *stages.Message[event]) uint64 { return uint64(len(m.Data.Account)) }
	var mu sync.Mutex
	seen := map[string][]int{}
	top, _ := topology.New(topology.Spec[event]{
		Producer:   topology.ProducerSpec[event]{Producer: stages.FromSlice(events...)},
		Processors: topology.ProcessorSpec[event]{Concurrency: 3, PartitionBy: byAccount},
		Batchers: map[string]topology.BatcherSpec[event]{"ledger": {BatchSize: 2, Concurrency: 3, PartitionBy: byAccount,
			Handle: func(_ context.Context, b *stages.Batch[event]) error {
				mu.Lock()
				defer mu.Unlock()
				for _, m := range b.Messages {
					seen[m.Data.Account] = append(seen[m.Data.Account], m.Data.Seq)
				}
				return nil
			}}},
	})
	top.Run(context.Background())
	fmt.Println(seen["alice"], seen["bob"], seen["carol"])
	// Output: [0 1 2 3 4] [0 1 2 3 4] [0 1 2 3 4]
}
