package poll

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StatusError is the error Run returns when a feed answers with a status
// that retrying will not fix: any 4xx but 429 (and any other status that is
// not 2xx, 304, 429 or 5xx).
type StatusError struct {
	Feed       string
	URL        string
	StatusCode int
	Status     string // e.g. "404 Not Found"
	Body       string // the start of the response body
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("poll: GET %s: %s", e.URL, e.Status)
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// response is what one request got.
type response struct {
	status     int
	statusText string
	header     http.Header
	body       []byte
	tooLarge   bool
	err        error // transport error, or a body cut short
}

// fetch sends one GET for f, conditional on what f last got.
func (p *Producer[T]) fetch(ctx context.Context, f *feedState[T]) response {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return response{err: err}
	}
	for k, vs := range f.Header {
		req.Header[k] = vs
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", p.cfg.UserAgent)
	}
	if !p.cfg.DisableConditional {
		if f.etag != "" {
			req.Header.Set("If-None-Match", f.etag)
		}
		if f.lastModified != "" {
			req.Header.Set("If-Modified-Since", f.lastModified)
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode, statusText: resp.Status, header: resp.Header}
	limit := p.cfg.MaxBodySize
	if resp.StatusCode/100 != 2 {
		limit = 512 // enough to quote in an error
	}
	r.body, r.err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if int64(len(r.body)) > limit {
		r.body = r.body[:limit]
		r.tooLarge = resp.StatusCode/100 == 2
	}
	if r.err != nil && resp.StatusCode/100 != 2 {
		r.err = nil // an error body cut short is still an error status
	}
	f.counters.bytes.Add(int64(len(r.body)))
	return r
}

// retryAfter reads a Retry-After header (seconds or an HTTP date) as a
// wait from now; 0 if absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// maxAge reads Cache-Control max-age less Age; ok is false without one (or
// with no-store or no-cache).
func maxAge(h http.Header) (time.Duration, bool) {
	var age time.Duration
	if a, err := strconv.Atoi(strings.TrimSpace(h.Get("Age"))); err == nil && a > 0 {
		age = time.Duration(a) * time.Second
	}
	found := false
	var d time.Duration
	for _, v := range h.Values("Cache-Control") {
		for dir := range strings.SplitSeq(v, ",") {
			dir = strings.ToLower(strings.TrimSpace(dir))
			switch {
			case dir == "no-store" || dir == "no-cache":
				return 0, false
			case strings.HasPrefix(dir, "max-age="):
				s, err := strconv.Atoi(strings.Trim(dir[len("max-age="):], `"`))
				if err == nil && s >= 0 {
					d, found = time.Duration(s)*time.Second, true
				}
			}
		}
	}
	if !found {
		return 0, false
	}
	return max(d-age, 0), true
}

// errorOffset returns the byte offset an error of Split says the document
// went wrong at, or -1.
func errorOffset(err error) int64 {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return syn.Offset
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return typ.Offset
	}
	var off interface{ Offset() int64 }
	if errors.As(err, &off) {
		return off.Offset()
	}
	return -1
}

// excerpt returns up to 32 bytes of doc on either side of off, quoted.
func excerpt(doc []byte, off int64) string {
	if off < 0 {
		off = 0
	}
	off = min(off, int64(len(doc)))
	lo, hi := max(off-32, 0), min(off+32, int64(len(doc)))
	return strconv.Quote(string(doc[lo:hi]))
}

// cut shortens an error body for a message.
func cut(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
