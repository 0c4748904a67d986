package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
	"github.com/causeway-go/causeway/topology/topologytest/sinktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// post is the test data: a record with the kinds of columns a real table
// has (a bigint key, a timestamp, a text array, raw JSON for jsonb).
type post struct {
	ID     int64
	Author int64
	At     time.Time
	Lang   string
	Text   string
	Tags   []string
	Raw    []byte
}

// postsSchema creates the posts table the tests write.
const postsSchema = `CREATE TABLE IF NOT EXISTS posts (id bigint PRIMARY KEY, author bigint, at timestamptz,
	lang text NOT NULL DEFAULT '', text text NOT NULL DEFAULT '', tags text[] NOT NULL DEFAULT '{}', raw jsonb,
	ingested_at timestamptz NOT NULL DEFAULT now())`

var postColumns = []string{"id", "author", "at", "lang", "text", "tags", "raw"}

// postRow maps a post to postColumns; a post whose id is not positive
// fails before Postgres sees it.
func postRow(m *stages.Message[post]) ([]any, error) {
	p := &m.Data
	if p.ID <= 0 {
		return nil, fmt.Errorf("post id %d is not positive", p.ID)
	}
	var raw any
	if len(p.Raw) > 0 {
		raw = p.Raw
	}
	tags := p.Tags
	if tags == nil {
		tags = []string{}
	}
	return []any{p.ID, p.Author, p.At, p.Lang, p.Text, tags, raw}, nil
}

// postsConfig is a sink config for the posts table on pool.
func postsConfig(pool *pgxpool.Pool) postgres.Config[post] {
	return postgres.Config[post]{
		Pool:        pool,
		Table:       "posts",
		Columns:     postColumns,
		ConflictKey: []string{"id"},
		Row:         postRow,
		Migrate:     []string{postsSchema},
		Logger:      quiet,
		Retry:       postgres.Retry{Backoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Attempts: 20},
	}
}

// newPost returns the i-th test post: id 1000000+i, with a raw JSON
// document of about 400 bytes.
func newPost(i int) post {
	id := int64(1_000_000 + i)
	p := post{
		ID:     id,
		Author: int64(500 + i%7),
		At:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Lang:   []string{"en", "fr", "de"}[i%3],
		Text:   fmt.Sprintf("post number %d about #go and #kafka, with some padding to look real", i),
		Tags:   []string{"go", "kafka"},
	}
	p.Raw, _ = json.Marshal(map[string]any{
		"data": map[string]any{"id": strconv.FormatInt(id, 10), "text": p.Text, "author_id": p.Author, "lang": p.Lang,
			"created_at": p.At.Format(time.RFC3339)},
		"matching_rules": []map[string]string{{"id": "1", "tag": "golang"}, {"id": "2", "tag": "streams"}},
	})
	return p
}

// poison returns post i with raw JSON that jsonb rejects.
func poison(i int) post {
	p := newPost(i)
	p.Raw = []byte(`{"data":{"id":"` + strconv.FormatInt(p.ID, 10) + `","text":"nul \u0000 here"}}`)
	return p
}

func newPosts(t testing.TB, pool *pgxpool.Pool) *postgres.Sink[post] {
	t.Helper()
	s, err := postgres.New(t.Context(), postsConfig(pool))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func batchOf[T any](data ...T) *stages.Batch[T] {
	msgs := make([]stages.Message[T], len(data))
	b := &stages.Batch[T]{BatchInfo: stages.BatchInfo{Batcher: "postgres", Size: len(data), Attempt: 1}}
	for i := range msgs {
		msgs[i].Data = data[i]
		b.Messages = append(b.Messages, &msgs[i])
	}
	return b
}

func postRange(from, n int) []post {
	out := make([]post, n)
	for i := range out {
		out[i] = newPost(from + i)
	}
	return out
}

// ids returns the ids in table, sorted.
func ids(t *testing.T, pool *pgxpool.Pool, table string) []int64 {
	t.Helper()
	rows, err := pool.Query(t.Context(), "SELECT id FROM "+table+" ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func idRange(from, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(1_000_000 + from + i)
	}
	return out
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness[post] {
		pool, _ := pgtest.Schema(t)
		s := newPosts(t, pool)
		return sinktest.Harness[post]{
			Handle: s.HandleBatch,
			Make:   newPost,
			ID:     func(p post) string { return strconv.FormatInt(p.ID, 10) },
			Stored: func(ctx context.Context, want int) ([]string, error) {
				rows, err := pool.Query(ctx, "SELECT id::text FROM posts ORDER BY id")
				if err != nil {
					return nil, err
				}
				return pgx.CollectRows(rows, pgx.RowTo[string])
			},
		}
	})
}

