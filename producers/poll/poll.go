// Package poll is a pull producer that polls HTTP documents on an interval
// and emits what a user function splits each new document into: the shape
// of feeds published as documents rather than streams (bike-share GBFS
// files, status pages, price lists).
//
// It is polite and it does not waste: an unchanged document costs a 304
// (If-None-Match, If-Modified-Since) or, without validators, is recognised
// by its body and emits nothing; with FollowHints it polls when the
// document says it will change (its own last_updated + ttl through the
// Freshness hook, or Cache-Control max-age); every wait gets a little
// jitter; errors back off by class (network: linear; 5xx and 429:
// exponential, never sooner than Retry-After); a 4xx other than 429 stops
// Run with a *StatusError naming the URL and status.
//
// It is a pull producer: it polls only when processors have asked for
// messages. A poll that falls due while nobody has asked is skipped (and
// counted); a document holding more items than were asked for is emitted as
// demand allows, and its feed is not polled again before all of it has
// been emitted. Nothing split is dropped.
package poll

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/stages"

	"github.com/causeway-go/causeway/internal/backoff"
)

// Document is the Metadata of every message a Producer emits: where and
// when its document came from. The messages of one document share it.
type Document struct {
	Feed        string    // the feed's Name
	URL         string    // the feed's URL
	Fetched     time.Time // when the response arrived
	LastUpdated time.Time // from Freshness; zero if unknown
	Seq         int64     // the feed's count of documents, from 1
}

// Producer polls its feeds; see the package documentation. Run it with
// ProducerSpec.Concurrency 1 (the default).
type Producer[T any] struct {
	cfg     Config[T]
	client  *http.Client
	owned   *http.Transport // the default client's transport, closed by Close
	feeds   []*feedState[T]
	running atomic.Bool
}

// feedState is one feed's schedule, validators, back-off and counters.
type feedState[T any] struct {
	Feed[T]
	counters counters

	next    time.Time           // when the next poll is due
	beat    time.Duration       // the last regular (not error) wait, before jitter
	pending []stages.Message[T] // split and not yet emitted

	etag, lastModified string
	bodySum            [sha256.Size]byte
	haveSum            bool
	lastUpdated        time.Time     // from Freshness, of the newest document seen
	ttl                time.Duration // likewise
	docs               int64

	networkErrs, serverErrs, throttles int // errors in a row, per class
}

