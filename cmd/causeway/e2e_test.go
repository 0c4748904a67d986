package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
)

// corpus is the recorded stream the end-to-end tests replay.
type corpus struct {
	lines   [][]byte
	ids     []string        // every tweet id, in order
	nulText map[string]bool // tweets jsonb rejects: \u0000 or a lone surrogate
}

var loadCorpus = sync.OnceValues(func() (*corpus, error) {
	lines, err := twittertest.LoadLines("../../testdata/*.jsonl")
	if err != nil {
		return nil, err
	}
	c := &corpus{lines: lines, nulText: map[string]bool{}}
	for _, line := range lines {
		var l twitter.Line
		if err := twitter.Decode(line, &l); err != nil || l.Kind != twitter.KindTweet {
			return nil, fmt.Errorf("testdata line is not a tweet: %q", line[:min(80, len(line))])
		}
		c.ids = append(c.ids, l.Tweet.ID)
		if jsonbRejects(line) {
			c.nulText[l.Tweet.ID] = true
		}
	}
	return c, nil
})

// jsonbRejects reports whether a JSON line holds what PostgreSQL's jsonb
// refuses: an escaped NUL or an escaped surrogate that is not half of a pair.
func jsonbRejects(line []byte) bool {
	if bytes.Contains(line, []byte(`\u0000`)) {
		return true
	}
	surrogate := func(i int) (high, low bool) {
		if i+6 > len(line) || line[i] != '\\' || line[i+1] != 'u' || (line[i+2]|0x20) != 'd' {
			return false, false
		}
		switch line[i+3] | 0x20 {
		case '8', '9', 'a', 'b':
			return true, false
		case 'c', 'd', 'e', 'f':
			return false, true
		}
		return false, false
	}
	for i := 0; i < len(line); i++ {
		if line[i] == '\\' && i+1 < len(line) && line[i+1] == '\\' {
			i++ // an escaped backslash
			continue
		}
		high, low := surrogate(i)
		if low {
			return true // a low half with no high half before it
		}
		if high {
			if _, low := surrogate(i + 6); !low {
				return true
			}
			i += 11
		}
	}
	return false
}

