package poll

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Defaults of Config's and Feed's zero values.
const (
	DefaultInterval    = 30 * time.Second
	DefaultMinInterval = time.Second
	DefaultMaxInterval = time.Hour
	DefaultJitter      = 0.1
	DefaultTimeout     = 30 * time.Second
	DefaultMaxBodySize = 64 << 20
	DefaultUserAgent   = "causeway-poll/1"
)

// Backoff is one class of error back-off: the wait after the n-th error in
// a row (1-based) grows from Initial, linearly (Initial·n) or exponentially
// (Initial·2ⁿ⁻¹), and stops growing at Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// The default back-off classes.
var (
	// DefaultNetworkBackoff is for transport errors (refused, reset, timed
	// out, a body cut short): linear from 1 s, +1 s per error, up to 30 s.
	DefaultNetworkBackoff = Backoff{Initial: time.Second, Max: 30 * time.Second}
	// DefaultServerBackoff is for 5xx: exponential from 2 s up to 5 min,
	// never sooner than a Retry-After.
	DefaultServerBackoff = Backoff{Initial: 2 * time.Second, Max: 5 * time.Minute}
	// DefaultThrottleBackoff is for 429: exponential from 5 s up to 15 min,
	// never sooner than a Retry-After.
	DefaultThrottleBackoff = Backoff{Initial: 5 * time.Second, Max: 15 * time.Minute}
)

// Feed is one polled document.
type Feed[T any] struct {
	// Name names the feed in logs, stats and message metadata. Default URL.
	Name string
	// URL is the document's http:// or https:// URL. Required.
	URL string
	// Split turns a document into items, each emitted as one message, in
	// order. An error makes the document malformed: it is counted and
	// logged with the URL (and the byte offset, when the error carries one:
	// a *json.SyntaxError, a *json.UnmarshalTypeError or an error with an
	// Offset() int64 method), nothing of it is emitted, and the next poll
	// fetches the document in full again. Required.
	Split func(doc []byte) ([]T, error)
	// Freshness, if set, reads a document's own freshness: when it was last
	// updated and how long it stays as it is (GBFS last_updated and ttl). A
	// document older than one already seen is stale: counted, logged and
	// not emitted. With FollowHints the next poll is due at lastUpdated +
	// ttl. A zero lastUpdated or ttl means unknown; an error is ignored (the
	// document may still be split).
	Freshness func(doc []byte) (lastUpdated time.Time, ttl time.Duration, err error)

	// Interval is the time between polls: always, or, with FollowHints, when
	// the feed gives no hint. Default 30 s.
	Interval time.Duration
	// FollowHints schedules the next poll when the feed says the document
	// will change: lastUpdated + ttl from Freshness, or else the response's
	// Cache-Control max-age (less its Age), clamped to [MinInterval,
	// MaxInterval].
	FollowHints bool
	// MinInterval and MaxInterval bound the waits hints give. Defaults 1 s
	// and 1 h.
	MinInterval time.Duration
	MaxInterval time.Duration

	// Header holds extra request headers (Authorization, Accept, …).
	Header http.Header
}

// Config configures a Producer. Zero values take the documented defaults.
//
// A Producer polls its feeds one at a time from the one goroutine that runs
// it, so there is never more than one request in flight per URL (nor at
// all): a slow feed delays the others. Each feed has its own schedule,
// validators, back-off and counters. Several feeds of different item types
// need one Producer each (in separate topologies), or one item type that
// can hold either (Split functions wrapping each in it).
type Config[T any] struct {
	// Feeds are the documents to poll; at least one.
	Feeds []Feed[T]

	// Client makes the requests. Default: a client of its own over a clone
	// of http.DefaultTransport, which speaks HTTP/2 where a TLS server
	// offers it (ForceAttemptHTTP2) and HTTP/1.1 otherwise.
	Client *http.Client
	// Timeout bounds one request, body included. Default 30 s.
	Timeout time.Duration
	// MaxBodySize is the largest document read; a larger one is malformed.
	// Default 64 MiB.
	MaxBodySize int64
	// UserAgent is sent unless a feed's Header sets one. Default
	// DefaultUserAgent.
	UserAgent string
	// DisableConditional stops sending If-None-Match and If-Modified-Since
	// (and so getting 304s). Identical documents are still not re-emitted.
	DisableConditional bool

	// Jitter lengthens every wait by a random fraction of it, up to Jitter
	// (a wait w becomes w·(1+u·Jitter), u uniform in [0, 1)), so that many
	// pollers drift apart and no poll comes before its hint. Default 0.1; at
	// most 1; negative disables jitter.
	Jitter float64

	// NetworkBackoff (linear), ServerBackoff and ThrottleBackoff
	// (exponential) are the error back-off classes. Zero fields take the
	// Default* values.
	NetworkBackoff  Backoff
	ServerBackoff   Backoff
	ThrottleBackoff Backoff

	// Logger receives the producer's logs. Default slog.Default().
	Logger *slog.Logger
	// OnPoll, if set, sees every poll and every skipped beat. It runs on
	// the producer's goroutine; keep it fast.
	OnPoll func(Event)
}

