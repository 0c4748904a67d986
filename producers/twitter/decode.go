package twitter

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Kind says what a stream line is.
type Kind uint8

const (
	// KindKeepAlive is a bare CRLF (or only whitespace).
	KindKeepAlive Kind = iota
	// KindTweet is a message with a data object: a tweet, possibly with
	// partial errors beside it.
	KindTweet
	// KindError is a message with errors and no data: an in-stream error
	// such as an operational disconnect.
	KindError
	// KindOther is a well-formed JSON object that is neither: a message type
	// this decoder does not know, ignored.
	KindOther
)

func (k Kind) String() string {
	switch k {
	case KindKeepAlive:
		return "keep-alive"
	case KindTweet:
		return "tweet"
	case KindError:
		return "error"
	case KindOther:
		return "other"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Problem is one error object of an in-stream error message (or of a tweet
// message's partial errors).
type Problem struct {
	Title          string
	Detail         string
	Type           string
	DisconnectType string // disconnect_type, e.g. "OperationalDisconnect"
}

// Disconnect reports whether the server closes the stream after this
// problem (an operational disconnect and its kin).
func (p Problem) Disconnect() bool {
	return p.DisconnectType != "" || strings.HasSuffix(p.Type, "/operational-disconnect") ||
		strings.HasSuffix(p.Type, "/streaming-connection")
}

// Line is a decoded stream line: exactly one of Tweet (KindTweet) or
// Problems (KindError) is meaningful.
type Line struct {
	Kind     Kind
	Tweet    Tweet
	Problems []Problem
}

// SyntaxError reports a malformed stream line: Offset is the byte within
// the line where decoding failed.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("byte %d: %s", e.Offset, e.Msg) }

// maxDepth bounds how deeply a line may nest arrays and objects.
const maxDepth = 256

// Decode decodes one stream line (without its CRLF) into l, reusing l's
// slices. A tweet keeps a copy of line in Raw; its strings do not alias line,
// so the caller may reuse line's memory. A line that is not one well-formed
// JSON object, or whose known fields have the wrong types, returns a
// *SyntaxError.
func Decode(line []byte, l *Line) error {
	*l = Line{Problems: l.Problems[:0]}
	if isBlank(line) {
		l.Kind = KindKeepAlive
		return nil
	}
	// One copy of the line is both Raw and the memory of every string field
	// without escapes (substrings of it): a tweet costs one copy of its line.
	return decodeOwned(append(make([]byte, 0, len(line)), line...), l)
}

// decodeOwned is Decode of a line the tweet may keep as its Raw (and share
// its strings' memory with).
func decodeOwned(raw []byte, l *Line) error {
	*l = Line{Problems: l.Problems[:0]}
	d := decoder{b: raw, s: unsafe.String(unsafe.SliceData(raw), len(raw))}
	var seenData, seenErrors bool
	if d.peek() != '{' {
		return d.fail("want a JSON object")
	}
	d.i++
	for first := true; d.more('}', &first); {
		key, ok := d.key()
		if !ok {
			break
		}
		switch key {
		case "data":
			seenData = true
			d.data(&l.Tweet)
		case "includes":
			d.includes(&l.Tweet)
		case "matching_rules":
			d.rules(&l.Tweet)
		case "errors":
			seenErrors = true
			l.Problems = d.problems(l.Problems)
		default:
			d.skip(0)
		}
	}
	if d.err == nil {
		d.ws()
		if d.i < len(d.b) {
			d.failf("unexpected %q after the object", d.b[d.i])
		}
	}
	if d.err != nil {
		return d.err
	}
	switch {
	case seenData:
		if l.Tweet.ID == "" {
			return &SyntaxError{Offset: 0, Msg: "data.id missing"}
		}
		l.Kind = KindTweet
		t := &l.Tweet
		t.Raw = raw
		if len(t.Users) > 1 && t.Users[0].ID != t.AuthorID {
			for i := range t.Users {
				if t.Users[i].ID == t.AuthorID {
					t.Users[0], t.Users[i] = t.Users[i], t.Users[0]
					break
				}
			}
		}
	case seenErrors:
		l.Kind = KindError
	default:
		l.Kind = KindOther
	}
	return nil
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// decoder is a validating JSON scanner that extracts the fields a Tweet
// needs and skips everything else.
type decoder struct {
	b   []byte
	s   string // b's bytes, as a string
	i   int
	err error
	// strs backs the tweet's small string lists (hashtags, mentions, URLs,
	// edit history), which are read one after the other: one allocation
	// for all of them.
	strs []string
}

// carve returns the strings appended to d.strs since start, as a slice that
// cannot grow into the next list.
func (d *decoder) carve(start int) []string {
	if len(d.strs) == start {
		return nil
	}
	return d.strs[start:len(d.strs):len(d.strs)]
}

func (d *decoder) addStr(s string) {
	if d.strs == nil {
		d.strs = make([]string, 0, 8)
	}
	d.strs = append(d.strs, s)
}

func (d *decoder) fail(msg string) error {
	if d.err == nil {
		d.err = &SyntaxError{Offset: d.i, Msg: msg}
	}
	d.i = len(d.b)
	return d.err
}

func (d *decoder) failf(format string, args ...any) { d.fail(fmt.Sprintf(format, args...)) }

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\r', '\n':
			d.i++
		default:
			return
		}
	}
}

// begin consumes c (after whitespace) or fails.
func (d *decoder) begin(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	if d.err == nil {
		if d.i < len(d.b) {
			d.failf("want %q, got %q", c, d.b[d.i])
		} else {
			d.failf("want %q, got end of line", c)
		}
	}
	return false
}

// more reports whether an object or array being read has another element,
// consuming the comma between elements or the closing byte.
func (d *decoder) more(closing byte, first *bool) bool {
	if d.err != nil {
		return false
	}
	d.ws()
	if d.i >= len(d.b) {
		d.fail("unexpected end of line")
		return false
	}
	if d.b[d.i] == closing {
		d.i++
		return false
	}
	if !*first {
		if d.b[d.i] != ',' {
			d.failf("want ',' or %q, got %q", closing, d.b[d.i])
			return false
		}
		d.i++
		d.ws()
	}
	*first = false
	return true
}

// key reads an object key and its colon. Keys are only compared, so they
// are not checked for UTF-8.
func (d *decoder) key() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		d.fail("want a string")
		return "", false
	}
	start := d.i + 1
	end, esc, _ := d.scanString(start)
	if end < 0 {
		return "", false
	}
	d.i = end + 1
	k := d.s[start:end]
	if esc {
		k = unescape(d.b[start:end])
	}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != ':' {
		d.fail("want ':' after an object key")
		return "", false
	}
	d.i++
	d.ws()
	return k, true
}

