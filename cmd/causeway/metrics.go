package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/promstats"
	"github.com/causeway-go/causeway/stages"
)

// metricsServer serves /metrics and /healthz while a topology runs.
type metricsServer struct {
	srv  *http.Server
	done chan struct{}
}

func (m *metricsServer) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.srv.Shutdown(ctx)
	<-m.done
}

// serveMetrics starts the metrics server on addr; "" serves nothing.
// stream, if not nil, adds the X stream's metrics; extra collectors are
// registered too.
func serveMetrics(addr string, stats func() stages.Stats, stream *twitter.Stream, log *slog.Logger, extra ...prometheus.Collector) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		promstats.New("causeway", stats))
	if stream != nil {
		reg.MustRegister(newStreamCollector(stream))
	}
	reg.MustRegister(extra...)
	mux := http.NewServeMux()
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
		return nil, fmt.Errorf("-metrics-addr %s: %w", addr, err)
	}
	m := &metricsServer{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("causeway: metrics server", "err", err)
		}
	}()
	log.Info("causeway: serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	return m, nil
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