func (c Config[T]) withDefaults() Config[T] {
	feeds := make([]Feed[T], len(c.Feeds))
	for i, f := range c.Feeds {
		if f.Name == "" {
			f.Name = f.URL
		}
		if f.Interval == 0 {
			f.Interval = DefaultInterval
		}
		if f.MinInterval == 0 {
			f.MinInterval = DefaultMinInterval
		}
		if f.MaxInterval == 0 {
			f.MaxInterval = DefaultMaxInterval
		}
		feeds[i] = f
	}
	c.Feeds = feeds
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBodySize == 0 {
		c.MaxBodySize = DefaultMaxBodySize
	}
	if c.UserAgent == "" {
		c.UserAgent = DefaultUserAgent
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.Jitter < 0 {
		c.Jitter = 0
	}
	c.NetworkBackoff = c.NetworkBackoff.or(DefaultNetworkBackoff)
	c.ServerBackoff = c.ServerBackoff.or(DefaultServerBackoff)
	c.ThrottleBackoff = c.ThrottleBackoff.or(DefaultThrottleBackoff)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (b Backoff) or(def Backoff) Backoff {
	if b.Initial == 0 {
		b.Initial = def.Initial
	}
	if b.Max == 0 {
		b.Max = def.Max
	}
	return b
}

// Validate reports every field of c that is out of range, each error naming
// the field. Zero values are not errors: they take defaults.
func (c Config[T]) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("poll: Config.%s %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Feeds) == 0 {
		bad("Feeds", "needs at least one feed, got none")
	}
	names := map[string]int{}
	for i, f := range c.Feeds {
		field := func(name string) string { return fmt.Sprintf("Feeds[%d].%s", i, name) }
		if u, err := url.Parse(f.URL); err != nil {
			bad(field("URL"), "does not parse: %v", err)
		} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(field("URL"), "must be http://host/… or https://host/…, got %q", f.URL)
		}
		if j, ok := names[f.Name]; ok {
			bad(field("Name"), "%q is also Feeds[%d]'s name", f.Name, j)
		}
		names[f.Name] = i
		if f.Split == nil {
			bad(field("Split"), "is required, got nil")
		}
		if f.Interval < 0 {
			bad(field("Interval"), "must be > 0, got %v", f.Interval)
		}
		if f.MinInterval < 0 || f.MaxInterval < f.MinInterval {
			bad(field("MinInterval"), "and MaxInterval need 0 < MinInterval <= MaxInterval, got %v and %v", f.MinInterval, f.MaxInterval)
		}
	}
	if c.Timeout < 0 {
		bad("Timeout", "must be > 0, got %v", c.Timeout)
	}
	if c.MaxBodySize < 0 {
		bad("MaxBodySize", "must be > 0, got %d", c.MaxBodySize)
	}
	if c.Jitter > 1 {
		bad("Jitter", "must be at most 1, got %v", c.Jitter)
	}
	for _, b := range []struct {
		name string
		b    Backoff
	}{{"NetworkBackoff", c.NetworkBackoff}, {"ServerBackoff", c.ServerBackoff}, {"ThrottleBackoff", c.ThrottleBackoff}} {
		if b.b.Initial < 0 || b.b.Max < b.b.Initial {
			bad(b.name, "needs 0 <= Initial <= Max, got %v and %v", b.b.Initial, b.b.Max)
		}
	}
	return errors.Join(errs...)
}