// str reads a JSON string and returns its value.
func (d *decoder) str() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		d.fail("want a string")
		return "", false
	}
	start := d.i + 1
	end, esc, high := d.scanString(start)
	if end < 0 {
		return "", false
	}
	d.i = end + 1
	if !esc {
		s := d.s[start:end]
		if high && !utf8.ValidString(s) {
			s = unescape(d.b[start:end]) // replaces each bad byte
		}
		return s, true
	}
	return unescape(d.b[start:end]), true
}

// scanString finds the closing quote of a string whose content starts at
// start, validating escapes and rejecting control characters. It reports
// whether the string has escapes and whether it has bytes above ASCII (only
// those need a UTF-8 check). It returns end -1 on error.
//
// The next quote is found with bytes.IndexByte (vectorized); the bytes
// before it are then checked eight at a time for a backslash or a control
// character. An escaped quote sends it looking for the next one.
func (d *decoder) scanString(start int) (end int, escaped, high bool) {
	b := d.b
	j := start
	var hi uint64
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			d.i = len(b)
			d.fail("unterminated string")
			return -1, false, false
		}
		stop := j + q
		for j < stop {
			for j+8 <= stop {
				x := binary.LittleEndian.Uint64(b[j:])
				if special8(x) {
					break
				}
				hi |= x
				j += 8
			}
			if j >= stop {
				break
			}
			c := b[j]
			switch {
			case c == '\\':
				escaped = true
				if j+1 >= len(b) {
					d.i = j
					d.fail("unterminated escape")
					return -1, false, false
				}
				switch b[j+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					j += 2
				case 'u':
					if j+6 > len(b) || !isHex4(b[j+2:j+6]) {
						d.i = j
						d.fail(`bad \u escape`)
						return -1, false, false
					}
					j += 6
				default:
					d.i = j
					d.failf("bad escape \\%c", b[j+1])
					return -1, false, false
				}
			case c < 0x20:
				d.i = j
				d.failf("control character 0x%02x in string", c)
				return -1, false, false
			default:
				hi |= uint64(c)
				j++
			}
		}
		if j == stop {
			return stop, escaped, hi&msb != 0
		}
		// The quote at stop was escaped: look for the next one.
	}
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// special8 reports whether any of the eight bytes of x is a backslash or
// below 0x20 (bytes of 0x80 and above never are). It may report a false
// positive next to a real one, never a false negative.
func special8(x uint64) bool {
	bs := x ^ (lsb * '\\')
	// A byte is zero (or below 0x20) if subtracting sets its high bit while
	// the byte's own high bit was clear.
	return ((bs-lsb)|(x-lsb*0x20))&^x&msb != 0
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c <= '9':
			r |= rune(c - '0')
		case c >= 'a':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unescape decodes the content of a validated JSON string with escapes.
// Lone surrogates and invalid UTF-8 become U+FFFD, as encoding/json does.
func unescape(b []byte) string {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c != '\\' {
			if c < utf8.RuneSelf {
				out = append(out, c)
				i++
				continue
			}
			r, n := utf8.DecodeRune(b[i:])
			out = utf8.AppendRune(out, r) // RuneError for invalid bytes
			i += n
			continue
		}
		switch b[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(b[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, hex4(b[i+2:])); dec != utf8.RuneError {
						r2 = dec
						i += 6
					}
				}
				r = r2
			}
			out = utf8.AppendRune(out, r)
			continue
		default: // '"', '\\', '/'
			out = append(out, b[i+1])
		}
		i += 2
	}
	return string(out)
}

