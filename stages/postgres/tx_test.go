package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
)

// pos is a message's Kafka position, as a Kafka consumer's metadata gives it.
type pos struct {
	topic     string
	partition int32
	offset    int64
}

func (p pos) KafkaPosition() (string, int32, int64) { return p.topic, p.partition, p.offset }

// row is a test message: a value to write into a text column.
type row struct{ v string }

func txBatch(ps []pos, vals ...string) *stages.Batch[row] {
	b := &stages.Batch[row]{BatchInfo: stages.BatchInfo{Batcher: "counts", Size: len(vals), Attempt: 1}}
	for i, v := range vals {
		b.Messages = append(b.Messages, &stages.Message[row]{Data: row{v}, Metadata: ps[i]})
	}
	return b
}

// newTxSink writes every message's value into table vals in the order
// given, and counts the batches Apply saw in the partition's state.
func newTxSink(t *testing.T) (*postgres.TxSink[row], func() []string) {
	t.Helper()
	pool, _ := pgtest.Schema(t)
	ctx := context.Background()
	sink, err := postgres.NewTx(ctx, postgres.TxConfig[row]{
		Pool: pool, Group: "g", Retry: postgres.Retry{Attempts: 1},
		Migrate: []string{`CREATE TABLE vals (v text NOT NULL CHECK (v <> 'refused'))`},
		Apply: func(ctx context.Context, tx pgx.Tx, b *postgres.TxBatch[row]) error {
			var vs []string
			for _, m := range b.Messages {
				if m.Data.v == "boom" {
					return errors.New("boom: not about the data")
				}
				if m.Data.v == "bad data" {
					b.Fail(m, stages.Permanent(errors.New("not a value")))
					continue
				}
				vs = append(vs, m.Data.v)
				st := b.State(m)
				st.State = append(st.State, '.')
			}
			_, err := tx.Exec(ctx, `INSERT INTO vals SELECT unnest($1::text[])`, vs)
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return sink, func() []string {
		rows, err := pool.Query(ctx, `SELECT v FROM vals ORDER BY v`)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return vs
	}
}

func TestTxSinkRefusedRowIsDeadLetteredAndTheRestCommits(t *testing.T) {
	sink, vals := newTxSink(t)
	ctx := context.Background()
	ps := []pos{{"t", 0, 10}, {"t", 0, 11}, {"t", 1, 5}, {"t", 0, 12}, {"t", 1, 6}, {"t", 1, 7}}
	b := txBatch(ps, "a", "refused", "b", "c", "bad data", "d")
	if err := sink.HandleBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(vals(), ","); got != "a,b,c,d" {
		t.Fatalf("table holds %s, want a,b,c,d", got)
	}
	for i, m := range b.Messages {
		wantFailed := i == 1 || i == 4
		if m.Failed() != wantFailed || (wantFailed && !stages.IsDeadLettered(m.Err())) {
			t.Errorf("message %d (%s): failed %v, err %v", i, m.Data.v, m.Failed(), m.Err())
		}
	}
	var rowErr *postgres.RowError
	if !errors.As(b.Messages[1].Err(), &rowErr) {
		t.Errorf("the refused row's error is %v, want a *postgres.RowError", b.Messages[1].Err())
	}
	got, err := sink.StoredOffsets(ctx, "g", "t", []int32{0, 1, 2})
	if err != nil || fmt.Sprint(got) != "map[0:13 1:8]" {
		t.Fatalf("stored offsets %v (%v), want map[0:13 1:8]", got, err)
	}
	var dead []string
	rows, _ := sink.Pool().Query(ctx, `SELECT partition || '@' || "offset" FROM causeway_dead_letters ORDER BY 1`)
	dead, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(dead, ",") != "0@11,1@6" {
		t.Fatalf("dead letters %v (%v), want 0@11,1@6", dead, err)
	}
	if s := sink.Stats(); s.Batches != 1 || s.Applied != 6 || s.DeadLettered != 2 || s.Skipped != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A batch of offsets a partition's stored offset has passed (a replay, or
// a revoked partition's late batch) changes nothing; the part of a batch
// beyond it is applied once.
func TestTxSinkFencesWhatWasApplied(t *testing.T) {
	sink, vals := newTxSink(t)
	ctx := context.Background()
	first := txBatch([]pos{{"t", 0, 0}, {"t", 0, 1}, {"t", 0, 2}}, "a", "b", "c")
	if err := sink.HandleBatch(ctx, first); err != nil {
		t.Fatal(err)
	}
	late := txBatch([]pos{{"t", 0, 1}, {"t", 0, 2}}, "b", "c")
	overlap := txBatch([]pos{{"t", 0, 2}, {"t", 0, 3}}, "c", "d")
	for _, b := range []*stages.Batch[row]{late, overlap, late} {
		if err := sink.HandleBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Messages {
			if m.Failed() {
				t.Fatalf("message %s failed: %v", m.Data.v, m.Err())
			}
		}
	}
	if got := strings.Join(vals(), ","); got != "a,b,c,d" {
		t.Fatalf("table holds %s, want a,b,c,d once each", got)
	}
	var state []byte
	if err := sink.Pool().QueryRow(ctx, `SELECT state FROM causeway_offsets WHERE partition = 0`).Scan(&state); err != nil || string(state) != "...." {
		t.Fatalf("state %q (%v): want one mark per message applied, stored with the offset", state, err)
	}
	if s := sink.Stats(); s.Skipped != 5 || s.Applied != 4 {
		t.Errorf("stats %+v: want 5 skipped, 4 applied", s)
	}
}

func TestTxSinkRejectsMessagesWithoutAPosition(t *testing.T) {
	sink, _ := newTxSink(t)
	b := &stages.Batch[row]{Messages: []*stages.Message[row]{{Data: row{"x"}}}}
	if err := sink.HandleBatch(context.Background(), b); err == nil || !strings.Contains(err.Error(), "KafkaPosition") {
		t.Fatalf("err %v, want one naming KafkaPosition", err)
	}
}

// A batch that fails leaves a hole: later batches of its partition are
// held back (failed, not applied, not dead-lettered) until a re-delivery
// reaches back to the hole, so the stored offset never passes messages that
// were not applied.
func TestTxSinkHoldsBackBatchesAfterAFailedOne(t *testing.T) {
	sink, vals := newTxSink(t)
	ctx := context.Background()
	if err := sink.HandleBatch(ctx, txBatch([]pos{{"t", 0, 0}, {"t", 0, 1}}, "a", "boom")); err == nil {
		t.Fatal("the failing batch succeeded")
	}
	later := txBatch([]pos{{"t", 0, 2}, {"t", 1, 0}}, "c", "x")
	if err := sink.HandleBatch(ctx, later); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(later.Messages[0].Err(), postgres.ErrHeldBack) || later.Messages[1].Failed() {
		t.Fatalf("partition 0's later message: %v; partition 1's: %v", later.Messages[0].Err(), later.Messages[1].Err())
	}
	redelivered := txBatch([]pos{{"t", 0, 0}, {"t", 0, 1}, {"t", 0, 2}}, "a", "b", "c")
	if err := sink.HandleBatch(ctx, redelivered); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(vals(), ","); got != "a,b,c,x" {
		t.Fatalf("table holds %s, want a,b,c,x", got)
	}
	got, err := sink.StoredOffsets(ctx, "g", "t", []int32{0, 1})
	if err != nil || fmt.Sprint(got) != "map[0:3 1:1]" {
		t.Fatalf("stored offsets %v (%v), want map[0:3 1:1]", got, err)
	}
	if s := sink.Stats(); s.HeldBack != 1 {
		t.Errorf("held back %d, want 1", s.HeldBack)
	}
}
