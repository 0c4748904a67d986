package twittertest

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The in-stream error the API sends before closing a stream.
const operationalDisconnect = `{"errors":[{"title":"operational-disconnect","disconnect_type":"OperationalDisconnect",` +
	`"detail":"This stream has been disconnected for operational reasons.",` +
	`"type":"https://api.twitter.com/2/problems/operational-disconnect"}]}`

// passShift separates the ids of two passes of a looping replay: 2^42 is
// about 17 minutes of snowflake time, more than a recording spans.
const passShift = 1 << 42

// admit applies the connect-time faults and the connection limit. It
// returns false after answering the request itself.
func (s *Server) admit(w http.ResponseWriter) (Faults, bool) {
	s.mu.Lock()
	f := &s.faults
	var status int
	var body any
	switch {
	case s.closed.Load():
		status, body = http.StatusServiceUnavailable, problem("Service Unavailable", "Service Unavailable", "about:blank", 503)
	case f.Unauthorized > 0:
		f.Unauthorized--
		status, body = http.StatusUnauthorized, problem("Unauthorized", "Unauthorized", "about:blank", 401)
	case f.Forbidden > 0:
		f.Forbidden--
		status = http.StatusForbidden
		body = map[string]any{"title": "Client Forbidden", "reason": "client-not-enrolled",
			"type":   "https://api.twitter.com/2/problems/client-forbidden",
			"detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project."}
	case f.RateLimited > 0:
		f.RateLimited--
		reset := f.RateLimitReset
		if reset <= 0 {
			reset = time.Minute
		}
		at := time.Now().Add(reset + time.Second - 1).Unix()
		h := w.Header()
		h.Set("x-rate-limit-limit", "50")
		h.Set("x-rate-limit-remaining", "0")
		h.Set("x-rate-limit-reset", strconv.FormatInt(at, 10))
		status, body = http.StatusTooManyRequests, problem("Too Many Requests", "Too Many Requests", "about:blank", 429)
	case f.UsageCapped > 0:
		f.UsageCapped--
		status = http.StatusTooManyRequests
		body = map[string]any{"title": "UsageCapExceeded", "period": "Monthly", "scope": "Product",
			"detail": "Usage cap exceeded: Monthly product cap", "type": "https://api.twitter.com/2/problems/usage-capped"}
	case f.Unavailable > 0:
		f.Unavailable--
		status, body = http.StatusServiceUnavailable, problem("Service Unavailable", "Service Unavailable", "about:blank", 503)
	case f.MaxConnections > 0 && s.active >= f.MaxConnections:
		status = http.StatusTooManyRequests
		body = map[string]any{"title": "ConnectionException", "connection_issue": "TooManyConnections",
			"detail": "This stream is currently at the maximum allowed connection limit.",
			"type":   "https://api.twitter.com/2/problems/streaming-connection"}
	}
	if status != 0 {
		s.rejected[status]++
		s.mu.Unlock()
		writeJSON(w, status, body)
		return Faults{}, false
	}
	s.active++
	cf := *f
	s.mu.Unlock()
	return cf, true
}

func (s *Server) leave() {
	s.mu.Lock()
	s.active--
	if s.active == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
	s.mu.Unlock()
}

