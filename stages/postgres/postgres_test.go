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

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
	"github.com/causeway-go/causeway/topology/topologytest/sinktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tweet returns the i-th test tweet: id 1000000+i, with a raw JSON line of
// about 400 bytes like the X stream sends.
func tweet(i int) twitter.Tweet {
	id := strconv.Itoa(1_000_000 + i)
	t := twitter.Tweet{
		ID:             id,
		Text:           fmt.Sprintf("tweet number %d about #go and #kafka, with some padding to look real", i),
		AuthorID:       strconv.Itoa(500 + i%7),
		ConversationID: id,
		CreatedAt:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Lang:           []string{"en", "fr", "de"}[i%3],
		Hashtags:       []string{"go", "kafka"},
		Mentions:       []string{"gopher"},
		MatchingRules:  []twitter.MatchingRule{{ID: "1", Tag: "golang"}, {ID: "2", Tag: "streams"}},
	}
	raw, _ := json.Marshal(map[string]any{
		"data": map[string]any{"id": t.ID, "text": t.Text, "author_id": t.AuthorID, "lang": t.Lang,
			"created_at": t.CreatedAt.Format(time.RFC3339)},
		"matching_rules": []map[string]string{{"id": "1", "tag": "golang"}, {"id": "2", "tag": "streams"}},
	})
	t.Raw = raw
	return t
}

// poison returns tweet i with a raw line that jsonb rejects.
func poison(i int) twitter.Tweet {
	t := tweet(i)
	t.Raw = []byte(`{"data":{"id":"` + t.ID + `","text":"nul \u0000 here"}}`)
	return t
}