// skip validates and skips one JSON value.
func (d *decoder) skip(depth int) {
	if d.err != nil {
		return
	}
	d.ws()
	if d.i >= len(d.b) {
		d.fail("want a value, got end of line")
		return
	}
	switch c := d.b[d.i]; c {
	case '"':
		end, _, _ := d.scanString(d.i + 1)
		if end >= 0 {
			d.i = end + 1
		}
	case '{':
		if depth >= maxDepth {
			d.fail("nested too deeply")
			return
		}
		d.i++
		for first := true; d.more('}', &first); {
			if _, ok := d.key(); !ok {
				return
			}
			d.skip(depth + 1)
		}
	case '[':
		if depth >= maxDepth {
			d.fail("nested too deeply")
			return
		}
		d.i++
		for first := true; d.more(']', &first); {
			d.skip(depth + 1)
		}
	case 't':
		d.literal("true")
	case 'f':
		d.literal("false")
	case 'n':
		d.literal("null")
	default:
		if c == '-' || '0' <= c && c <= '9' {
			d.number()
			return
		}
		d.failf("unexpected %q", c)
	}
}

func (d *decoder) literal(lit string) {
	if len(d.b)-d.i >= len(lit) && d.s[d.i:d.i+len(lit)] == lit {
		d.i += len(lit)
		return
	}
	d.failf("bad literal, want %s", lit)
}

