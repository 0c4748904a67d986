package poll_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/gbfs/gbfstest"
	"github.com/causeway-go/causeway/internal/memnet"
	"github.com/causeway-go/causeway/producers/poll"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// stationPipeline is the poll producer on a fake GBFS station_status in a
// real topology: processors partitioned by station drop rows whose
// last_reported did not move (the re-sent rows), and a batcher stores the
// rest.
type stationPipeline struct {
	prod *poll.Producer[gbfs.StationStatus]
	top  *topology.Topology[gbfs.StationStatus]

	mu       sync.Mutex
	last     map[string]time.Time // per station, the newest last_reported kept
	stored   map[gbfs.Key][]gbfs.StationStatus
	resent   int
	invalid  int
	progress chan struct{} // poked on every poll and batch
}

func newStationPipeline(t *testing.T, url string, client *http.Client, feed func(*poll.Feed[gbfs.StationStatus]), cfg func(*poll.Config[gbfs.StationStatus])) *stationPipeline {
	t.Helper()
	p := &stationPipeline{last: map[string]time.Time{}, stored: map[gbfs.Key][]gbfs.StationStatus{}, progress: make(chan struct{}, 1)}
	f := poll.Feed[gbfs.StationStatus]{Name: gbfs.FeedStationStatus, URL: url, Split: gbfs.SplitStationStatus, Freshness: gbfs.Freshness}
	feed(&f)
	c := poll.Config[gbfs.StationStatus]{
		Feeds:  []poll.Feed[gbfs.StationStatus]{f},
		Client: client,
		Logger: slog.New(slog.DiscardHandler),
		OnPoll: func(poll.Event) { p.poke() },
	}
	cfg(&c)
	prod, err := poll.New(c)
	if err != nil {
		t.Fatal(err)
	}
	p.prod = prod
	byStation := func(m *stages.Message[gbfs.StationStatus]) uint64 {
		h := fnv.New64a()
		h.Write([]byte(m.Data.StationID))
		return h.Sum64()
	}
	top, err := topology.New(topology.Spec[gbfs.StationStatus]{
		Name:     "gbfs-station-status",
		Producer: topology.ProducerSpec[gbfs.StationStatus]{Producer: prod, BufferSize: 1000},
		Processors: topology.ProcessorSpec[gbfs.StationStatus]{
			Concurrency: 4,
			MaxDemand:   100,
			PartitionBy: byStation,
			Handle:      p.handle,
		},
		Batchers: map[string]topology.BatcherSpec[gbfs.StationStatus]{
			"store": {BatchSize: 200, BatchTimeout: 50 * time.Millisecond, Handle: p.store},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.top = top
	return p
}

func (p *stationPipeline) poke() {
	select {
	case p.progress <- struct{}{}:
	default:
	}
}

// handle validates a row and drops it if its station's last_reported did
// not move: processors are partitioned by station, so each station's rows
// come in order.
func (p *stationPipeline) handle(_ context.Context, m *stages.Message[gbfs.StationStatus]) error {
	s := m.Data
	if err := s.Validate(); err != nil {
		p.mu.Lock()
		p.invalid++
		p.mu.Unlock()
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if last, ok := p.last[s.StationID]; ok && !s.LastReported.After(last) {
		p.resent++
		m.Route() // acknowledged, stored nowhere
		return nil
	}
	p.last[s.StationID] = s.LastReported
	m.Route("store")
	return nil
}

func (p *stationPipeline) store(_ context.Context, b *stages.Batch[gbfs.StationStatus]) error {
	p.mu.Lock()
	for _, m := range b.Messages {
		p.stored[m.Data.Key()] = append(p.stored[m.Data.Key()], m.Data)
	}
	p.mu.Unlock()
	p.poke()
	return nil
}

// waitFor waits, with a deadline, until cond holds, checking after every
// poll and every stored batch.
func (p *stationPipeline) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-p.progress:
		case <-deadline.C:
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
	}
}

func (p *stationPipeline) storedAll(served []gbfs.StationStatus) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range served {
		if len(p.stored[s.Key()]) == 0 {
			return false
		}
	}
	return true
}

// check asserts that every distinct (station_id, last_reported) the fake
// served was stored exactly once, with the state it was served with, and
// nothing else was.
func (p *stationPipeline) check(t *testing.T, served []gbfs.StationStatus) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(served) == 0 {
		t.Fatal("the fake served nothing")
	}
	for _, s := range served {
		got := p.stored[s.Key()]
		switch {
		case len(got) == 0:
			t.Errorf("(%s, %v) served, never stored", s.StationID, s.LastReported)
		case len(got) > 1:
			t.Errorf("(%s, %v) stored %d times", s.StationID, s.LastReported, len(got))
		case !got[0].Equal(s):
			t.Errorf("(%s, %v) stored as %+v, served as %+v", s.StationID, s.LastReported, got[0], s)
		}
	}
	if len(p.stored) != len(served) {
		t.Errorf("stored %d distinct rows, the fake served %d", len(p.stored), len(served))
	}
	if p.invalid != 0 {
		t.Errorf("%d invalid rows", p.invalid)
	}
}

