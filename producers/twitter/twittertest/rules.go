package twittertest

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxRuleLength is the longest rule the fake accepts, in bytes (the API's
// limit on the lower tiers).
const MaxRuleLength = 512

// Rule is a parsed filtered-stream rule: a small subset of the API's rule
// language, enough to route recorded tweets.
//
//	keyword           a word of the text, case-insensitive (for words with
//	                  no spaces in their script, a substring of the text)
//	"exact phrase"    a substring of the text, case-insensitive
//	#hashtag @user    a hashtag or mention entity, case-insensitive
//	from:user         the author's username (or id); from:@user too
//	lang:xx           the tweet's language
//	has:hashtags|mentions|links|media
//	is:retweet|reply|quote
//	a b               both (AND); a OR b either; -a not a; ( ) groups
//
// Operators need a valid value, as the API's rule validation demands: an
// empty one (from:@, lang:, a lone # or @) or one with characters no
// username, hashtag or language code has is rejected.
type Rule struct {
	root node
}

// ParseRule parses a rule value. Its error reads like the API's rule
// validation details.
func ParseRule(value string) (*Rule, error) {
	if len(value) > MaxRuleLength {
		return nil, fmt.Errorf("Rule is too long: %d characters, at most %d allowed", len(value), MaxRuleLength)
	}
	if !utf8.ValidString(value) {
		return nil, fmt.Errorf("Rule is not valid UTF-8")
	}
	p := &ruleParser{toks: nil}
	if err := p.lex(value); err != nil {
		return nil, err
	}
	if len(p.toks) == 0 {
		return nil, fmt.Errorf("Rule is empty")
	}
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		if t.kind == tokClose {
			return nil, fmt.Errorf("Unbalanced parentheses: unexpected ')' (at position %d)", t.pos+1)
		}
		return nil, fmt.Errorf("Unexpected %q (at position %d)", t.text, t.pos+1)
	}
	if !positive(n) {
		return nil, fmt.Errorf("Rules must contain a non-negation term (at position 1)")
	}
	return &Rule{root: n}, nil
}

// Match reports whether the tweet matches the rule.
func (r *Rule) Match(t *Tweet) bool { return r.root.match(t) }

// Tweet is what rules match against: a recorded tweet's searchable parts,
// lowercased (the fake builds them from its recorded lines).
type Tweet struct {
	Text     string // lowercased
	words    map[string]bool
	Hashtags []string // lowercased
	Mentions []string // lowercased
	Author   string   // lowercased username
	AuthorID string
	Lang     string
	HasLinks bool
	HasMedia bool
	Refs     []string // referenced tweet types
}

// index prepares a tweet's word set.
func (t *Tweet) index() {
	t.words = map[string]bool{}
	for _, w := range words(t.Text) {
		t.words[w] = true
	}
}

// words splits a text into words: runs of letters, digits, '_' and '\”.
func words(text string) []string {
	return strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '\''
	})
}

type node interface{ match(*Tweet) bool }

type andNode []node

func (n andNode) match(t *Tweet) bool {
	for _, c := range n {
		if !c.match(t) {
			return false
		}
	}
	return true
}

type orNode []node

func (n orNode) match(t *Tweet) bool {
	for _, c := range n {
		if c.match(t) {
			return true
		}
	}
	return false
}

type notNode struct{ n node }

func (n notNode) match(t *Tweet) bool { return !n.n.match(t) }

type termNode struct {
	op, val string // op "" is a keyword, "phrase" a quoted phrase
}

