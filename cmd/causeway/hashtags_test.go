package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
)

// windowTruth is what a topic's tweets add up to, computed directly from
// the records: per (minute, hashtag), the tweets counted once by id,
// leaving out the records meant to be late and the ones that are not
// tweets.
type windowTruth map[string]int64

func cellKey(start time.Time, tag string) string { return start.UTC().Format(time.RFC3339) + " " + tag }

// windowRecords makes n tweet records spread over hours of event time (a
// tweet every ~2s, out of order by up to ±30s), with repeats of earlier
// tweets (a second listener), tweets an hour late and records that are not
// tweets; it returns them and the exact counts they must produce with
// one-minute windows and a grace of 5 minutes.
func windowRecords(n int) ([]*kgo.Record, windowTruth, int) {
	rng := rand.New(rand.NewPCG(7, 11))
	tags := []string{"Go", "rust", "Kafka", "postgres", "exactly_once", "WINDOWS", "café", "日本"}
	base := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	truth := windowTruth{}
	var recs []*kgo.Record
	var lines [][]byte
	late := 0
	line := func(id int64, at time.Time, text string) []byte {
		return fmt.Appendf(nil, `{"data":{"id":"%d","text":%q,"created_at":"%s","edit_history_tweet_ids":["%d"]}}`,
			id, text, at.Format("2006-01-02T15:04:05.000Z"), id)
	}
	for i := range n {
		id := int64(1_800_000_000_000_000_000) + int64(i)
		at := base.Add(time.Duration(i)*2*time.Second + time.Duration(rng.IntN(60_000)-30_000)*time.Millisecond)
		isLate := i >= n/2 && i%97 == 0
		if isLate {
			at = at.Add(-time.Hour)
			late++
		}
		var text strings.Builder
		text.WriteString("tweet")
		seen := map[string]bool{}
		for range 1 + rng.IntN(3) {
			tag := tags[rng.IntN(len(tags))]
			fmt.Fprintf(&text, " #%s", tag)
			low := strings.ToLower(tag)
			if !seen[low] && !isLate {
				truth[cellKey(at.Truncate(time.Minute), low)]++
			}
			seen[low] = true
		}
		l := line(id, at, text.String())
		lines = append(lines, l)
		recs = append(recs, &kgo.Record{Topic: "tweets", Key: fmt.Appendf(nil, "%d", id), Value: l})
		if i%50 == 25 { // a repeat of a recent tweet, as a second listener writes it
			j := i - rng.IntN(10)
			recs = append(recs, &kgo.Record{Topic: "tweets", Key: fmt.Appendf(nil, "%d", int64(1_800_000_000_000_000_000)+int64(j)), Value: lines[j]})
		}
		if i%400 == 7 {
			recs = append(recs, &kgo.Record{Topic: "tweets", Key: []byte("junk"), Value: []byte(`{"data":`)})
		}
	}
	return recs, truth, late
}

