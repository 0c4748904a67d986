package tweets

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
)

func TestParseTags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		text  string
		sigil byte
		want  string
	}{
		{"Go #golang and #Go, #go!", '#', "[golang Go go]"},
		{"mail me at a@b.c or @Bob_1 (@alice)", '@', "[Bob_1 alice]"},
		{"#日本語 と #café #مرحبا", '#', "[日本語 café مرحبا]"},
		{"no#tag # alone #", '#', "[]"},
	} {
		if got := fmt.Sprint(parseTags(tc.text, tc.sigil)); got != tc.want {
			t.Errorf("parseTags(%q) = %s, want %s", tc.text, got, tc.want)
		}
	}
}

func TestEnrich(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   twitter.Tweet
		want string
	}{
		{"from the text", twitter.Tweet{ID: "1234", Text: "#Go #go @Ann"}, "[go] [ann]"},
		{"from the entities", twitter.Tweet{ID: "1234", Text: "#ignored", Hashtags: []string{"A", "a", " B "}, Mentions: []string{"Bob"}}, "[a b] [bob]"},
		{"none", twitter.Tweet{ID: "1234", Text: "plain"}, "[] []"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &stages.Message[twitter.Tweet]{Data: tc.in}
			if err := Enrich(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(m.Data.Hashtags, m.Data.Mentions); got != tc.want {
				t.Fatalf("hashtags and mentions %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRowParsesIDs(t *testing.T) {
	t.Parallel()
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m := &stages.Message[twitter.Tweet]{Data: twitter.Tweet{ID: "1895806220686479915", AuthorID: "2456130063", CreatedAt: created,
		Lang: "ja", Text: "hi", Hashtags: []string{"go"}, MatchingRules: []twitter.MatchingRule{{ID: "1", Tag: "golang"}}, Raw: []byte(`{}`)}}
	row, err := Row(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(row) != len(Columns) {
		t.Fatalf("Row gave %d values for %d columns", len(row), len(Columns))
	}
	if got := fmt.Sprint(row[:9]...); got != fmt.Sprint(int64(1895806220686479915), int64(2456130063), nil, created, "ja", "hi", []string{"go"}, []string{}, []string{"golang"}) {
		t.Fatalf("Row = %v", got)
	}
	for _, tc := range []struct {
		tweet twitter.Tweet
		want  string
	}{
		{twitter.Tweet{ID: "12x"}, `tweet id "12x" is not a decimal integer`},
		{twitter.Tweet{ID: "12", AuthorID: "me"}, `tweet 12: author_id "me" is not a decimal integer`},
		{twitter.Tweet{ID: "12", ConversationID: "99999999999999999999"}, `tweet 12: conversation_id "99999999999999999999" is not a decimal integer`},
	} {
		if _, err := Row(&stages.Message[twitter.Tweet]{Data: tc.tweet}); err == nil || err.Error() != tc.want {
			t.Errorf("Row(%+v) = %v, want %q", tc.tweet, err, tc.want)
		}
	}
}

func TestJSONBRefuses(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"text":"plain"}`, ""},
		{`{"text":"nul \u0000 here"}`, `\u0000`},
		{`{"text":"escaped backslash \\u0000 is text"}`, ""},
		{`{"text":"\\\u0000"}`, `\u0000`},
		{`{"text":"half \ud83d end"}`, "a lone high surrogate escape"},
		{`{"text":"half at the end \ud83d"}`, "a lone high surrogate escape"},
		{`{"text":"two highs \ud83d\ud83d\ude00"}`, "a lone high surrogate escape"},
		{`{"name":"low \udc00"}`, "a lone low surrogate escape"},
		{`{"text":"pair \ud83d\ude00 and \u00e9 and \u2028"}`, ""},
		{`{"text":"upper \uD83D\uDE00"}`, ""},
	} {
		if got := jsonbRefuses([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.in, got, tc.want)
		}
	}
	// The recorded stream: exactly the three edge cases jsonb refuses
	// (testdata/README.md).
	b, err := os.ReadFile("../../testdata/edge.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var refused []int
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\r\n")) {
		if jsonbRefuses(line) != "" {
			refused = append(refused, i+1)
		}
	}
	if !slices.Equal(refused, []int{1, 2, 3}) {
		t.Errorf("edge lines refused: %v, want [1 2 3]", refused)
	}
	b, err = os.ReadFile("../../testdata/tweets.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\r\n")) {
		if why := jsonbRefuses(line); why != "" {
			t.Fatalf("tweets.jsonl line %d refused: %s", i+1, why)
		}
	}
}
