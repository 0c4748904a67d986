package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/dashboard"
	spec "github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/gbfs/gbfstest"
	"github.com/causeway-go/causeway/producers/poll"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topologies/gbfs"
)

// gbfsConfig is what causeway gbfs can be told.
type gbfsConfig struct {
	feedURL             string
	language            string
	databaseURL         string
	kafkaBrokers        string
	kafkaTopic          string
	pollInterval        time.Duration
	informationInterval time.Duration
	processors          int
	shutdownTimeout     time.Duration
	fakeStations        int
	fakeVersion         string
	fakeTTL             time.Duration

	maxPolls    int
	duration    time.Duration
	progress    time.Duration
	summaryJSON string
	metricsAddr string
	logLevel    string
}

const gbfsUsageHeader = `causeway gbfs runs the reference bike-share topology: a GBFS system's
gbfs.json -> polls of station_status (at the feed's ttl) and station_information
-> processors by station (normalise v2.3/v3.0, validate, drop re-sent rows,
compute the change log) -> batchers "kafka" (topic station_status) and
"postgres" (station_status, station_changes, station_information; the view
station_changes_lag is the same change log computed with LAG).

Usage:
  causeway gbfs [flags]

With no -feed-url it serves a simulated system from an in-process fake GBFS
publisher over HTTP/2; with no -kafka-brokers it runs an in-process Kafka.
Postgres is always real: -database-url.

Flags (environment fallbacks in parentheses):
`

// parseGBFSConfig parses causeway gbfs's flags (after "gbfs").
func parseGBFSConfig(args []string, lookup func(string) (string, bool), stderr io.Writer) (*gbfsConfig, error) {
	c := &gbfsConfig{}
	fs := newFlagSet("causeway gbfs", lookup)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.stringVar(&c.feedURL, "feed-url", "GBFS_FEED_URL", "", "the system's GBFS auto-discovery URL (…/gbfs.json); empty serves a simulated system from an in-process fake publisher")
	fs.stringVar(&c.language, "language", "GBFS_LANGUAGE", gbfs.DefaultLanguage, "language of the feeds (v2.3) and station names (v3.0)")
	fs.stringVar(&c.databaseURL, "database-url", "DATABASE_URL", "", "Postgres URL, e.g. postgres://user@host:5432/db (required)")
	fs.stringVar(&c.kafkaBrokers, "kafka-brokers", "KAFKA_BROKERS", "", "Kafka bootstrap servers, host:port,...; empty runs an in-process Kafka (kfake)")
	fs.stringVar(&c.kafkaTopic, "kafka-topic", "KAFKA_TOPIC", gbfs.DefaultTopic, "Kafka topic the station rows go to (key station_id, value the row as JSON)")
	fs.durationVar(&c.pollInterval, "poll-interval", "", 0, "time between polls of station_status; 0: the feed's own ttl, at least 1s")
	fs.durationVar(&c.informationInterval, "information-interval", "", gbfs.DefaultInformationInterval, "time between polls of station_information")
	fs.intVar(&c.processors, "processors", "", 2*runtime.GOMAXPROCS(0), "processor goroutines")
	fs.durationVar(&c.shutdownTimeout, "shutdown-timeout", "", 30*time.Second, "longest the drain may take after a stop")
	fs.intVar(&c.fakeStations, "fake-stations", "", gbfstest.DefaultStations, "embedded fake system: number of stations")
	fs.stringVar(&c.fakeVersion, "fake-version", "", spec.V23, "embedded fake system: GBFS version served, 2.3 or 3.0")
	fs.durationVar(&c.fakeTTL, "fake-ttl", "", 5*time.Second, "embedded fake system: publication period and ttl, whole seconds")
	fs.intVar(&c.maxPolls, "max-polls", "", 0, "stop after this many polls of station_status (once their rows are stored); 0 no limit")
	fs.durationVar(&c.duration, "duration", "", 0, "stop after this long; 0 no limit")
	fs.durationVar(&c.progress, "progress", "", 5*time.Second, "how often progress is logged; 0 off")
	fs.stringVar(&c.summaryJSON, "summary-json", "", "", "write the run's summary as JSON to this `path`")
	var httpAddr string
	fs.stringVar(&httpAddr, "http-addr", "HTTP_ADDR", "", "serve the dashboard page (/), /metrics (Prometheus), /healthz and /readyz on this address, e.g. 127.0.0.1:9464; empty off")
	fs.stringVar(&c.metricsAddr, "metrics-addr", "METRICS_ADDR", "", "the same as -http-addr (its older name)")
	fs.stringVar(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprint(stderr, gbfsUsageHeader)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if httpAddr != "" && c.metricsAddr != "" && httpAddr != c.metricsAddr {
		return nil, fmt.Errorf("-http-addr %q and -metrics-addr %q differ: -metrics-addr is its older name, give one", httpAddr, c.metricsAddr)
	}
	if httpAddr != "" {
		c.metricsAddr = httpAddr
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see causeway gbfs -h)", fs.Arg(0))
	}
	return c, c.validate()
}

