package twittertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// LoadLines reads stream lines (one JSON message per line, CRLF or LF
// terminated) from files; patterns may be globs ("testdata/*.jsonl") or
// directories (every *.jsonl in them). Blank lines are skipped. Files are
// read in sorted order.
func LoadLines(patterns ...string) ([][]byte, error) {
	var files []string
	for _, p := range patterns {
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			p = filepath.Join(p, "*.jsonl")
		}
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("twittertest: data %q: %w", p, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("twittertest: data %q: no such files", p)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	var lines [][]byte
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("twittertest: %w", err)
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			l := bytes.TrimRight(sc.Bytes(), "\r")
			if len(bytes.TrimSpace(l)) > 0 {
				lines = append(lines, bytes.Clone(l))
			}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("twittertest: read %s: %w", f, err)
		}
	}
	return lines, nil
}

// entry is one recorded tweet, ready to serve.
type entry struct {
	id string
	// head is the message without matching_rules and without its closing
	// brace: filtered lines add their matching_rules to it.
	head []byte
	// sample is the sample-stream line: head, "}" and CRLF.
	sample []byte
	// idAt is where `"id":"<id>"` of data.id starts in head (-1 if not
	// found), for a looping replay to give each pass its own ids.
	idAt  int
	tweet Tweet
}

// prepare turns recorded lines into entries. The message's top-level keys
// keep their values byte for byte; they are laid out as data, includes,
// errors, then any others in sorted order, and matching_rules (which the
// fake computes from its own rules) is dropped.
func prepare(lines [][]byte) ([]entry, error) {
	out := make([]entry, 0, len(lines))
	for i, l := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(l, &m); err != nil {
			return nil, fmt.Errorf("twittertest: line %d is not a JSON object: %v", i+1, err)
		}
		if _, ok := m["data"]; !ok {
			return nil, fmt.Errorf("twittertest: line %d has no data", i+1)
		}
		var keys []string
		for k := range m {
			if k != "data" && k != "includes" && k != "errors" && k != "matching_rules" {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		keys = append([]string{"data", "includes", "errors"}, keys...)
		var head bytes.Buffer
		head.WriteByte('{')
		for _, k := range keys {
			v, ok := m[k]
			if !ok {
				continue
			}
			if head.Len() > 1 {
				head.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			head.Write(kb)
			head.WriteByte(':')
			head.Write(v)
		}
		e := entry{head: head.Bytes()}
		e.sample = append(bytes.Clone(e.head), '}', '\r', '\n')
		t, id, err := searchable(m)
		if err != nil {
			return nil, fmt.Errorf("twittertest: line %d: %v", i+1, err)
		}
		e.id, e.tweet = id, t
		e.idAt = bytes.Index(e.head, []byte(`"id":"`+id+`"`))
		out = append(out, e)
	}
	return out, nil
}

// searchable extracts what rules match on.
func searchable(m map[string]json.RawMessage) (Tweet, string, error) {
	var d struct {
		ID          string `json:"id"`
		Text        string `json:"text"`
		AuthorID    string `json:"author_id"`
		Lang        string `json:"lang"`
		Attachments struct {
			MediaKeys []string `json:"media_keys"`
		} `json:"attachments"`
		Entities struct {
			Hashtags []struct{ Tag string }      `json:"hashtags"`
			Mentions []struct{ Username string } `json:"mentions"`
			URLs     []struct{ URL string }      `json:"urls"`
		} `json:"entities"`
		Refs []struct{ Type string } `json:"referenced_tweets"`
	}
	if err := json.Unmarshal(m["data"], &d); err != nil {
		return Tweet{}, "", fmt.Errorf("data: %v", err)
	}
	if d.ID == "" {
		return Tweet{}, "", fmt.Errorf("data.id missing")
	}
	var inc struct {
		Users []struct{ ID, Username string } `json:"users"`
	}
	if raw, ok := m["includes"]; ok {
		_ = json.Unmarshal(raw, &inc) // includes are optional to matching
	}
	t := Tweet{Text: strings.ToLower(d.Text), AuthorID: d.AuthorID, Lang: d.Lang,
		HasLinks: len(d.Entities.URLs) > 0, HasMedia: len(d.Attachments.MediaKeys) > 0}
	for _, h := range d.Entities.Hashtags {
		t.Hashtags = append(t.Hashtags, strings.ToLower(h.Tag))
	}
	for _, x := range d.Entities.Mentions {
		t.Mentions = append(t.Mentions, strings.ToLower(x.Username))
	}
	for _, u := range inc.Users {
		if u.ID == d.AuthorID {
			t.Author = strings.ToLower(u.Username)
		}
	}
	for _, r := range d.Refs {
		t.Refs = append(t.Refs, r.Type)
	}
	t.index()
	return t, d.ID, nil
}
