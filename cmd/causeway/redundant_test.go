package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	pkafka "github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/stages/window"
	"github.com/causeway-go/causeway/topologies/hashtags"
)

// Two listeners, each its own stream connection to one live X API, write
// the same tweets to one Kafka topic (and each to its own Postgres table).
// One is SIGKILLed mid-run and restarted with -backfill-minutes. Downstream
// is the de-duplication phase: causeway load stores every tweet the API
// served exactly once, and causeway hashtags counts each tweet once — its
// counts equal those computed from the corpus, as one clean listener would
// give them — and reports the second copies as duplicates, in its summary
// and on /metrics.
func TestRedundantListeners(t *testing.T) {
	c := testCorpus(t)
	n := len(c.ids)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	// 500 tweets/s: the timeline lasts ~10s, time for both listeners to
	// start (race-instrumented child processes on a loaded machine) and
	// for one to be killed and restarted while tweets still flow.
	fake, err := twittertest.NewServer(twittertest.Config{Addr: "127.0.0.1:0", Token: "e2e-token", Lines: c.lines,
		Rate: 500, Live: true, H2C: true, KeepAlive: 100 * time.Millisecond, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	dir := t.TempDir()
	listener := func(name string) []string {
		return []string{"-kafka-brokers", k.Brokers, "-database-url", s.dbURL, "-pg-table", "tweets_" + name,
			"-stream-url", fake.URL(), "-bearer-token", "e2e-token", "-backfill-minutes", "5",
			"-spill-dir", filepath.Join(dir, "spill-"+name), "-progress", "0", "-log-level", "warn",
			"-pg-batch-timeout", "100ms", "-kafka-batch-timeout", "20ms"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s (fake: %+v)", what, fake.Stats())
			}
			time.Sleep(20 * time.Millisecond) // polling, bounded by ctx
		}
	}

	a, _ := startChild(t, listener("a"))
	b, _ := startChild(t, listener("b"))
	waitFor("both listeners to connect", func() bool { return fake.Stats().Active == 2 })
	both := fake.Stats().Timeline
	waitFor("the timeline to move on", func() bool { return fake.Stats().Timeline >= min(both+500, int64(n)) })
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	killedAt := fake.Stats().Timeline
	time.Sleep(500 * time.Millisecond) // the API publishes on; only b listens
	a, _ = startChild(t, listener("a"))
	t.Logf("both connected at timeline %d of %d; a killed at %d, restarted at %d", both, n, killedAt, fake.Stats().Timeline)

	// The restart resumes with backfill, which reaches back to the
	// timeline's start: listener a's table ends with every tweet (but
	// those jsonb refuses).
	want := n - len(c.nulText)
	waitFor("listener a's restart to store every tweet", func() bool {
		var rows int
		s.pool.QueryRow(ctx, "SELECT count(*) FROM tweets_a").Scan(&rows)
		return rows >= want && fake.Stats().Timeline >= int64(n)
	})
	// Then until the fake has nothing more to write (b reads the end of
	// the live timeline).
	last, stable := int64(-1), time.Now()
	waitFor("the stream to go quiet", func() bool {
		if st := fake.Stats().Tweets; st != last {
			last, stable = st, time.Now()
		}
		return time.Since(stable) >= 500*time.Millisecond
	})
	if err := errors.Join(a.Process.Signal(syscall.SIGTERM), b.Process.Signal(syscall.SIGTERM)); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatalf("listener a did not drain cleanly: %v", err)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("listener b did not drain cleanly: %v", err)
	}

	// What the fake served: the corpus, once per connection that read it.
	served := map[string]bool{}
	for _, line := range fake.Served() {
		tw, err := hashtags.Decode(line, &pkafka.Metadata{Topic: "tweets"})
		if err != nil || tw.Err != nil {
			continue
		}
		served[tw.ID] = true
	}
	for _, id := range c.ids {
		if !served[id] {
			t.Fatalf("the fake never served tweet %s (%d of %d distinct served): want the backfill to reach back to the start", id, len(served), n)
		}
	}
	// The topic: every tweet, some twice or more (both listeners wrote
	// them), nothing else.
	recs, err := kafkatest.ReadAllFrom(ctx, k.Brokers, "tweets")
	if err != nil {
		t.Fatal(err)
	}
	copies := map[string]int{}
	nulCopies := 0
	for _, rec := range recs {
		copies[string(rec.Key)]++
		if c.nulText[string(rec.Key)] {
			nulCopies++
		}
	}
	for _, id := range c.ids {
		if copies[id] == 0 {
			t.Fatalf("tweet %s is not in the topic", id)
		}
	}
	if len(copies) != n {
		t.Fatalf("the topic holds %d distinct keys, want the corpus's %d", len(copies), n)
	}
	dups := int64(len(recs) - n)
	if dups < int64(n)-killedAt {
		t.Fatalf("the topic holds %d records for %d tweets: want b's copies of at least the %d tweets after the kill as duplicates",
			len(recs), n, int64(n)-killedAt)
	}
	t.Logf("the topic holds %d records: %d tweets, %d second copies", len(recs), n, dups)

	// The de-duplication phase: load and hashtags, side by side.
	loaded := make(chan result, 1)
	go func() {
		r, err := runBinaryErr(t, append([]string{"load", "-kafka-group", "red-load", "-pg-batch-timeout", "50ms",
			"-max-tweets", fmt.Sprint(len(recs))}, s.args()...), nil)
		if err != nil {
			t.Error(err)
		}
		loaded <- r
	}()
	sum, stdout, metrics := runHashtagsToEnd(ctx, t, s, int64(len(recs)),
		"-kafka-brokers", k.Brokers, "-kafka-group", "red-counts", "-batch-timeout", "50ms")

	// Load: every tweet the fake served, once (those jsonb refuses
	// dead-lettered, each copy).
	lr := <-loaded
	if lr.sum.Emitted != int64(len(recs)) || lr.sum.Failed != int64(nulCopies) || lr.sum.PostgresNewRows != int64(want) {
		t.Errorf("load: consumed %d records, failed %d, %d new rows; want %d, %d, %d", lr.sum.Emitted, lr.sum.Failed,
			lr.sum.PostgresNewRows, len(recs), nulCopies, want)
	}
	rows, err := s.pool.Query(ctx, "SELECT id::text FROM tweets")
	if err != nil {
		t.Fatal(err)
	}
	inPG := map[string]int{}
	var id string
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { inPG[id]++; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range c.ids {
		if want := !c.nulText[id]; (inPG[id] == 1) != want || inPG[id] > 1 {
			t.Fatalf("tweet %s is in the loaded table %d times; want %v once", id, inPG[id], want)
		}
	}
	if len(inPG) != want {
		t.Fatalf("the loaded table holds %d tweets, want %d", len(inPG), want)
	}

	// Hashtags: each tweet counted once, the second copies as duplicates.
	if sum.Consumed != int64(len(recs)) || sum.Counted != int64(n) || sum.Duplicates != dups || sum.Late != 0 ||
		sum.Invalid != 0 || sum.DeadLettered != 0 || sum.Unfinished != 0 {
		t.Errorf("hashtags summary: consumed %d, counted %d, duplicates %d, late %d, invalid %d, dead-lettered %d, unfinished %d;"+
			" want %d, %d, %d, 0, 0, 0, 0\n%s", sum.Consumed, sum.Counted, sum.Duplicates, sum.Late, sum.Invalid, sum.DeadLettered,
			sum.Unfinished, len(recs), n, dups, stdout)
	}
	if want := fmt.Sprintf("%d duplicates", dups); !strings.Contains(stdout, want) {
		t.Errorf("the hashtags summary lacks %q:\n%s", want, stdout)
	}
	for _, want := range []string{
		fmt.Sprintf(`causeway_hashtags_tweets_total{outcome="duplicate"} %d`, dups),
		fmt.Sprintf(`causeway_hashtags_tweets_total{outcome="counted"} %d`, n),
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	truth := corpusCounts(t, c)
	got := readCounts(ctx, t, s.pool)
	diffs := 0
	for key, w := range truth {
		if got[key] != w {
			if diffs++; diffs <= 5 {
				t.Errorf("%s: %d tweets counted, want %d", key, got[key], w)
			}
		}
	}
	for key, g := range got {
		if _, ok := truth[key]; !ok {
			if diffs++; diffs <= 10 {
				t.Errorf("%s: %d tweets counted, want none", key, g)
			}
		}
	}
	if diffs > 0 {
		t.Fatalf("%d of %d cells differ from one clean listener's counts (%d rows)", diffs, len(truth), len(got))
	}
	t.Logf("%d records, %d tweets loaded once; %d hashtag cells exact, %d duplicates counted", len(recs), len(inPG), len(truth), dups)
}

// corpusCounts is what one clean listener's tweets add up to: each corpus
// tweet once, decoded and normalised as the hashtags topology does
// (hashtags.Decode), counted in one-minute windows with a grace of 5
// minutes (the corpus spans two minutes: none is late).
func corpusCounts(t *testing.T, c *corpus) windowTruth {
	t.Helper()
	counter := window.Counter[string]{Windows: window.Windows{Size: time.Minute}, Grace: 5 * time.Minute}
	var wm window.Watermark
	for i, line := range c.lines {
		tw, err := hashtags.Decode(line, &pkafka.Metadata{Topic: "tweets", Offset: int64(i)})
		if err != nil || tw.Err != nil || tw.ID != c.ids[i] {
			t.Fatalf("corpus line %d: %v %v", i, err, tw.Err)
		}
		counter.Add(&wm, tw.CreatedAt, tw.Hashtags...)
	}
	if counter.Late != 0 {
		t.Fatalf("%d corpus tweets are late in order: the expected counts assume none", counter.Late)
	}
	truth := windowTruth{}
	for cell, n := range counter.Counts {
		truth[cellKey(cell.StartTime(), cell.Key)] = n
	}
	return truth
}

// readCounts reads hashtag_counts.
func readCounts(ctx context.Context, t *testing.T, pool *pgxpool.Pool) windowTruth {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT window_start, hashtag, tweets FROM hashtag_counts`)
	if err != nil {
		t.Fatal(err)
	}
	got := windowTruth{}
	var start time.Time
	var tag string
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&start, &tag, &n}, func() error { got[cellKey(start, tag)] = n; return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// runHashtagsToEnd runs causeway hashtags in-process on s's database until
// its stored offsets reach records, scrapes /metrics, stops it with SIGTERM
// and returns its summary (JSON), its stdout and the scrape.
func runHashtagsToEnd(ctx context.Context, t *testing.T, s *sinks, records int64, extra ...string) (hashtagsSummary, string, string) {
	t.Helper()
	group := ""
	for i, a := range extra {
		if a == "-kafka-group" && i+1 < len(extra) {
			group = extra[i+1]
		}
	}
	path := filepath.Join(t.TempDir(), "hashtags.json")
	addr := fmt.Sprintf("127.0.0.1:%d", kafkatest.FreePort(t))
	args := append([]string{"hashtags", "-database-url", s.dbURL, "-metrics-addr", addr, "-summary-json", path,
		"-progress", "0", "-log-level", "warn"}, extra...)
	sigs := make(chan os.Signal, 1)
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), args, func(string) (string, bool) { return "", false }, &stdout, &stderr, sigs, nil)
	}()
	for storedSum(ctx, s.pool, group) < records {
		select {
		case status := <-done:
			t.Fatalf("causeway hashtags exited %d before aggregating the topic:\n%s", status, tail(stderr.String(), 3000))
		default:
		}
		if ctx.Err() != nil {
			sigs <- syscall.SIGTERM
			<-done
			t.Fatalf("causeway hashtags never aggregated the %d records (stored %d):\n%s", records, storedSum(ctx, s.pool, group),
				tail(stderr.String(), 3000))
		}
		time.Sleep(20 * time.Millisecond) // polling the offsets table, bounded by ctx
	}
	metrics := scrape(t, addr)
	sigs <- syscall.SIGTERM
	if status := <-done; status != 0 {
		t.Fatalf("causeway hashtags exited %d:\n%s", status, tail(stderr.String(), 3000))
	}
	var sum hashtagsSummary
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &sum)
	}
	if err != nil {
		t.Fatalf("hashtags summary: %v", err)
	}
	return sum, stdout.String(), metrics
}
