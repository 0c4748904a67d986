package gbfs_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	spec "github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/gbfs/gbfstest"
	"github.com/causeway-go/causeway/producers/poll"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
	"github.com/causeway-go/causeway/topologies/gbfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// harness is a fake GBFS system on a manual clock, an in-process Kafka and
// a Postgres schema of the test's own.
type harness struct {
	t     testing.TB
	srv   *gbfstest.Server
	clock *gbfstest.ManualClock
	kafka *kafkatest.Cluster
	pool  *pgxpool.Pool

	// From the first station_status poll of the last run to the moment
	// everything it emitted was acknowledged.
	firstPoll, settledAt time.Time
}

func newHarness(t testing.TB, version string, stations int) *harness {
	t.Helper()
	pool, _ := pgtest.Schema(t)
	return newHarnessOn(t, version, stations, pool)
}

func newHarnessOn(t testing.TB, version string, stations int, pool *pgxpool.Pool) *harness {
	t.Helper()
	clock := gbfstest.NewManualClock(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC))
	srv, err := gbfstest.NewServer(gbfstest.Config{Version: version, Stations: stations, TTL: -1, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return &harness{t: t, srv: srv, clock: clock, pool: pool,
		kafka: kafkatest.Start(t, kfake.SeedTopics(4, gbfs.DefaultTopic))}
}

// runSpec says how one run of the pipeline goes.
type runSpec struct {
	polls int           // station_status polls to make, the fake's clock moving step after each
	step  time.Duration // default 3 s
	// onPoll, if set, sees each station_status poll (n from 1) before the
	// clock moves.
	onPoll func(n int, e poll.Event)
	// config, if set, adjusts the pipeline's configuration.
	config func(*gbfs.Config)
	// stop, if set, is closed by the test to stop the run instead of
	// waiting for it to settle (a kill).
	stop chan struct{}
}

// run runs a pipeline until it made r.polls station_status polls and
// everything emitted is acknowledged, then three more polls (the clock
// standing still: they find nothing new), then stops it.
func (h *harness) run(r runSpec) *gbfs.Pipeline {
	h.t.Helper()
	if r.step == 0 {
		r.step = 3 * time.Second
	}
	var polls atomic.Int64
	settled := make(chan struct{})
	extra := make(chan struct{})
	var once sync.Once
	cfg := gbfs.Config{
		FeedURL: h.srv.DiscoveryURL(), Client: h.srv.Client(), PollInterval: 20 * time.Millisecond,
		Kafka:           gbfs.KafkaConfig{Brokers: h.kafka.Brokers},
		Postgres:        gbfs.PostgresConfig{Pool: h.pool},
		Processors:      4,
		ShutdownTimeout: 10 * time.Second,
		Logger:          quiet,
		Poll: func(c *poll.Config[gbfs.Record]) {
			c.Jitter = -1
			c.OnPoll = func(e poll.Event) {
				if e.Feed != spec.FeedStationStatus || e.Outcome == poll.OutcomeSkipped {
					return
				}
				n := int(polls.Add(1))
				if n == 1 {
					h.firstPoll = time.Now()
				}
				if r.onPoll != nil {
					r.onPoll(n, e)
				}
				select {
				case <-settled:
					if n >= r.polls+3 {
						once.Do(func() { close(extra) })
					}
					return
				default:
				}
				if n < r.polls {
					h.clock.Advance(r.step)
				}
			}
			c.ServerBackoff = poll.Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}
			c.ThrottleBackoff = poll.Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}
			c.NetworkBackoff = poll.Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond}
		},
	}
	if r.config != nil {
		r.config(&cfg)
	}
	ctx, cancel := context.WithCancel(h.t.Context())
	defer cancel()
	p, err := gbfs.New(ctx, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			h.t.Fatalf("pipeline stopped early: %v", err)
		case <-deadline:
			h.t.Fatalf("no end after 60 s: %d polls, %+v, %+v", polls.Load(), p.Producer().Stats().Counters, p.Stats())
		case <-r.stop:
			cancel()
			if err := <-done; err != nil {
				h.t.Logf("killed run: %v", err)
			}
			return p
		case <-tick.C:
			// Settled: the polls are made, nothing is pending in the producer
			// or in flight in the topology.
			ps, s := p.Producer().Stats(), p.Stats()
			if polls.Load() >= int64(r.polls) && ps.Pending == 0 && s.InFlight == 0 && s.Producer.Emitted == s.Acked+s.Failed+s.Dropped {
				select {
				case <-settled:
				default:
					h.settledAt = time.Now()
					close(settled)
				}
			}
			select {
			case <-extra:
				waiting = false
			default:
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		h.t.Fatal(err)
	}
	s := p.Stats()
	if s.Producer.Emitted != s.Acked+s.Failed+s.Dropped || s.InFlight != 0 {
		h.t.Errorf("conservation: emitted %d != acked %d + failed %d + dropped %d (in flight %d)",
			s.Producer.Emitted, s.Acked, s.Failed, s.Dropped, s.InFlight)
	}
	return p
}

