package twitter

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Defaults of Config's zero values.
const (
	DefaultURL           = "https://api.twitter.com"
	DefaultStallTimeout  = 90 * time.Second
	DefaultMaxLineSize   = 1 << 20 // bytes of a stream line, CRLF not counted
	DefaultDedupWindow   = 100_000
	DefaultBackoffReset  = 30 * time.Second
	DefaultDialTimeout   = 10 * time.Second
	DefaultMaxRuleLength = 512
)

// Default query fields, used when the Config leaves them nil: what a Tweet
// holds.
var (
	DefaultTweetFields = []string{"id", "text", "author_id", "conversation_id", "created_at", "lang",
		"entities", "referenced_tweets", "edit_history_tweet_ids"}
	DefaultExpansions = []string{"author_id", "entities.mentions.username"}
	DefaultUserFields = []string{"id", "name", "username", "created_at"}
)

// Backoff is one class of reconnect back-off: the wait before attempt n
// (1-based) grows from Initial, linearly (Initial·n) or exponentially
// (Initial·2ⁿ⁻¹), and stops growing at Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

// The documented X API back-off classes.
var (
	// DefaultNetworkBackoff is for TCP/TLS errors and dropped connections:
	// linear from 250 ms, +250 ms per attempt, up to 16 s.
	DefaultNetworkBackoff = Backoff{Initial: 250 * time.Millisecond, Max: 16 * time.Second}
	// DefaultHTTPBackoff is for HTTP errors (5xx and other statuses):
	// exponential from 5 s up to 320 s.
	DefaultHTTPBackoff = Backoff{Initial: 5 * time.Second, Max: 320 * time.Second}
	// DefaultRateLimitBackoff is for 429: exponential from 1 min (and never
	// before x-rate-limit-reset), up to 16 min.
	DefaultRateLimitBackoff = Backoff{Initial: time.Minute, Max: 16 * time.Minute}
)

// Rule is a filtered-stream rule.
type Rule struct {
	Value string // the rule, e.g. "cat has:media -grumpy"
	Tag   string // a label the matching tweets carry; may be empty
}

