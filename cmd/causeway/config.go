package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/stages/archive"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// config is everything the binary can be told.
type config struct {
	mode string // "run", "load" or "archive"

	// archive (causeway archive, or -archive-dir in run)
	archiveDir      string
	archiveName     string
	rotateSize      string
	rotateSizeBytes int64
	rotateEvery     time.Duration
	onRotate        string

	// X stream (run)
	streamURL   string
	bearerToken string
	rules       listFlag
	sample      bool
	replayData  string
	replayRate  int
	replayLoop  bool
	backfill    int

	stallTimeout     time.Duration
	backoffNetwork   time.Duration
	backoffHTTP      time.Duration
	backoffRateLimit time.Duration

	// Kafka
	kafkaBrokers string
	kafkaTopic   string
	kafkaGroup   string
	dlqTopic     string // load
	exactlyOnce  bool   // load

	// Postgres
	databaseURL string
	pgTable     string

	// topology
	processors        int
	buffer            int
	kafkaBatchSize    int
	kafkaBatchTimeout time.Duration
	kafkaConcurrency  int
	kafkaMaxConc      int
	pgBatchSize       int
	pgBatchTimeout    time.Duration
	pgConcurrency     int
	pgMaxConc         int
	shutdownTimeout   time.Duration
	connectTimeout    time.Duration
	spillDir          string
	stateFile         string
	spillMax          string
	spillMaxBytes     int64

	// run control and output
	maxTweets   int
	duration    time.Duration
	metricsAddr string // -http-addr, or its alias -metrics-addr
	httpAddr    string
	summaryJSON string
	logLevel    string
	progress    time.Duration
	cpuProfile  string
}

const usageHeader = `causeway runs the reference tweet topology: an X API v2 stream (HTTP/2) ->
processors (decode, enrich, de-duplicate) -> batchers "kafka" and "postgres".

Usage:
  causeway [flags]        stream tweets into Kafka and Postgres
  causeway load [flags]   read the Kafka topic as a consumer group and load Postgres
                          (run N of them with one -kafka-group to scale out)
  causeway archive -dir DIR [flags]
                          the always-on listener alone: X stream -> a gzip JSON-lines
                          archive (DIR/<archive-name>.jsonl.gz), no Kafka or Postgres;
                          SIGHUP reopens the active file (logrotate: rename, then signal)
  causeway archive verify DIR
                          check every file of an archive: lines, ids, damage (exit 1 on damage)
  causeway gbfs [flags]   bike-share: poll a GBFS feed into Kafka and Postgres with a change log (causeway gbfs -h)
  causeway hashtags [flags]
                          hashtags per minute from the Kafka topic into Postgres, exactly once
                          (see causeway hashtags -h)

With no -stream-url, causeway serves testdata/ from an in-process fake X API
and stops at the end of the replay; with no -kafka-brokers it runs an
in-process Kafka (kfake). Postgres is always real: -database-url (make run
starts a throwaway one).

Flags (environment fallbacks in parentheses):
`