// storedSum sums the group's stored offsets.
func storedSum(ctx context.Context, pool *pgxpool.Pool, group string) int64 {
	var n int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM causeway_offsets WHERE consumer_group = $1`, group).Scan(&n); err != nil {
		return -1
	}
	return n
}

// killedRuns runs args in child processes, killing each with SIGKILL once
// the stored offsets pass the next of fractions of total, then runs one to
// the end (SIGTERM once every record is stored).
func killedRuns(t *testing.T, pool *pgxpool.Pool, group string, total int64, fractions []float64, args ...string) {
	t.Helper()
	ctx := context.Background()
	for _, f := range append(fractions, 1) {
		cmd, out := startChild(t, args)
		target := int64(f * float64(total))
		deadline := time.Now().Add(2 * time.Minute)
		for storedSum(ctx, pool, group) < target {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("the stored offsets never reached %d of %d: %s", target, total, tail(out.String(), 3000))
			}
			time.Sleep(2 * time.Millisecond) // polling the offsets table, bounded by the deadline
		}
		if f < 1 {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			t.Logf("killed at %d of %d stored (wanted %d)", storedSum(ctx, pool, group), total, target)
			continue
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("the last run: %v\n%s", err, tail(out.String(), 3000))
		}
		t.Logf("last run:\n%s", tail(out.String(), 1500))
	}
}

func TestHashtagsExactlyOnceThroughKills(t *testing.T) {
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets"))
	s := newSinks(t, k.Brokers)
	recs, truth, late := windowRecords(6000)
	k.Produce(t, recs...)
	args := []string{"hashtags", "-kafka-brokers", k.Brokers, "-database-url", s.dbURL, "-kafka-group", "counts",
		"-batch-size", "40", "-batch-timeout", "20ms", "-progress", "0", "-log-level", "warn"}
	killedRuns(t, s.pool, "counts", int64(len(recs)), []float64{0.1, 0.35, 0.6, 0.85}, args...)

	checkCounts(t, s.pool, k, "counts", truth, late, len(recs))
}

func TestLoadExactlyOnceThroughKills(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	var recs []*kgo.Record
	for i, line := range c.lines {
		recs = append(recs, &kgo.Record{Topic: "tweets", Key: []byte(c.ids[i]), Value: line})
	}
	k.Produce(t, recs...)
	args := append([]string{"load", "-exactly-once", "-kafka-group", "eo", "-pg-batch-size", "100", "-pg-batch-timeout", "20ms",
		"-progress", "0", "-log-level", "warn"}, s.args()...)
	killedRuns(t, s.pool, "eo", int64(len(recs)), []float64{0.2, 0.5, 0.8}, args...)
	ctx := context.Background()
	var rows, distinct, dead int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT id) FROM tweets`).Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM causeway_dead_letters WHERE consumer_group = 'eo'`).Scan(&dead); err != nil {
		t.Fatal(err)
	}
	if want := len(c.ids) - len(c.nulText); rows != want || distinct != want || dead != len(c.nulText) {
		t.Fatalf("tweets table %d rows (%d distinct), %d dead letters; want %d rows and %d dead letters", rows, distinct, dead, want, len(c.nulText))
	}
	if got := storedSum(ctx, s.pool, "eo"); got != int64(len(recs)) {
		t.Fatalf("stored offsets sum to %d, want %d", got, len(recs))
	}
}

// checkCounts asserts that hashtag_counts holds exactly truth, that the
// dead-letter table holds the late tweets and the junk records, and that
// the group's stored offsets are the ends of the partitions.
func checkCounts(t *testing.T, pool *pgxpool.Pool, k *kafkatest.Cluster, group string, truth windowTruth, late, records int) {
	t.Helper()
	ctx := context.Background()
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
	diffs := 0
	for key, want := range truth {
		if got[key] != want {
			diffs++
			if diffs <= 5 {
				t.Errorf("%s: %d tweets counted, want %d", key, got[key], want)
			}
		}
	}
	for key, n := range got {
		if _, ok := truth[key]; !ok {
			diffs++
			t.Errorf("%s: %d tweets counted, want none", key, n)
		}
	}
	if diffs > 0 || len(got) != len(truth) {
		t.Fatalf("%d of %d cells differ (%d rows)", diffs, len(truth), len(got))
	}
	var deadLate, deadJunk int
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE error LIKE '%late%'), count(*) FILTER (WHERE error NOT LIKE '%late%')
		FROM causeway_dead_letters WHERE consumer_group = $1`, group).Scan(&deadLate, &deadJunk); err != nil {
		t.Fatal(err)
	}
	if deadLate != late || deadJunk != 6000/400 {
		t.Errorf("dead letters: %d late and %d others; want %d and %d", deadLate, deadJunk, late, 6000/400)
	}
	ends, err := kafkatest.EndOffsets(ctx, k.Client(t), "tweets")
	if err != nil {
		t.Fatal(err)
	}
	for p, end := range ends {
		var stored int64
		if err := pool.QueryRow(ctx, `SELECT next_offset FROM causeway_offsets WHERE consumer_group = $1 AND partition = $2`, group, p).Scan(&stored); err != nil || stored != end {
			t.Errorf("partition %d: stored offset %d (%v), want the end %d", p, stored, err, end)
		}
	}
	t.Logf("%d records, %d cells exact; %d late and %d junk dead-lettered", records, len(truth), deadLate, deadJunk)
}