// New returns a producer for cfg, or cfg's Validate error.
func New[T any](cfg Config[T]) (*Producer[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	p := &Producer[T]{cfg: cfg, client: cfg.Client}
	if p.client == nil {
		p.owned = http.DefaultTransport.(*http.Transport).Clone()
		p.owned.ForceAttemptHTTP2 = true
		p.client = &http.Client{Transport: p.owned}
	}
	for _, f := range cfg.Feeds {
		p.feeds = append(p.feeds, &feedState[T]{Feed: f, beat: f.Interval})
	}
	return p, nil
}

// Stats returns a snapshot of the producer's counters. It is safe to call
// at any time.
func (p *Producer[T]) Stats() Stats {
	var s Stats
	for _, f := range p.feeds {
		c := f.counters.snapshot()
		s.Feeds = append(s.Feeds, FeedStats{Name: f.Name, URL: f.URL, Counters: c})
		s.Counters.add(c)
	}
	return s
}

// Close closes the idle connections of the producer's own client (not of
// a Config.Client). The topology calls it after draining.
func (p *Producer[T]) Close() error {
	if p.owned != nil {
		p.owned.CloseIdleConnections()
	}
	return nil
}

// errConcurrentRun is returned by a second concurrent Run.
var errConcurrentRun = errors.New("poll: Run called concurrently: a Producer polls with one goroutine (ProducerSpec.Concurrency 1)")

// Run polls until ctx ends or the producer stage closes (it returns nil),
// or until a feed answers with a status retrying will not fix (it returns
// a *StatusError).
func (p *Producer[T]) Run(ctx context.Context, out *stages.Emitter[T]) error {
	if !p.running.CompareAndSwap(false, true) {
		return errConcurrentRun
	}
	defer p.running.Store(false)
	// The first polls wait for the first demand; after that a poll that
	// falls due without demand is skipped.
	if _, err := out.Demand(ctx); err != nil {
		return nil
	}
	now := time.Now()
	for _, f := range p.feeds {
		f.next = now
	}
	for ctx.Err() == nil {
		var err error
		if f := p.pendingFeed(); f != nil {
			err = p.drain(ctx, out, f)
		} else {
			err = p.beat(ctx, out)
		}
		if err != nil {
			if errors.Is(err, stages.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

// pendingFeed returns the first feed with items waiting for demand.
func (p *Producer[T]) pendingFeed() *feedState[T] {
	for _, f := range p.feeds {
		if len(f.pending) > 0 {
			return f
		}
	}
	return nil
}

// drain waits for demand and emits f's pending items. Polls that fall due
// meanwhile (f's own included) are skipped.
func (p *Producer[T]) drain(ctx context.Context, out *stages.Emitter[T], f *feedState[T]) error {
	due := f.next
	for _, g := range p.feeds {
		if g.next.Before(due) {
			due = g.next
		}
	}
	dctx, cancel := context.WithDeadline(ctx, due)
	defer cancel()
	n, err := out.Demand(dctx)
	if err != nil {
		if ctx.Err() == nil && dctx.Err() != nil {
			p.skipDue()
			return nil
		}
		return err
	}
	return p.emit(ctx, out, f, n)
}

// beat waits for the next due poll and, if anyone asked for messages,
// polls.
func (p *Producer[T]) beat(ctx context.Context, out *stages.Emitter[T]) error {
	f := p.nextDue()
	if wait := time.Until(f.next); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	n, err := out.TryDemand()
	if err != nil {
		return err
	}
	if n == 0 {
		p.skip(f)
		return nil
	}
	return p.poll(ctx, out, f)
}

// nextDue returns the feed without pending items whose poll is due first.
func (p *Producer[T]) nextDue() *feedState[T] {
	var due *feedState[T]
	for _, f := range p.feeds {
		if len(f.pending) == 0 && (due == nil || f.next.Before(due.next)) {
			due = f
		}
	}
	return due
}

// skipDue skips every due poll.
func (p *Producer[T]) skipDue() {
	now := time.Now()
	for _, f := range p.feeds {
		if !f.next.After(now) {
			p.skip(f)
		}
	}
}

// skip skips f's due poll: the next one is a regular wait later.
func (p *Producer[T]) skip(f *feedState[T]) {
	f.counters.skipped.Add(1)
	now := time.Now()
	wait := p.jitter(f.beat)
	f.next = now.Add(wait)
	p.event(Event{Feed: f.Name, URL: f.URL, At: now, Outcome: OutcomeSkipped, Wait: wait})
}

// poll fetches f once, handles the outcome, schedules f's next poll and
// emits what demand allows of a new document.
func (p *Producer[T]) poll(ctx context.Context, out *stages.Emitter[T], f *feedState[T]) error {
	start := time.Now()
	f.counters.polls.Add(1)
	r := p.fetch(ctx, f)
	if r.err != nil && ctx.Err() != nil {
		return ctx.Err() // stopping: not a network error
	}
	ev := Event{Feed: f.Name, URL: f.URL, At: start, Status: r.status}
	wait, items, stop := p.outcome(f, r, &ev)
	if stop != nil {
		p.event(ev)
		p.cfg.Logger.Error("poll: giving up on feed", "feed", f.Name, "url", f.URL, "status", r.statusText)
		return stop
	}
	ev.Wait = p.jitter(wait)
	f.next = start.Add(ev.Wait)
	p.event(ev)
	if len(items) == 0 {
		return nil
	}
	doc := &Document{Feed: f.Name, URL: f.URL, Fetched: time.Now(), LastUpdated: f.lastUpdated, Seq: f.docs}
	f.pending = f.pending[:0]
	for _, it := range items {
		f.pending = append(f.pending, stages.Message[T]{Data: it, Metadata: doc})
	}
	f.counters.pending.Store(int64(len(f.pending)))
	n, err := out.TryDemand()
	if err != nil {
		return err
	}
	return p.emit(ctx, out, f, n)
}

// outcome classifies a response, counts it, fills in ev and returns the
// wait before f's next poll (without jitter) and a new document's items. A
// status that retrying will not fix returns a *StatusError instead.
func (p *Producer[T]) outcome(f *feedState[T], r response, ev *Event) (time.Duration, []T, error) {
	var wait time.Duration
	switch {
	case r.err != nil:
		ev.Outcome, ev.Err = OutcomeNetwork, r.err
		f.counters.network.Add(1)
		f.networkErrs++
		wait = backoff.Linear(p.cfg.NetworkBackoff.Initial, p.cfg.NetworkBackoff.Max, f.networkErrs)
		p.cfg.Logger.Warn("poll: request failed", "feed", f.Name, "url", f.URL, "err", r.err, "retry_in", wait)
	case r.status == http.StatusNotModified:
		ev.Outcome = OutcomeNotModified
		f.counters.notModified.Add(1)
		p.resetBackoff(f)
		wait = p.regularWait(f, r.header)
	case r.status == http.StatusTooManyRequests:
		ev.Outcome = OutcomeThrottled
		f.counters.throttled.Add(1)
		f.throttles++
		wait = max(backoff.Exponential(p.cfg.ThrottleBackoff.Initial, p.cfg.ThrottleBackoff.Max, f.throttles), retryAfter(r.header, time.Now()))
		p.cfg.Logger.Warn("poll: throttled", "feed", f.Name, "url", f.URL, "status", r.statusText, "retry_in", wait)
	case r.status >= 500 && r.status <= 599:
		ev.Outcome = OutcomeServer
		f.counters.server.Add(1)
		f.serverErrs++
		wait = max(backoff.Exponential(p.cfg.ServerBackoff.Initial, p.cfg.ServerBackoff.Max, f.serverErrs), retryAfter(r.header, time.Now()))
		p.cfg.Logger.Warn("poll: server error", "feed", f.Name, "url", f.URL, "status", r.statusText, "retry_in", wait)
	case r.status/100 == 2:
		p.resetBackoff(f)
		items, outcome, err := p.document(f, r)
		ev.Outcome, ev.Err, ev.Items = outcome, err, len(items)
		if outcome == OutcomeMalformed {
			return f.beat, nil, nil
		}
		return p.regularWait(f, r.header), items, nil
	default:
		ev.Outcome = OutcomeClient
		f.counters.client.Add(1)
		ev.Err = &StatusError{Feed: f.Name, URL: f.URL, StatusCode: r.status, Status: r.statusText, Body: cut(r.body)}
		return 0, nil, ev.Err
	}
	return wait, nil, nil
}

// document handles a 2xx body: unchanged, stale, malformed or new.
func (p *Producer[T]) document(f *feedState[T], r response) ([]T, Outcome, error) {
	if r.tooLarge {
		err := fmt.Errorf("poll: %s: document larger than MaxBodySize (%d bytes)", f.URL, p.cfg.MaxBodySize)
		p.malformed(f, r.body, err)
		return nil, OutcomeMalformed, err
	}
	sum := sha256.Sum256(r.body)
	if f.haveSum && sum == f.bodySum {
		f.counters.unchanged.Add(1)
		p.keepValidators(f, r.header)
		return nil, OutcomeUnchanged, nil
	}
	var lastUpdated time.Time
	var ttl time.Duration
	if f.Freshness != nil {
		var err error
		if lastUpdated, ttl, err = f.Freshness(r.body); err != nil {
			lastUpdated, ttl = time.Time{}, 0
		}
		if !lastUpdated.IsZero() && lastUpdated.Before(f.lastUpdated) {
			f.counters.stale.Add(1)
			p.cfg.Logger.Warn("poll: stale document: last updated before the one already seen",
				"feed", f.Name, "url", f.URL, "last_updated", lastUpdated, "seen", f.lastUpdated)
			return nil, OutcomeStale, nil
		}
	}
	items, err := p.split(f, r.body)
	if err != nil {
		p.malformed(f, r.body, err)
		return nil, OutcomeMalformed, err
	}
	f.counters.documents.Add(1)
	f.docs++
	f.bodySum, f.haveSum = sum, true
	if !lastUpdated.IsZero() {
		f.lastUpdated = lastUpdated
	}
	f.ttl = ttl
	p.keepValidators(f, r.header)
	return items, OutcomeDocument, nil
}

// split calls the user's Split, turning a panic into an error.
func (p *Producer[T]) split(f *feedState[T], doc []byte) (items []T, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("poll: Split panicked: %v", v)
		}
	}()
	return f.Split(doc)
}

// malformed counts and logs a rejected document and forgets f's
// validators, so that the next poll fetches the document in full.
func (p *Producer[T]) malformed(f *feedState[T], doc []byte, err error) {
	f.counters.malformed.Add(1)
	f.etag, f.lastModified, f.haveSum = "", "", false
	attrs := []any{"feed", f.Name, "url", f.URL, "bytes", len(doc), "err", err}
	if off := errorOffset(err); off >= 0 {
		attrs = append(attrs, "offset", off, "near", excerpt(doc, off))
	}
	p.cfg.Logger.Warn("poll: malformed document", attrs...)
}

func (p *Producer[T]) keepValidators(f *feedState[T], h http.Header) {
	f.etag = h.Get("ETag")
	f.lastModified = h.Get("Last-Modified")
}

func (p *Producer[T]) resetBackoff(f *feedState[T]) {
	f.networkErrs, f.serverErrs, f.throttles = 0, 0, 0
}

// emit emits up to n of f's pending items.
func (p *Producer[T]) emit(ctx context.Context, out *stages.Emitter[T], f *feedState[T], n int) error {
	n = min(n, len(f.pending))
	if n == 0 {
		return nil
	}
	k, err := out.EmitAll(ctx, f.pending[:n])
	f.counters.items.Add(int64(k))
	rest := copy(f.pending, f.pending[k:])
	clear(f.pending[rest:])
	f.pending = f.pending[:rest]
	f.counters.pending.Store(int64(rest))
	return err
}

func (p *Producer[T]) event(e Event) {
	if p.cfg.OnPoll != nil {
		p.cfg.OnPoll(e)
	}
}
