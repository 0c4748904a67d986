package tweets

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka"
	"github.com/causeway-go/causeway/stages/postgres"
)

// Enrich is the reference topologies' processing of a tweet: it normalises
// its hashtags (from the stream's entities, or parsed from the text when
// the stream sent none) and mentions: lowercased, without repeats, in
// first-seen order. It does not route the message. The tweet id is checked
// once, where it is needed: Row parses it for the tweets table.
func Enrich(_ context.Context, m *stages.Message[twitter.Tweet]) error {
	t := &m.Data
	if len(t.Hashtags) == 0 {
		t.Hashtags = parseTags(t.Text, '#')
	}
	t.Hashtags = normalise(t.Hashtags)
	if len(t.Mentions) == 0 {
		t.Mentions = parseTags(t.Text, '@')
	}
	t.Mentions = normalise(t.Mentions)
	return nil
}

// parseTags returns the words that follow sigil in text: letters, digits,
// underscores and combining marks, as X tokenises hashtags and mentions.
func parseTags(text string, sigil byte) []string {
	var out []string
	for i := 0; i < len(text); {
		j := strings.IndexByte(text[i:], sigil)
		if j < 0 {
			break
		}
		start := i + j + 1
		if prev := i + j - 1; prev >= 0 && text[prev] != ' ' && text[prev] != '\n' && text[prev] != '(' {
			i = start // "a#b" or an e-mail address is not a tag
			continue
		}
		end := start
		for end < len(text) {
			r, size := utf8.DecodeRuneInString(text[end:])
			if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || unicode.Is(unicode.Mn, r)) {
				break
			}
			end += size
		}
		if end > start {
			out = append(out, text[start:end])
		}
		i = end
	}
	return out
}

// normalise lowercases tags and drops repeats, keeping first-seen order.
func normalise(tags []string) []string {
	if len(tags) == 0 {
		return tags
	}
	out := tags[:0:0]
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		dup := false
		for _, o := range out {
			if o == t {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, t)
		}
	}
	return out
}

// Key is a tweet's Kafka record key: its id.
func Key(m *stages.Message[twitter.Tweet]) []byte { return []byte(m.Data.ID) }

// Value is a tweet's Kafka record value: the raw JSON line as the stream
// sent it, so the record is lossless. A tweet without it fails (the sink
// fails it with a *kafka.RecordError).
func Value(m *stages.Message[twitter.Tweet]) ([]byte, error) {
	if len(m.Data.Raw) == 0 {
		return nil, fmt.Errorf("tweet %q has no raw JSON to produce", m.Data.ID)
	}
	return m.Data.Raw, nil
}

// KafkaSinkConfig returns the configuration of a Kafka sink that produces
// tweets to topic: key Key, value Value. Set the other fields (compression,
// timeouts, properties) as needed before kafka.New.
func KafkaSinkConfig(brokers, topic string) kafka.Config[twitter.Tweet] {
	return kafka.Config[twitter.Tweet]{Brokers: brokers, Topic: topic, Key: Key, Value: Value}
}

// Columns are the tweets table's columns Row fills, in order. The table
// also has ingested_at, set by Postgres.
var Columns = []string{"id", "author_id", "conversation_id", "created_at", "lang", "text", "hashtags", "mentions", "rule_tags", "raw"}