// number validates and skips a JSON number and returns its text.
func (d *decoder) number() string {
	b, start := d.b, d.i
	j := d.i
	if j < len(b) && b[j] == '-' {
		j++
	}
	switch {
	case j < len(b) && b[j] == '0':
		j++
	case j < len(b) && '1' <= b[j] && b[j] <= '9':
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
	default:
		d.i = j
		d.fail("bad number")
		return ""
	}
	if j < len(b) && b[j] == '.' {
		j++
		k := j
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == k {
			d.i = j
			d.fail("bad number: no digits after '.'")
			return ""
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		k := j
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		if j == k {
			d.i = j
			d.fail("bad number: no exponent digits")
			return ""
		}
	}
	d.i = j
	return d.s[start:j]
}

// peek returns the next byte after whitespace, or 0 at the end.
func (d *decoder) peek() byte {
	d.ws()
	if d.i < len(d.b) {
		return d.b[d.i]
	}
	return 0
}

// strField reads a string value; field names it in errors.
func (d *decoder) strField(field string) string {
	if d.peek() != '"' {
		d.failf("%s: want a string", field)
		return ""
	}
	s, _ := d.str()
	return s
}

// idField reads an id, sent as a string or (in older captures) a number.
func (d *decoder) idField(field string) string {
	switch c := d.peek(); {
	case c == '"':
		s, _ := d.str()
		return s
	case c == '-' || '0' <= c && c <= '9':
		return d.number()
	}
	d.failf("%s: want a string or a number", field)
	return ""
}

// nullable reports (and consumes) a null value.
func (d *decoder) nullable() bool {
	if d.peek() == 'n' {
		d.literal("null")
		return true
	}
	return false
}

// array calls elem for every element of an array value; null is an empty
// array.
func (d *decoder) array(field string, elem func()) {
	if d.nullable() {
		return
	}
	if d.peek() != '[' {
		d.failf("%s: want an array", field)
		return
	}
	d.i++
	for first := true; d.more(']', &first); {
		elem()
	}
}

func (d *decoder) strings(field string) []string {
	start := len(d.strs)
	d.array(field, func() { d.addStr(d.strField(field)) })
	return d.carve(start)
}

func (d *decoder) data(t *Tweet) {
	if d.peek() != '{' {
		d.fail("data: want an object")
		return
	}
	d.i++
	for first := true; d.more('}', &first); {
		key, ok := d.key()
		if !ok {
			return
		}
		switch key {
		case "id":
			t.ID = d.idField("data.id")
		case "text":
			t.Text = d.strField("data.text")
		case "author_id":
			t.AuthorID = d.idField("data.author_id")
		case "conversation_id":
			t.ConversationID = d.idField("data.conversation_id")
		case "lang":
			t.Lang = d.strField("data.lang")
		case "created_at":
			start := d.i
			s := d.strField("data.created_at")
			if d.err == nil {
				ts, err := parseTime(s)
				if err != nil {
					d.i = start
					d.failf("data.created_at: %v", err)
				}
				t.CreatedAt = ts
			}
		case "edit_history_tweet_ids":
			t.EditHistoryIDs = d.strings("data.edit_history_tweet_ids")
		case "referenced_tweets":
			d.array("data.referenced_tweets", func() {
				var r ReferencedTweet
				d.object("data.referenced_tweets[]", func(k string) {
					switch k {
					case "type":
						r.Type = d.strField("data.referenced_tweets[].type")
					case "id":
						r.ID = d.idField("data.referenced_tweets[].id")
					default:
						d.skip(2)
					}
				})
				t.ReferencedTweets = append(t.ReferencedTweets, r)
			})
		case "entities":
			d.entities(t)
		default:
			d.skip(1)
		}
	}
}

// object calls field for every key of an object value; null is an empty
// object.
func (d *decoder) object(name string, field func(key string)) {
	if d.nullable() {
		return
	}
	if d.peek() != '{' {
		d.failf("%s: want an object", name)
		return
	}
	d.i++
	for first := true; d.more('}', &first); {
		k, ok := d.key()
		if !ok {
			return
		}
		field(k)
	}
}

// entityNames name one kind of entity and the field a Tweet keeps of it.
type entityNames struct{ array, elem, want, field string }

var (
	hashtagNames = entityNames{"data.entities.hashtags", "data.entities.hashtags[]", "tag", "data.entities.hashtags[].tag"}
	mentionNames = entityNames{"data.entities.mentions", "data.entities.mentions[]", "username", "data.entities.mentions[].username"}
	urlNames     = entityNames{"data.entities.urls", "data.entities.urls[]", "expanded_url", "data.entities.urls[].expanded_url"}
)

func (d *decoder) entities(t *Tweet) {
	d.object("data.entities", func(k string) {
		var e *entityNames
		var dst *[]string
		switch k {
		case "hashtags":
			e, dst = &hashtagNames, &t.Hashtags
		case "mentions":
			e, dst = &mentionNames, &t.Mentions
		case "urls":
			e, dst = &urlNames, &t.URLs
		default:
			d.skip(2)
			return
		}
		start := len(d.strs)
		d.array(e.array, func() {
			var val, short string
			d.object(e.elem, func(k string) {
				switch {
				case k == e.want:
					val = d.strField(e.field)
				case k == "url" && e == &urlNames:
					short = d.strField("data.entities.urls[].url")
				default:
					d.skip(4)
				}
			})
			if val == "" {
				val = short
			}
			if val != "" {
				d.addStr(val)
			}
		})
		*dst = d.carve(start)
	})
}

func (d *decoder) includes(t *Tweet) {
	d.object("includes", func(k string) {
		if k != "users" {
			d.skip(1)
			return
		}
		d.array("includes.users", func() {
			var u User
			d.object("includes.users[]", func(k string) {
				switch k {
				case "id":
					u.ID = d.idField("includes.users[].id")
				case "name":
					u.Name = d.strField("includes.users[].name")
				case "username":
					u.Username = d.strField("includes.users[].username")
				default:
					d.skip(3)
				}
			})
			if t.Users == nil {
				t.Users = make([]User, 0, 2)
			}
			t.Users = append(t.Users, u)
		})
	})
}

func (d *decoder) rules(t *Tweet) {
	d.array("matching_rules", func() {
		var r MatchingRule
		d.object("matching_rules[]", func(k string) {
			switch k {
			case "id":
				r.ID = d.idField("matching_rules[].id")
			case "tag":
				if !d.nullable() {
					r.Tag = d.strField("matching_rules[].tag")
				}
			default:
				d.skip(2)
			}
		})
		if t.MatchingRules == nil {
			t.MatchingRules = make([]MatchingRule, 0, 2)
		}
		t.MatchingRules = append(t.MatchingRules, r)
	})
}

func (d *decoder) problems(dst []Problem) []Problem {
	d.array("errors", func() {
		var p Problem
		d.object("errors[]", func(k string) {
			switch k {
			case "title", "detail", "type", "disconnect_type":
				if d.peek() != '"' {
					d.skip(2)
					return
				}
				s, _ := d.str()
				switch k {
				case "title":
					p.Title = s
				case "detail":
					p.Detail = s
				case "type":
					p.Type = s
				default:
					p.DisconnectType = s
				}
			default:
				d.skip(2)
			}
		})
		dst = append(dst, p)
	})
	return dst
}

var errBadTime = errors.New("want a time like 2006-01-02T15:04:05.000Z")

// parseTime parses the API's created_at (RFC 3339 in UTC with milliseconds)
// without time.Parse on the common path.
func parseTime(s string) (time.Time, error) {
	if len(s) == 24 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[19] == '.' && s[23] == 'Z' {
		n := func(i, j int) int {
			v := 0
			for _, c := range []byte(s[i:j]) {
				if c < '0' || c > '9' {
					return -1
				}
				v = v*10 + int(c-'0')
			}
			return v
		}
		y, mo, da, h, mi, se, ms := n(0, 4), n(5, 7), n(8, 10), n(11, 13), n(14, 16), n(17, 19), n(20, 23)
		if y >= 0 && 1 <= mo && mo <= 12 && 1 <= da && da <= 31 && 0 <= h && h < 24 && 0 <= mi && mi < 60 && 0 <= se && se < 60 && ms >= 0 {
			t := time.Date(y, time.Month(mo), da, h, mi, se, ms*int(time.Millisecond), time.UTC)
			if t.Day() == da {
				return t, nil
			}
		}
		return time.Time{}, errBadTime
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errBadTime
	}
	return t, nil
}
