package tweets_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topologies/tweets"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tweet returns the i-th test tweet: id 1000000+i, with a raw JSON line
// like the X stream sends.
func tweet(i int) twitter.Tweet {
	id := strconv.Itoa(1_000_000 + i)
	t := twitter.Tweet{
		ID:             id,
		Text:           fmt.Sprintf("tweet number %d about #go and #kafka", i),
		AuthorID:       strconv.Itoa(500 + i%7),
		ConversationID: id,
		CreatedAt:      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Lang:           []string{"en", "fr", "de"}[i%3],
		Hashtags:       []string{"go", "kafka"},
		Mentions:       []string{"gopher"},
		MatchingRules:  []twitter.MatchingRule{{ID: "1", Tag: "golang"}, {ID: "2", Tag: "streams"}},
	}
	t.Raw, _ = json.Marshal(map[string]any{
		"data": map[string]any{"id": t.ID, "text": t.Text, "author_id": t.AuthorID, "lang": t.Lang,
			"created_at": t.CreatedAt.Format(time.RFC3339)},
		"matching_rules": []map[string]string{{"id": "1", "tag": "golang"}, {"id": "2", "tag": "streams"}},
	})
	return t
}

func newSink(t *testing.T, pool *pgxpool.Pool) *postgres.Sink[twitter.Tweet] {
	t.Helper()
	cfg := tweets.PostgresSinkConfig("tweets")
	cfg.Pool, cfg.Logger = pool, quiet
	s, err := postgres.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func batchOf(data ...twitter.Tweet) *stages.Batch[twitter.Tweet] {
	msgs := make([]stages.Message[twitter.Tweet], len(data))
	b := &stages.Batch[twitter.Tweet]{BatchInfo: stages.BatchInfo{Batcher: "postgres", Size: len(data), Attempt: 1}}
	for i := range msgs {
		msgs[i].Data = data[i]
		b.Messages = append(b.Messages, &msgs[i])
	}
	return b
}

// TestTableRowValues writes tweets through a generic Postgres sink told
// about tweets by PostgresSinkConfig, and reads every column back.
func TestTableRowValues(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.Schema(t)
	s := newSink(t, pool)
	in := tweet(7)
	bare := twitter.Tweet{ID: "42", Text: "no extras"}
	badID := twitter.Tweet{ID: "4x2"}
	b := batchOf(in, bare, badID)
	if err := s.HandleBatch(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	var rowErr *postgres.RowError
	if m := b.Messages[2]; !errors.As(m.Err(), &rowErr) || rowErr.Err.Error() != `tweet id "4x2" is not a decimal integer` {
		t.Fatalf("tweet with a bad id: %v, want a *postgres.RowError", m.Err())
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
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2", len(got))
	}
	bb, r := got[0], got[1]
	if *bb.ID != 42 || bb.Author != nil || bb.Conversation != nil || bb.Created != nil || bb.Text != "no extras" ||
		bb.Lang != "" || len(bb.Hashtags) != 0 || len(bb.Tags) != 0 || bb.Raw != nil {
		t.Errorf("bare tweet row = %+v", bb)
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

// TestSchemaMigratesOlderTable: Schema adds the columns an older tweets
// table lacks, keeping its rows, and two sinks starting together both
// migrate.
func TestSchemaMigratesOlderTable(t *testing.T) {
	t.Parallel()
	pool, schema := pgtest.Schema(t)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE tweets (id bigint PRIMARY KEY, text text NOT NULL DEFAULT '');
		INSERT INTO tweets (id, text) VALUES (1, 'old')`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			cfg := tweets.PostgresSinkConfig("tweets")
			cfg.Pool, cfg.Logger = pool, quiet
			s, err := postgres.New(t.Context(), cfg)
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
	s := newSink(t, pool)
	if err := s.HandleBatch(t.Context(), batchOf(tweet(1))); err != nil {
		t.Fatal(err)
	}
	var old string
	if err := pool.QueryRow(t.Context(), "SELECT text FROM tweets WHERE id = 1").Scan(&old); err != nil || old != "old" {
		t.Fatalf("old row text = %q, %v", old, err)
	}
}

// TestRawColumn: a new table keeps raw as json, byte for byte as the stream
// sent it; a table made when raw was jsonb keeps its jsonb column and the
// sink writes to it all the same; and what jsonb would refuse is refused in
// both, so raw::jsonb works on every row.
func TestRawColumn(t *testing.T) {
	t.Parallel()
	refused := tweet(3)
	refused.Raw = []byte(`{"data":{"id":"1000003","text":"nul \u0000 here"}}`)
	for _, tc := range []struct {
		name, create, want string
	}{
		{"new table", "", "json"},
		{"older jsonb table", `CREATE TABLE tweets (id bigint PRIMARY KEY, raw jsonb)`, "jsonb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, schema := pgtest.Schema(t)
			if tc.create != "" {
				if _, err := pool.Exec(t.Context(), tc.create); err != nil {
					t.Fatal(err)
				}
			}
			s := newSink(t, pool)
			in := tweet(1)
			// Spacing and key order jsonb would normalise away.
			in.Raw = []byte(`{"data": {"text":"spaced", "id":"1000001"},  "includes":{}}`)
			b := batchOf(in, refused)
			if err := s.HandleBatch(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			var rowErr *postgres.RowError
			if err := b.Messages[1].Err(); !errors.As(err, &rowErr) {
				t.Fatalf("a raw line holding \\u0000: %v, want a *postgres.RowError", err)
			}
			var typ string
			if err := pool.QueryRow(t.Context(), `SELECT data_type FROM information_schema.columns
				WHERE table_schema = $1 AND table_name = 'tweets' AND column_name = 'raw'`, schema).Scan(&typ); err != nil {
				t.Fatal(err)
			}
			if typ != tc.want {
				t.Fatalf("raw is %s, want %s", typ, tc.want)
			}
			var text, viaJSONB string
			var n int
			if err := pool.QueryRow(t.Context(), `SELECT raw::text, raw::jsonb->'data'->>'text', (SELECT count(*) FROM tweets)
				FROM tweets WHERE id = 1000001`).Scan(&text, &viaJSONB, &n); err != nil {
				t.Fatal(err)
			}
			if n != 1 || viaJSONB != "spaced" {
				t.Fatalf("%d rows, raw::jsonb text %q", n, viaJSONB)
			}
			if tc.want == "json" && text != string(in.Raw) {
				t.Fatalf("json raw = %s, want the line as sent: %s", text, in.Raw)
			}
		})
	}
}