// Two members of one group share the partitions; one is killed mid-run and
// its partitions move to the other, which resumes from the stored offsets:
// the counts stay exact.
func TestHashtagsTwoMembersOneKilled(t *testing.T) {
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets"))
	s := newSinks(t, k.Brokers)
	recs, truth, late := windowRecords(6000)
	args := []string{"hashtags", "-kafka-brokers", k.Brokers, "-database-url", s.dbURL, "-kafka-group", "pair",
		"-batch-size", "20", "-batch-timeout", "20ms", "-progress", "0", "-log-level", "warn"}
	a, aOut := startChild(t, args)
	b, bOut := startChild(t, args)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, state, err := kafkatest.GroupMembers(context.Background(), k.Brokers, "pair")
		if err == nil && n == 2 && state == "Stable" {
			break
		}
		if time.Now().After(deadline) {
			a.Process.Kill()
			b.Process.Kill()
			t.Fatalf("the group never had both members: %d, %q, %v\n%s\n%s", n, state, err, tail(aOut.String(), 2000), tail(bOut.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond) // polling the group, bounded by the deadline
	}
	k.Produce(t, recs...)
	ctx := context.Background()
	total := int64(len(recs))
	wait := func(target int64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for storedSum(ctx, s.pool, "pair") < target {
			if time.Now().After(deadline) {
				a.Process.Kill()
				b.Process.Kill()
				t.Fatalf("the stored offsets never reached %d: %s", target, tail(bOut.String(), 3000))
			}
			time.Sleep(2 * time.Millisecond) // polling the offsets table, bounded by the deadline
		}
	}
	wait(total / 3)
	a.Process.Signal(syscall.SIGKILL)
	a.Wait()
	t.Logf("killed one member at %d of %d stored", storedSum(ctx, s.pool, "pair"), total)
	wait(total)
	b.Process.Signal(syscall.SIGTERM)
	if err := b.Wait(); err != nil {
		t.Fatalf("the surviving member: %v\n%s", err, tail(bOut.String(), 3000))
	}
	checkCounts(t, s.pool, k, "pair", truth, late, len(recs))
}

// TestHashtagsMetrics runs causeway hashtags in-process against a topic
// and scrapes /metrics once the topic is aggregated: the outcomes, the
// transactions and the live view are exported; SIGTERM drains it.
func TestHashtagsMetrics(t *testing.T) {
	k := kafkatest.Start(t, kfake.SeedTopics(2, "tweets"))
	s := newSinks(t, k.Brokers)
	recs, _, late := windowRecords(400)
	k.Produce(t, recs...)
	addr := fmt.Sprintf("127.0.0.1:%d", kafkatest.FreePort(t))
	sigs := make(chan os.Signal, 1)
	done := make(chan result, 1)
	go func() {
		r, err := runBinaryErr(t, []string{"hashtags", "-kafka-brokers", k.Brokers, "-database-url", s.dbURL,
			"-kafka-group", "m", "-batch-timeout", "20ms", "-metrics-addr", addr, "-trending-every", "50ms"}, sigs)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	deadline := time.Now().Add(time.Minute)
	for storedSum(context.Background(), s.pool, "m") < int64(len(recs)) {
		if time.Now().After(deadline) {
			sigs <- syscall.SIGTERM
			<-done
			t.Fatal("the topic was never aggregated")
		}
		time.Sleep(10 * time.Millisecond) // polling the offsets table, bounded by the deadline
	}
	body := scrape(t, addr)
	for !strings.Contains(body, "causeway_hashtags_trending_tweets") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // waiting for the live view's next slide, bounded by the deadline
		body = scrape(t, addr)
	}
	sigs <- syscall.SIGTERM
	r := <-done
	for _, want := range []string{
		`causeway_hashtags_tweets_total{outcome="late"} ` + fmt.Sprint(late),
		`causeway_hashtags_tweets_total{outcome="invalid"} 1`,
		`causeway_hashtags_trending_tweets{hashtag="go"}`,
		`causeway_hashtags_transactions_total `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(r.stdout, "top hashtags of the busiest window") {
		t.Errorf("summary:\n%s", r.stdout)
	}
}
