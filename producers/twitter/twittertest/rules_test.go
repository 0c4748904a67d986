package twittertest

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var positionRE = regexp.MustCompile(`\(at position (\d+)\)`)

func TestParseRuleAndMatch(t *testing.T) {
	tw := &Tweet{
		Text:     strings.ToLower("Good morning Tokyo! 今日は良い天気 #Golang rocks, see https://t.co/x"),
		Hashtags: []string{"golang"}, Mentions: []string{"bob"}, Author: "alice", AuthorID: "42",
		Lang: "en", HasLinks: true, Refs: []string{"quoted"},
	}
	tw.index()
	tests := []struct {
		rule  string
		match bool
	}{
		{"morning", true},
		{"MORNING tokyo", true},
		{"morn", false}, // whole words only
		{"天気", true},    // no-space scripts match substrings
		{`"good morning"`, true},
		{`"morning good"`, false},
		{"#golang", true},
		{"#GoLang", true},
		{"#rust", false},
		{"@bob", true},
		{"from:alice", true},
		{"from:ALICE", true},
		{"from:42", true},
		{"from:@Alice", true},
		{"from:carol", false},
		{"lang:en", true},
		{"lang:ja", false},
		{"lang:zh-tw OR lang:und", false},
		{"#日本語 OR #über_2", false},
		{"e-mail OR morning", true},
		{"@bob_99 OR @bob", true},
		{"has:links", true},
		{"has:media", false},
		{"has:hashtags has:mentions", true},
		{"is:quote", true},
		{"is:reply", false},
		{"rust OR tokyo", true},
		{"rust OR python", false},
		{"morning -tokyo", false},
		{"morning -(rust OR python)", true},
		{"(rust OR golang) (lang:en OR lang:fr) -is:retweet", true},
		{"rust OR tokyo lang:ja", false}, // AND binds tighter than OR
	}
	for _, tt := range tests {
		r, err := ParseRule(tt.rule)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tt.rule, err)
			continue
		}
		if got := r.Match(tw); got != tt.match {
			t.Errorf("%q matched %v, want %v", tt.rule, got, tt.match)
		}
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct{ rule, want string }{
		{"", "Rule is empty"},
		{"   ", "Rule is empty"},
		{"(cat", "Unbalanced parentheses: missing ')'"},
		{"cat)", "Unbalanced parentheses: unexpected ')'"},
		{`"cat`, "Unterminated quoted phrase"},
		{`""`, "Empty quoted phrase"},
		{"-cat", "non-negation term"},
		{"-", "Negation must precede a term (at position 1)"},
		{"cat -", "Negation must precede a term (at position 5)"},
		{"cat - dog", "Negation must precede a term (at position 5)"},
		{"(cat -)", "Negation must precede a term (at position 6)"},
		{"-cat -dog", "non-negation term"},
		{"cat OR", "Ambiguous use of OR"},
		{"OR cat", "Expected a term"},
		{"cat OR OR dog", "Ambiguous use of OR"},
		{"cat AND dog", "invalid operator 'AND'"},
		{"foo:bar", "invalid operator 'foo'"},
		{"has:videos", "invalid field 'videos' of operator 'has'"},
		{"lang:", "invalid field '' of operator 'lang'"},
		{"from:@", "invalid field '' of operator 'from'"},
		{"from:", "invalid field '' of operator 'from'"},
		{"from:@@alice", "invalid field '@alice' of operator 'from'"},
		{"from:alice:bob", "invalid field 'alice:bob' of operator 'from'"},
		{"from:al-ice", "invalid field 'al-ice' of operator 'from'"},
		{"cat -from:@", "invalid field '' of operator 'from'"},
		{"lang:english", "invalid field 'english' of operator 'lang'"},
		{"lang:e1", "invalid field 'e1' of operator 'lang'"},
		{"has:", "invalid field '' of operator 'has'"},
		{"is:", "invalid field '' of operator 'is'"},
		{"@", `Empty "@" term`},
		{"@@bob", `Invalid "@" term '@@bob'`},
		{"@bob!", `Invalid "@" term '@bob!'`},
		{"#@", `Invalid "#" term '#@'`},
		{"##cats", `Invalid "#" term '##cats'`},
		{"#cats!", `Invalid "#" term '#cats!'`},
		{"# cat", `Empty "#" term`},
		{"()", "Expected a term"},
		{strings.Repeat("a", MaxRuleLength+1), "Rule is too long"},
		{strings.Repeat("(", 40) + "a" + strings.Repeat(")", 40), "Too many nested groups"},
		{"a \xff", "not valid UTF-8"},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.rule)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRule(%.30q): %v, want %q", tt.rule, err, tt.want)
		}
	}
}

// FuzzParseRule checks the parser never panics, that an accepted rule has a
// positive term, matches deterministically and means the same in
// parentheses, and that its errors carry a position within the rule or a
// reason. The seed corpus is in testdata/fuzz/FuzzParseRule.
func FuzzParseRule(f *testing.F) {
	f.Add("(cat OR dog) -grumpy #pets lang:en")
	tw := &Tweet{Text: "cat and dog #pets", Hashtags: []string{"pets"}, Lang: "en", Author: "a"}
	tw.index()
	empty := &Tweet{}
	empty.index()
	f.Fuzz(func(t *testing.T, rule string) {
		r, err := ParseRule(rule)
		if err != nil {
			if r != nil || err.Error() == "" {
				t.Fatalf("error %v with rule %v", err, r)
			}
			if m := positionRE.FindStringSubmatch(err.Error()); m != nil {
				if p, _ := strconv.Atoi(m[1]); p < 1 || p > len(rule) {
					t.Fatalf("%q: error %q points outside the rule", rule, err)
				}
			}
			return
		}
		// A group of a valid rule is valid and means the same.
		if g, err := ParseRule("(" + rule + ")"); err != nil {
			if len(rule)+2 <= MaxRuleLength && !strings.Contains(err.Error(), "Too many nested groups") {
				t.Fatalf("%q is valid, (%s) is not: %v", rule, rule, err)
			}
		} else if g.Match(tw) != r.Match(tw) || g.Match(empty) != r.Match(empty) {
			t.Fatalf("(%s) does not match like %q", rule, rule)
		}
		if len(rule) > MaxRuleLength {
			t.Fatalf("accepted a %d-byte rule", len(rule))
		}
		if r.Match(tw) != r.Match(tw) {
			t.Fatal("match is not deterministic")
		}
		// A rule needs something present to match: an empty tweet matches
		// only through negations, which a valid rule never has alone.
		if r.Match(empty) && !strings.Contains(rule, "-") {
			t.Fatalf("%q matched an empty tweet", rule)
		}
	})
}
