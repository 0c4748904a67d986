package main

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
)

// errNoID fails a tweet whose id is not a decimal int64: the tweets table
// keys on it.
var errNoID = errors.New("tweet id is not a decimal int64")

// streamHandler is the reference topology's processor: enrich, then fan
// out to both sinks; the tweet is acknowledged once both have it.
func streamHandler(ctx context.Context, m *stages.Message[twitter.Tweet]) error {
	if err := enrich(ctx, m); err != nil {
		return err
	}
	m.Route("kafka", "postgres")
	return nil
}

// loadHandler is the loader's processor: enrich, then Postgres.
func loadHandler(ctx context.Context, m *stages.Message[twitter.Tweet]) error {
	if err := enrich(ctx, m); err != nil {
		return err
	}
	m.Route("postgres")
	return nil
}

// enrich checks the tweet can be keyed and normalises its hashtags (from
// entities, or parsed from the text when the stream sent none) and
// mentions.
func enrich(_ context.Context, m *stages.Message[twitter.Tweet]) error {
	t := &m.Data
	if _, err := strconv.ParseInt(t.ID, 10, 64); err != nil || t.ID == "" {
		return errNoID
	}
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