func testCorpus(t testing.TB) *corpus {
	t.Helper()
	c, err := loadCorpus()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// result is what a run of the binary left behind.
type result struct {
	status         int
	stdout, stderr string
	sum            summary
}

// runBinary runs causeway in-process with args, feeding it sigs, and fails
// the test unless it exits 0.
func runBinary(t testing.TB, args []string, sigs chan os.Signal) result {
	t.Helper()
	r, err := runBinaryErr(t, args, sigs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runBinaryErr is runBinary for other goroutines: it reports instead of
// failing the test.
func runBinaryErr(t testing.TB, args []string, sigs chan os.Signal) (result, error) {
	return runBinaryHUP(t, args, sigs, nil)
}

// runBinaryHUP is runBinaryErr with a SIGHUP channel (nil: none).
func runBinaryHUP(t testing.TB, args []string, sigs chan os.Signal, hup chan os.Signal) (result, error) {
	path := filepath.Join(t.TempDir(), "summary.json")
	args = append(args, "-summary-json", path, "-progress", "0", "-log-level", cmp.Or(os.Getenv("CAUSEWAY_TEST_LOG_LEVEL"), "warn"))
	if !slices.Contains(args, "-spill-dir") && (len(args) == 0 || (args[0] != "load" && args[0] != "archive" && args[0] != "hashtags")) {
		// Each run its own spill: a spill is one process's (it is locked).
		args = append(args, "-spill-dir", filepath.Join(t.TempDir(), "spill"))
	}
	if sigs == nil {
		sigs = make(chan os.Signal)
	}
	var stdout, stderr syncBuffer
	env := func(string) (string, bool) { return "", false }
	status := run(context.Background(), args, env, &stdout, &stderr, sigs, hup)
	r := result{status: status, stdout: stdout.String(), stderr: stderr.String()}
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &r.sum); err != nil {
			return r, fmt.Errorf("summary JSON: %v", err)
		}
	}
	if status != 0 {
		return r, fmt.Errorf("causeway exited %d\nstderr:\n%s", status, tail(r.stderr, 3000))
	}
	return r, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// sinks are the Kafka cluster and Postgres table a run writes to.
type sinks struct {
	brokers string
	dbURL   string
	table   string
	pool    *pgxpool.Pool
}

func newSinks(t testing.TB, brokers string) *sinks {
	t.Helper()
	pool, schema := pgtest.Schema(t)
	url := pgtest.URL(t)
	return &sinks{brokers: brokers, dbURL: withSearchPath(url, schema), table: "tweets", pool: pool}
}

func withSearchPath(url, schema string) string {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return url + sep + "search_path=" + schema
}

func (s *sinks) args() []string {
	return []string{"-kafka-brokers", s.brokers, "-database-url", s.dbURL, "-pg-table", s.table}
}

// check asserts the run's accounting balances and that Kafka and Postgres
// hold exactly what the summary says: every acknowledged tweet once, no
// duplicates, nothing else.
func (s *sinks) check(t *testing.T, r result, c *corpus, wantAll bool) {
	t.Helper()
	sum := r.sum
	if sum.Received != sum.Emitted+sum.Deduplicated+sum.Malformed+sum.StreamErrors+sum.Ignored+sum.Abandoned {
		t.Errorf("stream accounting does not balance: %+v", sum)
	}
	if sum.Emitted != sum.Acked+sum.Failed+sum.Dropped || sum.Unfinished != 0 {
		t.Errorf("topology accounting does not balance: emitted %d, acked %d, failed %d, dropped %d, unfinished %d",
			sum.Emitted, sum.Acked, sum.Failed, sum.Dropped, sum.Unfinished)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Postgres: the primary key rules out duplicates; check the exact set.
	rows, err := s.pool.Query(ctx, "SELECT id::text FROM "+s.table)
	if err != nil {
		t.Fatal(err)
	}
	inPG := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		inPG[id] = true
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	// Kafka: every record keyed by its tweet id.
	recs, err := kafkatest.ReadAllFrom(ctx, s.brokers, "tweets")
	if err != nil {
		t.Fatal(err)
	}
	inKafka := map[string]int{}
	for _, rec := range recs {
		inKafka[string(rec.Key)]++
	}
	for id, n := range inKafka {
		if n != 1 {
			t.Errorf("tweet %s is in Kafka %d times", id, n)
		}
	}
	if int64(len(inPG)) != sum.PostgresRows || sum.PostgresNewRows != sum.PostgresRows || sum.PostgresTableRows != sum.PostgresRows {
		t.Errorf("Postgres holds %d tweets; the summary says %d stored, %d new, table %d", len(inPG), sum.PostgresRows, sum.PostgresNewRows, sum.PostgresTableRows)
	}
	if int64(len(recs)) != sum.KafkaRecords || sum.KafkaTopicRecords != sum.KafkaRecords {
		t.Errorf("Kafka holds %d records; the summary says %d produced, topic %d", len(recs), sum.KafkaRecords, sum.KafkaTopicRecords)
	}
	if pgFailed := sum.Batchers["postgres"].Failed; sum.PostgresRows+pgFailed != sum.Emitted-sum.Dropped ||
		sum.KafkaRecords+sum.Batchers["kafka"].Failed != sum.Emitted-sum.Dropped {
		t.Errorf("the sinks do not account for every tweet that entered: %+v", sum)
	}
	if !wantAll {
		return
	}
	// Every tweet served is in Kafka exactly once and in Postgres unless
	// jsonb rejects it.
	for _, id := range c.ids {
		if inKafka[id] != 1 {
			t.Fatalf("tweet %s is in Kafka %d times, want once (%d records)", id, inKafka[id], len(recs))
		}
		if inPG[id] == c.nulText[id] {
			t.Fatalf("tweet %s: in Postgres %v, has \\u0000 %v", id, inPG[id], c.nulText[id])
		}
	}
	if len(inKafka) != len(c.ids) || sum.Failed != int64(len(c.nulText)) || sum.Dropped != 0 {
		t.Fatalf("%d tweets in Kafka, %d failed, %d dropped; want %d, %d, 0", len(inKafka), sum.Failed, sum.Dropped, len(c.ids), len(c.nulText))
	}
}

// The embedded defaults end to end: the fake X API replays testdata once
// and the run stops by itself; every tweet is in Kafka once and in Postgres
// (but the ones jsonb rejects), and the summary agrees.
func TestEndToEnd(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	r := runBinary(t, append(s.args(), "-replay-data", "../../testdata/*.jsonl"), nil)
	s.check(t, r, c, true)
	if r.sum.Served != int64(len(c.ids)) || r.sum.Received != int64(len(c.ids)) {
		t.Fatalf("served %d, received %d; want %d", r.sum.Served, r.sum.Received, len(c.ids))
	}
	if len(r.sum.TopHashtags) != 10 || !strings.Contains(r.stdout, "top hashtags in Postgres") {
		t.Fatalf("summary lacks the top hashtags: %v\n%s", r.sum.TopHashtags, r.stdout)
	}
}

// newFake serves the corpus with faults. Backfill replays at most the last
// 500 tweets, as a few minutes of a real stream would hold.
func newFake(t *testing.T, faults twittertest.Faults, rate float64) *twittertest.Server {
	t.Helper()
	fake, err := twittertest.NewServer(twittertest.Config{Addr: "127.0.0.1:0", Token: "e2e-token", Lines: testCorpus(t).lines,
		Rate: rate, H2C: true, KeepAlive: 100 * time.Millisecond, BackfillLimit: 500, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	return fake
}

// faultRun replays the corpus from a fake X API with faults, into Kafka
// and Postgres, until every tweet entered the topology. Reconnects ask for
// backfill, so tweets lost in flight come back (and duplicates are dropped).
func faultRun(t *testing.T, faults twittertest.Faults, rate float64, s *sinks, extra ...string) (result, *twittertest.Server) {
	t.Helper()
	return faultRunOn(t, newFake(t, faults, rate), s, extra...)
}

func faultRunOn(t *testing.T, fake *twittertest.Server, s *sinks, extra ...string) (result, *twittertest.Server) {
	t.Helper()
	c := testCorpus(t)
	args := append(s.args(), "-stream-url", fake.URL(), "-bearer-token", "e2e-token", "-max-tweets", fmt.Sprint(len(c.ids)),
		"-backfill-minutes", "1", "-stall-timeout", "500ms", "-backoff-network", "20ms", "-backoff-http", "50ms",
		"-backoff-rate-limit", "50ms", "-pg-batch-timeout", "100ms")
	return runBinary(t, append(args, extra...), nil), fake
}

func TestFaultDisconnectEvery2s(t *testing.T) {
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	r, fake := faultRun(t, twittertest.Faults{DisconnectAfter: 2 * time.Second, DisconnectMode: twittertest.DisconnectReset}, 1000, s)
	s.check(t, r, testCorpus(t), true)
	if r.sum.Reconnects["disconnected"] < 2 || fake.Stats().Disconnects < 2 {
		t.Fatalf("reconnects %v, fake disconnects %d: want the stream cut at least twice", r.sum.Reconnects, fake.Stats().Disconnects)
	}
}

func TestFaultStallOnce(t *testing.T) {
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	fake := newFake(t, twittertest.Faults{Stall: true, StallAfterTweets: 1500}, 2000)
	go func() {
		// The first connection has taken the fault; later ones must not.
		for fake.Stats().Tweets < 1500 {
			time.Sleep(5 * time.Millisecond)
		}
		fake.SetFaults(twittertest.Faults{})
	}()
	r, _ := faultRunOn(t, fake, s)
	s.check(t, r, testCorpus(t), true)
	if r.sum.Reconnects["stall"] != 1 {
		t.Fatalf("reconnects %v: want exactly one stall", r.sum.Reconnects)
	}
}

func TestFault429TwiceThenRecovers(t *testing.T) {
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	r, fake := faultRun(t, twittertest.Faults{RateLimited: 2, RateLimitReset: 100 * time.Millisecond}, 0, s)
	s.check(t, r, testCorpus(t), true)
	if r.sum.Reconnects["rate-limited"] != 2 || fake.Stats().Rejected[429] != 2 {
		t.Fatalf("reconnects %v, fake rejections %v: want two 429s", r.sum.Reconnects, fake.Stats().Rejected)
	}
}

func TestFaultPostgresRestart(t *testing.T) {
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	cluster := pgtest.StartCluster(t)
	pool, schema := pgtest.SchemaOn(t, cluster.URL)
	s := &sinks{brokers: k.Brokers, dbURL: withSearchPath(cluster.URL, schema), table: "tweets", pool: pool}
	fake := newFake(t, twittertest.Faults{}, 1000)
	restarted := make(chan error, 1)
	go func() {
		underWay(fake, 1500) // the run lasts ~5s at 1,000 tweets/s
		if err := cluster.Stop(); err != nil {
			restarted <- err
			return
		}
		time.Sleep(time.Second) // Postgres stays down for a second
		restarted <- cluster.Start()
	}()
	r, _ := faultRunOn(t, fake, s, "-pg-batch-size", "200")
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	s.check(t, r, testCorpus(t), true)
}

// SIGTERM in the middle of the run: the binary drains and exits 0, and the
// sinks hold exactly what it acknowledged.
func TestSIGTERMDrains(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	fake, err := twittertest.NewServer(twittertest.Config{Addr: "127.0.0.1:0", Token: "e2e-token", Lines: c.lines, Rate: 2000, H2C: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	sigs := make(chan os.Signal, 1)
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", kafkatest.FreePort(t))
	scraped := make(chan string, 1)
	go func() {
		for fake.Stats().Tweets < 1000 {
			time.Sleep(10 * time.Millisecond) // wait for the run to be under way, bounded by the test timeout
		}
		scraped <- scrape(t, metricsAddr)
		sigs <- syscall.SIGTERM
	}()
	r := runBinary(t, append(s.args(), "-stream-url", fake.URL(), "-bearer-token", "e2e-token", "-pg-batch-size", "700",
		"-metrics-addr", metricsAddr), sigs)
	metrics := <-scraped
	for _, want := range []string{`causeway_x_stream_connection_state{state="connected"} 1`, `causeway_producer_emitted_total{topology="tweets"}`,
		`causeway_batcher_batch_size_bucket{batcher="postgres",topology="tweets",le="1000"}`, `causeway_x_stream_reconnects_total{reason="stall"} 0`,
		"healthz: ok"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	s.check(t, r, c, false)
	if r.sum.Emitted < 1000 || r.sum.Emitted >= int64(len(c.ids)) || r.sum.Acked == 0 {
		t.Fatalf("emitted %d, acked %d: want the stop mid-run", r.sum.Emitted, r.sum.Acked)
	}
}

// scrape returns /metrics and /healthz from addr.
func scrape(t *testing.T, addr string) string {
	var out strings.Builder
	for _, path := range []string{"/metrics", "/healthz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Error(err)
			return ""
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/healthz" {
			out.WriteString("healthz: ")
		}
		out.Write(body)
	}
	return out.String()
}

// Two loaders in one consumer group share the topic; together they load
// every tweet into Postgres exactly once.
func TestLoadScalesOut(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	want := len(c.ids) - len(c.nulText)
	sigs := []chan os.Signal{make(chan os.Signal, 1), make(chan os.Signal, 1)}
	results := make([]result, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			var err error
			results[i], err = runBinaryErr(t, append([]string{"load", "-kafka-group", "loaders", "-pg-batch-timeout", "50ms"}, s.args()...), sigs[i])
			if err != nil {
				t.Errorf("loader %d: %v", i, err)
			}
		})
	}
	// Feed the topic once both loaders are members of a stable group, so
	// its four partitions are split between them.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, state, err := kafkatest.GroupMembers(context.Background(), k.Brokers, "loaders")
		if err == nil && n == 2 && state == "Stable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group never had both loaders: %d members, %q, %v", n, state, err)
		}
		time.Sleep(50 * time.Millisecond) // polling the group, bounded by the deadline
	}
	var recs []*kgo.Record
	for i, line := range c.lines {
		recs = append(recs, &kgo.Record{Topic: "tweets", Key: []byte(c.ids[i]), Value: line})
	}
	k.Produce(t, recs...)
	// Both run until Postgres holds every loadable tweet.
	deadline = time.Now().Add(2 * time.Minute)
	for {
		var n int
		if err := s.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+s.table).Scan(&n); err == nil && n == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postgres never held the %d tweets", want)
		}
		time.Sleep(50 * time.Millisecond) // polling the table, bounded by the deadline
	}
	for _, ch := range sigs {
		ch <- syscall.SIGTERM
	}
	wg.Wait()
	var consumed, failed int64
	for i, r := range results {
		if r.sum.Emitted == 0 {
			t.Errorf("loader %d consumed nothing: the group did not share the work", i)
		}
		if r.sum.Emitted != r.sum.Acked+r.sum.Failed || r.sum.Unfinished != 0 {
			t.Errorf("loader %d accounting: %+v", i, r.sum)
		}
		consumed += r.sum.Emitted
		failed += r.sum.Failed
	}
	if consumed < int64(len(c.ids)) || failed < int64(len(c.nulText)) {
		t.Fatalf("loaders consumed %d records and failed %d; want at least %d and %d", consumed, failed, len(c.ids), len(c.nulText))
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-processors", "0", "-database-url", "postgres://x/y"}, nil, "-processors must be > 0, got 0"},
		{[]string{"-pg-batch-timeout", "-1s", "-database-url", "postgres://x/y"}, nil, "-pg-batch-timeout must be > 0, got -1s"},
		{nil, map[string]string{"DATABASE_URL": "postgres://x/y", "KAFKA_BROKERS": "b:9092"}, ""},
		{nil, nil, "-database-url (or $DATABASE_URL) is required"},
		{[]string{"-stream-url", "ftp://x", "-database-url", "postgres://x/y"}, nil, `-stream-url "ftp://x": want an http:// or https:// URL`},
		{[]string{"-stream-url", "https://api.twitter.com", "-database-url", "postgres://x/y"}, nil, "-bearer-token (or $TWITTER_BEARER_TOKEN) is required with -stream-url"},
		{[]string{"-database-url", "postgres://x/y"}, map[string]string{"LOG_LEVEL": "loud"}, "-log-level: want debug, info, warn or error"},
		{[]string{"-database-url", "postgres://x/y", "-max-tweets", "ten"}, nil, `invalid value "ten" for flag -max-tweets`},
		{[]string{"-database-url", "postgres://x/y"}, map[string]string{"TWITTER_STREAM_URL": "%zz"}, `-stream-url "%zz"`},
		{[]string{"-database-url", "postgres://x/y", "-pg-concurrency", "-1"}, nil, "-pg-concurrency must be >= 0 (0 adapts), got -1"},
		{[]string{"-database-url", "postgres://x/y", "-kafka-max-concurrency", "0"}, nil, "-kafka-max-concurrency must be > 0, got 0"},
		{[]string{"-database-url", "postgres://x/y", "-pg-concurrency", "3"}, nil, ""},
	} {
		var stderr bytes.Buffer
		lookup := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
		_, err := parseConfig(tc.args, lookup, &stderr)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tc.want == "") != (err == nil) || !strings.Contains(got, tc.want) {
			t.Errorf("args %v env %v: error %q, want %q", tc.args, tc.env, got, tc.want)
		}
	}
}

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseConfig([]string{"-h"}, nil, &stderr); err == nil {
		t.Fatal("-h did not stop")
	}
	for _, f := range []string{"-stream-url", "TWITTER_STREAM_URL", "-bearer-token", "TWITTER_BEARER_TOKEN", "-rules", "-kafka-brokers",
		"KAFKA_BROKERS", "-kafka-topic", "-database-url", "DATABASE_URL", "-processors", "-buffer", "-kafka-batch-size",
		"-kafka-batch-timeout", "-pg-batch-size", "-pg-batch-timeout", "-max-tweets", "-duration", "-metrics-addr",
		"-summary-json", "-log-level", "-pg-table", "-pg-max-concurrency", "-kafka-max-concurrency", "-cpuprofile", "causeway load"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("-h does not mention %s", f)
		}
	}
}
