package dashboard

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/causeway-go/causeway/stages"
)

// ErrorEntry is one of a topology's latest errors, as the page shows it.
type ErrorEntry struct {
	Time    time.Time `json:"time"`    // when it last happened
	Stage   string    `json:"stage"`   // the batcher's name, or "processors"
	Count   int64     `json:"count"`   // messages (or batches) it failed in a row
	Message string    `json:"message"` // redacted, at most 300 bytes
}

// Errors keeps a topology's latest errors for the page: batch handler
// errors (through Hooks) and failed messages (through HandleFailed).
// A repeat of a kept error (same stage and message) adds to its count and
// makes it the latest. It is safe for concurrent
// use; its zero value keeps 20.
type Errors struct {
	// Max is how many distinct latest errors are kept. Default 20.
	Max int

	mu   sync.Mutex
	list []ErrorEntry // oldest first
}

// Record notes that err failed count messages (or batches) at stage. A nil
// err records nothing.
func (e *Errors) Record(stage string, count int, err error) {
	if err == nil {
		return
	}
	msg := Redact(err.Error())
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	for i, x := range e.list { // a repeat moves to the end with its count
		if x.Stage == stage && x.Message == msg {
			x.Count += int64(count)
			x.Time = now
			e.list = append(append(e.list[:i], e.list[i+1:]...), x)
			return
		}
	}
	max := e.Max
	if max <= 0 {
		max = 20
	}
	e.list = append(e.list, ErrorEntry{Time: now, Stage: stage, Count: int64(count), Message: msg})
	if len(e.list) > max {
		e.list = append(e.list[:0], e.list[len(e.list)-max:]...)
	}
}

// LatestErrors returns the kept errors, newest first.
func (e *Errors) LatestErrors() []ErrorEntry {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ErrorEntry, len(e.list))
	for i, x := range e.list {
		out[len(out)-1-i] = x
	}
	return out
}

// Hooks returns next with a BatchStop hook that also records the error of
// every failed batch handler call.
func (e *Errors) Hooks(next stages.Hooks) stages.Hooks {
	stop := next.BatchStop
	next.BatchStop = func(ev stages.BatchEvent) {
		if ev.Err != nil {
			e.Record(ev.Batcher, 1, ev.Err)
		}
		if stop != nil {
			stop(ev)
		}
	}
	return next
}

// HandleFailed returns a HandleFailed callback that records the errors of
// failed messages in e, then calls next (if not nil).
func HandleFailed[T any](e *Errors, next func(context.Context, []*stages.Message[T])) func(context.Context, []*stages.Message[T]) {
	return func(ctx context.Context, failed []*stages.Message[T]) {
		for _, m := range failed {
			stage := "processors"
			if bs := m.Routes(); len(bs) > 0 {
				stage = strings.Join(bs, "+")
			}
			e.Record(stage, 1, m.Err())
		}
		if next != nil {
			next(ctx, failed)
		}
	}
}

// WithErrors returns top with e's latest errors shown beside it.
func WithErrors(top Topology, e *Errors) Topology { return withErrors{top, e} }

type withErrors struct {
	Topology
	e *Errors
}

func (w withErrors) LatestErrors() []ErrorEntry { return w.e.LatestErrors() }

var secrets = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`), "${1}xxx@"},                                                                                     // URL passwords
	{regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=%-]+`), "$1 xxx"},                                                                   // auth headers
	{regexp.MustCompile(`(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|sasl\.password)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;]+)`), "$1${2}xxx"}, // key=value
}

// Redact hides credentials in an error message (URL passwords, bearer
// tokens, password=... and token=... pairs) and cuts it to 300 bytes.
func Redact(s string) string {
	for _, r := range secrets {
		s = r.re.ReplaceAllString(s, r.repl)
	}
	if len(s) > 300 {
		cut := 297
		for cut > 0 && s[cut]&0xC0 == 0x80 { // not inside a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