func (c *gbfsConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.feedURL != "" {
		if !isHTTPURL(c.feedURL) {
			bad("-feed-url %q: want an http:// or https:// URL of a gbfs.json", c.feedURL)
		}
	}
	if c.databaseURL == "" {
		bad("-database-url (or $DATABASE_URL) is required: scripts/pg start DIR starts a throwaway Postgres")
	} else if _, err := pgxpool.ParseConfig(c.databaseURL); err != nil {
		bad("-database-url %s: want a postgres:// URL or a keyword/value string (host=... dbname=...): %v",
			redactURL(c.databaseURL), redactedErr(err, c.databaseURL))
	}
	if c.kafkaTopic == "" {
		bad("-kafka-topic must not be empty")
	}
	if c.pollInterval < 0 || (c.pollInterval > 0 && c.pollInterval < time.Second) {
		bad("-poll-interval must be 0 (the feed's ttl) or at least 1s, got %v", c.pollInterval)
	}
	if c.informationInterval < time.Second {
		bad("-information-interval must be at least 1s, got %v", c.informationInterval)
	}
	if c.processors <= 0 {
		bad("-processors must be > 0, got %d", c.processors)
	}
	if c.shutdownTimeout <= 0 {
		bad("-shutdown-timeout must be > 0, got %v", c.shutdownTimeout)
	}
	if c.fakeStations <= 0 {
		bad("-fake-stations must be > 0, got %d", c.fakeStations)
	}
	if c.fakeVersion != spec.V23 && c.fakeVersion != spec.V30 {
		bad("-fake-version must be %s or %s, got %q", spec.V23, spec.V30, c.fakeVersion)
	}
	if c.fakeTTL < time.Second || c.fakeTTL%time.Second != 0 {
		bad("-fake-ttl must be whole seconds, at least 1s, got %v", c.fakeTTL)
	}
	if c.maxPolls < 0 {
		bad("-max-polls must be >= 0, got %d", c.maxPolls)
	}
	if c.duration < 0 {
		bad("-duration must be >= 0, got %v", c.duration)
	}
	if c.progress < 0 {
		bad("-progress must be >= 0, got %v", c.progress)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		bad("-log-level: %v", err)
	}
	return errors.Join(errs...)
}

// runGBFSMode is run for causeway gbfs: it parses the flags, watches the
// signals and runs the topology. It returns the exit status.
func runGBFSMode(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer,
	sigs <-chan os.Signal) int {
	cfg, err := parseGBFSConfig(args, lookup, stderr)
	return runCommand(ctx, "causeway gbfs", err, func() string { return cfg.logLevel }, stderr, sigs,
		func(ctx context.Context, log *slog.Logger) error { return runGBFS(ctx, cfg, log, stdout) })
}

