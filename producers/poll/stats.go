package poll

import (
	"sync/atomic"
	"time"
)

// Counters count what a producer (or one of its feeds) did.
type Counters struct {
	Polls       int64 // requests sent
	Documents   int64 // new documents split (200s that were not unchanged, stale or malformed)
	NotModified int64 // 304 Not Modified
	Unchanged   int64 // 200s whose body was the same as the last document's
	Stale       int64 // documents older (by Freshness) than one already seen
	Skipped     int64 // polls due while nobody asked for messages: beats skipped

	NetworkErrors int64 // transport errors: no response, or a body cut short
	ServerErrors  int64 // 5xx
	Throttled     int64 // 429
	ClientErrors  int64 // other statuses (4xx): these stop Run
	Malformed     int64 // documents Split rejected, or too large

	Items   int64 // messages emitted
	Pending int64 // items split and waiting for demand (a gauge)
	Bytes   int64 // body bytes read
}

// Errors returns the number of failed polls, all classes together.
func (c Counters) Errors() int64 {
	return c.NetworkErrors + c.ServerErrors + c.Throttled + c.ClientErrors + c.Malformed
}

func (c *Counters) add(o Counters) {
	c.Polls += o.Polls
	c.Documents += o.Documents
	c.NotModified += o.NotModified
	c.Unchanged += o.Unchanged
	c.Stale += o.Stale
	c.Skipped += o.Skipped
	c.NetworkErrors += o.NetworkErrors
	c.ServerErrors += o.ServerErrors
	c.Throttled += o.Throttled
	c.ClientErrors += o.ClientErrors
	c.Malformed += o.Malformed
	c.Items += o.Items
	c.Pending += o.Pending
	c.Bytes += o.Bytes
}

// FeedStats are one feed's counters.
type FeedStats struct {
	Name string
	URL  string
	Counters
}

// Stats is a snapshot of a producer's counters: the totals, and each
// feed's in Config order.
type Stats struct {
	Counters
	Feeds []FeedStats
}

// counters are one feed's atomic counters.
type counters struct {
	polls, documents, notModified, unchanged, stale, skipped atomic.Int64
	network, server, throttled, client, malformed            atomic.Int64
	items, pending, bytes                                    atomic.Int64
}

func (c *counters) snapshot() Counters {
	return Counters{
		Polls: c.polls.Load(), Documents: c.documents.Load(), NotModified: c.notModified.Load(),
		Unchanged: c.unchanged.Load(), Stale: c.stale.Load(), Skipped: c.skipped.Load(),
		NetworkErrors: c.network.Load(), ServerErrors: c.server.Load(), Throttled: c.throttled.Load(),
		ClientErrors: c.client.Load(), Malformed: c.malformed.Load(),
		Items: c.items.Load(), Pending: c.pending.Load(), Bytes: c.bytes.Load(),
	}
}

// Outcome classifies one poll (or skipped beat) for an Event.
type Outcome uint8

// Outcomes.
const (
	OutcomeDocument    Outcome = iota // a new document, split into items
	OutcomeNotModified                // 304
	OutcomeUnchanged                  // 200, same body as the last document
	OutcomeStale                      // 200, older than a document already seen
	OutcomeSkipped                    // no poll: nobody asked for messages
	OutcomeNetwork                    // transport error
	OutcomeServer                     // 5xx
	OutcomeThrottled                  // 429
	OutcomeClient                     // other status: Run stops
	OutcomeMalformed                  // Split failed, or the body was too large
)

func (o Outcome) String() string {
	switch o {
	case OutcomeDocument:
		return "document"
	case OutcomeNotModified:
		return "not-modified"
	case OutcomeUnchanged:
		return "unchanged"
	case OutcomeStale:
		return "stale"
	case OutcomeSkipped:
		return "skipped"
	case OutcomeNetwork:
		return "network-error"
	case OutcomeServer:
		return "server-error"
	case OutcomeThrottled:
		return "throttled"
	case OutcomeClient:
		return "client-error"
	case OutcomeMalformed:
		return "malformed"
	}
	return "unknown"
}

// Event describes one poll, or one skipped beat.
type Event struct {
	Feed    string
	URL     string
	At      time.Time // when the request was sent (or the beat skipped)
	Outcome Outcome
	Status  int   // HTTP status; 0 without a response
	Err     error // the poll's error, if any
	Items   int   // items the document was split into
	// Wait is how long until the feed's next poll, jitter included.
	Wait time.Duration
}
