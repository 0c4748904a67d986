package poll_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/causeway-go/causeway/internal/memnet"
	"github.com/causeway-go/causeway/producers/poll"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// doc is the test feeds' document: items and optional freshness.
type doc struct {
	LastUpdated int64    `json:"last_updated,omitempty"`
	TTL         int      `json:"ttl,omitempty"`
	Items       []string `json:"items"`
}

func (d doc) bytes() []byte {
	b, _ := json.Marshal(d)
	return b
}

func splitDoc(b []byte) ([]string, error) {
	var d doc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, err
	}
	return d.Items, nil
}

func docFreshness(b []byte) (time.Time, time.Duration, error) {
	var d doc
	if err := json.Unmarshal(b, &d); err != nil || d.LastUpdated == 0 {
		return time.Time{}, 0, err
	}
	return time.Unix(d.LastUpdated, 0), time.Duration(d.TTL) * time.Second, nil
}

// request is what the test server saw of one request.
type request struct {
	at     time.Time
	header http.Header
}

// feedServer records requests and answers with respond.
type feedServer struct {
	mu       sync.Mutex
	reqs     []request
	inFlight int
	maxIn    int
	respond  func(n int, w http.ResponseWriter, r *http.Request) // n counts from 0
}

func (s *feedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, request{at: time.Now(), header: r.Header.Clone()})
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	s.respond(n, w, r)
}

func (s *feedServer) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

// gaps returns the times between consecutive requests.
func (s *feedServer) gaps() []time.Duration {
	reqs := s.requests()
	var out []time.Duration
	for i := 1; i < len(reqs); i++ {
		out = append(out, reqs[i].at.Sub(reqs[i-1].at))
	}
	return out
}

// pipeline is a poll producer in a topology whose processors record what
// they get, all inside the calling synctest bubble.
type pipeline struct {
	prod   *poll.Producer[string]
	top    *topology.Topology[string]
	mu     sync.Mutex
	got    []string
	events []poll.Event
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// options tune a pipeline.
type options struct {
	maxDemand int           // processors' MaxDemand (default 64)
	hold      chan struct{} // if set, processors wait for it to close
}

// startPipeline serves h in memory and runs a topology with a poll
// producer for cfg (whose feeds' URLs may be anything: every request
// reaches h). Cleanup stops it and checks conservation.
func startPipeline(t *testing.T, h http.Handler, cfg poll.Config[string], o options) *pipeline {
	t.Helper()
	client, stopServer := memnet.Serve(h)
	t.Cleanup(stopServer)
	p := &pipeline{logs: &syncBuffer{}, done: make(chan error, 1)}
	cfg.Client = client
	cfg.Logger = slog.New(slog.NewTextHandler(p.logs, nil))
	cfg.OnPoll = func(e poll.Event) {
		p.mu.Lock()
		p.events = append(p.events, e)
		p.mu.Unlock()
	}
	prod, err := poll.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.prod = prod
	maxDemand := o.maxDemand
	if maxDemand == 0 {
		maxDemand = 64
	}
	top, err := topology.New(topology.Spec[string]{
		Name:     "poll-test",
		Producer: topology.ProducerSpec[string]{Producer: prod, Keep: stages.Block},
		Processors: topology.ProcessorSpec[string]{
			Concurrency: 1,
			MaxDemand:   maxDemand,
			MinDemand:   maxDemand - 1,
			Handle: func(ctx context.Context, m *stages.Message[string]) error {
				if o.hold != nil {
					select {
					case <-o.hold:
					case <-ctx.Done():
					}
				}
				p.mu.Lock()
				p.got = append(p.got, m.Data)
				p.mu.Unlock()
				return nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	p.top = top
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- top.Run(ctx) }()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("topology Run: %v", err)
		}
		s := top.Stats()
		if s.InFlight != 0 || s.Producer.Emitted != s.Acked+s.Failed+s.Dropped {
			t.Errorf("conservation broken: emitted %d, acked %d, failed %d, dropped %d, in flight %d",
				s.Producer.Emitted, s.Acked, s.Failed, s.Dropped, s.InFlight)
		}
	})
	return p
}

// stop cancels the topology and returns Run's error (once).
func (p *pipeline) stop() error {
	p.cancel()
	err, ok := <-p.done
	if ok {
		close(p.done)
	}
	return err
}

func (p *pipeline) received() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

func (p *pipeline) outcomes() []poll.Outcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []poll.Outcome
	for _, e := range p.events {
		out = append(out, e.Outcome)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// items returns n item names starting at from: "i<from>", "i<from+1>"…
func items(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("i%d", from+i)
	}
	return out
}

// feed is a one-feed config polling every interval, jitter off.
func feed(interval time.Duration) poll.Config[string] {
	return poll.Config[string]{
		Feeds:  []poll.Feed[string]{{Name: "test", URL: "http://feed.test/doc.json", Split: splitDoc, Interval: interval}},
		Jitter: -1,
	}
}
