package twitter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordedLines returns every line of the repository's testdata/*.jsonl,
// without CRLF.
func recordedLines(tb testing.TB) [][]byte {
	tb.Helper()
	recordedOnce.Do(func() { recorded, recordedErr = readRecorded() })
	if recordedErr != nil {
		tb.Fatal(recordedErr)
	}
	return recorded
}

var (
	recordedOnce sync.Once
	recorded     [][]byte
	recordedErr  error
)

func readRecorded() ([][]byte, error) {
	files, err := filepath.Glob("../../testdata/*.jsonl")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no testdata/*.jsonl (err %v)", err)
	}
	var lines [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for l := range bytes.SplitSeq(b, []byte("\r\n")) {
			if len(l) > 0 {
				lines = append(lines, l)
			}
		}
	}
	return lines, nil
}

// refTweet decodes a line with encoding/json, independently of Decode.
type refLine struct {
	Data struct {
		ID               string    `json:"id"`
		Text             string    `json:"text"`
		AuthorID         string    `json:"author_id"`
		ConversationID   string    `json:"conversation_id"`
		CreatedAt        time.Time `json:"created_at"`
		Lang             string    `json:"lang"`
		EditHistoryIDs   []string  `json:"edit_history_tweet_ids"`
		ReferencedTweets []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"referenced_tweets"`
		Entities struct {
			Hashtags []struct {
				Tag string `json:"tag"`
			} `json:"hashtags"`
			Mentions []struct {
				Username string `json:"username"`
			} `json:"mentions"`
			URLs []struct {
				URL      string `json:"url"`
				Expanded string `json:"expanded_url"`
			} `json:"urls"`
		} `json:"entities"`
	} `json:"data"`
	Includes struct {
		Users []struct {
			ID       string `json:"id"`
			Name     string `json:"name"`
			Username string `json:"username"`
		} `json:"users"`
	} `json:"includes"`
	MatchingRules []struct {
		ID  json.Number `json:"id"`
		Tag *string     `json:"tag"`
	} `json:"matching_rules"`
}

func (r *refLine) tweet(raw []byte) Tweet {
	d := r.Data
	t := Tweet{ID: d.ID, Text: d.Text, AuthorID: d.AuthorID, ConversationID: d.ConversationID,
		CreatedAt: d.CreatedAt, Lang: d.Lang, EditHistoryIDs: d.EditHistoryIDs, Raw: raw}
	for _, x := range d.ReferencedTweets {
		t.ReferencedTweets = append(t.ReferencedTweets, ReferencedTweet{Type: x.Type, ID: x.ID})
	}
	for _, x := range d.Entities.Hashtags {
		t.Hashtags = append(t.Hashtags, x.Tag)
	}
	for _, x := range d.Entities.Mentions {
		t.Mentions = append(t.Mentions, x.Username)
	}
	for _, x := range d.Entities.URLs {
		u := x.Expanded
		if u == "" {
			u = x.URL
		}
		t.URLs = append(t.URLs, u)
	}
	for _, x := range r.Includes.Users {
		t.Users = append(t.Users, User{ID: x.ID, Name: x.Name, Username: x.Username})
	}
	for _, x := range r.MatchingRules {
		m := MatchingRule{ID: x.ID.String()}
		if x.Tag != nil {
			m.Tag = *x.Tag
		}
		t.MatchingRules = append(t.MatchingRules, m)
	}
	return t
}

// TestDecodeMatchesEncodingJSON decodes every recorded line with Decode and
// with encoding/json and requires the same Tweet.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	lines := recordedLines(t)
	if len(lines) < 5000 {
		t.Fatalf("testdata holds %d lines, want >= 5000", len(lines))
	}
	var l Line
	langs := map[string]int{}
	var replies, quotes, edited, escaped int
	for i, raw := range lines {
		if err := Decode(raw, &l); err != nil {
			t.Fatalf("line %d: %v\n%.300s", i, err, raw)
		}
		if l.Kind != KindTweet {
			t.Fatalf("line %d: kind %v, want tweet", i, l.Kind)
		}
		var ref refLine
		if err := json.Unmarshal(raw, &ref); err != nil {
			t.Fatalf("line %d: encoding/json: %v", i, err)
		}
		want := ref.tweet(raw)
		if !reflect.DeepEqual(l.Tweet, want) {
			t.Fatalf("line %d differs:\n got %+v\nwant %+v", i, l.Tweet, want)
		}
		if !bytes.Equal(l.Tweet.Raw, raw) {
			t.Fatalf("line %d: Raw is not the line", i)
		}
		langs[l.Tweet.Lang]++
		for _, r := range l.Tweet.ReferencedTweets {
			switch r.Type {
			case "replied_to":
				replies++
			case "quoted":
				quotes++
			}
		}
		if len(l.Tweet.EditHistoryIDs) > 1 {
			edited++
		}
		if bytes.Contains(raw, []byte(`\u`)) {
			escaped++
		}
	}
	// The data must stay as varied as the issue asks.
	if len(langs) < 15 || replies < 100 || quotes < 100 || edited < 100 || escaped < 100 {
		t.Errorf("testdata not varied enough: %d languages, %d replies, %d quotes, %d edited, %d escaped lines",
			len(langs), replies, quotes, edited, escaped)
	}
}

func TestDecodeLines(t *testing.T) {
	created := time.Date(2025, 3, 1, 12, 0, 0, 44_000_000, time.UTC)
	tests := []struct {
		name string
		line string
		kind Kind
		want func(*testing.T, *Line)
	}{
		{"keep-alive", "", KindKeepAlive, nil},
		{"blank", " \t", KindKeepAlive, nil},
		{"tweet", `{"data":{"id":"1","text":"hi \u00e9\ud83d\ude00 \n","author_id":"2","created_at":"2025-03-01T12:00:00.044Z","lang":"fr",
			"entities":{"hashtags":[{"start":0,"end":2,"tag":"Go"}],"mentions":[{"username":"bob","id":"3"}],"urls":[{"url":"https://t.co/x"},{"url":"https://t.co/y","expanded_url":"https://e.x/y"}]},
			"referenced_tweets":[{"type":"quoted","id":"9"}],"edit_history_tweet_ids":["0","1"]},
			"includes":{"users":[{"id":"3","username":"bob"},{"id":"2","name":"Al","username":"al"}],"media":[{"x":[1,2.5e3,-0,true,false,null]}]},
			"matching_rules":[{"id":"7","tag":"go"},{"id":8,"tag":null}]}`, KindTweet, func(t *testing.T, l *Line) {
			want := Tweet{ID: "1", Text: "hi é😀 \n", AuthorID: "2", CreatedAt: created, Lang: "fr",
				Hashtags: []string{"Go"}, Mentions: []string{"bob"}, URLs: []string{"https://t.co/x", "https://e.x/y"},
				ReferencedTweets: []ReferencedTweet{{"quoted", "9"}}, EditHistoryIDs: []string{"0", "1"},
				MatchingRules: []MatchingRule{{"7", "go"}, {"8", ""}},
				// The author comes first.
				Users: []User{{ID: "2", Name: "Al", Username: "al"}, {ID: "3", Username: "bob"}}}
			want.Raw = l.Tweet.Raw
			if !reflect.DeepEqual(l.Tweet, want) {
				t.Errorf("got %+v\nwant %+v", l.Tweet, want)
			}
		}},
		{"lone surrogates and NUL", `{"data":{"id":"5","text":"a\ud83d b\udc00 c\u0000"}}`, KindTweet, func(t *testing.T, l *Line) {
			if want := "a\uFFFD b\uFFFD c\x00"; l.Tweet.Text != want {
				t.Errorf("text %q, want %q", l.Tweet.Text, want)
			}
		}},
		{"invalid UTF-8 replaced", "{\"data\":{\"id\":\"5\",\"text\":\"a\xffb\"}}", KindTweet, func(t *testing.T, l *Line) {
			if l.Tweet.Text != "a\uFFFDb" {
				t.Errorf("text %q", l.Tweet.Text)
			}
		}},
		{"tweet with partial errors", `{"data":{"id":"6","text":"x"},"errors":[{"title":"Not Found Error","type":"https://api.twitter.com/2/problems/resource-not-found"}]}`, KindTweet, func(t *testing.T, l *Line) {
			if l.Tweet.ID != "6" || len(l.Problems) != 1 || l.Problems[0].Title != "Not Found Error" || l.Problems[0].Disconnect() {
				t.Errorf("got %+v", l)
			}
		}},
		{"operational disconnect", `{"errors":[{"title":"operational-disconnect","disconnect_type":"OperationalDisconnect","detail":"This stream has been disconnected for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}`, KindError, func(t *testing.T, l *Line) {
			want := []Problem{{Title: "operational-disconnect", DisconnectType: "OperationalDisconnect",
				Detail: "This stream has been disconnected for operational reasons.", Type: "https://api.twitter.com/2/problems/operational-disconnect"}}
			if !reflect.DeepEqual(l.Problems, want) || !l.Problems[0].Disconnect() {
				t.Errorf("got %+v", l.Problems)
			}
		}},
		{"unknown message", `{"meta":{"sent":"x"},"future":[1,{"a":"b"}]}`, KindOther, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l Line
			if err := Decode([]byte(tt.line), &l); err != nil {
				t.Fatal(err)
			}
			if l.Kind != tt.kind {
				t.Fatalf("kind %v, want %v", l.Kind, tt.kind)
			}
			if tt.kind == KindTweet && string(l.Tweet.Raw) != tt.line {
				t.Errorf("Raw %q", l.Tweet.Raw)
			}
			if tt.want != nil {
				tt.want(t, &l)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		line   string
		offset int
		msg    string
	}{
		{`{"data":{"id":"1"}`, 18, "unexpected end of line"},
		{`{"data":{"id":"1"}}}`, 19, "after the object"},
		{`[1]`, 0, "want a JSON object"},
		{`{"data":{"text":"no id"}}`, 0, "data.id missing"},
		{`{"data":{"id":"1","text":5}}`, 25, "data.text: want a string"},
		{`{"data":[]}`, 8, "data: want an object"},
		{`{"data":{"id":"1","created_at":"yesterday"}}`, 31, "data.created_at"},
		{`{"data":{"id":"1","x":tru}}`, 22, "bad literal"},
		{`{"data":{"id":"1","x":01}}`, 23, "want ',' or '}'"},
		{`{"data":{"id":"1","x":1.}}`, 24, "no digits after"},
		{`{"data":{"id":"1","x":"a\qb"}}`, 24, `bad escape \q`},
		{`{"data":{"id":"1","x":"a\u12"}}`, 24, `bad \u escape`},
		{"{\"data\":{\"id\":\"1\",\"x\":\"a\tb\"}}", 24, "control character 0x09"},
		{`{"data":{"id":"1",}}`, 18, "want a string"},
		{`{"data" {}}`, 8, "want ':'"},
		{`{"data":{"id":"1"},"x":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`, 279, "nested too deeply"},
		{`{"data":{"id":"1","text":"abc`, 29, "unterminated string"},
		{`not json`, 0, "want a JSON object"},
	}
	for _, tt := range tests {
		var l Line
		err := Decode([]byte(tt.line), &l)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("%.40q: err %v, want a *SyntaxError", tt.line, err)
			continue
		}
		if se.Offset != tt.offset || !strings.Contains(se.Msg, tt.msg) {
			t.Errorf("%.40q: got %v, want byte %d: %s", tt.line, err, tt.offset, tt.msg)
		}
	}
}

// TestLineReader feeds a body one byte at a time (a line split across many
// DATA frames) and in one piece, and checks lines, offsets and oversized
// lines.
func TestLineReader(t *testing.T) {
	body := "a\r\n\r\nbb\r\n" + strings.Repeat("x", 40) + "\r\nccc\r\n" + strings.Repeat("y", 11) + "\r\nd\r\npartial"
	type got struct {
		line string
		off  int64
		size int
		what split
	}
	want := []got{
		{"a", 0, 1, splitLine}, {"", 3, 0, splitLine}, {"bb", 5, 2, splitLine},
		{"", 9, 0, splitOver}, {"ccc", 51, 3, splitLine},
		{"", 56, 11, splitOver}, {"d", 69, 1, splitLine},
	}
	for _, tc := range []struct {
		chunk int
		keep  bool
	}{{1, false}, {3, false}, {7, false}, {len(body), false}, {1, true}, {7, true}, {len(body), true}} {
		chunk := tc.chunk
		lr := newLineReader(&chunkReader{b: []byte(body), n: chunk}, 10)
		lr.keep = tc.keep
		var out []got
		var held [][]byte // keep: lines stay valid after later reads
		for {
			n, err := lr.fill()
			for n > 0 {
				line, off, size, what := lr.next()
				if what == splitNone {
					break
				}
				out = append(out, got{string(line), off, size, what})
				if what == splitLine {
					held = append(held, line)
				}
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		// An oversized line is reported as soon as it passes the limit, so
		// with small chunks its size is what was seen by then.
		for i := range out {
			if out[i].what == splitOver && out[i].size > 10 {
				out[i].size = want[i].size
			}
		}
		if !reflect.DeepEqual(out, want) {
			t.Errorf("chunk %d keep %v:\n got %v\nwant %v", chunk, tc.keep, out, want)
		}
		if tc.keep {
			var lines []string
			for _, l := range held {
				lines = append(lines, string(l))
			}
			if want := []string{"a", "", "bb", "ccc", "d"}; !slices.Equal(lines, want) {
				t.Errorf("chunk %d keep: lines held until the end read %q, want %q", chunk, lines, want)
			}
		}
		if lr.offset() != int64(len(body)-len("partial")) || lr.pending() != len("partial") {
			t.Errorf("chunk %d: offset %d, %d bytes pending", chunk, lr.offset(), lr.pending())
		}
	}
}

type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// BenchmarkDecode splits and decodes the recorded stream (testdata/*.jsonl,
// CRLF framing, one keep-alive per 100 tweets) as the producer's read loop
// does, on one goroutine.
func BenchmarkDecode(b *testing.B) {
	lines := recordedLines(b)
	var body []byte
	for i, l := range lines {
		body = append(body, l...)
		body = append(body, "\r\n"...)
		if i%100 == 99 {
			body = append(body, "\r\n"...)
		}
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var l Line
	tweets := 0
	for b.Loop() {
		lr := newLineReader(bytes.NewReader(body), DefaultMaxLineSize)
		for {
			n, err := lr.fill()
			for n > 0 {
				line, _, _, what := lr.next()
				if what == splitNone {
					break
				}
				if err := Decode(line, &l); err != nil {
					b.Fatal(err)
				}
				if l.Kind == KindTweet {
					tweets++
				}
			}
			if err != nil {
				break
			}
		}
	}
	b.ReportMetric(float64(tweets)/b.Elapsed().Seconds(), "tweets/s")
}

// FuzzDecode checks Decode never panics, accepts only well-formed JSON
// objects, keeps the raw line, and agrees with encoding/json on the fields
// both can read. The seed corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"data":{"id":"1","text":"hi"},"matching_rules":[{"id":"2","tag":"t"}]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var l Line
		err := Decode(line, &l)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > len(line) {
				t.Fatalf("error %v is not a *SyntaxError within the line", err)
			}
			return
		}
		if l.Kind == KindKeepAlive {
			if len(bytes.TrimSpace(line)) != 0 {
				t.Fatalf("%q decoded as a keep-alive", line)
			}
			return
		}
		if !json.Valid(line) {
			t.Fatalf("Decode accepted invalid JSON %q", line)
		}
		if l.Kind != KindTweet {
			return
		}
		if !bytes.Equal(l.Tweet.Raw, line) {
			t.Fatalf("Raw %q != line %q", l.Tweet.Raw, line)
		}
		// encoding/json matches keys case-insensitively; the API's keys are
		// exact, and so is Decode: compare only lines without case variants.
		lower := bytes.ToLower(line)
		for _, k := range []string{`"data"`, `"id"`, `"text"`, `"author_id"`, `"lang"`, `"created_at"`, `"includes"`, `"matching_rules"`, `"entities"`} {
			if bytes.Count(lower, []byte(k)) != bytes.Count(line, []byte(k)) {
				return
			}
		}
		var ref refLine
		if json.Unmarshal(line, &ref) != nil {
			return // a shape encoding/json refuses (numeric ids, null tags...)
		}
		d := ref.Data
		tw := l.Tweet
		if tw.ID != d.ID || tw.Text != d.Text || tw.AuthorID != d.AuthorID || tw.Lang != d.Lang || !tw.CreatedAt.Equal(d.CreatedAt) {
			t.Fatalf("Decode and encoding/json disagree on %q:\n got %q %q %q %q %v\nwant %q %q %q %q %v", line,
				tw.ID, tw.Text, tw.AuthorID, tw.Lang, tw.CreatedAt, d.ID, d.Text, d.AuthorID, d.Lang, d.CreatedAt)
		}
	})
}