func newTweets(t *testing.T, pool *pgxpool.Pool) *postgres.Sink[twitter.Tweet] {
	t.Helper()
	s, err := postgres.NewTweets(t.Context(), postgres.TweetsConfig{Pool: pool, Logger: quiet,
		Retry: postgres.Retry{Backoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Attempts: 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func batchOf(tweets ...twitter.Tweet) *stages.Batch[twitter.Tweet] {
	msgs := make([]stages.Message[twitter.Tweet], len(tweets))
	b := &stages.Batch[twitter.Tweet]{BatchInfo: stages.BatchInfo{Batcher: "postgres", Size: len(tweets), Attempt: 1}}
	for i := range msgs {
		msgs[i].Data = tweets[i]
		b.Messages = append(b.Messages, &msgs[i])
	}
	return b
}

func tweetRange(from, n int) []twitter.Tweet {
	out := make([]twitter.Tweet, n)
	for i := range out {
		out[i] = tweet(from + i)
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
	sinktest.Run(t, func(t *testing.T) sinktest.Harness[twitter.Tweet] {
		pool, _ := pgtest.Schema(t)
		s := newTweets(t, pool)
		return sinktest.Harness[twitter.Tweet]{
			Handle: s.HandleBatch,
			Make:   tweet,
			ID:     func(tw twitter.Tweet) string { return tw.ID },
			Stored: func(ctx context.Context, want int) ([]string, error) {
				rows, err := pool.Query(ctx, "SELECT id::text FROM tweets ORDER BY id")
				if err != nil {
					return nil, err
				}
				return pgx.CollectRows(rows, pgx.RowTo[string])
			},
		}
	})
}

func TestTweetsRowValues(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newTweets(t, pool)
	in := tweet(7)
	bare := twitter.Tweet{ID: "42", Text: "no extras"}
	if err := s.HandleBatch(t.Context(), batchOf(in, bare)); err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID, Author, Conversation *int64
		Created                  *time.Time
		Lang, Text               string
		Hashtags, Mentions, Tags []string
		Raw                      map[string]any
		Ingested                 time.Time
	}
	rows, err := pool.Query(t.Context(), `SELECT id, author_id, conversation_id, created_at, lang, text,
		hashtags, mentions, rule_tags, raw, ingested_at FROM tweets ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ID, &r.Author, &r.Conversation, &r.Created, &r.Lang, &r.Text,
			&r.Hashtags, &r.Mentions, &r.Tags, &r.Raw, &r.Ingested); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2", len(got))
	}
	b, r := got[0], got[1]
	if *b.ID != 42 || b.Author != nil || b.Conversation != nil || b.Created != nil || b.Text != "no extras" ||
		b.Lang != "" || len(b.Hashtags) != 0 || len(b.Tags) != 0 || b.Raw != nil {
		t.Errorf("bare tweet row = %+v", b)
	}
	if *r.ID != 1_000_007 || *r.Author != 500 || *r.Conversation != 1_000_007 || !r.Created.Equal(in.CreatedAt) ||
		r.Lang != "fr" || r.Text != in.Text || !slices.Equal(r.Hashtags, []string{"go", "kafka"}) ||
		!slices.Equal(r.Mentions, []string{"gopher"}) || !slices.Equal(r.Tags, []string{"golang", "streams"}) {
		t.Errorf("tweet row = %+v", r)
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

func TestTweetsSchemaMigratesOlderTable(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	// An older version of the table, with a row in it.
	if _, err := pool.Exec(t.Context(), `CREATE TABLE tweets (id bigint PRIMARY KEY, text text NOT NULL DEFAULT '');
		INSERT INTO tweets (id, text) VALUES (1, 'old')`); err != nil {
		t.Fatal(err)
	}
	// Two instances starting together both migrate without error.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			s, err := postgres.NewTweets(t.Context(), postgres.TweetsConfig{Pool: pool, Logger: quiet})
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(t.Context(), `SELECT column_name FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'tweets' ORDER BY ordinal_position`, schema)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"id", "text", "author_id", "conversation_id", "created_at", "lang", "hashtags", "mentions", "rule_tags", "raw", "ingested_at"}
	if !slices.Equal(cols, want) {
		t.Fatalf("columns = %v, want %v", cols, want)
	}
	s := newTweets(t, pool)
	if err := s.HandleBatch(t.Context(), batchOf(tweet(1))); err != nil {
		t.Fatal(err)
	}
	var old string
	if err := pool.QueryRow(t.Context(), "SELECT text FROM tweets WHERE id = 1").Scan(&old); err != nil || old != "old" {
		t.Fatalf("old row text = %q, %v", old, err)
	}
	if got := ids(t, pool, "tweets"); !slices.Equal(got, []int64{1, 1_000_001}) {
		t.Fatalf("ids = %v", got)
	}
}

func TestIdempotentReplay(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newTweets(t, pool)
	if err := s.HandleBatch(t.Context(), batchOf(tweetRange(0, 500)...)); err != nil {
		t.Fatal(err)
	}
	// The same batch again, then one that overlaps it and repeats a tweet.
	replay := batchOf(tweetRange(0, 500)...)
	if err := s.HandleBatch(t.Context(), replay); err != nil {
		t.Fatal(err)
	}
	overlap := batchOf(append(tweetRange(400, 200), tweet(450))...)
	if err := s.HandleBatch(t.Context(), overlap); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*stages.Batch[twitter.Tweet]{replay, overlap} {
		for _, m := range b.Messages {
			if m.Failed() {
				t.Fatalf("tweet %s failed: %v", m.Data.ID, m.Err())
			}
		}
	}
	if got := ids(t, pool, "tweets"); !slices.Equal(got, idRange(0, 600)) {
		t.Fatalf("got %d ids, want 600 distinct (1000000..1000599)", len(got))
	}
	var dups int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) - count(DISTINCT id) FROM tweets").Scan(&dups); err != nil || dups != 0 {
		t.Fatalf("duplicates = %d, %v", dups, err)
	}
}

func TestRowLevelIsolation(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newTweets(t, pool)
	in := tweetRange(0, 200)
	bad := []int{3, 77, 78, 199}
	for _, i := range bad {
		in[i] = poison(i)
	}
	in[120].ID = "not-a-number" // fails in the row function, before Postgres
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
		if i == 120 {
			if !strings.Contains(m.Err().Error(), `tweet id "not-a-number" is not a decimal integer`) {
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
	if got := ids(t, pool, "tweets"); !slices.Equal(got, want) {
		t.Fatalf("stored %d rows, want the %d good ones", len(got), len(want))
	}
}

// TestBadRowsReachHandleFailed runs poisoned tweets through a topology: only
// they fail, HandleFailed sees each with Postgres' error, and the counters
// balance.
func TestBadRowsReachHandleFailed(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newTweets(t, pool)
	var (
		mu        sync.Mutex
		seenFails = map[string]string{}
	)
	p := topologytest.NewProducer[twitter.Tweet]()
	top, err := topology.New(topology.Spec[twitter.Tweet]{
		Producer:   topology.ProducerSpec[twitter.Tweet]{Producer: p, Keep: stages.Block},
		Processors: topology.ProcessorSpec[twitter.Tweet]{Concurrency: 2},
		Batchers: map[string]topology.BatcherSpec[twitter.Tweet]{
			"postgres": {BatchSize: 100, BatchTimeout: 50 * time.Millisecond, Concurrency: 2, Handle: s.HandleBatch},
		},
		HandleFailed: func(_ context.Context, failed []*stages.Message[twitter.Tweet]) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range failed {
				seenFails[m.Data.ID] = m.Err().Error()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := topologytest.Start(t, top)
	in := tweetRange(0, 1000)
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
		t.Fatalf("HandleFailed saw %d tweets, want 10", len(seenFails))
	}
	for i := 5; i < 1000; i += 100 {
		msg, ok := seenFails[strconv.Itoa(1_000_000+i)]
		if !ok || !strings.Contains(msg, "unsupported Unicode escape sequence (SQLSTATE 22P05)") {
			t.Errorf("tweet %d: HandleFailed saw %q", i, msg)
		}
	}
	if got := ids(t, pool, "tweets"); len(got) != 990 {
		t.Fatalf("table holds %d rows, want 990", len(got))
	}
	st := top.Stats()
	if st.Acked != 990 || st.Failed != 10 {
		t.Fatalf("stats acked %d failed %d", st.Acked, st.Failed)
	}
}

func TestGenericMode(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	type event struct {
		ID    int
		Kind  string
		Score float64
	}
	s, err := postgres.New(t.Context(), postgres.Config[event]{
		Pool:    pool,
		Table:   "events",
		Columns: []string{"id", "kind", "score"},
		Migrate: []string{`CREATE TABLE IF NOT EXISTS events (id int PRIMARY KEY, kind text NOT NULL CHECK (kind <> 'forbidden'), score float8)`},
		Row: func(m *stages.Message[event]) ([]any, error) {
			if m.Data.ID < 0 {
				return nil, fmt.Errorf("negative id %d", m.Data.ID)
			}
			return []any{m.Data.ID, m.Data.Kind, m.Data.Score}, nil
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := []event{{1, "a", 0.5}, {-2, "b", 1}, {3, "forbidden", 2}, {4, "c", 3}, {1, "dup", 9}}
	msgs := make([]stages.Message[event], len(in))
	b := &stages.Batch[event]{}
	for i := range in {
		msgs[i].Data = in[i]
		b.Messages = append(b.Messages, &msgs[i])
	}
	if err := s.HandleBatch(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, m := range b.Messages {
		switch err := m.Err(); {
		case err == nil:
			states = append(states, "ok")
		case strings.Contains(err.Error(), "negative id -2"):
			states = append(states, "row-func")
		case strings.Contains(err.Error(), "SQLSTATE 23514"):
			states = append(states, "check")
		default:
			states = append(states, err.Error())
		}
	}
	if want := []string{"ok", "row-func", "check", "ok", "ok"}; !slices.Equal(states, want) {
		t.Fatalf("outcomes %v, want %v", states, want)
	}
	rows, err := pool.Query(t.Context(), "SELECT id, kind, score FROM events ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[event])
	if err != nil {
		t.Fatal(err)
	}
	// The first of two rows with one id wins; the second is skipped.
	if want := []event{{1, "a", 0.5}, {4, "c", 3}}; !slices.Equal(got, want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := postgres.New(t.Context(), postgres.Config[int]{Columns: []string{"a", ""}, Retry: postgres.Retry{Attempts: -1}})
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"Config.Pool or Config.URL is required", "Config.Table is required",
		"Config.Columns[1] is empty", "Config.Row is required", "Config.Retry must not be negative"} {
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
	s, err := postgres.NewTweets(t.Context(), postgres.TweetsConfig{Pool: pool,
		Logger: slog.New(countingHandler{retries: &retries}),
		Retry:  postgres.Retry{Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	admin := pgtest.Pool(t, pgtest.URL(t), "public")
	for round := range 3 {
		if err := s.HandleBatch(t.Context(), batchOf(tweetRange(round*100, 100)...)); err != nil {
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
	if err := s.HandleBatch(t.Context(), batchOf(tweetRange(300, 100)...)); err != nil {
		t.Fatalf("after the sessions ended: %v", err)
	}
	if got := ids(t, pool, "tweets"); !slices.Equal(got, idRange(0, 400)) {
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
	s := newTweets(t, pool)
	if _, err := pool.Exec(t.Context(), "DROP TABLE tweets"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := s.HandleBatch(t.Context(), batchOf(tweetRange(0, 10)...))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("HandleBatch = %v, want undefined_table (42P01)", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v: a permanent error was retried", d)
	}
}