// TestRowValues checks that the values the row function returns land in
// their columns: timestamps, arrays, raw JSON as jsonb, NULL for a nil
// value, and the defaults of the columns the sink does not write.
func TestRowValues(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newPosts(t, pool)
	in := newPost(7)
	bare := post{ID: 42, Text: "no extras"}
	if err := s.HandleBatch(t.Context(), batchOf(in, bare)); err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID, Author int64
		At         time.Time
		Lang, Text string
		Tags       []string
		Raw        map[string]any
		Ingested   time.Time
	}
	rows, err := pool.Query(t.Context(), `SELECT id, author, at, lang, text, tags, raw, ingested_at FROM posts ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2", len(got))
	}
	b, r := got[0], got[1]
	if b.ID != 42 || b.Text != "no extras" || b.Lang != "" || len(b.Tags) != 0 || b.Raw != nil {
		t.Errorf("bare post row = %+v", b)
	}
	if r.ID != 1_000_007 || r.Author != 500 || !r.At.Equal(in.At) || r.Lang != "fr" || r.Text != in.Text ||
		!slices.Equal(r.Tags, []string{"go", "kafka"}) {
		t.Errorf("post row = %+v", r)
	}
	var want map[string]any
	if err := json.Unmarshal(in.Raw, &want); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(r.Raw) != fmt.Sprint(want) {
		t.Errorf("raw = %v, want %v", r.Raw, want)
	}
	if time.Since(r.Ingested) > time.Minute || time.Since(r.Ingested) < -time.Minute {
		t.Errorf("ingested_at = %v, want about now", r.Ingested)
	}
}

// TestMigrateConcurrently: Config.Migrate brings an older table up to date
// (adding the columns it lacks, keeping its rows), and two sinks starting
// together both migrate without error.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE posts (id bigint PRIMARY KEY, text text NOT NULL DEFAULT '');
		INSERT INTO posts (id, text) VALUES (1, 'old')`); err != nil {
		t.Fatal(err)
	}
	cfg := postsConfig(pool)
	cfg.Migrate = []string{
		"CREATE TABLE IF NOT EXISTS posts (id bigint PRIMARY KEY)",
		"ALTER TABLE posts ADD COLUMN IF NOT EXISTS author bigint",
		"ALTER TABLE posts ADD COLUMN IF NOT EXISTS at timestamptz",
		"ALTER TABLE posts ADD COLUMN IF NOT EXISTS lang text NOT NULL DEFAULT ''",
		"ALTER TABLE posts ADD COLUMN IF NOT EXISTS tags text[] NOT NULL DEFAULT '{}'",
		"ALTER TABLE posts ADD COLUMN IF NOT EXISTS raw jsonb",
	}
	var wg sync.WaitGroup
	sinks := make([]*postgres.Sink[post], 2)
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { sinks[i], errs[i] = postgres.New(t.Context(), cfg) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	defer sinks[1].Close()
	defer sinks[0].Close()
	rows, err := pool.Query(t.Context(), `SELECT column_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'posts' ORDER BY ordinal_position`, schema)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id", "text", "author", "at", "lang", "tags", "raw"}; !slices.Equal(cols, want) {
		t.Fatalf("columns = %v, want %v", cols, want)
	}
	if err := sinks[0].HandleBatch(t.Context(), batchOf(newPost(1))); err != nil {
		t.Fatal(err)
	}
	var old string
	if err := pool.QueryRow(t.Context(), "SELECT text FROM posts WHERE id = 1").Scan(&old); err != nil || old != "old" {
		t.Fatalf("old row text = %q, %v", old, err)
	}
	if got := ids(t, pool, "posts"); !slices.Equal(got, []int64{1, 1_000_001}) {
		t.Fatalf("ids = %v", got)
	}
}

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newPosts(t, pool)
	if err := s.HandleBatch(t.Context(), batchOf(postRange(0, 500)...)); err != nil {
		t.Fatal(err)
	}
	// A batch of new rows goes straight into the table.
	if n := s.StagedBatches(); n != 0 {
		t.Fatalf("after a batch of new rows: %d staged batches, want 0", n)
	}
	// The same batch again, then one that overlaps it and repeats a post:
	// each conflicts, and is written through the staging table.
	replay := batchOf(postRange(0, 500)...)
	if err := s.HandleBatch(t.Context(), replay); err != nil {
		t.Fatal(err)
	}
	overlap := batchOf(append(postRange(400, 200), newPost(450))...)
	if err := s.HandleBatch(t.Context(), overlap); err != nil {
		t.Fatal(err)
	}
	if n := s.StagedBatches(); n != 2 {
		t.Fatalf("after a replay and an overlap: %d staged batches, want 2", n)
	}
	for _, b := range []*stages.Batch[post]{replay, overlap} {
		for _, m := range b.Messages {
			if m.Failed() {
				t.Fatalf("post %d failed: %v", m.Data.ID, m.Err())
			}
		}
	}
	if got := ids(t, pool, "posts"); !slices.Equal(got, idRange(0, 600)) {
		t.Fatalf("got %d ids, want 600 distinct (1000000..1000599)", len(got))
	}
	var dups int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) - count(DISTINCT id) FROM posts").Scan(&dups); err != nil || dups != 0 {
		t.Fatalf("duplicates = %d, %v", dups, err)
	}
}

