package twitter

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Reason is why a stream connection ended or could not be made.
type Reason string

// Reasons for a reconnect.
const (
	// ReasonDisconnected: the server ended an established stream (end of
	// body, RST_STREAM, connection closed).
	ReasonDisconnected Reason = "disconnected"
	// ReasonOperationalDisconnect: the server sent an in-stream error that
	// ends the stream (operational disconnect and its kin).
	ReasonOperationalDisconnect Reason = "operational-disconnect"
	// ReasonStall: no byte, not even a keep-alive, for the stall timeout.
	ReasonStall Reason = "stall"
	// ReasonNetwork: connecting failed below HTTP (DNS, TCP, TLS, h2).
	ReasonNetwork Reason = "network"
	// ReasonHTTP: the server answered an HTTP error other than 401, 403, 429.
	ReasonHTTP Reason = "http-error"
	// ReasonRateLimited: 429 Too Many Requests (connect rate or usage cap).
	ReasonRateLimited Reason = "rate-limited"
	// ReasonTooManyConnections: 429 because the app already holds its
	// allowed connections.
	ReasonTooManyConnections Reason = "too-many-connections"
)

// Reasons lists every Reason, for exporters that want every series.
var Reasons = []Reason{ReasonDisconnected, ReasonOperationalDisconnect, ReasonStall, ReasonNetwork,
	ReasonHTTP, ReasonRateLimited, ReasonTooManyConnections}

// Class is a back-off class.
type Class string

// Back-off classes.
const (
	ClassImmediate   Class = "immediate"   // a healthy connection was lost: reconnect at once
	ClassLinear      Class = "linear"      // network errors: Config.NetworkBackoff
	ClassExponential Class = "exponential" // HTTP errors: Config.HTTPBackoff
	ClassRateLimit   Class = "rate-limit"  // 429: Config.RateLimitBackoff, not before the reset
)

// ReconnectEvent describes one reconnect decision.
type ReconnectEvent struct {
	Reason  Reason
	Class   Class
	Backoff time.Duration // the wait before the next attempt
	Attempt int           // consecutive failures in this class, from 1 (0 for immediate)
	Status  int           // the HTTP status, for HTTP and rate-limit reasons
	// ResetAt is the x-rate-limit-reset time a 429 carried (zero if none).
	ResetAt time.Time
	// Connected is how long the lost connection had been up (zero if it
	// never was), and Healthy whether it counted as healthy (delivered data
	// for at least Config.BackoffReset).
	Connected time.Duration
	Healthy   bool
	Err       error
}

// ConnectEvent describes an established stream connection.
type ConnectEvent struct {
	URL      string // the stream URL, query included (never the token)
	Proto    string // "HTTP/2.0"
	Backfill int    // backfill_minutes asked for
	Resume   bool   // the first connection of a Run resuming from Config.ResumeFrom
	Attempt  int64  // connections established so far, this one included
}

// ConnState is the stream's connection state.
type ConnState int32

// Connection states.
const (
	StateIdle       ConnState = iota // Run not called yet
	StateSyncing                     // syncing rules
	StateConnecting                  // connecting
	StateConnected                   // streaming
	StateBackoff                     // waiting before a reconnect
	StateStopped                     // Run returned
)

func (s ConnState) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateSyncing:
		return "syncing-rules"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateBackoff:
		return "backoff"
	case StateStopped:
		return "stopped"
	}
	return "ConnState(" + strconv.Itoa(int(s)) + ")"
}

// ErrUnauthorized is wrapped by the error Run returns when the server
// rejects the bearer token (HTTP 401 or 403). It is never retried.
var ErrUnauthorized = errors.New("twitter: bearer token rejected")

// Kinds of PermanentError, for errors.Is.
var (
	// ErrNotHTTP2: the server does not speak HTTP/2 (no ALPN h2 over TLS,
	// an HTTP/1 answer to the cleartext HTTP/2 preface, or a response over
	// HTTP/1.x).
	ErrNotHTTP2 = errors.New("the server does not speak HTTP/2")
	// ErrCertificate: the server's TLS certificate does not verify
	// (unknown authority, wrong host name, expired).
	ErrCertificate = errors.New("the server's TLS certificate does not verify")
	// ErrNotJSON: the stream answered 200 with a Content-Type that is not
	// JSON (an HTML page from a proxy or a captive portal, say).
	ErrNotJSON = errors.New("the stream is not JSON")
)

// PermanentError is returned by Run when connecting failed in a way no
// retry can mend: the server at URL is not an X API stream, or cannot be
// trusted. Like a rejected token (ErrUnauthorized), it is never retried.
// errors.Is(err, Kind) holds, and errors.Is or errors.As reach Err.
type PermanentError struct {
	URL  string // the stream endpoint, without its query
	Kind error  // ErrNotHTTP2, ErrCertificate or ErrNotJSON
	Err  error  // what was seen
}

// Error returns one line: the endpoint, the kind and the cause.
func (e *PermanentError) Error() string {
	msg := fmt.Sprintf("twitter: %s: %v", e.URL, e.Kind)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return strings.Join(strings.Fields(msg), " ")
}

// Unwrap returns Kind and Err.
func (e *PermanentError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// HTTPError is an HTTP error answer from the API, with the fields of its
// problem body.
type HTTPError struct {
	Op     string // what was asked, e.g. "connect to the filtered stream"
	Status int
	Title  string
	Detail string
	Type   string
	Reason string // reason or connection_issue, when the body has one
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("twitter: %s: HTTP %d", e.Op, e.Status)
	if e.Title != "" {
		msg += " " + e.Title
	}
	if e.Detail != "" && e.Detail != e.Title {
		msg += ": " + e.Detail
	}
	if e.Status == 401 || e.Status == 403 {
		msg += " (the bearer token was rejected; check it)"
	}
	return msg
}

// Unwrap makes errors.Is(err, ErrUnauthorized) true for 401 and 403.
func (e *HTTPError) Unwrap() error {
	if e.Status == 401 || e.Status == 403 {
		return ErrUnauthorized
	}
	return nil
}