// runGBFS runs the bike-share topology until ctx ends, -duration or
// -max-polls, and prints the summary.
func runGBFS(ctx context.Context, cfg *gbfsConfig, log *slog.Logger, stdout io.Writer) error {
	gcfg := gbfs.Config{
		FeedURL: cfg.feedURL, Language: cfg.language, PollInterval: cfg.pollInterval,
		InformationInterval: cfg.informationInterval, Processors: cfg.processors,
		ShutdownTimeout: cfg.shutdownTimeout, Logger: log,
		HandleFailed: func(_ context.Context, failed []*stages.Message[gbfs.Record]) {
			log.Warn("causeway gbfs: rows failed", "count", len(failed), "first_station", failed[0].Data.StationID(),
				"first_error", failed[0].Err())
		},
	}
	if cfg.feedURL == "" {
		fake, err := gbfstest.NewServer(gbfstest.Config{Version: cfg.fakeVersion, Stations: cfg.fakeStations, TTL: cfg.fakeTTL,
			Logger: log.With("component", "fake-gbfs")})
		if err != nil {
			return fmt.Errorf("embedded GBFS system: %w", err)
		}
		if err := fake.Start(); err != nil {
			return fmt.Errorf("embedded GBFS system: %w", err)
		}
		defer fake.Close()
		gcfg.FeedURL, gcfg.Client = fake.DiscoveryURL(), fake.Client()
		log.Info("causeway gbfs: serving a simulated system from an in-process fake GBFS publisher",
			"url", gcfg.FeedURL, "version", cfg.fakeVersion, "stations", cfg.fakeStations, "ttl", cfg.fakeTTL)
	}
	brokers := cfg.kafkaBrokers
	if brokers == "" {
		k, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, cfg.kafkaTopic))
		if err != nil {
			return fmt.Errorf("embedded Kafka: %w", err)
		}
		defer k.Close()
		brokers = strings.Join(k.ListenAddrs(), ",")
		log.Info("causeway gbfs: running an in-process Kafka (kfake)", "brokers", brokers, "topic", cfg.kafkaTopic)
	}
	gcfg.Kafka = gbfs.KafkaConfig{Brokers: brokers, Topic: cfg.kafkaTopic}
	pool, err := pgxpool.New(ctx, cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", redactURL(cfg.databaseURL), err)
	}
	defer pool.Close()
	gcfg.Postgres = gbfs.PostgresConfig{Pool: pool}
	p, err := gbfs.New(ctx, gcfg)
	if err != nil {
		return err
	}
	defer p.Close()
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer qcancel()
	rowsBefore, _ := countRows(qctx, pool, "station_status")
	changesBefore, _ := countRows(qctx, pool, "station_changes")
	log.Info("causeway gbfs: starting", "station_status", p.Feeds().StationStatus,
		"station_information", p.Feeds().StationInformation, "stations_restored", p.Counters().Restored)
	log.Debug("causeway gbfs: topology\n" + p.Topology().Describe().String())
	srv, err := serveMetrics(cfg.metricsAddr, p.Topology(), nil, log, gbfsPanels(p)...)
	if err != nil {
		return err
	}
	defer srv.close()
	elapsed, err := runUntil(ctx, p.Run, cfg.duration, log, gbfsCheck(cfg, p, log))
	sum := newGBFSSummary(p, elapsed)
	sum.FeedURL = gcfg.FeedURL
	sum.StationRowsNew = countSince(qctx, pool, "station_status", rowsBefore)
	sum.ChangesRecorded = countSince(qctx, pool, "station_changes", changesBefore)
	sum.Stations, _ = countRows(qctx, pool, "station_information")
	if elapsed > 0 {
		sum.StationRowsPerSecond = float64(sum.StationRowsNew) / elapsed.Seconds()
	}
	sum.print(stdout)
	return errors.Join(err, sum.writeJSON(cfg.summaryJSON))
}

func countSince(ctx context.Context, pool *pgxpool.Pool, table string, before int64) int64 {
	n, err := countRows(ctx, pool, table)
	if err != nil {
		return -1
	}
	return n - before
}

