package twittertest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	linesOnce sync.Once
	allLines  [][]byte
	linesErr  error
)

// recorded returns the first n recorded lines of the repository's testdata.
func recorded(t testing.TB, n int) [][]byte {
	t.Helper()
	linesOnce.Do(func() { allLines, linesErr = LoadLines("../../../testdata") })
	if linesErr != nil {
		t.Fatal(linesErr)
	}
	if n > len(allLines) {
		t.Fatalf("want %d lines, testdata has %d", n, len(allLines))
	}
	return allLines[:n]
}

func start(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = "tok"
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// call sends a request with the server's token and decodes the JSON answer.
func call(t testing.TB, srv *Server, method, path, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+srv.Token())
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s answered over %s", method, path, resp.Proto)
	}
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: %d %q is not JSON", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, out
}

func TestRootAndAuth(t *testing.T) {
	for _, h2c := range []bool{true, false} {
		srv := start(t, Config{H2C: h2c})
		code, _, body := call(t, srv, "GET", "/", "")
		if code != 200 || body["proto"] != "HTTP/2.0" {
			t.Errorf("h2c %v: GET / %d %v", h2c, code, body)
		}
		for _, auth := range []string{"", "Bearer wrong", "Basic tok", "Bearer"} {
			req, _ := http.NewRequest("GET", srv.URL()+"/2/tweets/sample/stream", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var p map[string]any
			json.NewDecoder(resp.Body).Decode(&p)
			resp.Body.Close()
			if resp.StatusCode != 401 || p["title"] != "Unauthorized" || p["detail"] != "Unauthorized" || p["type"] != "about:blank" || p["status"] != 401.0 {
				t.Errorf("auth %q: %d %v", auth, resp.StatusCode, p)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("content type %q", ct)
			}
		}
	}
	srv := start(t, Config{})
	block, _ := pem.Decode(srv.CertPEM())
	if block == nil {
		t.Fatal("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || cert.VerifyHostname("127.0.0.1") != nil {
		t.Errorf("certificate: %v", err)
	}
}

func TestRulesAPI(t *testing.T) {
	srv := start(t, Config{H2C: true, MaxRules: 4})
	const rules = "/2/tweets/search/stream/rules"

	code, _, body := call(t, srv, "GET", rules, "")
	if code != 200 || body["data"] != nil || body["meta"].(map[string]any)["result_count"] != 0.0 {
		t.Fatalf("empty GET: %d %v", code, body)
	}
	code, _, body = call(t, srv, "POST", rules, `{"add":[{"value":"cat has:media","tag":"cats"},{"value":"#AI"},{"value":"(dog","tag":"bad"}]}`)
	data, _ := body["data"].([]any)
	sum := body["meta"].(map[string]any)["summary"].(map[string]any)
	if code != 201 || len(data) != 2 || sum["created"] != 2.0 || sum["not_created"] != 1.0 || sum["valid"] != 2.0 || sum["invalid"] != 1.0 {
		t.Fatalf("add: %d %v", code, body)
	}
	first := data[0].(map[string]any)
	catID, ok := first["id"].(string)
	if !ok || first["value"] != "cat has:media" || first["tag"] != "cats" {
		t.Fatalf("created rule %v: want a string id", first)
	}
	if _, err := strconv.ParseUint(catID, 10, 64); err != nil {
		t.Errorf("rule id %q is not a decimal string", catID)
	}
	e := body["errors"].([]any)[0].(map[string]any)
	if e["value"] != "(dog" || e["title"] != "UnprocessableEntity" || e["type"] != typeInvalidRules || len(e["details"].([]any)) != 1 {
		t.Errorf("invalid rule error %v", e)
	}

	// Duplicates name the existing rule; a dry run stores nothing.
	code, _, body = call(t, srv, "POST", rules+"?dry_run=true", `{"add":[{"value":"cat has:media"},{"value":"lang:fr","tag":"fr"}]}`)
	e = body["errors"].([]any)[0].(map[string]any)
	if code != 200 || e["title"] != "DuplicateRule" || e["id"] != catID || e["type"] != typeDuplicateRules ||
		body["meta"].(map[string]any)["summary"].(map[string]any)["created"] != 1.0 {
		t.Errorf("dry run: %d %v", code, body)
	}
	if got := len(srv.Rules()); got != 2 {
		t.Errorf("dry run stored rules: %d held", got)
	}

	// The cap: 2 held, 4 allowed.
	_, _, body = call(t, srv, "POST", rules, `{"add":[{"value":"a"},{"value":"b"},{"value":"c"}]}`)
	if errs := body["errors"].([]any); len(errs) != 1 || errs[0].(map[string]any)["type"] != typeRuleCap {
		t.Errorf("rule cap: %v", body)
	}

	code, _, body = call(t, srv, "GET", rules+"?ids="+catID, "")
	if code != 200 || len(body["data"].([]any)) != 1 || body["meta"].(map[string]any)["result_count"] != 1.0 {
		t.Errorf("GET ids: %v", body)
	}

	code, _, body = call(t, srv, "POST", rules, `{"delete":{"ids":["`+catID+`","999"],"values":["a"]}}`)
	sum = body["meta"].(map[string]any)["summary"].(map[string]any)
	if code != 200 || sum["deleted"] != 2.0 || sum["not_deleted"] != 1.0 || body["errors"].([]any)[0].(map[string]any)["id"] != "999" {
		t.Errorf("delete: %d %v", code, body)
	}
	var vals []string
	for _, r := range srv.Rules() {
		vals = append(vals, r.Value)
	}
	if strings.Join(vals, ",") != "#AI,b" {
		t.Errorf("rules left: %v", vals)
	}

	for _, bad := range []string{`{`, `{"add":[],"delete":{"ids":[]}}`, `{}`, `{"add":[{"tag":"x"}]}`, `{"nope":1}`} {
		code, _, body = call(t, srv, "POST", rules, bad)
		if code != 400 || body["title"] != "Invalid Request" {
			t.Errorf("body %s: %d %v", bad, code, body)
		}
	}
}

// readLines reads a stream body's lines (CRLF required) until n tweet lines
// or the context ends; it returns every line, keep-alives as "".
func readLines(t testing.TB, body io.Reader, n int) []string {
	t.Helper()
	r := bufio.NewReaderSize(body, 1<<20)
	var out []string
	tweets := 0
	for tweets < n {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d lines: %v", len(out), err)
		}
		if !strings.HasSuffix(l, "\r\n") {
			t.Fatalf("line %d does not end with CRLF: %.80q", len(out), l)
		}
		l = strings.TrimSuffix(l, "\r\n")
		if l != "" {
			tweets++
		}
		out = append(out, l)
	}
	return out
}

func openStream(t testing.TB, srv *Server, ctx context.Context, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+srv.Token())
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestSampleAndFilteredStreams(t *testing.T) {
	lines := recorded(t, 300)
	srv := start(t, Config{H2C: true, Record: true, Lines: lines})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := openStream(t, srv, ctx, "/2/tweets/sample/stream?tweet.fields=id,text&expansions=author_id")
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("sample: %s %d", resp.Proto, resp.StatusCode)
	}
	got := readLines(t, resp.Body, 300)
	<-srv.Done()
	for i, l := range got {
		if strings.Contains(l, "matching_rules") {
			t.Fatalf("sample line %d has matching_rules", i)
		}
		var m map[string]json.RawMessage
		var orig map[string]json.RawMessage
		json.Unmarshal([]byte(l), &m)
		json.Unmarshal(lines[i], &orig)
		if !bytes.Equal(m["data"], orig["data"]) || !bytes.Equal(m["includes"], orig["includes"]) {
			t.Fatalf("sample line %d is not recorded line %d", i, i)
		}
	}
	if st := srv.Stats(); st.Tweets != 300 || st.Published != 300 || len(srv.Served()) != 300 {
		t.Errorf("stats %+v", st)
	}
	resp.Body.Close()

	// The filtered stream goes on where the timeline is: at its end. A new
	// server with rules serves only what they match.
	srv = start(t, Config{H2C: true, Lines: lines})
	jaID, _ := srv.AddRule("lang:ja", "ja")
	linkID, _ := srv.AddRule("has:links", "")
	resp = openStream(t, srv, ctx, "/2/tweets/search/stream")
	want := 0
	for _, l := range lines {
		if bytes.Contains(l, []byte(`"lang":"ja"`)) || bytes.Contains(l, []byte(`"urls":[`)) {
			want++
		}
	}
	got = readLines(t, resp.Body, want)
	<-srv.Done()
	for _, l := range got {
		var m struct {
			Data  struct{ Lang string }
			Rules []struct{ ID, Tag string } `json:"matching_rules"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		for _, r := range m.Rules {
			if (r.ID == jaID && (r.Tag != "ja" || m.Data.Lang != "ja")) || (r.ID == linkID && (r.Tag != "" || !strings.Contains(l, `"urls":[`))) || (r.ID != jaID && r.ID != linkID) {
				t.Fatalf("wrong matching rule %+v in %.200s", r, l)
			}
		}
		if len(m.Rules) == 0 {
			t.Fatalf("filtered line without matching_rules: %.200s", l)
		}
	}
	if st := srv.Stats(); st.Tweets != int64(want) || st.Published != 300 {
		t.Errorf("filtered: served %d of %d published, want %d", st.Tweets, st.Published, want)
	}
}

func TestLoopGivesFreshIDs(t *testing.T) {
	lines := recorded(t, 3)
	srv := start(t, Config{H2C: true, Loop: true, Lines: lines})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := readLines(t, openStream(t, srv, ctx, "/2/tweets/sample/stream").Body, 9)
	seen := map[string]bool{}
	for i, l := range got {
		var m struct{ Data struct{ ID string } }
		json.Unmarshal([]byte(l), &m)
		var o struct{ Data struct{ ID string } }
		json.Unmarshal(lines[i%3], &o)
		id, _ := strconv.ParseInt(m.Data.ID, 10, 64)
		orig, _ := strconv.ParseInt(o.Data.ID, 10, 64)
		if seen[m.Data.ID] || id != orig+int64(i/3)*passShift {
			t.Errorf("line %d: id %s (recorded %s)", i, m.Data.ID, o.Data.ID)
		}
		seen[m.Data.ID] = true
	}
	select {
	case <-srv.Done():
		t.Error("a looping replay is never done")
	default:
	}
}

func TestRateAndKeepAlive(t *testing.T) {
	srv := start(t, Config{H2C: true, Rate: 200, Lines: recorded(t, 50), KeepAlive: -1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	begin := time.Now()
	readLines(t, openStream(t, srv, ctx, "/2/tweets/sample/stream").Body, 21)
	// 21 tweets at 200/s: the first at once, the 21st 100 ms later.
	if el := time.Since(begin); el < 95*time.Millisecond || el > 2*time.Second {
		t.Errorf("21 tweets at 200/s took %v", el)
	}

	srv = start(t, Config{H2C: true, KeepAlive: 10 * time.Millisecond})
	resp := openStream(t, srv, ctx, "/2/tweets/sample/stream")
	r := bufio.NewReader(resp.Body)
	for i := range 5 {
		l, err := r.ReadString('\n')
		if err != nil || l != "\r\n" {
			t.Fatalf("keep-alive %d: %q %v", i, l, err)
		}
	}
	if st := srv.Stats(); st.KeepAlives < 5 {
		t.Errorf("%d keep-alives counted", st.KeepAlives)
	}
}

func TestConnectFaults(t *testing.T) {
	srv := start(t, Config{H2C: true, Lines: recorded(t, 5), Faults: Faults{Unauthorized: 1, Forbidden: 1, RateLimited: 1,
		RateLimitReset: 30 * time.Second, UsageCapped: 1, Unavailable: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const path = "/2/tweets/sample/stream"
	want := []struct {
		status int
		title  string
	}{{401, "Unauthorized"}, {403, "Client Forbidden"}, {429, "Too Many Requests"}, {429, "UsageCapExceeded"}, {503, "Service Unavailable"}, {200, ""}}
	for i, w := range want {
		resp := openStream(t, srv, ctx, path)
		if resp.StatusCode != w.status {
			t.Fatalf("connect %d: %d, want %d", i, resp.StatusCode, w.status)
		}
		if w.status == 200 {
			readLines(t, resp.Body, 1)
			break
		}
		var p map[string]any
		json.NewDecoder(resp.Body).Decode(&p)
		if p["title"] != w.title {
			t.Errorf("connect %d: title %v, want %s", i, p["title"], w.title)
		}
		if w.title == "Too Many Requests" {
			reset, err := strconv.ParseInt(resp.Header.Get("x-rate-limit-reset"), 10, 64)
			if d := time.Until(time.Unix(reset, 0)); err != nil || d < 28*time.Second || d > 31*time.Second || resp.Header.Get("x-rate-limit-remaining") != "0" {
				t.Errorf("429 headers %v", resp.Header)
			}
		}
	}
	if f := srv.Faults(); f != (Faults{RateLimitReset: 30 * time.Second}) {
		t.Errorf("faults left %+v", f)
	}
	st := srv.Stats()
	if st.Rejected[401] != 1 || st.Rejected[403] != 1 || st.Rejected[429] != 2 || st.Rejected[503] != 1 || st.Connections != 1 {
		t.Errorf("stats %+v", st)
	}

	// A second concurrent connection is refused like the API does.
	srv.SetFaults(Faults{MaxConnections: 1})
	resp := openStream(t, srv, ctx, path)
	var p map[string]any
	json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != 429 || p["connection_issue"] != "TooManyConnections" || p["title"] != "ConnectionException" {
		t.Errorf("second connection: %d %v", resp.StatusCode, p)
	}
	for _, q := range []string{"?backfill_minutes=9", "?tweet.fields=bogus", "?expansions=author_id,nope"} {
		resp := openStream(t, srv, ctx, path+q)
		json.NewDecoder(resp.Body).Decode(&p)
		if resp.StatusCode != 400 || p["title"] != "Invalid Request" {
			t.Errorf("%s: %d %v", q, resp.StatusCode, p)
		}
	}
}

func TestStreamFaults(t *testing.T) {
	lines := recorded(t, 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var current *Server
	srv := func(*testing.T) *Server { return current }
	tests := []struct {
		name  string
		f     Faults
		after func(t *testing.T, r *bufio.Reader)
	}{
		{"end", Faults{DisconnectAfterTweets: 2}, func(t *testing.T, r *bufio.Reader) {
			if _, err := r.ReadString('\n'); err != io.EOF {
				t.Errorf("after the disconnect: %v, want EOF", err)
			}
		}},
		{"reset", Faults{DisconnectAfterTweets: 2, DisconnectMode: DisconnectReset}, func(t *testing.T, r *bufio.Reader) {
			if _, err := r.ReadString('\n'); err == nil || err == io.EOF {
				t.Errorf("after the reset: %v, want a stream error", err)
			}
		}},
		{"operational disconnect", Faults{OperationalDisconnectAfter: 2}, func(t *testing.T, r *bufio.Reader) {
			l, _ := r.ReadString('\n')
			if !strings.Contains(l, `"disconnect_type":"OperationalDisconnect"`) || !strings.HasSuffix(l, "\r\n") {
				t.Errorf("in-stream error %q", l)
			}
			if _, err := r.ReadString('\n'); err != io.EOF {
				t.Errorf("after the error: %v, want EOF", err)
			}
		}},
		{"malformed and oversized", Faults{MalformedEvery: 1, OversizedEvery: 2, OversizedSize: 5000}, func(t *testing.T, r *bufio.Reader) {
			// After the second tweet: a malformed line (one follows every
			// tweet), then an oversized one (every second tweet).
			l1, _ := r.ReadString('\n')
			l2, _ := r.ReadString('\n')
			if json.Valid([]byte(strings.TrimSpace(l1))) || len(l2) != 5000+2 || !json.Valid([]byte(strings.TrimSpace(l2))) {
				t.Errorf("lines after the second tweet: %.40q, %d bytes", l1, len(l2))
			}
			if st := srv(t).Stats(); st.Malformed < 2 || st.Oversized < 1 {
				t.Errorf("%d malformed, %d oversized served", st.Malformed, st.Oversized)
			}
		}},
		{"split frames", Faults{SplitFrames: 3}, func(t *testing.T, r *bufio.Reader) {
			l, _ := r.ReadString('\n')
			if !json.Valid([]byte(strings.TrimSpace(l))) {
				t.Errorf("split line %.60q", l)
			}
		}},
		{"stall", Faults{Stall: true, StallAfterTweets: 2}, func(t *testing.T, r *bufio.Reader) {
			got := make(chan error, 1)
			go func() { _, err := r.ReadByte(); got <- err }()
			select {
			case err := <-got:
				t.Errorf("read during a stall: %v", err)
			case <-time.After(100 * time.Millisecond): // five keep-alive intervals of silence
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			current = start(t, Config{H2C: true, Lines: lines, Faults: tt.f, KeepAlive: 20 * time.Millisecond})
			resp := openStream(t, current, ctx, "/2/tweets/sample/stream")
			r := bufio.NewReader(resp.Body)
			for i := range 2 {
				l, err := r.ReadString('\n')
				if err != nil || strings.TrimSpace(l) != string(lines[i]) && !strings.Contains(l, `"data"`) {
					t.Fatalf("tweet %d: %.60q %v", i, l, err)
				}
				if i == 0 && tt.f.MalformedEvery > 0 {
					r.ReadString('\n') // the malformed line after the first tweet
				}
			}
			tt.after(t, r)
		})
	}
}

// TestDisconnectClose checks the close mode drops the TCP connection: the
// client sees an error, not a clean end (what was written just before may
// be lost with the connection, as on a real network).
func TestDisconnectClose(t *testing.T) {
	srv := start(t, Config{H2C: true, Lines: recorded(t, 20), Faults: Faults{DisconnectAfterTweets: 2, DisconnectMode: DisconnectClose}})
	resp := openStream(t, srv, context.Background(), "/2/tweets/sample/stream")
	_, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatal("read the whole body: want a connection error")
	}
	if st := srv.Stats(); st.Disconnects != 1 || st.Tweets != 2 {
		t.Errorf("%d disconnects after %d tweets", st.Disconnects, st.Tweets)
	}
}

func TestBackfillReplays(t *testing.T) {
	srv := start(t, Config{H2C: true, Lines: recorded(t, 50), BackfillLimit: 7, Faults: Faults{DisconnectAfterTweets: 10}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Each connection is read to its end (after 10 tweets): the server has
	// counted them by then.
	read := func(path string) []string {
		body := openStream(t, srv, ctx, path).Body
		lines := readLines(t, body, 10)
		if rest, err := io.ReadAll(body); err != nil || len(rest) != 0 {
			t.Fatalf("after 10 tweets: %q %v, want the end of the stream", rest, err)
		}
		return lines
	}
	first := read("/2/tweets/sample/stream")
	second := read("/2/tweets/sample/stream?backfill_minutes=1")
	third := read("/2/tweets/sample/stream")
	// backfill replays the last 7 (the limit), then goes on; without it the
	// stream goes on where it was.
	if second[0] != first[3] || second[6] != first[9] || second[7] == first[9] {
		t.Errorf("backfill did not replay the last 7 tweets")
	}
	for _, l := range append(first, second...) {
		if l == third[0] {
			t.Errorf("a connection without backfill replayed a tweet")
		}
	}
	// 10 + 3 new on the second connection + 10: 23 distinct, 30 served.
	if st := srv.Stats(); st.Published != 23 || st.Tweets != 30 {
		t.Errorf("published %d, served %d; want 23 and 30", st.Published, st.Tweets)
	}
}

func TestCloseEndsStreams(t *testing.T) {
	srv, err := NewServer(Config{H2C: true, Lines: recorded(t, 5)})
	if err != nil {
		t.Fatal(err)
	}
	resp := openStream(t, srv, context.Background(), "/2/tweets/sample/stream")
	readLines(t, resp.Body, 5)
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs with an open stream")
	}
	// The stream ends (cleanly or not) instead of hanging.
	ended := make(chan struct{})
	go func() {
		io.Copy(io.Discard, resp.Body)
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("stream still open after Close")
	}
	if st := srv.Stats(); st.Active != 0 {
		t.Errorf("%d streams active after Close", st.Active)
	}
	if _, err := LoadLines("no/such/dir/*.jsonl"); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("LoadLines of nothing: %v", err)
	}
}

// TestLiveTimeline checks a live timeline moves while no client is
// connected: a new connection starts at the present, and backfill_minutes
// (on a client's first connection too) replays what was published before,
// up to BackfillLimit.
func TestLiveTimeline(t *testing.T) {
	if _, err := NewServer(Config{Live: true}); err == nil || !strings.Contains(err.Error(), "Config.Live needs a Rate") {
		t.Errorf("Live without a Rate: %v", err)
	}
	t.Run("positions", func(t *testing.T) {
		srv := start(t, Config{H2C: true, Lines: recorded(t, 5000), Rate: 100, Live: true, BackfillLimit: 1000})
		at := func(d time.Duration) time.Time { return srv.start.Add(d) }
		tests := []struct {
			at       time.Duration
			backfill int
			want     int64
		}{
			{0, 0, 0},
			{-time.Second, 0, 0}, // a clock behind the start
			{2 * time.Second, 0, 200},
			{2 * time.Second, 1, 0}, // everything so far
			{5 * time.Second, 5, 0},
			{30 * time.Second, 1, 2000}, // the limit: 1000 back
			{90 * time.Second, 1, 4000}, // the replay ended at 5000 (50 s): 1000 back
			{80*time.Second + 5*time.Millisecond, 0, 5000},
		}
		for _, tt := range tests {
			if got := srv.liveStartPos(at(tt.at), tt.backfill); got != tt.want {
				t.Errorf("at %v with backfill %d: position %d, want %d", tt.at, tt.backfill, got, tt.want)
			}
		}
		if d := srv.due(250).Sub(srv.start); d != 2500*time.Millisecond {
			t.Errorf("position 250 due at %v, want 2.5s", d)
		}
	})
	t.Run("streams", func(t *testing.T) {
		lines := recorded(t, 5000)
		index := map[string]int{}
		for i, l := range lines {
			var m struct{ Data struct{ ID string } }
			json.Unmarshal(l, &m)
			index[m.Data.ID] = i
		}
		pos := func(line string) int {
			var m struct{ Data struct{ ID string } }
			json.Unmarshal([]byte(line), &m)
			i, ok := index[m.Data.ID]
			if !ok {
				t.Fatalf("served a tweet not recorded: %.80s", line)
			}
			return i
		}
		srv := start(t, Config{H2C: true, Lines: lines, Rate: 1000, Live: true, KeepAlive: -1})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		read := func(path string) []int {
			resp := openStream(t, srv, ctx, path)
			defer resp.Body.Close()
			var out []int
			for _, l := range readLines(t, resp.Body, 5) {
				out = append(out, pos(l))
			}
			return out
		}
		first := read("/2/tweets/sample/stream")
		// Wait for the timeline to move on by 200 with no client.
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		for srv.Stats().Timeline < int64(first[4])+200 {
			select {
			case <-tick.C:
			case <-deadline:
				t.Fatal("the live timeline does not move")
			}
		}
		second := read("/2/tweets/sample/stream")
		third := read("/2/tweets/sample/stream?backfill_minutes=1")
		for i := 1; i < 5; i++ {
			if first[i] != first[i-1]+1 || second[i] != second[i-1]+1 || third[i] != third[i-1]+1 {
				t.Fatalf("not in timeline order: %v %v %v", first, second, third)
			}
		}
		if second[0] < first[4]+200 {
			t.Errorf("the second connection started at %d, the first left at %d: the timeline waited", second[0], first[4])
		}
		if third[0] != 0 {
			t.Errorf("backfill_minutes=1 started at %d, want 0 (all published within the minute)", third[0])
		}
	})
}