func TestRowLevelIsolation(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newPosts(t, pool)
	in := postRange(0, 200)
	bad := []int{3, 77, 78, 199}
	for _, i := range bad {
		in[i] = poison(i)
	}
	in[120].ID = -120 // fails in the row function, before Postgres
	b := batchOf(in...)
	if err := s.HandleBatch(t.Context(), b); err != nil {
		t.Fatalf("HandleBatch: %v", err)
	}
	var failed []int
	for i, m := range b.Messages {
		if !m.Failed() {
			continue
		}
		failed = append(failed, i)
		var rowErr *postgres.RowError
		if !errors.As(m.Err(), &rowErr) || rowErr.Table != "posts" || !rowErr.Permanent() {
			t.Errorf("message %d failed with %v, want a *postgres.RowError", i, m.Err())
		}
		if i == 120 {
			if m.Err().Error() != "postgres: row for posts: post id -120 is not positive" {
				t.Errorf("message 120: %v", m.Err())
			}
			continue
		}
		var pgErr *pgconn.PgError
		if !errors.As(m.Err(), &pgErr) || pgErr.Code != "22P05" || !strings.Contains(m.Err().Error(), "unsupported Unicode escape sequence") {
			t.Errorf("message %d failed with %v, want Postgres' 22P05 unsupported Unicode escape sequence", i, m.Err())
		}
	}
	if want := []int{3, 77, 78, 120, 199}; !slices.Equal(failed, want) {
		t.Fatalf("failed messages %v, want %v", failed, want)
	}
	var want []int64
	for i := range 200 {
		if !slices.Contains(failed, i) {
			want = append(want, int64(1_000_000+i))
		}
	}
	if got := ids(t, pool, "posts"); !slices.Equal(got, want) {
		t.Fatalf("stored %d rows, want the %d good ones", len(got), len(want))
	}
}