// stored returns station_status as the fake's records.
func (h *harness) stored() map[spec.Key]spec.StationStatus {
	h.t.Helper()
	rows, err := h.pool.Query(context.Background(), `SELECT station_id, last_reported, num_bikes_available, num_bikes_disabled,
		num_docks_available, num_docks_disabled, is_installed, is_renting, is_returning FROM station_status`)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	out := map[spec.Key]spec.StationStatus{}
	for rows.Next() {
		var s spec.StationStatus
		if err := rows.Scan(&s.StationID, &s.LastReported, &s.NumBikesAvailable, &s.NumBikesDisabled,
			&s.NumDocksAvailable, &s.NumDocksDisabled, &s.IsInstalled, &s.IsRenting, &s.IsReturning); err != nil {
			h.t.Fatal(err)
		}
		if _, dup := out[s.Key()]; dup {
			h.t.Errorf("station_status holds %v twice", s.Key())
		}
		out[s.Key()] = s
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) count(q string) int64 {
	h.t.Helper()
	var n int64
	if err := h.pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
		h.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// checkChangeLog checks that the incremental change log equals the LAG
// view, row for row, and is not empty.
func (h *harness) checkChangeLog() int64 {
	h.t.Helper()
	for _, q := range []string{
		`SELECT count(*) FROM (SELECT * FROM station_changes EXCEPT ALL SELECT * FROM station_changes_lag) x`,
		`SELECT count(*) FROM (SELECT * FROM station_changes_lag EXCEPT ALL SELECT * FROM station_changes) x`,
	} {
		if n := h.count(q); n != 0 {
			h.t.Errorf("change log and LAG view differ: %s = %d", q, n)
		}
	}
	n := h.count(`SELECT count(*) FROM station_changes`)
	if n == 0 {
		h.t.Error("the change log is empty")
	}
	return n
}

// checkExactly checks that Postgres and Kafka hold exactly the rows want,
// each once, with their state.
func (h *harness) checkExactly(want map[spec.Key]spec.StationStatus) {
	h.t.Helper()
	got := h.stored()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			h.t.Errorf("station_status lacks %v", k)
		} else if !g.Equal(w) {
			h.t.Errorf("station_status %v = %+v, want %+v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			h.t.Errorf("station_status holds %v, never served", k)
		}
	}
	recs, err := h.kafka.ReadAll(context.Background(), gbfs.DefaultTopic)
	if err != nil {
		h.t.Fatal(err)
	}
	seen := map[spec.Key]int{}
	for _, r := range recs {
		var s spec.StationStatus
		if err := json.Unmarshal(r.Value, &s); err != nil {
			h.t.Fatalf("kafka record %s: %v", r.Value, err)
		}
		if string(r.Key) != s.StationID {
			h.t.Errorf("kafka record key %q, value's station %q", r.Key, s.StationID)
		}
		seen[s.Key()]++
		if w, ok := want[s.Key()]; !ok || !w.Equal(s) {
			h.t.Errorf("kafka record %s: not served so", r.Value)
		}
	}
	for k := range want {
		if seen[k] != 1 {
			h.t.Errorf("kafka holds %v %d times, want once", k, seen[k])
		}
	}
}

func served(srv *gbfstest.Server) map[spec.Key]spec.StationStatus {
	out := map[spec.Key]spec.StationStatus{}
	for _, s := range srv.Served() {
		out[s.Key()] = s
	}
	return out
}

// Every distinct (station_id, last_reported) the fake served lands once in
// Postgres and once in Kafka, in either GBFS version; polls that find the
// feed unchanged (304s) add nothing; the change log equals the LAG view.
func TestEveryReportOnce(t *testing.T) {
	for _, version := range []string{spec.V23, spec.V30} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			const stations = 150
			h := newHarness(t, version, stations)
			p := h.run(runSpec{polls: 12})
			want := served(h.srv)
			if len(want) <= stations {
				t.Fatalf("the fake served only %d rows", len(want))
			}
			h.checkExactly(want)
			changes := h.checkChangeLog()
			c := p.Counters()
			if c.Rows != int64(len(want)) || c.Changes != changes || c.Invalid != 0 || c.Failed != 0 {
				t.Errorf("counters %+v: want %d rows, %d changes", c, len(want), changes)
			}
			if c.Resent == 0 {
				t.Errorf("counters %+v: no re-sent rows dropped", c)
			}
			if ps := p.Producer().Stats(); ps.Feeds[0].NotModified < 3 {
				t.Errorf("station_status: %d not-modified, want >= 3 (the polls after the clock stopped)", ps.Feeds[0].NotModified)
			}
			if n := h.count(`SELECT count(*) FROM station_information`); n != stations {
				t.Errorf("station_information holds %d stations, want %d", n, stations)
			}
			if top := p.TopChanged(5); len(top) != 5 || top[0].Changes < top[4].Changes {
				t.Errorf("top changed %+v", top)
			}
		})
	}
}

