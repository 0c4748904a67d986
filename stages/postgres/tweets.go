package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
)

// TweetsConfig configures a Sink for twitter.Tweet messages.
type TweetsConfig struct {
	// Pool or URL, as in Config.
	Pool *pgxpool.Pool
	URL  string
	// Table is the tweets table, optionally schema-qualified. Default
	// "tweets".
	Table string
	// Retry bounds the retries of transient errors.
	Retry Retry
	// Logger receives the sink's logs. Default slog.Default().
	Logger *slog.Logger
}

// TweetColumns are the columns a tweets sink writes, in the order of
// TweetRow's values. The table also has ingested_at, set by Postgres.
var TweetColumns = []string{"id", "author_id", "conversation_id", "created_at", "lang", "text", "hashtags", "mentions", "rule_tags", "raw"}

// TweetsSchema returns the statements that create the tweets table, or
// bring an older one up to date by adding the columns it lacks.
func TweetsSchema(table string) []string {
	t := parseIdentifier(table).Sanitize()
	cols := []string{
		"author_id bigint",
		"conversation_id bigint",
		"created_at timestamptz",
		"lang text NOT NULL DEFAULT ''",
		"text text NOT NULL DEFAULT ''",
		"hashtags text[] NOT NULL DEFAULT '{}'",
		"mentions text[] NOT NULL DEFAULT '{}'",
		"rule_tags text[] NOT NULL DEFAULT '{}'",
		"raw jsonb",
		"ingested_at timestamptz NOT NULL DEFAULT now()",
	}
	stmts := []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY)", t)}
	for _, c := range cols {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s", t, c))
	}
	return stmts
}

// NewTweets returns a sink that writes tweets into cfg.Table, creating the
// table or adding the columns an older one lacks. The tweet id is the
// primary key: a tweet already stored is skipped.
func NewTweets(ctx context.Context, cfg TweetsConfig) (*Sink[twitter.Tweet], error) {
	if cfg.Table == "" {
		cfg.Table = "tweets"
	}
	return New(ctx, Config[twitter.Tweet]{
		Pool:    cfg.Pool,
		URL:     cfg.URL,
		Table:   cfg.Table,
		Columns: TweetColumns,
		Row:     TweetRow,
		Migrate: TweetsSchema(cfg.Table),
		Retry:   cfg.Retry,
		Logger:  cfg.Logger,
	})
}

// TweetRow returns a tweet's values for TweetColumns. It fails a tweet whose
// id is not a decimal integer.
func TweetRow(m *stages.Message[twitter.Tweet]) ([]any, error) {
	t := &m.Data
	id, err := strconv.ParseInt(t.ID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("tweet id %q is not a decimal integer", cut(t.ID))
	}
	author, err := optionalID("author_id", t.AuthorID)
	if err != nil {
		return nil, fmt.Errorf("tweet %d: %w", id, err)
	}
	conversation, err := optionalID("conversation_id", t.ConversationID)
	if err != nil {
		return nil, fmt.Errorf("tweet %d: %w", id, err)
	}
	var created any
	if !t.CreatedAt.IsZero() {
		created = t.CreatedAt
	}
	var raw any
	if len(t.Raw) > 0 {
		raw = t.Raw
	}
	return []any{id, author, conversation, created, t.Lang, t.Text,
		nonNil(t.Hashtags), nonNil(t.Mentions), nonNil(t.RuleTags()), raw}, nil
}

func optionalID(field, s string) (any, error) {
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not a decimal integer", field, cut(s))
	}
	return v, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func cut(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