// gbfsCheck logs progress and says when the run is done: at -max-polls,
// once the rows of the last poll are stored.
func gbfsCheck(cfg *gbfsConfig, p *gbfs.Pipeline, log *slog.Logger) func() string {
	last := time.Now()
	return func() string {
		ps := p.Producer().Stats()
		status := ps.Feeds[0]
		s := p.Stats()
		if cfg.maxPolls > 0 && status.Polls >= int64(cfg.maxPolls) && ps.Pending == 0 && s.InFlight == 0 {
			return fmt.Sprintf("-max-polls %d reached", cfg.maxPolls)
		}
		if cfg.progress > 0 && time.Since(last) >= cfg.progress {
			last = time.Now()
			c := p.Counters()
			log.Info("causeway gbfs: progress", "polls", status.Polls, "not_modified", status.NotModified,
				"errors", status.Errors(), "rows", c.Rows, "resent", c.Resent, "changes", c.Changes,
				"acked", s.Acked, "in_flight", s.InFlight)
		}
		return ""
	}
}

// gbfsSummary is what a causeway gbfs run did, printed at exit and written
// as JSON.
type gbfsSummary struct {
	Mode    string `json:"mode"`
	FeedURL string `json:"feed_url"`
	// The station_status feed's polls and what they found.
	Polls         int64 `json:"polls"`
	NotModified   int64 `json:"not_modified"`
	Documents     int64 `json:"documents"`
	Unchanged     int64 `json:"unchanged"`
	Stale         int64 `json:"stale"`
	Skipped       int64 `json:"skipped"`
	ServerErrors  int64 `json:"server_errors"`
	Throttled     int64 `json:"throttled"`
	NetworkErrors int64 `json:"network_errors"`
	Malformed     int64 `json:"malformed"`
	// InformationPolls are the station_information feed's.
	InformationPolls int64 `json:"information_polls"`
	// Rows: station rows emitted, new to the pipeline, re-sent (dropped),
	// older than the station's last (dropped), invalid, failed in a sink.
	RowsEmitted     int64 `json:"rows_emitted"`
	InformationRows int64 `json:"information_rows"`
	RowsNew         int64 `json:"rows_new"`
	Resent          int64 `json:"resent"`
	Older           int64 `json:"older"`
	Invalid         int64 `json:"invalid"`
	Failed          int64 `json:"failed"`
	// The sinks: rows Postgres and Kafka took, the change log's new rows,
	// the stations station_information describes.
	StationRowsNew  int64 `json:"station_rows_new"`
	ChangesRecorded int64 `json:"changes_recorded"`
	KafkaRecords    int64 `json:"kafka_records"`
	Stations        int64 `json:"stations"`
	// Restored is the number of stations whose last state was read back
	// from Postgres at start.
	Restored int64 `json:"stations_restored"`
	// Topology accounting: emitted = acked + failed + dropped + unfinished.
	Acked      int64 `json:"acked"`
	Dropped    int64 `json:"dropped"`
	Unfinished int64 `json:"unfinished"`

	TopStations          []gbfs.StationChanges `json:"top_stations"`
	DurationSeconds      float64               `json:"duration_seconds"`
	StationRowsPerSecond float64               `json:"station_rows_per_second"`
}

func newGBFSSummary(p *gbfs.Pipeline, elapsed time.Duration) *gbfsSummary {
	ps := p.Producer().Stats()
	st := ps.Feeds[0].Counters
	var info poll.Counters
	if len(ps.Feeds) > 1 {
		info = ps.Feeds[1].Counters
	}
	c, s := p.Counters(), p.Stats()
	sum := &gbfsSummary{
		Mode: "gbfs", Polls: st.Polls, NotModified: st.NotModified, Documents: st.Documents, Unchanged: st.Unchanged,
		Stale: st.Stale, Skipped: st.Skipped, ServerErrors: st.ServerErrors, Throttled: st.Throttled,
		NetworkErrors: st.NetworkErrors, Malformed: st.Malformed, InformationPolls: info.Polls,
		RowsEmitted: s.Producer.Emitted, InformationRows: c.Information, RowsNew: c.Rows, Resent: c.Resent, Older: c.Older, Invalid: c.Invalid, Failed: s.Failed,
		Restored: c.Restored, Acked: s.Acked, Dropped: s.Dropped, Unfinished: s.InFlight,
		TopStations: p.TopChanged(5), DurationSeconds: elapsed.Seconds(),
	}
	for _, b := range s.Batchers {
		if b.Name == "kafka" {
			sum.KafkaRecords = b.Acked
		}
	}
	if sum.TopStations == nil {
		sum.TopStations = []gbfs.StationChanges{}
	}
	return sum
}