// TestBadRowsReachHandleFailed runs poisoned posts through a topology: only
// they fail, HandleFailed sees each with Postgres' error, and the counters
// balance.
func TestBadRowsReachHandleFailed(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newPosts(t, pool)
	var (
		mu        sync.Mutex
		seenFails = map[int64]error{}
	)
	p := topologytest.NewProducer[post]()
	top, err := topology.New(topology.Spec[post]{
		Producer:   topology.ProducerSpec[post]{Producer: p, Keep: stages.Block},
		Processors: topology.ProcessorSpec[post]{Concurrency: 2},
		Batchers: map[string]topology.BatcherSpec[post]{
			"postgres": {BatchSize: 100, BatchTimeout: 50 * time.Millisecond, Concurrency: 2, Handle: s.HandleBatch},
		},
		HandleFailed: func(_ context.Context, failed []*stages.Message[post]) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range failed {
				seenFails[m.Data.ID] = m.Err()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := topologytest.Start(t, top)
	in := postRange(0, 1000)
	for i := 5; i < 1000; i += 100 {
		in[i] = poison(i)
	}
	acks := p.Push(in...).Await(t, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if len(acks.Successful) != 990 || len(acks.Failed) != 10 {
		t.Fatalf("acked %d ok, %d failed; want 990, 10", len(acks.Successful), len(acks.Failed))
	}
	if len(seenFails) != 10 {
		t.Fatalf("HandleFailed saw %d posts, want 10", len(seenFails))
	}
	for i := 5; i < 1000; i += 100 {
		err, ok := seenFails[int64(1_000_000+i)]
		var rowErr *postgres.RowError
		if !ok || !errors.As(err, &rowErr) || !strings.Contains(err.Error(), "unsupported Unicode escape sequence (SQLSTATE 22P05)") {
			t.Errorf("post %d: HandleFailed saw %v", i, err)
		}
	}
	if got := ids(t, pool, "posts"); len(got) != 990 {
		t.Fatalf("table holds %d rows, want 990", len(got))
	}
	st := top.Stats()
	if st.Acked != 990 || st.Failed != 10 {
		t.Fatalf("stats acked %d failed %d", st.Acked, st.Failed)
	}
}

// TestConflictKey: with a conflict key, a row that repeats the key is
// skipped (the first of two in one batch wins), while a row that violates
// another constraint (a second unique column, a check) fails alone with a
// *RowError; without one, any unique violation is skipped.
func TestConflictKey(t *testing.T) {
	t.Parallel()
	type event struct {
		ID    int
		Name  string
		Score float64
	}
	for _, tc := range []struct {
		name        string
		conflictKey []string
		want        []string
		stored      []event
	}{
		{"id", []string{"id"}, []string{"ok", "row-func", "check", "ok", "ok", "unique"},
			[]event{{1, "a", 0.5}, {4, "c", 3}}},
		{"any", nil, []string{"ok", "row-func", "check", "ok", "ok", "ok"},
			[]event{{1, "a", 0.5}, {4, "c", 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := pgtest.Schema(t)
			s, err := postgres.New(t.Context(), postgres.Config[event]{
				Pool:        pool,
				Table:       "events",
				Columns:     []string{"id", "name", "score"},
				ConflictKey: tc.conflictKey,
				Migrate: []string{`CREATE TABLE IF NOT EXISTS events (id int PRIMARY KEY,
					name text NOT NULL UNIQUE CHECK (name <> 'forbidden'), score float8)`},
				Row: func(m *stages.Message[event]) ([]any, error) {
					if m.Data.ID < 0 {
						return nil, fmt.Errorf("negative id %d", m.Data.ID)
					}
					return []any{m.Data.ID, m.Data.Name, m.Data.Score}, nil
				},
				Logger: quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			b := batchOf(event{1, "a", 0.5}, event{-2, "b", 1}, event{3, "forbidden", 2}, event{4, "c", 3},
				event{1, "dup", 9}, event{5, "a", 7})
			if err := s.HandleBatch(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			var states []string
			for _, m := range b.Messages {
				var rowErr *postgres.RowError
				switch err := m.Err(); {
				case err == nil:
					states = append(states, "ok")
				case !errors.As(err, &rowErr):
					states = append(states, "not a RowError: "+err.Error())
				case strings.Contains(err.Error(), "negative id -2"):
					states = append(states, "row-func")
				case strings.Contains(err.Error(), "SQLSTATE 23514"):
					states = append(states, "check")
				case strings.Contains(err.Error(), "SQLSTATE 23505"):
					states = append(states, "unique")
				default:
					states = append(states, err.Error())
				}
			}
			if !slices.Equal(states, tc.want) {
				t.Fatalf("outcomes %v, want %v", states, tc.want)
			}
			rows, err := pool.Query(t.Context(), "SELECT id, name, score FROM events ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[event])
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.stored) {
				t.Fatalf("rows %v, want %v", got, tc.stored)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := postgres.New(t.Context(), postgres.Config[int]{Columns: []string{"a", ""}, ConflictKey: []string{""},
		Retry: postgres.Retry{Attempts: -1}})
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"Config.Pool or Config.URL is required", "Config.Table is required",
		"Config.Columns[1] is empty", "Config.Row is required", "Config.ConflictKey[0] is empty", "Config.Retry must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestIsTransient(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true},
		{"serialization failure", fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: "40001"}), true},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"unexpected EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"jsonb rejects NUL", &pgconn.PgError{Code: "22P05"}, false},
		{"not null", &pgconn.PgError{Code: "23502"}, false},
		{"undefined table", &pgconn.PgError{Code: "42P01"}, false},
		{"canceled", context.Canceled, false},
		{"nil", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := postgres.IsTransient(c.err); got != c.want {
				t.Fatalf("IsTransient(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

// countingHandler counts the sink's retry warnings.
type countingHandler struct {
	slog.Handler
	retries *atomic.Int64
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		h.retries.Add(1)
	}
	return nil
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }

// TestTransientErrorsRetried ends the sink's sessions between batches (the
// server answers its next statement with 57P01 admin_shutdown or a closed
// connection): the next batch is retried on a new connection and succeeds.
func TestTransientErrorsRetried(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	var retries atomic.Int64
	cfg := postsConfig(pool)
	cfg.Logger = slog.New(countingHandler{retries: &retries})
	cfg.Retry = postgres.Retry{Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	s, err := postgres.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin := pgtest.Pool(t, pgtest.URL(t), "public")
	for round := range 3 {
		if err := s.HandleBatch(t.Context(), batchOf(postRange(round*100, 100)...)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var killed int
		if err := admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = $1`, schema).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		if killed == 0 {
			t.Fatalf("round %d: no sink session to end", round)
		}
	}
	if err := s.HandleBatch(t.Context(), batchOf(postRange(300, 100)...)); err != nil {
		t.Fatalf("after the sessions ended: %v", err)
	}
	if got := ids(t, pool, "posts"); !slices.Equal(got, idRange(0, 400)) {
		t.Fatalf("got %d ids, want 400", len(got))
	}
	if retries.Load() == 0 {
		t.Fatal("no retry was logged: the test did not exercise a transient error")
	}
}

// TestNonTransientErrorFailsBatch: a missing table is not retried; the batch
// fails at once with the error.
func TestNonTransientErrorFailsBatch(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newPosts(t, pool)
	if _, err := pool.Exec(t.Context(), "DROP TABLE posts"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.HandleBatch(t.Context(), batchOf(postRange(0, 10)...))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("HandleBatch = %v, want undefined_table (42P01)", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v: a permanent error was retried", d)
	}
}