// startPos returns where a new connection starts on the timeline: where the
// last one left off, minus what backfill replays.
func (s *Server) startPos(backfill int) int64 {
	if s.cfg.Live {
		return s.liveStartPos(time.Now(), backfill)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pos := s.published
	if backfill > 0 {
		cutoff := time.Now().Add(-time.Duration(backfill) * time.Minute)
		k := 0
		for i := len(s.history) - 1; i >= 0 && k < s.cfg.BackfillLimit && s.history[i].at.After(cutoff); i-- {
			k++
		}
		pos -= int64(k)
	}
	return pos
}

// liveStartPos is startPos on a live timeline: the present, minus what
// backfill replays.
func (s *Server) liveStartPos(now time.Time, backfill int) int64 {
	pos := s.livePos(now)
	if backfill > 0 {
		from := s.livePos(now.Add(-time.Duration(backfill) * time.Minute))
		pos -= min(pos-from, int64(s.cfg.BackfillLimit))
	}
	return pos
}

// livePos is the live timeline's position at t: how many tweets it has
// published since the server started.
func (s *Server) livePos(t time.Time) int64 {
	pos := max(int64(t.Sub(s.start).Seconds()*s.cfg.Rate), 0)
	if !s.cfg.Loop {
		pos = min(pos, int64(len(s.entries)))
	}
	return pos
}

// due is when the live timeline publishes position pos.
func (s *Server) due(pos int64) time.Time {
	return s.start.Add(time.Duration(float64(pos) / s.cfg.Rate * float64(time.Second)))
}

// publish records that the timeline reached pos (exclusive), and line, if
// any, as served.
func (s *Server) publish(pos int64, line []byte) {
	s.mu.Lock()
	if line != nil && s.cfg.Record {
		s.record = append(s.record, bytes.Clone(line))
	}
	if s.cfg.Live {
		// A live timeline knows its times: no history to keep.
		s.published = max(s.published, pos)
	}
	for s.published < pos {
		s.history = append(s.history, servedAt{pos: s.published, at: time.Now()})
		s.published++
	}
	if n := len(s.history); n > 2*s.cfg.BackfillLimit {
		s.history = append(s.history[:0], s.history[n-s.cfg.BackfillLimit:]...)
	} else if n > s.cfg.BackfillLimit && cap(s.history) > 4*s.cfg.BackfillLimit {
		s.history = append([]servedAt(nil), s.history[n-s.cfg.BackfillLimit:]...)
	}
	done := !s.cfg.Loop && s.published >= int64(len(s.entries))
	s.mu.Unlock()
	if done {
		s.finish()
	}
}

// line returns the stream line (with CRLF) for timeline position pos, or
// nil if a filtered stream's rules do not match it. The line is built in buf
// (owned) or is the entry's own sample line.
func (s *Server) line(buf []byte, pos int64, filtered bool) (line []byte, owned bool) {
	e := &s.entries[pos%int64(len(s.entries))]
	pass := pos / int64(len(s.entries))
	if !filtered && pass == 0 {
		return e.sample, false
	}
	var rules []StoredRule
	if filtered {
		for _, r := range *s.compiled.Load() {
			if r.rule.Match(&e.tweet) {
				rules = append(rules, r)
			}
		}
		if len(rules) == 0 {
			return nil, false
		}
	}
	buf = buf[:0]
	head := e.head
	if pass > 0 && e.idAt >= 0 {
		// A looping replay gives each pass its own ids.
		id, _ := strconv.ParseInt(e.id, 10, 64)
		buf = append(buf, head[:e.idAt]...)
		buf = append(buf, `"id":"`...)
		buf = strconv.AppendInt(buf, id+pass*passShift, 10)
		buf = append(buf, '"')
		head = head[e.idAt+len(`"id":"`)+len(e.id)+1:]
	}
	buf = append(buf, head...)
	if filtered {
		buf = append(buf, `,"matching_rules":[`...)
		for i, r := range rules {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, `{"id":"`...)
			buf = append(buf, r.ID...)
			buf = append(buf, `","tag":`...)
			buf = strconv.AppendQuote(buf, r.Tag)
			buf = append(buf, '}')
		}
		buf = append(buf, ']')
	}
	return append(buf, "}\r\n"...), true
}

