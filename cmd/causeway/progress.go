package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
)

// progress shows a run's rates: one refreshing line on a terminal, a log
// line per interval otherwise.
type progress struct {
	w        io.Writer
	tty      bool
	every    time.Duration
	log      *slog.Logger
	last     time.Time
	lastRecv int64
	lastAck  int64
	shown    bool
}

func newProgress(w io.Writer, every time.Duration, log *slog.Logger) *progress {
	p := &progress{w: w, every: every, log: log, last: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) show(x twitter.Stats, s stages.Stats) {
	if p.every <= 0 {
		return
	}
	now := time.Now()
	dt := now.Sub(p.last)
	if dt < p.every {
		return
	}
	recv, acked := x.Tweets, stored(s) // stored by every sink, not what waits in a spill
	rate := float64(recv-p.lastRecv) / dt.Seconds()
	ackRate := float64(acked-p.lastAck) / dt.Seconds()
	p.last, p.lastRecv, p.lastAck = now, recv, acked
	var batchers []string
	for _, b := range s.Batchers {
		line := fmt.Sprintf("%s %d ok %d failed %d pending, concurrency %d", b.Name, b.Acked, b.Failed, b.Pending, b.Concurrency)
		if sp := b.Spill; sp != nil && (sp.Records > 0 || sp.SinkDown) {
			line += fmt.Sprintf(" %d spilled", sp.Records)
		}
		batchers = append(batchers, line)
	}
	reconnects := int64(0)
	for _, n := range x.Reconnects {
		reconnects += n
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s | %d tweets received %.0f/s | stored %.0f/s | buffer %d/%d dropped %d | %s | reconnects %d",
			x.State, recv, rate, ackRate, s.Producer.Buffered, s.Producer.Capacity, s.Dropped, strings.Join(batchers, " | "), reconnects)
		p.shown = true
		return
	}
	p.log.Info("causeway: progress", "stream", x.State.String(), "tweets", recv, "received_per_s", int64(rate),
		"stored_per_s", int64(ackRate), "buffered", s.Producer.Buffered, "dropped", s.Dropped,
		"in_flight", s.InFlight, "batchers", strings.Join(batchers, "; "), "reconnects", reconnects)
}

func (p *progress) finish() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}