// Schema returns the statements that create the tweets table (the tweet id
// its primary key), or bring an older one up to date by adding the columns
// it lacks. table may be schema-qualified.
//
// raw is json, not jsonb: Postgres checks the text and stores it as it came,
// where jsonb parses it into a tree, which made up ~40% of the server's work
// per tweet (a ~1 KB line). The columns beside it hold what queries select
// on; raw->'data'->>'source' and the like work on json as they do on jsonb,
// and Row refuses what jsonb would (see Row), so raw::jsonb works on every
// row, as does ALTER COLUMN raw TYPE jsonb for those who index it. A table
// made with raw jsonb keeps it; the sink writes to either.
func Schema(table string) []string {
	t := pgx.Identifier(strings.Split(table, ".")).Sanitize()
	cols := []string{
		"author_id bigint",
		"conversation_id bigint",
		"created_at timestamptz",
		"lang text NOT NULL DEFAULT ''",
		"text text NOT NULL DEFAULT ''",
		"hashtags text[] NOT NULL DEFAULT '{}'",
		"mentions text[] NOT NULL DEFAULT '{}'",
		"rule_tags text[] NOT NULL DEFAULT '{}'",
		"raw json",
		"ingested_at timestamptz NOT NULL DEFAULT now()",
	}
	stmts := []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (id bigint PRIMARY KEY)", t)}
	for _, c := range cols {
		stmts = append(stmts, fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s", t, c))
	}
	return stmts
}

// Row returns a tweet's values for Columns. It is the one place a tweet's
// ids are parsed: a tweet whose id (or author or conversation id) is not a
// decimal int64 fails (the sink fails it with a *postgres.RowError).
func Row(m *stages.Message[twitter.Tweet]) ([]any, error) {
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
		// What jsonb refuses is refused whatever the column's type, so
		// that a json column can always be cast or altered to jsonb; and
		// here rather than by Postgres, as a row Postgres refuses costs its
		// whole batch another COPY.
		if why := jsonbRefuses(t.Raw); why != "" {
			return nil, fmt.Errorf("tweet %d: raw JSON holds %s, which Postgres jsonb refuses", id, why)
		}
		raw = t.Raw
	}
	return []any{id, author, conversation, created, t.Lang, t.Text,
		nonNil(t.Hashtags), nonNil(t.Mentions), nonNil(t.RuleTags()), raw}, nil
}

// PostgresSinkConfig returns the configuration of a Postgres sink that
// writes tweets into table (created or migrated at start by Schema, keyed
// on the tweet id, so a tweet stored already is skipped). Set Pool or URL
// before postgres.New.
func PostgresSinkConfig(table string) postgres.Config[twitter.Tweet] {
	return postgres.Config[twitter.Tweet]{
		Table:       table,
		Columns:     Columns,
		ConflictKey: []string{"id"},
		Row:         Row,
		Migrate:     Schema(table),
	}
}

// jsonbRefuses names what in a JSON text Postgres' jsonb input refuses
// (an escaped NUL, an escaped UTF-16 surrogate that is not half of a
// pair), or returns "". The text is known to be valid JSON.
func jsonbRefuses(b []byte) string {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\\')
		if j < 0 {
			return ""
		}
		i += j
		if i+1 >= len(b) {
			return ""
		}
		if b[i+1] != 'u' {
			i += 2 // \\, \", \n and the like
			continue
		}
		r, ok := hex4(b, i+2)
		switch {
		case !ok:
			return ""
		case r == 0:
			return `\u0000`
		case r >= 0xDC00 && r <= 0xDFFF:
			return "a lone low surrogate escape"
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, ok := hex4(b, i+8); !ok || i+7 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' || lo < 0xDC00 || lo > 0xDFFF {
				return "a lone high surrogate escape"
			}
			i += 12
			continue
		}
		i += 6
	}
}

// hex4 reads the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			r = r<<4 | rune(c|0x20-'a'+10)
		default:
			return 0, false
		}
	}
	return r, true
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

// SpillCodec writes a tweet to a spill as its raw stream line and reads it
// back by decoding and enriching the line again, so a replayed tweet is
// the tweet the sinks would have got.
func SpillCodec() stages.SpillConfig[twitter.Tweet] {
	return stages.SpillConfig[twitter.Tweet]{
		Encode: func(m *stages.Message[twitter.Tweet]) ([]byte, error) {
			if len(m.Data.Raw) == 0 {
				return nil, fmt.Errorf("tweet %s has no raw line", m.Data.ID)
			}
			return m.Data.Raw, nil
		},
		Decode: func(b []byte) (twitter.Tweet, error) {
			var l twitter.Line
			if err := twitter.Decode(b, &l); err != nil {
				return twitter.Tweet{}, err
			}
			if l.Kind != twitter.KindTweet {
				return twitter.Tweet{}, fmt.Errorf("spilled line is a %v, not a tweet", l.Kind)
			}
			m := stages.Message[twitter.Tweet]{Data: l.Tweet}
			if err := Enrich(context.Background(), &m); err != nil {
				return twitter.Tweet{}, err
			}
			return m.Data, nil
		},
	}
}
