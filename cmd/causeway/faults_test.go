package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
)

// The sink outages the fault tests impose. make test runs them at 10s;
// make soak runs them for a minute (-outage 60s).
var outage = flag.Duration("outage", 10*time.Second, "how long the sink-outage tests keep a sink down")

// childArgsEnv, set, makes the test binary run causeway's main with these
// arguments (JSON) instead of the tests: a real process a test can SIGKILL.
const childArgsEnv = "CAUSEWAY_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childArgsEnv); args != "" {
		var a []string
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			fmt.Fprintln(os.Stderr, "bad", childArgsEnv, err)
			os.Exit(2)
		}
		os.Args = append([]string{"causeway"}, a...)
		main()
		return
	}
	os.Exit(m.Run())
}

// startChild starts causeway with args as a process of its own; its
// output goes to the test log when the test fails.
func startChild(t *testing.T, args []string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	a, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childArgsEnv+"="+string(a))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("child %v output:\n%s", args, tail(out.String(), 4000))
		}
	})
	return cmd, &out
}

// underWay waits until the fake has served n tweets: the run is under way
// (its start, checks included, can take seconds on a loaded machine).
func underWay(fake *twittertest.Server, n int64) {
	deadline := time.Now().Add(time.Minute)
	for fake.Stats().Tweets < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// outageRate paces the replay so that the run outlasts the outage (which
// starts 1s in) by a few seconds: the sink comes back while tweets still
// flow, and its spill replays before the drain.
func outageRate(c *corpus) float64 {
	return float64(len(c.ids)) / (outage.Seconds() + 6)
}

// Postgres is stopped for -outage (10s) in the middle of a paced run: not
// one tweet is dropped, Kafka gets every tweet as it comes (the Postgres
// batcher spills instead of backing the topology up), and once Postgres is
// back the spill replays: it holds every tweet too.
func TestFaultPostgresDown(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	cluster := pgtest.StartCluster(t)
	pool, schema := pgtest.SchemaOn(t, cluster.URL)
	s := &sinks{brokers: k.Brokers, dbURL: withSearchPath(cluster.URL, schema), table: "tweets", pool: pool}
	fake := newFake(t, twittertest.Faults{}, outageRate(c))
	back := make(chan error, 1)
	kafkaDuringOutage := make(chan int, 1)
	go func() {
		underWay(fake, 300)
		if err := cluster.Stop(); err != nil {
			back <- err
			return
		}
		served := fake.Stats().Tweets
		time.Sleep(*outage)
		// Kafka kept taking tweets while Postgres was down.
		recs, _ := kafkatest.ReadAllFrom(context.Background(), k.Brokers, "tweets")
		kafkaDuringOutage <- len(recs) - int(served)
		back <- cluster.Start()
	}()
	r, _ := faultRunOn(t, fake, s, "-pg-batch-size", "200")
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	s.check(t, r, c, true)
	if n := <-kafkaDuringOutage; n <= 0 {
		t.Errorf("Kafka got %d tweets more than were served before the outage, by its end: want the stream to keep flowing into Kafka", n)
	}
	if r.sum.Dropped != 0 || r.sum.Batchers["postgres"].Spilled == 0 {
		t.Errorf("dropped %d, spilled into postgres's spill %d: want 0 dropped and the outage spilled", r.sum.Dropped, r.sum.Batchers["postgres"].Spilled)
	}
}

// The Kafka broker (kfake with a data directory) is down for -outage
// (10s) in the middle of a paced run: nothing is lost or dropped, and
// Postgres keeps taking tweets meanwhile.
func TestFaultKafkaDown(t *testing.T) {
	c := testCorpus(t)
	port := kafkatest.FreePort(t)
	dir := t.TempDir()
	opts := []kfake.Opt{kfake.Ports(port), kfake.DataDir(dir), kfake.SeedTopics(4, "tweets", "tweets.dlq")}
	k1, err := kafkatest.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	s := newSinks(t, k1.Brokers)
	fake := newFake(t, twittertest.Faults{}, outageRate(c))
	var k2 *kafkatest.Cluster
	restarted := make(chan struct{})
	pgDuringOutage := make(chan int, 1)
	go func() {
		defer close(restarted)
		underWay(fake, 300)
		k1.Close()
		ctx := context.Background()
		var before, after int
		s.pool.QueryRow(ctx, "SELECT count(*) FROM tweets").Scan(&before)
		time.Sleep(*outage)
		s.pool.QueryRow(ctx, "SELECT count(*) FROM tweets").Scan(&after)
		pgDuringOutage <- after - before
		var err error
		if k2, err = kafkatest.New(opts...); err != nil {
			t.Error(err)
		}
	}()
	r, _ := faultRunOn(t, fake, s)
	<-restarted
	if k2 == nil {
		t.Fatal("kfake did not restart")
	}
	defer k2.Close()
	s.check(t, r, c, true)
	if n := <-pgDuringOutage; n <= 0 {
		t.Errorf("Postgres took %d tweets while Kafka was down: want it to keep taking them\n%s", n, tail(r.stderr, 3000))
	}
	if r.sum.Dropped != 0 {
		t.Errorf("dropped %d: want 0", r.sum.Dropped)
	}
	t.Logf("kafka's spill held %d tweets during the outage", r.sum.Batchers["kafka"].Spilled)
}

// Postgres goes down during a run and is still down when it ends: the run
// drains at once (its tweets are held in the spill, not stuck), and the
// next start replays the spill first. Afterwards both sinks hold every
// tweet, Kafka each exactly once: the restart's backfill is de-duplicated
// against what the first run stored.
func TestSpillReplaysAfterRestart(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	cluster := pgtest.StartCluster(t)
	pool, schema := pgtest.SchemaOn(t, cluster.URL)
	s := &sinks{brokers: k.Brokers, dbURL: withSearchPath(cluster.URL, schema), table: "tweets", pool: pool}
	fake := newFake(t, twittertest.Faults{}, 2000)
	spill := filepath.Join(t.TempDir(), "spill")
	go func() {
		for fake.Stats().Tweets < 1000 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := cluster.Stop(); err != nil {
			t.Error(err)
		}
	}()
	r1, _ := faultRunOn(t, fake, s, "-pg-batch-size", "200", "-spill-dir", spill)
	if r1.sum.Dropped != 0 || r1.sum.Failed > int64(len(c.nulText)) || r1.sum.Batchers["postgres"].Spilled == 0 {
		t.Fatalf("first run: dropped %d, failed %d, spilled %d: want nothing lost and a spill", r1.sum.Dropped, r1.sum.Failed,
			r1.sum.Batchers["postgres"].Spilled)
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	// The second run reads the same stream again from a new fake: every
	// tweet comes back, and every one is a duplicate of what run 1 stored.
	fake2 := newFake(t, twittertest.Faults{}, 0)
	r2, _ := faultRunOn(t, fake2, s, "-pg-batch-size", "200", "-spill-dir", spill, "-max-tweets", "0", "-duration", "8s")
	if r2.sum.Dropped != 0 {
		t.Errorf("second run dropped %d", r2.sum.Dropped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	assertHolds(ctx, t, s, c, false)
	if pg := r2.sum.Batchers["postgres"]; pg.Replayed == 0 || pg.SpillWaiting != 0 {
		t.Errorf("second run: postgres replayed %d from its spill, %d still waiting; want the spill replayed", pg.Replayed, pg.SpillWaiting)
	}
	if r2.sum.Deduplicated < int64(len(c.ids)) {
		t.Errorf("second run de-duplicated %d of the %d tweets the first one stored", r2.sum.Deduplicated, len(c.ids))
	}
}

// assertHolds checks that Postgres holds every tweet of the corpus (but
// those jsonb rejects) and Kafka every tweet, exactly once, or, with
// dupsOK, at least once.
func assertHolds(ctx context.Context, t *testing.T, s *sinks, c *corpus, dupsOK bool) {
	t.Helper()
	assertHoldsPostgres(ctx, t, s, c)
	recs, err := kafkatest.ReadAllFrom(ctx, s.brokers, "tweets")
	if err != nil {
		t.Fatal(err)
	}
	inKafka := map[string]int{}
	for _, rec := range recs {
		inKafka[string(rec.Key)]++
	}
	missing, dups := 0, 0
	for _, id := range c.ids {
		switch n := inKafka[id]; {
		case n == 0:
			missing++
		case n > 1:
			dups += n - 1
		}
	}
	if missing > 0 || len(inKafka) != len(c.ids) || (dups > 0 && !dupsOK) {
		t.Errorf("Kafka: %d tweets missing, %d duplicate records, %d distinct keys; want all %d", missing, dups, len(inKafka), len(c.ids))
	}
	if dups > 0 {
		t.Logf("Kafka holds %d duplicate records (at least once across a SIGKILL)", dups)
	}
}

// causeway is SIGKILLed mid-run and started again with -backfill-minutes
// on the same spill directory (its state file): the restart asks the API
// for what was published while it was down, from the last tweet both
// sinks held, and afterwards not one tweet is missing from either sink.
// Kafka may hold a few tweets twice (produced before the kill, not yet
// acknowledged); Postgres holds each once.
func TestSIGKILLRestartBackfills(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	fake, err := twittertest.NewServer(twittertest.Config{Addr: "127.0.0.1:0", Token: "e2e-token", Lines: c.lines,
		Rate: 1000, Live: true, H2C: true, KeepAlive: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	spillDir := filepath.Join(t.TempDir(), "spill")
	args := append(s.args(), "-stream-url", fake.URL(), "-bearer-token", "e2e-token", "-backfill-minutes", "5",
		"-spill-dir", spillDir, "-progress", "0", "-log-level", "warn", "-pg-batch-timeout", "100ms",
		"-kafka-batch-timeout", "20ms")
	first, _ := startChild(t, args)
	// Kill it once it is under way and has saved a resume point (a run
	// killed before its first save starts afresh, with nothing to resume).
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(spillDir, "stream-state.json")); err == nil && fake.Stats().Timeline >= 2000 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	time.Sleep(500 * time.Millisecond) // the API publishes on while nobody listens

	second, _ := startChild(t, args)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := len(c.ids) - len(c.nulText)
	for {
		var n int
		if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+s.table).Scan(&n); err != nil {
			t.Fatalf("waiting for %d rows: %v", want, err)
		}
		if n >= want && fake.Stats().Timeline >= int64(len(c.ids)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("the restarted causeway did not drain cleanly: %v", err)
	}
	assertHolds(ctx, t, s, c, true)
}

// A tweet the stream accepts (under its 1 MiB line limit) but the broker
// refuses (its record is over the broker's 1 MB limit) is failed with the
// broker's reason and kept in the dead-letter topic, cut to fit and marked
// so; so are the tweets Postgres refuses. The others flow on.
func TestOversizeTweetGoesToTheDeadLetterTopic(t *testing.T) {
	c := testCorpus(t)
	const bigID = "1900000000000000001"
	// Random letters: the producer compresses, so the text must not.
	rng := rand.New(rand.NewPCG(1, 2))
	text := make([]byte, 1<<20-110) // the line: just under the stream's 1 MiB limit
	for i := range text {
		text[i] = 'a' + byte(rng.IntN(26))
	}
	big := []byte(`{"data":{"id":"` + bigID + `","author_id":"12","created_at":"2025-03-01T12:00:00.000Z","text":"` +
		string(text) + `"}}`)
	lines := append(slices.Clone(c.lines[:200]), big)
	refusedByPG := 0
	for _, id := range c.ids[:200] {
		if c.nulText[id] {
			refusedByPG++
		}
	}
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	fake, err := twittertest.NewServer(twittertest.Config{Addr: "127.0.0.1:0", Token: "e2e-token", Lines: lines, H2C: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	r := runBinary(t, append(s.args(), "-stream-url", fake.URL(), "-bearer-token", "e2e-token", "-max-tweets", "201",
		"-pg-batch-timeout", "100ms"), nil)
	if r.sum.Acked != 200-int64(refusedByPG) || r.sum.Failed != int64(refusedByPG)+1 || r.sum.DeadLettered != r.sum.Failed {
		t.Fatalf("acked %d, failed %d, dead-lettered %d; want %d, %d, all the failed", r.sum.Acked, r.sum.Failed, r.sum.DeadLettered,
			200-refusedByPG, refusedByPG+1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := kafkatest.ReadAllFrom(ctx, k.Brokers, "tweets.dlq")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, rec := range recs {
		if string(rec.Key) != bigID {
			continue
		}
		found = true
		h := map[string]string{}
		for _, kv := range rec.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if !strings.Contains(strings.ToLower(h["causeway.error"]), "too large") || h["causeway.truncated"] != fmt.Sprint(len(big)) {
			t.Errorf("the over-size tweet's dead letter has headers %v; want the broker's reason and the cut", h)
		}
	}
	if !found || len(recs) != refusedByPG+1 {
		t.Fatalf("the dead-letter topic holds %d records (the over-size tweet: %v); want %d", len(recs), found, refusedByPG+1)
	}
}

// causeway load while Postgres is down: the loader holds its batches
// (OutageBlock) instead of failing them, and is stopped in the middle of
// the outage. The offsets it committed cover only what Postgres holds (or
// the dead-letter topic): every record below a partition's committed
// offset is stored. Started again once Postgres is back, it loads the
// rest: not one row missing.
func TestLoadWithPostgresDownCommitsOnlyWhatIsStored(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	cluster := pgtest.StartCluster(t)
	pool, schema := pgtest.SchemaOn(t, cluster.URL)
	s := &sinks{brokers: k.Brokers, dbURL: withSearchPath(cluster.URL, schema), table: "tweets", pool: pool}
	var recs []*kgo.Record
	for i, line := range c.lines {
		recs = append(recs, &kgo.Record{Topic: "tweets", Key: []byte(c.ids[i]), Value: line})
	}
	k.Produce(t, recs...)
	args := append(s.args()[:0:0], "load")
	args = append(args, s.args()...)
	args = append(args, "-kafka-group", "outage", "-pg-batch-size", "100", "-pg-batch-timeout", "50ms",
		"-shutdown-timeout", "2s", "-buffer", "200")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sigs := make(chan os.Signal, 1)
	done := make(chan result, 1)
	go func() { r, _ := runBinaryErr(t, args, sigs); done <- r }()
	for { // until some rows are in: the outage starts mid-load
		var n int
		if s.pool.QueryRow(ctx, "SELECT count(*) FROM tweets").Scan(&n); n >= 300 || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the loader meets the outage
	sigs <- syscall.SIGTERM
	r1 := <-done
	cl := k.Client(t)
	committed, err := kafkatest.CommittedOffsets(ctx, cl, "outage", "tweets")
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Start(); err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	rows, err := s.pool.Query(ctx, "SELECT id::text FROM tweets")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		rows.Scan(&id)
		stored[id] = true
	}
	rows.Close()
	all, err := kafkatest.ReadAllFrom(ctx, k.Brokers, "tweets")
	if err != nil {
		t.Fatal(err)
	}
	var below, total int64
	for _, rec := range all {
		if rec.Offset < committed[rec.Partition] {
			below++
			if id := string(rec.Key); !stored[id] && !c.nulText[id] {
				t.Errorf("partition %d offset %d (tweet %s) is committed but not in Postgres", rec.Partition, rec.Offset, id)
			}
		}
		total++
	}
	if below == total {
		t.Fatalf("first run: committed past all %d records: want the outage to stop it short", total)
	}
	t.Logf("stopped mid-outage: %d of %d records committed, %d rows stored", below, total, len(stored))

	// Again, with Postgres back: the rest loads.
	want := len(c.ids) - len(c.nulText)
	go func() { r, _ := runBinaryErr(t, args, sigs); done <- r }()
	for {
		var n int
		if s.pool.QueryRow(ctx, "SELECT count(*) FROM tweets").Scan(&n); n >= want {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Postgres holds %d of %d rows after the restart", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sigs <- syscall.SIGTERM
	<-done
	assertHoldsPostgres(ctx, t, s, c)
	// Everything is stored now, so the group's offsets are at the end.
	ends, err := kafkatest.EndOffsets(ctx, cl, "tweets")
	if err != nil {
		t.Fatal(err)
	}
	if committed, err = kafkatest.CommittedOffsets(ctx, cl, "outage", "tweets"); err != nil {
		t.Fatal(err)
	}
	for p, end := range ends {
		if committed[p] != end {
			t.Errorf("partition %d: committed %d after the full load, end %d", p, committed[p], end)
		}
	}
	// The batches the first run held when it was stopped failed with the
	// outage's error: transient, so not dead-lettered (and not committed).
	dlq, err := kafkatest.ReadAllFrom(ctx, k.Brokers, "tweets.dlq")
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range dlq {
		if !c.nulText[string(rec.Key)] {
			t.Errorf("tweet %s is in the dead-letter topic: only rows Postgres refuses belong there", rec.Key)
		}
	}
	t.Logf("first run: %d failed at the stop (held through the outage), %d dead letters in all", r1.sum.Failed, len(dlq))
}

// assertHoldsPostgres checks that Postgres holds every tweet of the corpus
// but those jsonb rejects, and nothing else.
func assertHoldsPostgres(ctx context.Context, t *testing.T, s *sinks, c *corpus) {
	t.Helper()
	ids := make([]string, 0, len(c.ids))
	for _, id := range c.ids {
		if !c.nulText[id] {
			ids = append(ids, id)
		}
	}
	var inPG, total int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+s.table+" WHERE id::text = ANY($1)", ids).Scan(&inPG); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM "+s.table).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if inPG != len(ids) || total != len(ids) {
		t.Errorf("Postgres holds %d of the %d tweets it can store (%d rows in all)", inPG, len(ids), total)
	}
}