func (s *gbfsSummary) print(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "\ncauseway gbfs: %.1fs, %d new station rows (%.0f/s), %d changes recorded\n",
		s.DurationSeconds, s.StationRowsNew, s.StationRowsPerSecond, s.ChangesRecorded)
	fmt.Fprintf(&b, "  polls      %d of station_status: %d documents, %d not modified, %d unchanged, %d stale, %d skipped; errors: %d 5xx, %d 429, %d network, %d malformed; %d of station_information\n",
		s.Polls, s.Documents, s.NotModified, s.Unchanged, s.Stale, s.Skipped, s.ServerErrors, s.Throttled, s.NetworkErrors, s.Malformed, s.InformationPolls)
	fmt.Fprintf(&b, "  rows       %d emitted (%d of station_information): %d status rows new, %d re-sent and %d older dropped, %d invalid, %d failed; %d stations restored at start\n",
		s.RowsEmitted, s.InformationRows, s.RowsNew, s.Resent, s.Older, s.Invalid, s.Failed, s.Restored)
	fmt.Fprintf(&b, "  sinks      postgres: %d station rows new, %d changes, %d stations described; kafka: %d records\n",
		s.StationRowsNew, s.ChangesRecorded, s.Stations, s.KafkaRecords)
	if len(s.TopStations) > 0 {
		parts := make([]string, len(s.TopStations))
		for i, t := range s.TopStations {
			parts[i] = fmt.Sprintf("%s (%d)", t.StationID, t.Changes)
		}
		fmt.Fprintf(&b, "  changed most  %s\n", strings.Join(parts, ", "))
	}
	io.WriteString(w, b.String())
}

func (s *gbfsSummary) writeJSON(path string) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("-summary-json: %w", err)
	}
	return nil
}

// gbfsPanels are the dashboard's bike-share panels: a map of the stations
// coloured by bikes available, the latest changes, the stations that
// changed most and the pipeline's counters.
func gbfsPanels(p *gbfs.Pipeline) []dashboard.Panel {
	return []dashboard.Panel{
		{Name: "gbfs-map", Title: "Stations: bikes available", Kind: dashboard.KindStationMap, Data: func() any { return p.Stations() }},
		{Name: "gbfs-changes", Title: "Latest changes", Data: func() any { return gbfsChangeRows(p.LatestChanges(20), p.Stations()) }},
		{Name: "gbfs-stations", Title: "Stations that changed most", Data: func() any { return p.TopChanged(10) }},
		{Name: "gbfs-counters", Title: "Polls and rows", Data: func() any { return p.Counters() }},
	}
}

// gbfsChangeRow is one row of the dashboard's table of latest changes.
type gbfsChangeRow struct {
	At      string `json:"at"`
	Station string `json:"station"`
	Kind    string `json:"kind"`
	Bikes   string `json:"bikes"`
	Docks   string `json:"docks"`
}

// gbfsChangeRows turns changes into the table's rows, naming each station
// as stations describe it.
func gbfsChangeRows(changes []gbfs.Change, stations []gbfs.Station) []gbfsChangeRow {
	names := make(map[string]string, len(stations))
	for _, s := range stations {
		names[s.StationID] = s.Name
	}
	rows := make([]gbfsChangeRow, len(changes))
	for i, c := range changes {
		station := c.StationID
		if n := names[c.StationID]; n != "" {
			station = n + " (" + c.StationID + ")"
		}
		rows[i] = gbfsChangeRow{At: c.At.UTC().Format("2006-01-02 15:04:05 UTC"), Station: station, Kind: c.Kind,
			Bikes: fmt.Sprintf("%d → %d", c.BikesBefore, c.BikesAfter), Docks: fmt.Sprintf("%d → %d", c.DocksBefore, c.DocksAfter)}
	}
	return rows
}
