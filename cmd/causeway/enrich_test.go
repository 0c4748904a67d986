package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
)

func TestParseTags(t *testing.T) {
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
	m := &stages.Message[twitter.Tweet]{Data: twitter.Tweet{ID: "1234", Text: "#Go #go @Ann", Hashtags: nil}}
	if err := enrich(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(m.Data.Hashtags, m.Data.Mentions) != "[go] [ann]" {
		t.Fatalf("hashtags %v mentions %v", m.Data.Hashtags, m.Data.Mentions)
	}
	m = &stages.Message[twitter.Tweet]{Data: twitter.Tweet{ID: "12x", Hashtags: []string{"A", "a", "B"}}}
	if err := enrich(context.Background(), m); !errors.Is(err, errNoID) {
		t.Fatalf("bad id: %v", err)
	}
}
