package twitter

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"path/filepath"

	"github.com/causeway-go/causeway/producers/twitter/twittertest"
)

// TestResumeAfterRestart stops a stream with tweets received but not
// stored (as a killed process would), then starts a new Stream from the
// state file's resume point: the first connection asks for backfill, no
// tweet the fake served is missing, and the replay of what was stored is
// dropped and counted when the stored ids are given (or reaches an
// idempotent sink when they are not).
func TestResumeAfterRestart(t *testing.T) {
	tests := []struct {
		name string
		seed bool
	}{
		{"stored ids seeded", true},
		{"idempotent sink", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const n, storedFirst, replay = 1000, 300, 800
			srv := newServer(t, twittertest.Config{H2C: true, Record: true, BackfillLimit: replay}, recordedLines(t)[:n])
			state := StateFile{Path: filepath.Join(t.TempDir(), "x-stream.state")}
			ctx := context.Background()

			// First run: it reads every tweet, the program stores the
			// first 300 and saves its resume point, then dies with 700
			// tweets received and not stored.
			a := newStream(srv, newProbe(), Config{Sample: true, BackfillMinutes: 5})
			stopA, bufA := runBare(t, a)
			<-srv.Done()
			waitUntil(t, "the first run to read every tweet", func() bool { return a.Stats().Emitted >= n })
			bufA.Ask(0, storedFirst)
			first, err := bufA.Take(ctx, 0, nil)
			if err != nil || len(first) != storedFirst {
				t.Fatalf("took %d tweets: %v", len(first), err)
			}
			stored := map[string]int{}
			var ids []string
			for i, m := range first {
				stored[m.Data.ID]++
				ids = append(ids, m.Data.ID)
				if at := m.Data.ReceivedAt; at.IsZero() || i > 0 && at.Before(first[i-1].Data.ReceivedAt) {
					t.Fatalf("tweet %d: ReceivedAt %v after %v: want set and in order", i, at, first[i-1].Data.ReceivedAt)
				}
			}
			if err := state.Save(first[len(first)-1].Data.ReceivedAt); err != nil {
				t.Fatal(err)
			}
			if err := stopA(); err != nil {
				t.Fatal(err)
			}

			// Second run, from the saved resume point.
			from, err := state.Load()
			if err != nil || !from.Equal(first[len(first)-1].Data.ReceivedAt) {
				t.Fatalf("state file gave %v, %v; want %v", from, err, first[len(first)-1].Data.ReceivedAt)
			}
			cfg := Config{Sample: true, BackfillMinutes: 5, ResumeFrom: from}
			if tt.seed {
				cfg.StoredIDs = ids
			}
			p := newProbe()
			b := newStream(srv, p, cfg)
			_, bufB := runBare(t, b)
			waitUntil(t, "the second run to emit the backfill", func() bool {
				st := b.Stats()
				return st.Emitted+st.Deduplicated >= replay
			})
			st := b.Stats()
			bufB.Ask(0, int(st.Emitted))
			second, err := bufB.Take(ctx, 0, nil)
			if err != nil || int64(len(second)) != st.Emitted {
				t.Fatalf("took %d of %d tweets: %v", len(second), st.Emitted, err)
			}
			for _, m := range second {
				stored[m.Data.ID]++
			}

			// The backfill replayed the last 800 served: 100 of them stored
			// by the first run, 700 lost by it.
			wantDup, wantEmitted := int64(0), int64(replay)
			if tt.seed {
				wantDup, wantEmitted = replay-(n-storedFirst), n-storedFirst
			}
			if st.Tweets != replay || st.Deduplicated != wantDup || st.Emitted != wantEmitted {
				t.Errorf("second run: %d tweets, %d deduplicated, %d emitted; want %d, %d, %d",
					st.Tweets, st.Deduplicated, st.Emitted, replay, wantDup, wantEmitted)
			}
			if err := st.Check(); err != nil {
				t.Error(err)
			}
			_, cs := p.events()
			if len(cs) != 1 || !cs[0].Resume || cs[0].Backfill != 1 || !strings.Contains(cs[0].URL, "backfill_minutes=1") {
				t.Errorf("connects %+v: want one resuming connection asking backfill_minutes=1", cs)
			}

			var l Line
			served := map[string]bool{}
			for _, raw := range srv.Served() {
				if err := Decode(raw, &l); err != nil {
					t.Fatal(err)
				}
				served[l.Tweet.ID] = true
			}
			var missing, twice int
			for id := range served {
				switch stored[id] {
				case 0:
					missing++
				case 1:
				default:
					twice++
				}
			}
			if len(served) != n || missing != 0 || int64(twice) != wantEmitted-(n-storedFirst) {
				t.Errorf("served %d distinct tweets; %d missing from the store, %d stored twice; want %d, 0, %d",
					len(served), missing, twice, n, wantEmitted-(n-storedFirst))
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestResumeBackfillMinutes checks how far back a resumed start asks, on
// every attempt until one connects, and that a gap beyond the backfill's
// reach is logged as lost.
func TestResumeBackfillMinutes(t *testing.T) {
	tests := []struct {
		name  string
		gap   time.Duration
		limit int
		want  int
		log   string
	}{
		{"seconds", 20 * time.Second, 5, 1, "resuming with backfill"},
		{"just over a minute", 61 * time.Second, 5, 2, "resuming with backfill"},
		{"clock behind", -time.Minute, 5, 1, "resuming with backfill"},
		{"beyond the limit", 90 * time.Second, 1, 1, "tweets in between are lost"},
		{"beyond the API's reach", 7 * time.Minute, 5, 5, "tweets in between are lost"},
		{"backfill off", time.Minute, 0, 0, "resuming without backfill"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, twittertest.Config{H2C: true, Faults: twittertest.Faults{Unavailable: 1}}, recordedLines(t)[:10])
			var logs lockedBuffer
			now := time.Now()
			p := newProbe()
			s := newStream(srv, p, Config{Sample: true, BackfillMinutes: tt.limit, ResumeFrom: now.Add(-tt.gap),
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			s.clk.now = func() time.Time { return now }
			stop, _ := runBare(t, s)
			p.waitFor(t, "a connection", func(_ []ReconnectEvent, cs []ConnectEvent) bool { return len(cs) > 0 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			rs, cs := p.events()
			// The first attempt met a 503; the next still resumes.
			if len(rs) < 1 || rs[0].Status != 503 || !cs[0].Resume || cs[0].Backfill != tt.want {
				t.Errorf("reconnects %+v, connects %+v: want a 503, then a resuming connection with backfill %d", rs, cs, tt.want)
			}
			if got := resumeBackfill(tt.gap, tt.limit); got != tt.want {
				t.Errorf("resumeBackfill(%v, %d) = %d, want %d", tt.gap, tt.limit, got, tt.want)
			}
			if out := logs.String(); strings.Count(out, tt.log) != 1 {
				t.Errorf("logs do not say %q once:\n%s", tt.log, out)
			}
		})
	}
}

// TestResumeOverALiveGap restarts against a live timeline, which moves on
// while no client is connected, as the API's does: the first run stores
// 300 tweets of those it received and stops; the timeline publishes 1,000
// more with nobody connected; the second run, resuming from the state
// file with the stored ids, backfills all of it. Every tweet published is
// stored exactly once, and the replay of the stored ones is counted.
func TestResumeOverALiveGap(t *testing.T) {
	t.Parallel()
	const n, storedFirst = 5000, 300
	lines := recordedLines(t)[:n]
	srv := newServer(t, twittertest.Config{H2C: true, Rate: 2000, Live: true, KeepAlive: -1}, lines)
	state := StateFile{Path: filepath.Join(t.TempDir(), "x-stream.state")}
	ctx := context.Background()

	a := newStream(srv, newProbe(), Config{Sample: true, BackfillMinutes: 5})
	stopA, bufA := runBare(t, a)
	waitUntil(t, "the first run to receive 500 tweets", func() bool { return a.Stats().Emitted >= 500 })
	bufA.Ask(0, storedFirst)
	first, err := bufA.Take(ctx, 0, nil)
	if err != nil || len(first) != storedFirst {
		t.Fatalf("took %d tweets: %v", len(first), err)
	}
	stored := map[string]int{}
	var ids []string
	for _, m := range first {
		stored[m.Data.ID]++
		ids = append(ids, m.Data.ID)
	}
	if err := state.Save(first[len(first)-1].Data.ReceivedAt); err != nil {
		t.Fatal(err)
	}
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	left := srv.Stats().Timeline
	waitUntil(t, "the timeline to move on by 1,000 with no client", func() bool { return srv.Stats().Timeline >= left+1000 })

	from, err := state.Load()
	if err != nil {
		t.Fatal(err)
	}
	p := newProbe()
	b := newStream(srv, p, Config{Sample: true, BackfillMinutes: 5, ResumeFrom: from, StoredIDs: ids})
	_, bufB := runBare(t, b)
	<-srv.Done()
	waitUntil(t, "the second run to emit the whole timeline", func() bool {
		st := b.Stats()
		return st.Emitted+st.Deduplicated >= n
	})
	st := b.Stats()
	bufB.Ask(0, int(st.Emitted))
	second, err := bufB.Take(ctx, 0, nil)
	if err != nil || int64(len(second)) != st.Emitted {
		t.Fatalf("took %d of %d tweets: %v", len(second), st.Emitted, err)
	}
	for _, m := range second {
		stored[m.Data.ID]++
	}
	if st.Tweets != n || st.Deduplicated != storedFirst || st.Emitted != n-storedFirst {
		t.Errorf("second run: %d tweets, %d deduplicated, %d emitted; want %d, %d, %d",
			st.Tweets, st.Deduplicated, st.Emitted, n, storedFirst, n-storedFirst)
	}
	if err := st.Check(); err != nil {
		t.Error(err)
	}
	var l Line
	var missing, twice int
	for _, raw := range lines {
		if err := Decode(raw, &l); err != nil {
			t.Fatal(err)
		}
		switch stored[l.Tweet.ID] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	if missing != 0 || twice != 0 || len(stored) != n {
		t.Errorf("of %d tweets published, %d missing from the store, %d stored twice (%d distinct stored)", n, missing, twice, len(stored))
	}
	if _, cs := p.events(); len(cs) != 1 || !cs[0].Resume || cs[0].Backfill != 1 {
		t.Errorf("connects %+v: want one resuming connection asking backfill_minutes=1", cs)
	}
}
