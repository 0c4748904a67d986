package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
)

// reading is the test data of the multi-table sink: a sensor reading
// that updates its sensor's row and, when it is an alarm, adds one to an
// alarms table.
type reading struct {
	Sensor string
	Seq    int64
	Value  int
	Alarm  bool
}

func readingsSink(t *testing.T) (*postgres.Sink[reading], func(q string) int64) {
	t.Helper()
	pool, _ := pgtest.Schema(t)
	ctx := context.Background()
	sink, err := postgres.New(ctx, postgres.Config[reading]{
		Pool:        pool,
		Table:       "readings",
		Columns:     []string{"sensor", "seq", "value"},
		ConflictKey: []string{"sensor", "seq"},
		Row: func(m *stages.Message[reading]) ([]any, error) {
			if m.Data.Value < 0 {
				return nil, errors.New("negative value")
			}
			return []any{m.Data.Sensor, m.Data.Seq, m.Data.Value}, nil
		},
		Also: []postgres.Table[reading]{
			{
				Name: "sensors", Columns: []string{"sensor", "last_seq", "last_value"},
				ConflictKey: []string{"sensor"}, Update: []string{"last_seq", "last_value"},
				Row: func(m *stages.Message[reading]) ([]any, error) {
					return []any{m.Data.Sensor, m.Data.Seq, m.Data.Value}, nil
				},
			},
			{
				Name: "alarms", Columns: []string{"sensor", "seq"}, ConflictKey: []string{"sensor", "seq"},
				Row: func(m *stages.Message[reading]) ([]any, error) {
					if !m.Data.Alarm {
						return nil, nil
					}
					return []any{m.Data.Sensor, m.Data.Seq}, nil
				},
			},
		},
		Migrate: []string{
			`CREATE TABLE readings (sensor text, seq bigint, value int CHECK (value < 1000), PRIMARY KEY (sensor, seq))`,
			`CREATE TABLE sensors (sensor text PRIMARY KEY, last_seq bigint, last_value int)`,
			`CREATE TABLE alarms (sensor text, seq bigint, PRIMARY KEY (sensor, seq))`,
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	count := func(q string) int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	return sink, count
}

func readingBatch(rs ...reading) *stages.Batch[reading] {
	b := &stages.Batch[reading]{}
	for _, r := range rs {
		b.Messages = append(b.Messages, &stages.Message[reading]{Data: r})
	}
	return b
}

// A message's rows in every table are written in one transaction; an
// upsert keeps the last row of a key; a row Postgres rejects fails its
// message alone, with none of its rows written; replays add nothing.
func TestAlsoTablesAndUpsert(t *testing.T) {
	sink, count := readingsSink(t)
	ctx := context.Background()
	b := readingBatch(
		reading{"a", 1, 10, false}, reading{"a", 2, 11, true}, reading{"b", 1, 5, false},
		reading{"b", 2, 2000, true}, // rejected by the CHECK: no alarm row either
		reading{"c", 1, -1, true},   // rejected by the row function
		reading{"a", 3, 12, false},
	)
	if err := sink.HandleBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	for i, m := range b.Messages {
		wantFail := i == 3 || i == 4
		if (m.Err() != nil) != wantFail {
			t.Errorf("message %d (%+v): err %v, want failed %v", i, m.Data, m.Err(), wantFail)
		}
		var re *postgres.RowError
		if wantFail && !errors.As(m.Err(), &re) {
			t.Errorf("message %d: err %v is not a *RowError", i, m.Err())
		}
	}
	if err := sink.HandleBatch(ctx, readingBatch(reading{"a", 3, 12, false}, reading{"b", 1, 5, false})); err != nil {
		t.Fatal(err)
	}
	checks := map[string]int64{
		"select count(*) from readings":                                                        4,
		"select count(*) from alarms":                                                          1,
		"select count(*) from alarms where sensor = 'a' and seq = 2":                           1,
		"select count(*) from sensors":                                                         2,
		"select count(*) from sensors where sensor = 'a' and last_seq = 3 and last_value = 12": 1,
		"select count(*) from sensors where sensor = 'b' and last_seq = 1 and last_value = 5":  1,
	}
	for q, want := range checks {
		if got := count(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
}

func TestUpdateNeedsConflictKey(t *testing.T) {
	cfg := postgres.Config[reading]{URL: "postgres://x", Table: "t", Columns: []string{"a"}, Update: []string{"b"},
		Row: func(*stages.Message[reading]) ([]any, error) { return nil, nil }}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Config.Update needs a ConflictKey", `"b" is not one of Columns`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