// Config configures a Stream. Zero values take the documented defaults.
type Config struct {
	// URL is the API's base URL. https:// connects with TLS and ALPN h2;
	// http:// speaks cleartext HTTP/2 with prior knowledge (h2c), for local
	// fakes. Never HTTP/1.1. Default DefaultURL.
	URL string
	// Token is the app's bearer token. Required. It is never logged nor put
	// in an error.
	Token string
	// Sample selects the sample stream (GET /2/tweets/sample/stream) instead
	// of the filtered stream (GET /2/tweets/search/stream).
	Sample bool

	// Rules, for the filtered stream, are synced at start: the configured
	// rules the server lacks are added, the server's rules not configured
	// are deleted, and a rule the server rejects is an error naming it. With
	// no Rules the server's rules are left as they are.
	Rules []Rule
	// RulesDryRun only plans the sync: the plan is logged, the additions are
	// validated with dry_run=true, nothing changes, and Run returns nil
	// without streaming.
	RulesDryRun bool

	// TweetFields, Expansions, UserFields, MediaFields, PlaceFields and
	// PollFields are the stream's query fields. Nil means the defaults above
	// (none for media, places and polls); an empty non-nil slice sends none.
	TweetFields []string
	Expansions  []string
	UserFields  []string
	MediaFields []string
	PlaceFields []string
	PollFields  []string
	// BackfillMinutes (0–5) asks the server to replay what was missed while
	// disconnected: on every reconnect, and on the first connection of Run
	// when ResumeFrom is set. Duplicates are expected and de-duplicated.
	BackfillMinutes int
	// ResumeFrom, when set, is when the previous run last stored a tweet:
	// a time before which every tweet it received is stored (a low
	// watermark: the ReceivedAt of the last tweet stored in stream order,
	// kept with a StateFile, which says more). Until the first connection is established, each attempt
	// then asks for backfill of ceil(minutes since ResumeFrom), at least 1
	// and at most BackfillMinutes, so a restart loses nothing within that
	// reach; a longer gap is logged with the span that cannot be recovered.
	// The backfill reaches back whole minutes, so it replays tweets stored
	// already: StoredIDs drops them here, or the sinks must be idempotent by
	// tweet id (the Postgres sink's ON CONFLICT DO NOTHING is; a Kafka topic
	// keeps the duplicate). Zero: a fresh start, no backfill on the first
	// connection.
	ResumeFrom time.Time
	// StoredIDs are the ids of tweets already stored (those received since
	// shortly before ResumeFrom, read back from the sink): they seed the
	// de-duplication window, which grows by their number, so that their
	// replay is dropped and counted in Stats.Deduplicated instead of
	// stored twice. They need de-duplication on (DedupWindow >= 0).
	StoredIDs []string

	// StallTimeout: no byte at all (not even a keep-alive) for this long
	// reconnects. Default 90 s.
	StallTimeout time.Duration
	// MaxLineSize is the longest line accepted, in bytes without its CRLF;
	// longer ones are counted (Stats.Oversized, within Stats.Malformed),
	// logged with their stream offset and skipped. Default
	// DefaultMaxLineSize (1 MiB). A line holds the tweet's Raw bytes, so a
	// sink that must take every tweet whole (a Kafka producer's maximum
	// message size, the broker's message.max.bytes) needs a limit of at
	// least this much plus its own record overhead; or set this to the
	// sink's limit so an over-size tweet is counted here.
	MaxLineSize int
	// DedupWindow is how many recent tweet ids are remembered to drop
	// duplicates. Default 100,000; negative disables de-duplication.
	DedupWindow int
	// DeferDecode makes the stream only frame tweet lines: it follows a
	// line's structure far enough to read its data.id (for
	// de-duplication) and emits the tweet undecoded, with ID, Raw,
	// ReceivedAt and Offset set (Tweet.Deferred). The processors then call
	// Stream.Decode, in parallel; tweets a full buffer drops are never
	// decoded at all. Lines the quick look cannot place (no data object, an
	// id with escapes, structure that does not close: in-stream errors,
	// malformed lines) are decoded and counted by the stream as without
	// it; a line that only Decode finds malformed is counted in
	// Stats.MalformedLate (and fails its message). False: the stream
	// decodes every line itself.
	DeferDecode bool

	// NetworkBackoff (linear), HTTPBackoff and RateLimitBackoff
	// (exponential) are the reconnect back-off classes. Zero fields take the
	// Default* values.
	NetworkBackoff   Backoff
	HTTPBackoff      Backoff
	RateLimitBackoff Backoff
	// BackoffReset: a connection that delivered data and lasted this long
	// resets the back-offs, and its loss reconnects at once. Default 30 s.
	BackoffReset time.Duration
	// DialTimeout bounds connecting (TCP and TLS). Default 10 s.
	DialTimeout time.Duration
	// TLSConfig, if set, is used for https:// URLs (RootCAs to trust a test
	// server, say). Its NextProtos is set to h2.
	TLSConfig *tls.Config

	// Logger receives the stream's logs. Default slog.Default().
	Logger *slog.Logger
	// OnReconnect, if set, sees every reconnect decision: why, and the
	// back-off chosen. It runs on the producer's goroutine; keep it fast.
	OnReconnect func(ReconnectEvent)
	// OnConnect, if set, sees every established stream connection.
	OnConnect func(ConnectEvent)
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.TweetFields == nil {
		c.TweetFields = DefaultTweetFields
	}
	if c.Expansions == nil {
		c.Expansions = DefaultExpansions
	}
	if c.UserFields == nil {
		c.UserFields = DefaultUserFields
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.MaxLineSize == 0 {
		c.MaxLineSize = DefaultMaxLineSize
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	c.NetworkBackoff = c.NetworkBackoff.or(DefaultNetworkBackoff)
	c.HTTPBackoff = c.HTTPBackoff.or(DefaultHTTPBackoff)
	c.RateLimitBackoff = c.RateLimitBackoff.or(DefaultRateLimitBackoff)
	if c.BackoffReset == 0 {
		c.BackoffReset = DefaultBackoffReset
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
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
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("twitter: Config.%s %s", field, fmt.Sprintf(format, args...)))
	}
	if u, err := url.Parse(c.URL); err != nil {
		bad("URL", "does not parse: %v", err)
	} else if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		bad("URL", "must be https://host or http://host (h2c), got %q", c.URL)
	}
	if c.Token == "" {
		bad("Token", "is required, got an empty token")
	}
	if c.Sample && len(c.Rules) > 0 {
		bad("Rules", "apply to the filtered stream only, and Sample is set")
	}
	seen := map[string]bool{}
	for i, r := range c.Rules {
		v := strings.TrimSpace(r.Value)
		switch {
		case v == "":
			bad(fmt.Sprintf("Rules[%d].Value", i), "is empty")
		case len(r.Value) > DefaultMaxRuleLength:
			bad(fmt.Sprintf("Rules[%d].Value", i), "is %d bytes long, at most %d allowed", len(r.Value), DefaultMaxRuleLength)
		case seen[r.Value]:
			bad(fmt.Sprintf("Rules[%d].Value", i), "%q is configured twice", r.Value)
		}
		seen[r.Value] = true
	}
	if c.BackfillMinutes < 0 || c.BackfillMinutes > 5 {
		bad("BackfillMinutes", "must be 0 to 5, got %d", c.BackfillMinutes)
	}
	if c.StallTimeout < 0 {
		bad("StallTimeout", "must be > 0, got %v", c.StallTimeout)
	}
	if c.MaxLineSize < 0 {
		bad("MaxLineSize", "must be > 0, got %d", c.MaxLineSize)
	}
	for _, b := range []struct {
		name string
		b    Backoff
	}{{"NetworkBackoff", c.NetworkBackoff}, {"HTTPBackoff", c.HTTPBackoff}, {"RateLimitBackoff", c.RateLimitBackoff}} {
		if b.b.Initial < 0 || b.b.Max < b.b.Initial {
			bad(b.name, "needs 0 <= Initial <= Max, got %v and %v", b.b.Initial, b.b.Max)
		}
	}
	if c.BackoffReset < 0 {
		bad("BackoffReset", "must be > 0, got %v", c.BackoffReset)
	}
	if len(c.StoredIDs) > 0 && c.DedupWindow < 0 {
		bad("StoredIDs", "need de-duplication, and DedupWindow %d disables it", c.DedupWindow)
	}
	if c.DialTimeout < 0 {
		bad("DialTimeout", "must be > 0, got %v", c.DialTimeout)
	}
	return errors.Join(errs...)
}