// serveStream serves the filtered or the sample stream.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, filtered bool) {
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, problem("Method Not Allowed", "Method Not Allowed", "about:blank", 405))
		return
	}
	if !s.authorized(w, r) {
		return
	}
	bad, backfill := checkQuery(r)
	if bad != nil {
		s.reject(w, http.StatusBadRequest, bad)
		return
	}
	cf, ok := s.admit(w)
	if !ok {
		return
	}
	defer s.leave()
	ctx := r.Context()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	s.conns.Add(1)
	s.log.Info("twittertest: stream connected", "filtered", filtered, "backfill_minutes", backfill, "proto", r.Proto)

	c := &conn{s: s, w: w, rc: rc, split: cf.SplitFrames, pos: s.startPos(backfill)}
	// Paced replays flush every line, as the API does; as fast as possible,
	// lines are gathered up to FlushBytes (and flushed whenever the replay
	// pauses), which saves a write per line and changes nothing else.
	flushAt := 0
	if s.cfg.Rate == 0 {
		flushAt = s.cfg.FlushBytes
	}
	var interval time.Duration
	if s.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / s.cfg.Rate)
	}
	ka := s.cfg.KeepAlive
	connStart := time.Now()
	lastWrite, nextDue := connStart, connStart
	if s.cfg.Live {
		nextDue = s.due(c.pos)
	}
	sent := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		default:
		}
		if cf.Stall && sent >= cf.StallAfterTweets {
			if !c.flush() {
				return
			}
			s.log.Info("twittertest: stalling the stream", "after_tweets", sent)
			select {
			case <-ctx.Done():
			case <-s.stop:
			}
			return
		}
		now := time.Now()
		if cf.DisconnectAfter > 0 && now.Sub(connStart) >= cf.DisconnectAfter {
			c.flush()
			s.disconnect(r, cf.DisconnectMode)
			return
		}
		if ka > 0 && now.Sub(lastWrite) >= ka {
			c.pend = append(c.pend, "\r\n"...)
			s.keepAlives.Add(1)
			if !c.flush() {
				return
			}
			lastWrite = now
			continue
		}
		avail := len(s.entries) > 0 && (s.cfg.Loop || c.pos < int64(len(s.entries)))
		if avail && (interval == 0 || !now.Before(nextDue)) {
			line, owned := s.line(c.buf, c.pos, filtered)
			if owned {
				c.buf = line[:0]
			}
			c.pos++
			if s.cfg.Live {
				nextDue = s.due(c.pos) // a backfill bursts up to the present
			} else if interval > 0 {
				nextDue = nextDue.Add(interval)
				if now.Sub(nextDue) > time.Second {
					nextDue = now // a paused connection does not burst
				}
			}
			if line == nil {
				if len(c.pend) == 0 {
					s.publish(c.pos, nil)
				}
				continue
			}
			c.pend = append(c.pend, line...)
			c.tweets++
			if s.cfg.Record {
				s.publish(-1, line[:len(line)-2])
			}
			sent++
			lastWrite = now
			if cf.OperationalDisconnectAfter > 0 && sent == cf.OperationalDisconnectAfter {
				c.pend = append(c.pend, operationalDisconnect+"\r\n"...)
				c.flush()
				s.disconnects.Add(1)
				return
			}
			if cf.DisconnectAfterTweets > 0 && sent == cf.DisconnectAfterTweets {
				c.flush()
				s.disconnect(r, cf.DisconnectMode)
				return
			}
			if cf.MalformedEvery > 0 && sent%cf.MalformedEvery == 0 {
				c.pend = append(c.pend, malformedLine(c.pos)...)
				s.malformed.Add(1)
			}
			if cf.OversizedEvery > 0 && sent%cf.OversizedEvery == 0 {
				c.pend = append(c.pend, oversizedLine(c.pos, cf.OversizedSize)...)
				s.oversized.Add(1)
			}
			if len(c.pend) >= flushAt && !c.flush() {
				return
			}
			continue
		}
		// Nothing to send now: flush, and sleep until something is due.
		if !c.flush() {
			return
		}
		var wake time.Time
		if avail && interval > 0 {
			wake = nextDue
		}
		if ka > 0 && (wake.IsZero() || lastWrite.Add(ka).Before(wake)) {
			wake = lastWrite.Add(ka)
		}
		if d := cf.DisconnectAfter; d > 0 && (wake.IsZero() || connStart.Add(d).Before(wake)) {
			wake = connStart.Add(d)
		}
		var tc <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(max(time.Until(wake), 0))
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-tc:
		}
	}
}

// conn is one stream connection's output: lines wait in pend until flushed.
type conn struct {
	s      *Server
	w      http.ResponseWriter
	rc     *http.ResponseController
	split  int
	pos    int64 // next timeline position
	pend   []byte
	tweets int // tweet lines in pend
	buf    []byte
}

// flush writes what is pending (in pieces of split bytes, each its own DATA
// frame, when split is set), then counts its tweets as served and moves the
// timeline. It reports false when the client is gone.
func (c *conn) flush() bool {
	if len(c.pend) == 0 {
		return true
	}
	b := c.pend
	step := len(b)
	if c.split > 0 {
		step = c.split
	}
	for len(b) > 0 {
		n := min(step, len(b))
		if _, err := c.w.Write(b[:n]); err != nil || c.rc.Flush() != nil {
			return false
		}
		b = b[n:]
	}
	c.s.bytes.Add(int64(len(c.pend)))
	c.s.tweets.Add(int64(c.tweets))
	c.pend, c.tweets = c.pend[:0], 0
	c.s.publish(c.pos, nil)
	return true
}

// disconnect ends a stream the way mode says.
func (s *Server) disconnect(r *http.Request, mode DisconnectMode) {
	s.disconnects.Add(1)
	switch mode {
	case DisconnectReset:
		panic(http.ErrAbortHandler)
	case DisconnectClose:
		if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
			c.Close()
		}
	}
}

// malformedLine is a truncated tweet message, as a broken proxy might cut.
func malformedLine(pos int64) []byte {
	return []byte(`{"data":{"id":"` + strconv.FormatInt(pos, 10) + `","text":"cut sh` + "\r\n")
}

// oversizedLine is a well-formed tweet message of size bytes (default 1 MiB
// + 1 KiB).
func oversizedLine(pos int64, size int) []byte {
	if size <= 0 {
		size = 1<<20 + 1<<10
	}
	head := `{"data":{"id":"` + strconv.FormatInt(pos, 10) + `","text":"`
	pad := max(size-len(head)-len(`"}}`), 0)
	return []byte(head + strings.Repeat("a", pad) + `"}}` + "\r\n")
}