// The poll producer against the fake GBFS server over loopback TLS and
// HTTP/2, in a real topology, both versions, with faults: every distinct
// (station_id, last_reported) served arrives exactly once once
// de-duplicated by last_reported, and unchanged polls add nothing.
func TestGBFSOverHTTP2(t *testing.T) {
	for _, version := range []string{gbfs.V23, gbfs.V30} {
		t.Run(version, func(t *testing.T) {
			clock := gbfstest.NewManualClock(time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC))
			srv, err := gbfstest.NewServer(gbfstest.Config{Version: version, Stations: 300, Clock: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Close)
			var h2 bool
			client := srv.Client()
			p := newStationPipeline(t, srv.FeedURL(gbfs.FeedStationStatus), client,
				func(f *poll.Feed[gbfs.StationStatus]) { f.Interval = 5 * time.Millisecond },
				func(c *poll.Config[gbfs.StationStatus]) {
					c.Jitter = -1
					fast := poll.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}
					c.NetworkBackoff, c.ServerBackoff, c.ThrottleBackoff = fast, fast, fast
				})
			stop := topologytest.Start(t, p.top)

			publications := int64(1)
			p.waitFor(t, "the first publication", 10*time.Second, func() bool { return srv.Stats().Publications == publications })
			for i := range 20 {
				switch i {
				case 5:
					srv.InjectFaults(gbfstest.Faults{ServerErrors: 3})
				case 8:
					srv.InjectFaults(gbfstest.Faults{Malformed: 1, Truncated: 1})
				case 11:
					srv.InjectFaults(gbfstest.Faults{Backwards: 1})
				case 14:
					srv.InjectFaults(gbfstest.Faults{Throttled: 1, RetryAfter: time.Second})
				}
				clock.Advance(gbfstest.DefaultTTL)
				publications++
				p.waitFor(t, fmt.Sprintf("publication %d", publications), 10*time.Second, func() bool {
					return srv.Stats().Publications == publications
				})
				// Some polls within the period: 304s, nothing new.
				polls := p.prod.Stats().Polls
				p.waitFor(t, "more polls", 10*time.Second, func() bool { return p.prod.Stats().Polls >= polls+3 })
			}
			served := srv.Served()
			p.waitFor(t, "every served row", 10*time.Second, func() bool { return p.storedAll(served) })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			p.check(t, served)

			s, st := p.prod.Stats(), srv.Stats()
			t.Logf("%d rows served in %d publications; producer %+v; server %+v", len(served), st.Publications, s.Counters, st)
			if s.Documents != st.Publications || s.Items != s.Documents*300 {
				t.Errorf("producer split %d documents into %d items; the fake served %d publications of 300 stations",
					s.Documents, s.Items, st.Publications)
			}
			// The last request may have been cut short by the stop.
			if s.NotModified < 40 || s.NotModified > st.NotModified || s.NotModified < st.NotModified-1 {
				t.Errorf("producer saw %d 304s, the fake sent %d", s.NotModified, st.NotModified)
			}
			if s.ServerErrors != 3 || s.Malformed != 2 || s.Stale != 1 || s.Throttled != 1 || s.ClientErrors != 0 {
				t.Errorf("producer counters: %+v", s.Counters)
			}
			if got := len(served) + p.resent; int64(got) != s.Items {
				t.Errorf("stored %d + re-sent %d != emitted %d", len(served), p.resent, s.Items)
			}
			resp, err := client.Get(srv.DiscoveryURL())
			if err == nil {
				h2 = resp.ProtoMajor == 2
				resp.Body.Close()
			}
			if !h2 {
				t.Errorf("the client did not speak HTTP/2 to the fake (err %v)", err)
			}
		})
	}
}

// The same, on the fake's own schedule: inside a synctest bubble the
// fake's simulation and the producer share the bubble's clock, and the
// producer follows the feed's last_updated + ttl. Twenty simulated minutes
// with faults, both versions.
func TestGBFSFollowingTTL(t *testing.T) {
	for _, version := range []string{gbfs.V23, gbfs.V30} {
		t.Run(version, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv, err := gbfstest.NewServer(gbfstest.Config{Version: version, Stations: 500, TTL: 15 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				client, stopServer := memnet.Serve(srv.Handler())
				defer stopServer()
				p := newStationPipeline(t, "http://gbfs.test/station_status.json", client,
					func(f *poll.Feed[gbfs.StationStatus]) { f.FollowHints = true },
					func(c *poll.Config[gbfs.StationStatus]) {})
				stop := topologytest.Start(t, p.top)
				for minute := range 20 {
					switch minute {
					case 3:
						srv.InjectFaults(gbfstest.Faults{ServerErrors: 2})
					case 6:
						srv.InjectFaults(gbfstest.Faults{Throttled: 2, RetryAfter: 20 * time.Second})
					case 9:
						srv.InjectFaults(gbfstest.Faults{Malformed: 1, Truncated: 1, Backwards: 1})
					case 12:
						srv.SetDelay(3 * time.Second)
					case 14:
						srv.SetDelay(0)
					}
					time.Sleep(time.Minute)
				}
				synctest.Wait()
				served := srv.Served()
				p.waitFor(t, "every served row", time.Minute, func() bool { return p.storedAll(served) })
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				p.check(t, served)
				s, st := p.prod.Stats(), srv.Stats()
				t.Logf("%d rows served in %d publications; producer %+v", len(served), st.Publications, s.Counters)
				// 80 publications in 20 minutes: the producer fetched nearly
				// all, each about once, without a storm of 304s.
				if st.Publications < 70 || s.Polls > 110 {
					t.Errorf("%d publications fetched in %d polls", st.Publications, s.Polls)
				}
				if s.ServerErrors != 2 || s.Throttled != 2 || s.Malformed != 2 || s.Stale != 1 {
					t.Errorf("producer counters: %+v", s.Counters)
				}
			})
		})
	}
}