func (n termNode) match(t *Tweet) bool {
	switch n.op {
	case "":
		if spaced(n.val) {
			if t.words == nil { // a Tweet made by hand, not indexed
				return slices.Contains(words(t.Text), n.val)
			}
			return t.words[n.val]
		}
		return strings.Contains(t.Text, n.val)
	case "phrase":
		return strings.Contains(t.Text, n.val)
	case "#":
		return contains(t.Hashtags, n.val)
	case "@":
		return contains(t.Mentions, n.val)
	case "from":
		return t.Author == n.val || t.AuthorID == n.val
	case "lang":
		return t.Lang == n.val
	case "has":
		switch n.val {
		case "hashtags":
			return len(t.Hashtags) > 0
		case "mentions":
			return len(t.Mentions) > 0
		case "links":
			return t.HasLinks
		case "media":
			return t.HasMedia
		}
	case "is":
		want := map[string]string{"retweet": "retweeted", "reply": "replied_to", "quote": "quoted"}[n.val]
		return contains(t.Refs, want)
	}
	return false
}

// spaced reports whether a keyword is written in a script that separates
// words with spaces (no CJK or Thai), so it matches whole words.
func spaced(s string) bool {
	for _, r := range s {
		if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Thai) {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// positive reports whether a node can match by something present (the API
// rejects rules made only of negations).
func positive(n node) bool {
	switch n := n.(type) {
	case andNode:
		for _, c := range n {
			if positive(c) {
				return true
			}
		}
		return false
	case orNode:
		for _, c := range n {
			if !positive(c) {
				return false
			}
		}
		return true
	case notNode:
		return false
	}
	return true
}

type tokKind uint8

const (
	tokTerm tokKind = iota
	tokOpen
	tokClose
	tokOr
	tokNot
)

type token struct {
	kind tokKind
	op   string
	text string
	pos  int
}

type ruleParser struct {
	toks []token
	i    int
}

var operators = map[string]map[string]bool{
	"from": nil, "lang": nil,
	"has": {"hashtags": true, "mentions": true, "links": true, "media": true},
	"is":  {"retweet": true, "reply": true, "quote": true},
}

// validValue checks an operator's value (lowercased, not empty).
var validValue = map[string]func(string) bool{
	"from": func(v string) bool { return username(v) || userID(v) },
	"lang": langCode,
	"has":  func(string) bool { return true }, // checked against operators
	"is":   func(string) bool { return true },
}

// username reports whether s can be an X username: letters, digits or
// underscores (ASCII).
func username(s string) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// userID reports whether s is a numeric user id.
func userID(s string) bool {
	if len(s) == 0 || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// hashtag reports whether s can be a hashtag's text: letters, digits,
// marks and underscores.
func hashtag(s string) bool {
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) && r != '_' {
			return false
		}
	}
	return s != ""
}

// langCode reports whether s looks like a BCP 47 language code as the API
// uses them: two or three letters ("en", "und"), optionally a region
// ("zh-tw").
func langCode(s string) bool {
	base, region, hasRegion := strings.Cut(s, "-")
	letters := func(x string, lo, hi int) bool {
		if len(x) < lo || len(x) > hi {
			return false
		}
		for i := 0; i < len(x); i++ {
			if x[i] < 'a' || x[i] > 'z' {
				return false
			}
		}
		return true
	}
	return letters(base, 2, 3) && (!hasRegion || letters(region, 2, 4))
}

func (p *ruleParser) lex(s string) error {
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			p.toks = append(p.toks, token{kind: tokOpen, text: "(", pos: i})
			i++
		case c == ')':
			p.toks = append(p.toks, token{kind: tokClose, text: ")", pos: i})
			i++
		case c == '-':
			// A dash that starts a term negates it; alone it negates
			// nothing (a dash inside a word, as in e-mail, is the word's).
			if i+1 == len(s) || strings.IndexByte(" \t\n\r)", s[i+1]) >= 0 {
				return fmt.Errorf("Negation must precede a term (at position %d)", i+1)
			}
			p.toks = append(p.toks, token{kind: tokNot, text: "-", pos: i})
			i++
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return fmt.Errorf("Unterminated quoted phrase (at position %d)", i+1)
			}
			phrase := strings.ToLower(strings.TrimSpace(s[i+1 : i+1+j]))
			if phrase == "" {
				return fmt.Errorf("Empty quoted phrase (at position %d)", i+1)
			}
			p.toks = append(p.toks, token{kind: tokTerm, op: "phrase", text: phrase, pos: i})
			i += j + 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r()\"", rune(s[j])) {
				j++
			}
			w := s[i:j]
			t := token{kind: tokTerm, text: strings.ToLower(w), pos: i}
			switch {
			case w == "OR":
				t.kind = tokOr
			case w == "AND":
				return fmt.Errorf("Reference to invalid operator 'AND'. Use a space to AND terms (at position %d)", i+1)
			case w[0] == '#' || w[0] == '@':
				if len(w) == 1 {
					return fmt.Errorf("Empty %q term (at position %d)", w, i+1)
				}
				val := strings.ToLower(w[1:])
				if w[0] == '@' && !username(val) || w[0] == '#' && !hashtag(val) {
					return fmt.Errorf("Invalid %q term '%s' (at position %d)", w[:1], w, i+1)
				}
				t.op, t.text = w[:1], val
			case strings.Contains(w, ":") && !strings.Contains(w, "://"):
				k := strings.IndexByte(w, ':')
				op, val := w[:k], strings.ToLower(w[k+1:])
				allowed, known := operators[op]
				if !known {
					return fmt.Errorf("Reference to invalid operator '%s' (at position %d)", op, i+1)
				}
				if op == "from" {
					// from:@name is from:name; from:@ names no one.
					val = strings.TrimPrefix(val, "@")
				}
				if val == "" || allowed != nil && !allowed[val] || !validValue[op](val) {
					return fmt.Errorf("Reference to invalid field '%s' of operator '%s' (at position %d)", val, op, i+1)
				}
				t.op, t.text = op, val
			}
			p.toks = append(p.toks, t)
			i = j
		}
	}
	return nil
}

