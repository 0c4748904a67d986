package twitter

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/internal/ratelog"
)

// peekTweet is the stream's cheap look at a line when decoding is deferred
// (Config.DeferDecode): it follows the line's structure (strings, objects,
// arrays) without validating values, and returns the id of its top-level
// data object. It reports false for anything else (no data object, an id
// with escapes, a line whose structure does not close), which the stream
// then decodes in full, as without DeferDecode.
func peekTweet(b []byte) (id string, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return "", false
		}
		if b[i] == '}' {
			i = skipWS(b, i+1)
			return id, id != "" && i == len(b)
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		key, next, ok := plainString(b, i)
		if !ok {
			return "", false
		}
		i = skipWS(b, next)
		if i >= len(b) || b[i] != ':' {
			return "", false
		}
		i = skipWS(b, i+1)
		if string(key) == "data" {
			if id != "" {
				return "", false // a second data object: let Decode judge
			}
			if id, i, ok = peekData(b, i); !ok {
				return "", false
			}
			continue
		}
		if i, ok = skipValue(b, i); !ok {
			return "", false
		}
	}
}

// peekData reads the data object at b[i] and returns its "id" string.
func peekData(b []byte, i int) (id string, next int, ok bool) {
	if i >= len(b) || b[i] != '{' {
		return "", 0, false
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return "", 0, false
		}
		if b[i] == '}' {
			return id, i + 1, id != ""
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		key, n, ok := plainString(b, i)
		if !ok {
			return "", 0, false
		}
		i = skipWS(b, n)
		if i >= len(b) || b[i] != ':' {
			return "", 0, false
		}
		i = skipWS(b, i+1)
		if string(key) == "id" {
			v, n, ok := plainString(b, i)
			if !ok || id != "" {
				return "", 0, false
			}
			id = string(v)
			i = n
			continue
		}
		if i, ok = skipValue(b, i); !ok {
			return "", 0, false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// plainString returns the string at b[i] when it has no escapes, and the
// index after its closing quote.
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	q := bytes.IndexByte(b[i+1:], '"')
	if q < 0 {
		return nil, 0, false
	}
	v := b[i+1 : i+1+q]
	if bytes.IndexByte(v, '\\') >= 0 {
		return nil, 0, false
	}
	return v, i + 2 + q, true
}

// skipString returns the index after the closing quote of the string at
// b[i] (b[i] == '"').
func skipString(b []byte, i int) (int, bool) {
	j := i + 1
	for {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			return 0, false
		}
		j += q
		// The quote is escaped if an odd number of backslashes precede it.
		n := 0
		for k := j - 1; k > i && b[k] == '\\'; k-- {
			n++
		}
		j++
		if n%2 == 0 {
			return j, true
		}
	}
}

// skipValue returns the index after the value at b[i], following strings
// and nesting only.
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				var ok bool
				if i, ok = skipString(b, i); !ok {
					return 0, false
				}
				continue
			case '{', '[':
				depth++
				if depth > maxDepth {
					return 0, false
				}
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return 0, false
	default:
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\r' && b[i] != '\n' {
			i++
		}
		return i, i > start
	}
}

// Deferred reports whether t is a tweet the stream emitted undecoded
// (Config.DeferDecode): only ID, Raw, ReceivedAt and Offset are set until
// Stream.Decode fills the rest.
func (t *Tweet) Deferred() bool { return t.deferred }

// LateMalformedError is the error of a tweet line the stream emitted
// undecoded (Config.DeferDecode) that Stream.Decode then found malformed.
// It is permanent: decoding the line again does not help.
type LateMalformedError struct {
	ID     string // the id the stream read for de-duplication
	Offset int64  // the line's byte offset in its connection's stream
	Err    error  // the decoder's *SyntaxError
}

func (e *LateMalformedError) Error() string {
	return fmt.Sprintf("twitter: malformed tweet line at stream offset %d (id %s): %v", e.Offset, e.ID, e.Err)
}

func (e *LateMalformedError) Unwrap() error { return e.Err }

// Permanent reports true: the line is what it is.
func (e *LateMalformedError) Permanent() bool { return true }

// lateState counts and logs what Decode finds malformed.
type lateState struct {
	n   atomic.Int64
	log ratelog.Limiter
}

// Decode decodes a tweet the stream emitted undecoded (Config.DeferDecode)
// from its Raw line, in place, keeping its ReceivedAt and Offset; a tweet
// decoded already is left as it is. Call it in a processor, before
// anything reads the tweet's other fields. A line that turns out
// malformed is counted (Stats.MalformedLate), logged with its stream
// offset at most once a second, and returned as a *LateMalformedError, so
// that failing the message with it names the line.
// It is safe for concurrent use.
func (s *Stream) Decode(t *Tweet) error {
	if !t.deferred {
		return nil
	}
	var l Line
	err := decodeOwned(t.Raw, &l)
	if err == nil && l.Kind != KindTweet {
		err = &SyntaxError{Msg: fmt.Sprintf("a %v message, not a tweet", l.Kind)}
	}
	if err == nil && l.Tweet.ID != t.ID {
		err = &SyntaxError{Msg: fmt.Sprintf("data.id %q, not the %q the stream read", cut(l.Tweet.ID, 40), cut(t.ID, 40))}
	}
	if err != nil {
		s.late.n.Add(1)
		merr := &LateMalformedError{ID: t.ID, Offset: t.Offset, Err: err}
		if ok, n := s.late.log.Allow(1); ok {
			s.log.Warn("twitter: malformed tweet line found by the processor", "offset", t.Offset, "id", t.ID, "err", err,
				"line", quoteCut(t.Raw, 120), "times", n)
		}
		return merr
	}
	l.Tweet.ReceivedAt, l.Tweet.Offset = t.ReceivedAt, t.Offset
	*t = l.Tweet
	return nil
}

// deferredTweet is what the stream emits for a tweet line under
// DeferDecode: the line itself, left where the line reader read it (it
// keeps every buffer it filled: lineReader.keep), and what de-duplication
// and the resume point need. The line is capped, so appending to Raw
// copies.
func deferredTweet(raw []byte, id string, now time.Time, off int64) Tweet {
	return Tweet{ID: id, Raw: raw[:len(raw):len(raw)], ReceivedAt: now, Offset: off, deferred: true}
}