// parseConfig parses the command line (without the program name).
func parseConfig(args []string, lookup func(string) (string, bool), stderr io.Writer) (*config, error) {
	c := &config{mode: "run"}
	if len(args) > 0 && (args[0] == "load" || args[0] == "archive") {
		c.mode = args[0]
		args = args[1:]
	}
	fs := newFlagSet("causeway", lookup)
	// The flag package prints a parse error and the whole usage; causeway
	// prints one line instead (run adds "see causeway -h"), and the usage
	// only for -h.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	printUsage := func() {
		fs.SetOutput(stderr)
		fmt.Fprint(stderr, usageHeader)
		fs.PrintDefaults()
	}
	procs := 2 * runtime.GOMAXPROCS(0)
	fs.stringVar(&c.streamURL, "stream-url", "TWITTER_STREAM_URL", "", "X API base URL, e.g. https://api.twitter.com; empty serves testdata/ from an in-process fake X API")
	fs.stringVar(&c.bearerToken, "bearer-token", "TWITTER_BEARER_TOKEN", "", "X API app bearer token (required with -stream-url; never logged)")
	fs.Var(&c.rules, "rules", "filtered-stream rule as `[tag: ]value`, or @FILE with one such rule per line; repeatable (none: the sample stream)")
	fs.boolVar(&c.sample, "sample", "", false, "read the 1% sample stream even when rules are given")
	fs.stringVar(&c.replayData, "replay-data", "", "testdata/*.jsonl", "embedded fake X API: the recorded stream lines it serves (files, globs or directories)")
	fs.intVar(&c.replayRate, "replay-rate", "", 0, "embedded fake X API: tweets per second, 0 as fast as possible")
	fs.boolVar(&c.replayLoop, "replay-loop", "", false, "embedded fake X API: loop over testdata/ instead of stopping at its end")
	fs.intVar(&c.backfill, "backfill-minutes", "", 0, "ask the X API to replay up to 5 minutes missed while reconnecting (duplicates are dropped)")
	fs.durationVar(&c.stallTimeout, "stall-timeout", "", 90*time.Second, "reconnect when the stream sent no byte (not even a keep-alive) for this long")
	fs.durationVar(&c.backoffNetwork, "backoff-network", "", 250*time.Millisecond, "first wait after a network error; grows linearly to 16s")
	fs.durationVar(&c.backoffHTTP, "backoff-http", "", 5*time.Second, "first wait after an HTTP error; doubles up to 320s")
	fs.durationVar(&c.backoffRateLimit, "backoff-rate-limit", "", time.Minute, "first wait after HTTP 429; doubles, and never before x-rate-limit-reset")
	fs.stringVar(&c.kafkaBrokers, "kafka-brokers", "KAFKA_BROKERS", "", "Kafka bootstrap servers, host:port,...; empty runs an in-process Kafka (kfake)")
	fs.stringVar(&c.kafkaTopic, "kafka-topic", "KAFKA_TOPIC", "tweets", "Kafka topic the tweets go to (and load reads)")
	fs.stringVar(&c.kafkaGroup, "kafka-group", "KAFKA_GROUP", "causeway-loader", "load: Kafka consumer group id; instances with one id share the topic")
	fs.stringVar(&c.dlqTopic, "dlq-topic", "KAFKA_DLQ_TOPIC", "", "Kafka topic for tweets a sink refuses for good (a row Postgres refuses, a record too large), with the error in headers; in load, before their offsets are committed; empty: <kafka-topic>.dlq, - off (they are then only counted and logged; in load they hold their partition)")
	fs.boolVar(&c.exactlyOnce, "exactly-once", "", false, "load: rows and consumed offsets in one Postgres transaction (offsets stored in causeway_offsets, read back at start; dead letters in causeway_dead_letters)")
	fs.stringVar(&c.databaseURL, "database-url", "DATABASE_URL", "", "Postgres URL, e.g. postgres://user@host:5432/db (required)")
	fs.stringVar(&c.pgTable, "pg-table", "PG_TABLE", "tweets", "Postgres table the tweets go to (created or migrated at start)")
	fs.intVar(&c.processors, "processors", "", procs, "processor goroutines")
	fs.intVar(&c.buffer, "buffer", "", 10_000, "producer buffer size in tweets; a full buffer drops the oldest (counted)")
	fs.intVar(&c.kafkaBatchSize, "kafka-batch-size", "", 500, "tweets per Kafka batch")
	fs.durationVar(&c.kafkaBatchTimeout, "kafka-batch-timeout", "", 100*time.Millisecond, "longest a partial Kafka batch waits")
	fs.intVar(&c.kafkaConcurrency, "kafka-concurrency", "", 0, "Kafka batch processors, fixed; 0 adapts between 1 and -kafka-max-concurrency")
	fs.intVar(&c.kafkaMaxConc, "kafka-max-concurrency", "", tweets.DefaultKafkaMaxConcurrency, "most Kafka batch processors the adaptive pool grows to")
	fs.intVar(&c.pgBatchSize, "pg-batch-size", "", 5000, "tweets per Postgres batch")
	fs.durationVar(&c.pgBatchTimeout, "pg-batch-timeout", "", time.Second, "longest a partial Postgres batch waits")
	fs.intVar(&c.pgConcurrency, "pg-concurrency", "", 0, "Postgres batch processors, fixed; 0 adapts between 1 and -pg-max-concurrency")
	fs.intVar(&c.pgMaxConc, "pg-max-concurrency", "", tweets.DefaultMaxConcurrency, "most Postgres batch processors the adaptive pool grows to")
	fs.durationVar(&c.shutdownTimeout, "shutdown-timeout", "", 30*time.Second, "longest the drain may take after a stop")
	fs.durationVar(&c.connectTimeout, "connect-timeout", "CAUSEWAY_CONNECT_TIMEOUT", 15*time.Second, "at start, longest to wait for Postgres and Kafka to answer before stopping with an error naming the one that did not")
	fs.stringVar(&c.spillDir, "spill-dir", "CAUSEWAY_SPILL_DIR", "causeway-spill", "where each sink holds the tweets it cannot take while it is down, replayed in order when it returns (and first at the next start); empty: no spill, a sink's outage fails its tweets")
	fs.stringVar(&c.stateFile, "state-file", "CAUSEWAY_STATE_FILE", "", "where the stream's resume point is kept (the last tweet every sink holds), so a restart with -backfill-minutes asks for what the last run missed; empty: stream-state.json in -spill-dir")
	fs.stringVar(&c.spillMax, "spill-max", "CAUSEWAY_SPILL_MAX", "1GiB", "most disk each sink's spill may use, e.g. 512MiB; a full spill holds its sink back")
	fs.stringVar(&c.archiveDir, "dir", "", "", "archive: the archive directory (required); the active file is DIR/<archive-name>.jsonl.gz")
	fs.stringVar(&c.archiveDir, "archive-dir", "CAUSEWAY_ARCHIVE_DIR", "", "also write every tweet's raw JSON line to a gzip archive in this directory (a batcher \"archive\" beside kafka and postgres); the same as -dir in causeway archive")
	fs.stringVar(&c.archiveName, "archive-name", "CAUSEWAY_ARCHIVE_NAME", archive.DefaultName, "base name of the archive's files: <name>.jsonl.gz, finished ones <name>-<UTC time>.jsonl.gz")
	fs.stringVar(&c.rotateSize, "rotate-size", "CAUSEWAY_ROTATE_SIZE", "0", "archive: finish the active file once it holds this much, e.g. 64MiB; 0 never by size")
	fs.durationVar(&c.rotateEvery, "rotate-every", "CAUSEWAY_ROTATE_EVERY", 0, "archive: finish the active file once its first line is this old, e.g. 1h; 0 never by age")
	fs.stringVar(&c.onRotate, "on-rotate", "CAUSEWAY_ON_ROTATE", "", "archive: shell command run on each file the archive finished itself, its path appended (and in $CAUSEWAY_ARCHIVE_FILE): upload, checksum")
	fs.intVar(&c.maxTweets, "max-tweets", "", 0, "stop once this many tweets (after de-duplication; records, for load) entered the topology; 0 no limit")
	fs.durationVar(&c.duration, "duration", "", 0, "stop after this long; 0 no limit")
	fs.stringVar(&c.metricsAddr, "metrics-addr", "METRICS_ADDR", "", "the same as -http-addr (its older name)")
	fs.stringVar(&c.httpAddr, "http-addr", "HTTP_ADDR", "", "serve the dashboard page (/), /metrics (Prometheus), /healthz and /readyz on this address, e.g. 127.0.0.1:9464; empty off")
	fs.stringVar(&c.summaryJSON, "summary-json", "", "", "write the run's summary as JSON to this `path`")
	fs.stringVar(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	fs.durationVar(&c.progress, "progress", "", time.Second, "how often progress is shown; 0 off")
	fs.stringVar(&c.cpuProfile, "cpuprofile", "", "", "write a CPU profile of the run (go tool pprof) to this `path`")
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage()
		}
		return nil, err
	}
	if c.mode == "archive" && fs.NArg() > 0 && fs.Arg(0) == "verify" {
		return nil, fmt.Errorf("flags go after \"archive verify\": causeway archive verify DIR")
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags go before it? see -h)", fs.Arg(0))
	}
	if c.httpAddr != "" && c.metricsAddr != "" && c.httpAddr != c.metricsAddr {
		return nil, fmt.Errorf("-http-addr %q and -metrics-addr %q differ: -metrics-addr is its older name, give one", c.httpAddr, c.metricsAddr)
	}
	if c.httpAddr != "" {
		c.metricsAddr = c.httpAddr
	}
	return c, c.validate()
}

