package topology_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// With PartitionBy, every key runs on the processor key % Concurrency, and
// every batch of a partitioned batcher on the batch processor partition %
// Concurrency: stages.WorkerFrom names the worker running a handler.
func TestPartitionByPlacesEveryKeyOnItsWorker(t *testing.T) {
	for _, tc := range []struct{ procs, batchProcs int }{{1, 1}, {3, 2}, {4, 4}, {8, 3}} {
		t.Run(fmt.Sprintf("processors=%d/batch-processors=%d", tc.procs, tc.batchProcs), func(t *testing.T) {
			t.Parallel()
			const keys = 23
			procKey := func(m *stages.Message[int]) uint64 { return uint64(m.Data % keys) }
			// The batcher partitions by another function of the key.
			batchKey := func(m *stages.Message[int]) uint64 { return uint64(m.Data%keys) * 7 }
			var inProc, inBatch topologytest.Placements[int]
			p := topologytest.NewProducer[int]()
			top := mustNew(t, topology.Spec[int]{
				Producer: topology.ProducerSpec[int]{Producer: p, Concurrency: 2},
				Processors: topology.ProcessorSpec[int]{Concurrency: tc.procs, MaxDemand: 4, PartitionBy: procKey,
					Handle: func(ctx context.Context, m *stages.Message[int]) error {
						inProc.Record(ctx, m.Data%keys)
						return nil
					}},
				Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 5, BatchTimeout: time.Millisecond,
					Concurrency: tc.batchProcs, PartitionBy: batchKey,
					Handle: func(ctx context.Context, b *stages.Batch[int]) error {
						for _, m := range b.Messages {
							w := inBatch.Record(ctx, m.Data%keys)
							if want := int(batchKey(m) % uint64(tc.batchProcs)); b.Partition != want || w.Index != want {
								return fmt.Errorf("message %d: batch partition %d on worker %+v, want %d", m.Data, b.Partition, w, want)
							}
						}
						return nil
					}}},
			})
			run(t, top)
			acks := p.Push(ints(1000)...).Await(t, wait)
			if len(acks.Failed) != 0 {
				t.Fatalf("%d failed: %v", len(acks.Failed), acks.Failed[0].Err())
			}
			if inProc.Len() != 1000 || inBatch.Len() != 1000 {
				t.Fatalf("processors recorded %d, batch processors %d; want 1000 each", inProc.Len(), inBatch.Len())
			}
			if err := inProc.Check(func(k int) stages.Worker { return stages.Worker{Index: k % tc.procs} }); err != nil {
				t.Errorf("processors: %v", err)
			}
			if err := inBatch.Check(func(k int) stages.Worker { return stages.Worker{Batcher: "b", Index: k * 7 % tc.batchProcs} }); err != nil {
				t.Errorf("batch processors: %v", err)
			}
		})
	}
}

// Without PartitionBy, WorkerFrom still names the worker: processor indexes
// are within the pool, batch processors carry their batcher's name.
func TestWorkerFromNamesUnpartitionedWorkers(t *testing.T) {
	var inProc, inBatch topologytest.Placements[int]
	p := topologytest.NewProducer[int]()
	top := mustNew(t, topology.Spec[int]{
		Producer: topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 3, MaxDemand: 2,
			Handle: func(ctx context.Context, m *stages.Message[int]) error {
				inProc.Record(ctx, 0)
				return nil
			}},
		Batchers: map[string]topology.BatcherSpec[int]{"x": {BatchSize: 3, BatchTimeout: time.Millisecond, Concurrency: 2,
			Handle: func(ctx context.Context, b *stages.Batch[int]) error {
				inBatch.Record(ctx, 0)
				return nil
			}}},
	})
	run(t, top)
	p.Push(ints(200)...).Await(t, wait)
	for _, w := range inProc.Workers(0) {
		if w.Batcher != "" || w.Index < 0 || w.Index >= 3 {
			t.Errorf("processor handler ran on %+v", w)
		}
	}
	for _, w := range inBatch.Workers(0) {
		if w.Batcher != "x" || w.Index < 0 || w.Index >= 2 {
			t.Errorf("batch handler ran on %+v", w)
		}
	}
	if _, ok := stages.WorkerFrom(context.Background()); ok {
		t.Error("WorkerFrom reported a worker for a plain context")
	}
}
