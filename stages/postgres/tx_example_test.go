package postgres_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/window"
	"github.com/causeway-go/causeway/topology"
)

// ExampleNewTx counts page views per page per minute, exactly once: each
// batch's counts, the next offset of every Kafka partition it covers and
// each partition's watermark commit in one transaction, and the Kafka
// consumer (producers/kafka, with Config.OffsetStore: sink) starts each
// partition from the stored offset. Views whose minute is final are
// dead-lettered in the same transaction, not counted.
func ExampleNewTx() {
	type view struct {
		Page string
		At   time.Time
	}
	ctx := context.Background()
	counts := postgres.CountsTable{Name: "page_views", Key: "page", Count: "views"}
	windows := window.Windows{Size: time.Minute}
	sink, err := postgres.NewTx(ctx, postgres.TxConfig[view]{
		URL:     "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Group:   "page-views", // the consumer's GroupID
		Migrate: counts.Schema(),
		Apply: func(ctx context.Context, tx pgx.Tx, b *postgres.TxBatch[view]) error {
			c := window.Counter[string]{Windows: windows, Grace: 2 * time.Minute}
			for _, m := range b.Messages {
				st := b.State(m) // this partition's stored state: its watermark
				var wm window.Watermark
				if err := wm.UnmarshalBinary(st.State); err != nil {
					return err
				}
				if c.Add(&wm, m.Data.At, m.Data.Page) {
					b.Fail(m, &window.LateError{At: m.Data.At, Watermark: wm.Time(), Grace: c.Grace})
				}
				st.State, _ = wm.MarshalBinary()
			}
			return postgres.AddCounts(ctx, tx, counts, c.Counts)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	var source stages.Producer[view] // kafka.New(kafka.Config[view]{..., OffsetStore: sink})
	top, err := topology.New(topology.Spec[view]{
		Producer: topology.ProducerSpec[view]{Producer: source, Keep: stages.Block},
		// A partition's messages reach the sink in offset order, one batch
		// at a time.
		Processors: topology.ProcessorSpec[view]{PartitionBy: postgres.PartitionBy[view]},
		Batchers: map[string]topology.BatcherSpec[view]{
			"counts": {BatchSize: 2000, BatchTimeout: 200 * time.Millisecond, Concurrency: 4,
				PartitionBy: postgres.PartitionBy[view], Outage: stages.OutageBlock, Handle: sink.HandleBatch},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = top.Run(ctx)
}
