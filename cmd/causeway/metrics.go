package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/causeway-go/causeway/dashboard"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/promstats"
	"github.com/causeway-go/causeway/stages"
)

// metricsServer serves the dashboard, /metrics, /healthz and /readyz while
// a topology runs.
type metricsServer struct {
	srv  *http.Server
	dash *dashboard.Dashboard
	done chan struct{}
}

func (m *metricsServer) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.dash.Close() // ends the page's event streams, which Shutdown would wait for
	m.srv.Shutdown(ctx)
	<-m.done
}

// serveMetrics starts the HTTP server on addr (-http-addr): the dashboard
// page for top at /, with panels, and /metrics, /healthz and /readyz; ""
// serves nothing. stream, if not nil, adds the X stream's metrics and its
// dashboard panel. It logs the page's URL.
func serveMetrics(addr string, top dashboard.Topology, stream *twitter.Stream, log *slog.Logger, panels ...dashboard.Panel) (*metricsServer, error) {
	return serveMetricsWith(addr, top, stream, log, nil, panels...)
}

// serveMetricsWith is serveMetrics with extra collectors on /metrics.
func serveMetricsWith(addr string, top dashboard.Topology, stream *twitter.Stream, log *slog.Logger, extra []prometheus.Collector,
	panels ...dashboard.Panel) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	stats := top.Stats
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		promstats.New("causeway", stats))
	reg.MustRegister(extra...)
	if stream != nil {
		reg.MustRegister(newStreamCollector(stream))
		panels = append([]dashboard.Panel{streamPanel(stream)}, panels...)
	}
	mux := http.NewServeMux()
	if os.Getenv("CAUSEWAY_PPROF") == "1" {
		// Profiling on request only: $CAUSEWAY_PPROF=1 serves Go's
		// /debug/pprof/ beside the page.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if stream != nil && stream.Stats().State == twitter.StateStopped {
			http.Error(w, "stream stopped", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		problems := readiness(stats(), stream)
		if len(problems) > 0 {
			http.Error(w, strings.Join(problems, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-http-addr %s: %w", addr, err)
	}
	dash := dashboard.New(dashboard.Options{Panels: panels}, top)
	mux.Handle("/", dash)
	m := &metricsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, dash: dash, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("causeway: metrics server", "err", err)
		}
	}()
	log.Info("causeway: dashboard at "+pageURL(ln.Addr()), "metrics", "/metrics", "health", "/healthz", "ready", "/readyz")
	return m, nil
}

// pageURL is the dashboard's URL on a listener's address; an unspecified
// host (":9464") is shown as localhost.
func pageURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// streamPanel is the dashboard's panel for the X stream: its connection
// state, reconnects by reason and what became of the lines it read.
func streamPanel(stream *twitter.Stream) dashboard.Panel {
	return dashboard.Panel{Name: "stream", Title: "X stream connection", Data: func() any {
		x := stream.Stats()
		reasons := map[string]int64{}
		for _, r := range twitter.Reasons {
			reasons[string(r)] = x.Reconnects[r]
		}
		return map[string]any{
			"state": x.State.String(), "attempts": x.Attempts, "connects": x.Connects,
			"reconnects": reasons, "last_backoff": x.LastBackoff.String(),
			"bytes": x.Bytes, "keep_alives": x.KeepAlives, "lines": x.Received, "tweets": x.Tweets,
			"emitted": x.Emitted, "deduplicated": x.Deduplicated, "abandoned": x.Abandoned,
			"malformed": x.Malformed, "oversized": x.Oversized, "stream_errors": x.StreamErrors, "ignored": x.Ignored,
		}
	}}
}

// streamCollector exports an X stream's counters and connection state.
type streamCollector struct {
	stream                                          *twitter.Stream
	state, reconnects, lines, tweets, outcomes, kas *prometheus.Desc
}

func newStreamCollector(s *twitter.Stream) *streamCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("causeway_x_stream_"+name, help, labels, nil)
	}
	return &streamCollector{
		stream:     s,
		state:      d("connection_state", "1 for the stream's current connection state.", "state"),
		reconnects: d("reconnects_total", "Reconnect decisions by reason.", "reason"),
		lines:      d("lines_total", "Message lines received (keep-alives excluded)."),
		tweets:     d("tweets_total", "Well-formed tweet messages received."),
		outcomes:   d("line_outcomes_total", "What became of received lines.", "outcome"),
		kas:        d("keep_alives_total", "Keep-alive lines received."),
	}
}

func (c *streamCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.reconnects, c.lines, c.tweets, c.outcomes, c.kas} {
		ch <- d
	}
}

func (c *streamCollector) Collect(ch chan<- prometheus.Metric) {
	x := c.stream.Stats()
	for st := twitter.StateIdle; st <= twitter.StateStopped; st++ {
		v := 0.0
		if st == x.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, st.String())
	}
	for _, r := range twitter.Reasons {
		ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(x.Reconnects[r]), string(r))
	}
	ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(x.Received))
	ch <- prometheus.MustNewConstMetric(c.tweets, prometheus.CounterValue, float64(x.Tweets))
	ch <- prometheus.MustNewConstMetric(c.kas, prometheus.CounterValue, float64(x.KeepAlives))
	for outcome, n := range map[string]int64{"emitted": x.Emitted, "deduplicated": x.Deduplicated, "abandoned": x.Abandoned,
		"malformed": x.Malformed, "stream_error": x.StreamErrors, "ignored": x.Ignored} {
		ch <- prometheus.MustNewConstMetric(c.outcomes, prometheus.CounterValue, float64(n), outcome)
	}
}

// readiness lists why the pipeline is not ready to take tweets at full
// speed: the stream not connected, a sink held back (retrying a batch, or
// its spill full), or a sink down with its tweets going to the spill. No
// problems: ready.
func readiness(st stages.Stats, stream *twitter.Stream) []string {
	var problems []string
	if stream != nil {
		if state := stream.Stats().State; state != twitter.StateConnected {
			problems = append(problems, "stream: "+state.String())
		}
	}
	for _, b := range st.Batchers {
		switch {
		case b.Spill != nil && b.Spill.Full:
			problems = append(problems, fmt.Sprintf("sink %s: spill full (%d tweets, %d bytes): held back", b.Name, b.Spill.Records, b.Spill.Bytes))
		case b.Blocked:
			problems = append(problems, fmt.Sprintf("sink %s: failing, batch held and retried", b.Name))
		case b.Spill != nil && b.Spill.SinkDown:
			problems = append(problems, fmt.Sprintf("sink %s: down, %d tweets held in its spill", b.Name, b.Spill.Records))
		}
	}
	return problems
}
