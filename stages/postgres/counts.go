package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/causeway-go/causeway/stages/window"
)

// CountsTable is a table of windowed counts, one row per window and key,
// that AddCounts adds to: the Postgres side of stages/window.
type CountsTable struct {
	// Name is the table, optionally schema-qualified. Required.
	Name string
	// Window, Key and Count are its columns: the window's start
	// (timestamptz), the key (text) and the count (bigint). Defaults
	// "window_start", "key", "count".
	Window, Key, Count string
}

func (t CountsTable) cols() (table, w, k, c string) {
	w, k, c = t.Window, t.Key, t.Count
	if w == "" {
		w = "window_start"
	}
	if k == "" {
		k = "key"
	}
	if c == "" {
		c = "count"
	}
	return parseIdentifier(t.Name).Sanitize(), pgx.Identifier{w}.Sanitize(), pgx.Identifier{k}.Sanitize(), pgx.Identifier{c}.Sanitize()
}

// Schema returns the statement that creates the table (its primary key is
// window and key), for TxConfig.Migrate.
func (t CountsTable) Schema() []string {
	table, w, k, c := t.cols()
	return []string{fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (%s timestamptz NOT NULL, %s text NOT NULL, %s bigint NOT NULL,
		PRIMARY KEY (%s, %s))`, table, w, k, c, w, k)}
}

// AddCounts adds counts to the table through tx in one statement, as
// additive upserts (INSERT … ON CONFLICT … DO UPDATE SET count = count +
// excluded.count): in a TxSink's transaction, with the offsets, each count
// is added exactly once.
func AddCounts(ctx context.Context, tx pgx.Tx, t CountsTable, counts map[window.Cell[string]]int64) error {
	if len(counts) == 0 {
		return nil
	}
	// Rows in one order (window, key) in every transaction: concurrent
	// batches that add to the same cells lock them in the same order and
	// cannot deadlock.
	cells := make([]window.Cell[string], 0, len(counts))
	for cell := range counts {
		cells = append(cells, cell)
	}
	slices.SortFunc(cells, func(a, b window.Cell[string]) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), strings.Compare(a.Key, b.Key))
	})
	starts := make([]time.Time, len(cells))
	keys := make([]string, len(cells))
	ns := make([]int64, len(cells))
	for i, cell := range cells {
		starts[i], keys[i], ns[i] = cell.StartTime(), cell.Key, counts[cell]
	}
	table, w, k, c := t.cols()
	_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s AS t (%s, %s, %s)
		SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::bigint[]) ORDER BY 1, 2
		ON CONFLICT (%s, %s) DO UPDATE SET %s = t.%s + excluded.%s`, table, w, k, c, w, k, c, c, c), starts, keys, ns)
	if err != nil {
		return fmt.Errorf("add %d counts to %s: %w", len(counts), t.Name, err)
	}
	return nil
}