// 5xx and 429 bursts, malformed and truncated documents and a document
// whose last_updated went backwards are counted and the next polls recover:
// what lands is exactly what was served.
func TestFaults(t *testing.T) {
	t.Parallel()
	h := newHarness(t, spec.V23, 120)
	p := h.run(runSpec{polls: 16, onPoll: func(n int, _ poll.Event) {
		switch n {
		case 3:
			h.srv.InjectFaults(gbfstest.Faults{ServerErrors: 3})
		case 7:
			h.srv.InjectFaults(gbfstest.Faults{Throttled: 2, RetryAfter: time.Second})
		case 10:
			h.srv.InjectFaults(gbfstest.Faults{Malformed: 1, Truncated: 1})
		case 13:
			h.srv.InjectFaults(gbfstest.Faults{Backwards: 1})
		}
	}})
	fs := h.srv.Stats()
	ps := p.Producer().Stats().Feeds[0]
	if fs.ServerErrors != 3 || fs.Throttled != 2 || fs.Malformed != 1 || fs.Truncated != 1 || fs.Backwards != 1 {
		t.Fatalf("the fake injected %+v", fs)
	}
	if ps.ServerErrors != 3 || ps.Throttled != 2 || ps.Malformed != 2 || ps.Stale != 1 {
		t.Errorf("producer counted %+v, want 3 server errors, 2 throttled, 2 malformed, 1 stale", ps.Counters)
	}
	h.checkExactly(served(h.srv))
	h.checkChangeLog()
}

// A run killed mid-run (its Postgres writes stop at a batch boundary, as a
// killed process's transactions do, and it is abandoned) and a new run on
// the same database: no row twice, nothing served to the new run missing,
// and the change log equals the LAG view.
func TestKillAndRestart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, spec.V30, 150)
	stop := make(chan struct{})
	var batches atomic.Int64
	killed := make(chan struct{})
	var once sync.Once
	first := h.run(runSpec{polls: 1000, stop: stop,
		config: func(c *gbfs.Config) {
			c.ShutdownTimeout = 300 * time.Millisecond
			c.Postgres.Batcher.BatchSize = 40 // many small batches, so the kill falls in the middle
			c.Postgres.Wrap = func(next stages.BatchHandler[gbfs.Record]) stages.BatchHandler[gbfs.Record] {
				return func(ctx context.Context, b *stages.Batch[gbfs.Record]) error {
					if batches.Add(1) > 25 {
						once.Do(func() { close(killed) })
						<-ctx.Done() // dead: nothing more is written
						return ctx.Err()
					}
					return next(ctx, b)
				}
			}
		},
		onPoll: func(n int, _ poll.Event) {
			select {
			case <-killed:
				select {
				case <-stop:
				default:
					close(stop)
				}
			default:
			}
		}})
	if first.Counters().Rows == 0 {
		t.Fatal("the first run stored nothing")
	}
	before := h.stored()
	servedBefore := served(h.srv)
	second := h.run(runSpec{polls: 8})
	if c := second.Counters(); c.Restored != 150 {
		t.Errorf("second run restored %d stations' states, want 150", c.Restored)
	}
	want := served(h.srv)
	got := h.stored()
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("station_status holds %v, never served", k)
		}
	}
	// Everything served after the kill is stored, and what was stored
	// before stays.
	for k := range want {
		_, old := servedBefore[k]
		if _, ok := got[k]; !ok && !old {
			t.Errorf("station_status lacks %v, served to the second run", k)
		}
	}
	for k := range before {
		if _, ok := got[k]; !ok {
			t.Errorf("station_status lost %v", k)
		}
	}
	h.checkChangeLog()
	if n := h.count(`SELECT count(*) FROM (SELECT station_id, at FROM station_changes GROUP BY 1, 2 HAVING count(*) > 1) x`); n != 0 {
		t.Errorf("%d duplicate changes", n)
	}
}

// Postgres restarting mid-run: the batches it misses are retried until it
// is back, and in the end it holds exactly what was served, with the
// change log equal to the LAG view.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	cluster := pgtest.StartCluster(t)
	pool, _ := pgtest.SchemaOn(t, cluster.URL)
	h := newHarnessOn(t, spec.V23, 120, pool)
	p := h.run(runSpec{polls: 10, config: func(c *gbfs.Config) {
		c.Postgres.Retry = postgres.Retry{Attempts: 100, Backoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	}, onPoll: func(n int, _ poll.Event) {
		switch n {
		case 4:
			if err := cluster.Stop(); err != nil {
				t.Error(err)
			}
		case 6:
			if err := cluster.Start(); err != nil {
				t.Error(err)
			}
		}
	}})
	if c := p.Counters(); c.Failed != 0 {
		t.Errorf("counters %+v: rows failed", c)
	}
	h.checkExactly(served(h.srv))
	h.checkChangeLog()
}