// isHTTPURL reports whether s is an absolute http:// or https:// URL.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.streamURL != "" {
		if !isHTTPURL(c.streamURL) {
			bad("-stream-url %q: want an http:// or https:// URL", c.streamURL)
		}
		if c.bearerToken == "" && c.mode != "load" {
			bad("-bearer-token (or $TWITTER_BEARER_TOKEN) is required with -stream-url")
		}
	}
	if c.mode == "archive" && c.archiveDir == "" {
		bad("-dir is required: causeway archive -dir DIR")
	}
	if c.archiveName == "" || strings.ContainsAny(c.archiveName, `/\`) || c.archiveName == "." || c.archiveName == ".." {
		bad("-archive-name %q: want a plain file name", c.archiveName)
	}
	if n, err := archive.ParseSize(c.rotateSize); err != nil {
		bad("-rotate-size %q: want a size such as 64MiB, or 0", c.rotateSize)
	} else {
		c.rotateSizeBytes = n
	}
	if c.rotateEvery < 0 {
		bad("-rotate-every must be >= 0, got %v", c.rotateEvery)
	}
	if c.mode == "archive" {
		// No Postgres and no Kafka in this mode.
	} else if c.databaseURL == "" {
		bad("-database-url (or $DATABASE_URL) is required: `make run` starts a throwaway Postgres, or run scripts/pg start DIR")
	} else if _, err := pgxpool.ParseConfig(c.databaseURL); err != nil {
		bad("-database-url %s: want a postgres:// URL or a keyword/value string (host=... dbname=...): %v",
			redactURL(c.databaseURL), redactedErr(err, c.databaseURL))
	}
	positive := map[string]int{"-processors": c.processors, "-buffer": c.buffer, "-kafka-batch-size": c.kafkaBatchSize,
		"-kafka-max-concurrency": c.kafkaMaxConc, "-pg-batch-size": c.pgBatchSize, "-pg-max-concurrency": c.pgMaxConc}
	for _, name := range []string{"-processors", "-buffer", "-kafka-batch-size", "-kafka-max-concurrency", "-pg-batch-size", "-pg-max-concurrency"} {
		if v := positive[name]; v <= 0 {
			bad("%s must be > 0, got %d", name, v)
		}
	}
	if c.kafkaConcurrency < 0 {
		bad("-kafka-concurrency must be >= 0 (0 adapts), got %d", c.kafkaConcurrency)
	}
	if c.pgConcurrency < 0 {
		bad("-pg-concurrency must be >= 0 (0 adapts), got %d", c.pgConcurrency)
	}
	durations := map[string]time.Duration{"-kafka-batch-timeout": c.kafkaBatchTimeout, "-pg-batch-timeout": c.pgBatchTimeout,
		"-shutdown-timeout": c.shutdownTimeout, "-connect-timeout": c.connectTimeout, "-stall-timeout": c.stallTimeout, "-backoff-network": c.backoffNetwork,
		"-backoff-http": c.backoffHTTP, "-backoff-rate-limit": c.backoffRateLimit}
	for _, name := range []string{"-kafka-batch-timeout", "-pg-batch-timeout", "-shutdown-timeout", "-connect-timeout", "-stall-timeout",
		"-backoff-network", "-backoff-http", "-backoff-rate-limit"} {
		if d := durations[name]; d <= 0 {
			bad("%s must be > 0, got %v", name, d)
		}
	}
	if n, err := archive.ParseSize(c.spillMax); err != nil || n <= 0 {
		bad("-spill-max %q: want a size such as 512MiB or 2GiB", c.spillMax)
	} else {
		c.spillMaxBytes = n
	}
	if c.buffer > topology.MaxBufferSize {
		bad("-buffer must be at most %d, got %d", topology.MaxBufferSize, c.buffer)
	}
	if c.maxTweets < 0 {
		bad("-max-tweets must be >= 0, got %d", c.maxTweets)
	}
	if c.duration < 0 {
		bad("-duration must be >= 0, got %v", c.duration)
	}
	if c.replayRate < 0 {
		bad("-replay-rate must be >= 0, got %d", c.replayRate)
	}
	if c.backfill < 0 || c.backfill > 5 {
		bad("-backfill-minutes must be 0 to 5, got %d", c.backfill)
	}
	if c.progress < 0 {
		bad("-progress must be >= 0, got %v", c.progress)
	}
	if c.kafkaTopic == "" {
		bad("-kafka-topic must not be empty")
	}
	if c.pgTable == "" || strings.ContainsAny(c.pgTable, " ;\"'") {
		bad("-pg-table %q: want a plain table name", c.pgTable)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		bad("-log-level: %v", err)
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("want debug, info, warn or error, got %q", s)
	}
	return l, nil
}

// ruleSpec is one -rules entry: "[tag: ]value".
type ruleSpec struct{ tag, value string }

// parseRules expands -rules entries, reading @FILE ones.
func parseRules(entries []string) ([]ruleSpec, error) {
	var out []ruleSpec
	for _, e := range entries {
		if file, ok := strings.CutPrefix(e, "@"); ok {
			f, err := os.Open(file)
			if err != nil {
				return nil, fmt.Errorf("-rules %s: %w", e, err)
			}
			sc := bufio.NewScanner(f)
			for n := 1; sc.Scan(); n++ {
				line := strings.TrimSpace(sc.Text())
				if line == "" || strings.HasPrefix(line, "#") {
					continue
				}
				r, err := parseRule(line)
				if err != nil {
					f.Close()
					return nil, fmt.Errorf("-rules %s:%d: %w", file, n, err)
				}
				out = append(out, r)
			}
			err = sc.Err()
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("-rules %s: %w", e, err)
			}
			continue
		}
		r, err := parseRule(e)
		if err != nil {
			return nil, fmt.Errorf("-rules %q: %w", e, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseRule(s string) (ruleSpec, error) {
	var r ruleSpec
	if tag, value, ok := strings.Cut(s, ": "); ok && !strings.ContainsAny(tag, " \"") {
		r.tag, r.value = strings.TrimSpace(tag), strings.TrimSpace(value)
	} else {
		r.value = strings.TrimSpace(s)
	}
	if r.value == "" {
		return r, errors.New("empty rule")
	}
	return r, nil
}

// redactURL hides a URL's password.
func redactURL(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") || strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return "(unparsable URL)"
		}
		return u.Redacted()
	}
	// A keyword/value connection string: mask every password value,
	// quoted or not.
	return passwordKV.ReplaceAllString(s, "${1}xxxxx")
}

var passwordKV = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// redactedErr is err's text with the connection string's password masked,
// in case the error quotes it.
func redactedErr(err error, dsn string) string {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	if m := passwordKV.FindStringSubmatch(dsn); m != nil {
		msg = strings.ReplaceAll(msg, strings.Trim(m[2], "'"), "xxxxx")
	}
	return msg
}
