package hashtags_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/stages/window"
	"github.com/causeway-go/causeway/topologies/hashtags"
)

// TestHoppingCountsAndLiveView counts 600 tweets a second apart in
// two-minute windows hopping every minute: each tweet is in two windows
// (both counted), the accounting balances, the live view saw every tweet,
// and a second read of the topic adds nothing.
func TestHoppingCountsAndLiveView(t *testing.T) {
	const n = 600
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets"))
	recs := tweetRecords(n)
	k.Produce(t, recs...)
	pool, _ := pgtest.Schema(t)
	ctx := context.Background()
	run := func(group string) *hashtags.Pipeline {
		p, err := hashtags.New(ctx, hashtags.Config{Brokers: k.Brokers, Group: group,
			Windows: window.Windows{Size: 2 * time.Minute, Hop: time.Minute}, Trending: time.Hour, Retention: time.Hour,
			BatchSize: 50, BatchTimeout: 20 * time.Millisecond,
			Postgres: postgres.TxConfig[hashtags.Tweet]{Pool: pool}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		deadline := time.Now().Add(time.Minute)
		for {
			stored, err := p.Sink().StoredOffsets(ctx, group, "tweets", []int32{0, 1, 2, 3})
			var sum int64
			for _, o := range stored {
				sum += o
			}
			if err == nil && sum == n {
				break
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("stored offsets %v, want them to sum to %d", stored, n)
			}
			time.Sleep(10 * time.Millisecond) // polling the offsets, bounded by the deadline
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := run("hop")
	s, ts := p.Stats(), p.TopologyStats()
	if s.Counted != n || s.Late != 0 || s.Duplicates != 0 || ts.Producer.Emitted != ts.Acked+ts.Failed+ts.Dropped || ts.Acked != n {
		t.Fatalf("stats %+v, topology emitted %d acked %d failed %d", s, ts.Producer.Emitted, ts.Acked, ts.Failed)
	}
	var rows, uses int64
	if err := pool.QueryRow(ctx, `SELECT count(*), sum(tweets) FROM hashtag_counts`).Scan(&rows, &uses); err != nil {
		t.Fatal(err)
	}
	// Three hashtags a tweet (some repeated: tags[i%6], tags[(i/6)%6],
	// tags[(i/36)%6]), each in two windows.
	var want int64
	for i := range n {
		set := map[int]bool{i % 6: true, (i / 6) % 6: true, (i / 36) % 6: true}
		want += int64(2 * len(set))
	}
	if uses != want || s.Hashtags != want {
		t.Fatalf("hashtag uses %d in the table, %d counted; want %d", uses, s.Hashtags, want)
	}
	var first time.Time
	if err := pool.QueryRow(ctx, `SELECT min(window_start) FROM hashtag_counts`).Scan(&first); err != nil ||
		!first.Equal(time.Date(2025, 3, 1, 8, 59, 0, 0, time.UTC)) {
		t.Fatalf("first window %v (%v): the 09:00:00 tweet's hopping windows start at 08:59 and 09:00", first, err)
	}
	live := p.Trending()
	var liveUses int64
	for _, tc := range live.Top {
		liveUses += tc.Tweets
	}
	if live.Tweets != n || liveUses != want/2 {
		t.Fatalf("live view: %d tweets, %d uses; want %d and %d", live.Tweets, liveUses, n, want/2)
	}
	// Another group reads the topic again, as a second listener's copy
	// would come: every tweet id was seen (the retention covers the ten
	// minutes of event time), nothing is added.
	p = run("hop-again")
	var again int64
	if err := pool.QueryRow(ctx, `SELECT sum(tweets) FROM hashtag_counts`).Scan(&again); err != nil || again != want {
		t.Fatalf("after a second run: %d uses (%v), want %d", again, err, want)
	}
	if s := p.Stats(); s.Counted != 0 || s.Duplicates != n {
		t.Fatalf("the second run counted %d tweets and %d duplicates; want 0 and %d", s.Counted, s.Duplicates, n)
	}
}