// maxRuleDepth bounds parentheses nesting.
const maxRuleDepth = 32

func (p *ruleParser) or(depth int) (node, error) {
	var alts orNode
	for {
		n, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		alts = append(alts, n)
		if p.i < len(p.toks) && p.toks[p.i].kind == tokOr {
			p.i++
			if p.i == len(p.toks) || p.toks[p.i].kind == tokClose || p.toks[p.i].kind == tokOr {
				return nil, fmt.Errorf("Ambiguous use of OR (at position %d)", p.toks[p.i-1].pos+1)
			}
			continue
		}
		break
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return alts, nil
}

func (p *ruleParser) and(depth int) (node, error) {
	var all andNode
	for p.i < len(p.toks) {
		k := p.toks[p.i].kind
		if k == tokOr || k == tokClose {
			break
		}
		n, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		all = append(all, n)
	}
	switch len(all) {
	case 0:
		pos := 0
		if p.i < len(p.toks) {
			pos = p.toks[p.i].pos
		} else if len(p.toks) > 0 {
			pos = p.toks[len(p.toks)-1].pos
		}
		return nil, fmt.Errorf("Expected a term (at position %d)", pos+1)
	case 1:
		return all[0], nil
	}
	return all, nil
}

func (p *ruleParser) unary(depth int) (node, error) {
	t := p.toks[p.i]
	switch t.kind {
	case tokNot:
		p.i++
		if p.i == len(p.toks) || p.toks[p.i].kind != tokTerm && p.toks[p.i].kind != tokOpen {
			return nil, fmt.Errorf("Negation must precede a term (at position %d)", t.pos+1)
		}
		n, err := p.unary(depth)
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	case tokOpen:
		if depth >= maxRuleDepth {
			return nil, fmt.Errorf("Too many nested groups (at position %d)", t.pos+1)
		}
		p.i++
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.i == len(p.toks) || p.toks[p.i].kind != tokClose {
			return nil, fmt.Errorf("Unbalanced parentheses: missing ')' for '(' (at position %d)", t.pos+1)
		}
		p.i++
		return n, nil
	case tokTerm:
		p.i++
		return termNode{op: t.op, val: t.text}, nil
	}
	return nil, fmt.Errorf("Unexpected %q (at position %d)", t.text, t.pos+1)
}
