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
	"strings"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway-go/causeway/dashboard"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/postgres"
	"github.com/causeway-go/causeway/stages/window"
	"github.com/causeway-go/causeway/topologies/hashtags"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// hashtagsConfig is what causeway hashtags can be told.
type hashtagsConfig struct {
	window, hop, grace time.Duration
	kafkaBrokers       string
	kafkaTopic         string
	kafkaGroup         string
	databaseURL        string
	table              string
	replayData         string
	duration           time.Duration
	maxTweets          int
	progress           time.Duration
	summaryJSON        string
	metricsAddr        string
	httpAddr           string
	logLevel           string
	noDedup            bool
	batchSize          int
	batchTimeout       time.Duration
	trending           time.Duration
	trendingEvery      time.Duration
}

const hashtagsUsage = `causeway hashtags counts tweets per hashtag per event-time window, exactly once:
a Kafka consumer group on the tweets topic -> processors (decode, normalise hashtags as
the tweets table does) -> one Postgres transaction per batch that adds the counts to
hashtag_counts (window_start, hashtag, tweets) and stores the consumed offsets, each
partition's watermark and the tweet ids seen. Restarted after a crash, it resumes from
the stored offsets: nothing is counted twice or missed.

With no -kafka-brokers it runs the embedded tweet pipeline (the fake X API replaying
-replay-data) into an in-process Kafka, aggregates that topic in the same process and
stops once the replay is aggregated. (The in-process Kafka is new each time, so the
group's stored offsets are reset at start; tweets an earlier run counted are recognised
by id and not counted again.)

Usage:
  causeway hashtags [flags]

Flags (environment fallbacks in parentheses):
`

func parseHashtagsConfig(args []string, lookup func(string) (string, bool), stderr io.Writer) (*hashtagsConfig, error) {
	c := &hashtagsConfig{}
	fs := newFlagSet("causeway hashtags", lookup)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.durationVar(&c.window, "window", "", time.Minute, "length of the event-time windows tweets are counted in")
	fs.durationVar(&c.hop, "hop", "", 0, "hopping windows: a window starts every -hop (it must divide -window); 0 tumbling")
	fs.durationVar(&c.grace, "grace", "", 5*time.Minute, "how long after its end a window still takes tweets; later ones are counted as late and dead-lettered, not applied")
	fs.stringVar(&c.kafkaBrokers, "kafka-brokers", "KAFKA_BROKERS", "", "Kafka bootstrap servers; empty runs the embedded tweet pipeline into an in-process Kafka and aggregates it")
	fs.stringVar(&c.kafkaTopic, "kafka-topic", "KAFKA_TOPIC", "tweets", "topic of raw tweet lines")
	fs.stringVar(&c.kafkaGroup, "kafka-group", "KAFKA_GROUP", "causeway-hashtags", "Kafka consumer group id; its offsets are stored in Postgres (causeway_offsets)")
	fs.stringVar(&c.databaseURL, "database-url", "DATABASE_URL", "", "Postgres URL (required)")
	fs.stringVar(&c.table, "table", "", "hashtag_counts", "the counts table (created at start)")
	fs.stringVar(&c.replayData, "replay-data", "", "testdata/*.jsonl", "embedded: the recorded stream lines the fake X API serves")
	fs.durationVar(&c.duration, "duration", "", 0, "stop after this long; 0 no limit")
	fs.intVar(&c.maxTweets, "max-tweets", "", 0, "stop once this many records were consumed; 0 no limit")
	fs.durationVar(&c.progress, "progress", "", time.Second, "how often progress is logged; 0 off")
	fs.stringVar(&c.summaryJSON, "summary-json", "", "", "write the run's summary as JSON to this `path`")
	fs.stringVar(&c.metricsAddr, "metrics-addr", "METRICS_ADDR", "", "serve the dashboard page (/), /metrics, /healthz and /readyz on this address; empty off")
	fs.stringVar(&c.httpAddr, "http-addr", "HTTP_ADDR", "", "the same as -metrics-addr")
	fs.stringVar(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	fs.intVar(&c.batchSize, "batch-size", "", 2000, "records per transaction (at most)")
	fs.durationVar(&c.batchTimeout, "batch-timeout", "", 200*time.Millisecond, "longest a partial batch waits for its transaction")
	fs.durationVar(&c.trending, "trending", "", 5*time.Minute, "live view: top hashtags of the tweets consumed in this last stretch of time (a go-streams sliding window, in memory only: repeats count, a restart starts it empty); shown in the summary; 0 off")
	fs.durationVar(&c.trendingEvery, "trending-every", "", 10*time.Second, "how often the live view slides (at most -trending)")
	fs.boolVar(&c.noDedup, "no-dedup", "", false, "do not de-duplicate tweets by id (one listener only)")
	if err := fs.parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprint(stderr, hashtagsUsage)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see causeway hashtags -h)", fs.Arg(0))
	}
	if c.metricsAddr == "" {
		c.metricsAddr = c.httpAddr
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if err := (window.Windows{Size: c.window, Hop: c.hop}).Validate(); err != nil {
		bad("-window %v, -hop %v: want a window > 0 and a hop that divides it (0: tumbling)", c.window, c.hop)
	}
	if c.grace < 0 {
		bad("-grace must be >= 0, got %v", c.grace)
	}
	if c.databaseURL == "" {
		bad("-database-url (or $DATABASE_URL) is required")
	} else if _, err := pgxpool.ParseConfig(c.databaseURL); err != nil {
		bad("-database-url %s: %v", redactURL(c.databaseURL), redactedErr(err, c.databaseURL))
	}
	if c.duration < 0 || c.progress < 0 || c.maxTweets < 0 {
		bad("-duration, -progress and -max-tweets must be >= 0")
	}
	if c.trending < 0 || c.trendingEvery <= 0 || (c.trending > 0 && c.trendingEvery > c.trending) {
		bad("-trending must be >= 0 and -trending-every in (0, -trending], got %v and %v", c.trending, c.trendingEvery)
	}
	if c.batchSize <= 0 || c.batchTimeout <= 0 {
		bad("-batch-size and -batch-timeout must be > 0, got %d and %v", c.batchSize, c.batchTimeout)
	}
	if c.kafkaTopic == "" || c.kafkaGroup == "" {
		bad("-kafka-topic and -kafka-group must not be empty")
	}
	if c.table == "" || strings.ContainsAny(c.table, " ;\"'") {
		bad("-table %q: want a plain table name", c.table)
	}
	if _, err := parseLevel(c.logLevel); err != nil {
		bad("-log-level: %v", err)
	}
	return c, errors.Join(errs...)
}

// runHashtagsCommand is run for "causeway hashtags": it parses the flags,
// watches the signals and returns the exit status.
func runHashtagsCommand(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer,
	sigs <-chan os.Signal) int {
	cfg, err := parseHashtagsConfig(args, lookup, stderr)
	return runCommand(ctx, "causeway hashtags", err, func() string { return cfg.logLevel }, stderr, sigs,
		func(ctx context.Context, log *slog.Logger) error { return runHashtags(ctx, cfg, log, stdout) })
}

// runHashtags runs the aggregation (and, embedded, the tweet pipeline that
// feeds it) and prints the summary.
func runHashtags(ctx context.Context, cfg *hashtagsConfig, log *slog.Logger, stdout io.Writer) error {
	pool, err := pgxpool.New(ctx, cfg.databaseURL)
	if err != nil {
		return fmt.Errorf("postgres %s: %w", redactURL(cfg.databaseURL), err)
	}
	defer pool.Close()

	isEmbedded := cfg.kafkaBrokers == ""
	var emb *embedded
	rc := &config{mode: "run", replayData: cfg.replayData, kafkaTopic: cfg.kafkaTopic}
	if isEmbedded {
		if emb, err = startEmbedded(rc, log); err != nil {
			return err
		}
		defer emb.close()
		cfg.kafkaBrokers = rc.kafkaBrokers
		// The in-process Kafka is new: offsets stored for this group by an
		// earlier embedded run name records it does not hold. (Counts stay
		// exact across such runs: the tweet ids are de-duplicated.)
		if _, err := pool.Exec(ctx, `DELETE FROM causeway_offsets WHERE consumer_group = $1`, cfg.kafkaGroup); err != nil &&
			!strings.Contains(err.Error(), "does not exist") {
			return fmt.Errorf("postgres: forget the embedded group's offsets: %w", err)
		}
	}
	p, err := hashtags.New(ctx, hashtags.Config{
		Brokers: cfg.kafkaBrokers, Group: cfg.kafkaGroup, Topic: cfg.kafkaTopic, Table: cfg.table,
		Postgres: postgres.TxConfig[hashtags.Tweet]{Pool: pool},
		Windows:  window.Windows{Size: cfg.window, Hop: cfg.hop}, Grace: cfg.grace, NoDedup: cfg.noDedup,
		BatchSize: cfg.batchSize, BatchTimeout: cfg.batchTimeout, Trending: cfg.trending, TrendingEvery: cfg.trendingEvery,
		Logger: log,
	})
	if err != nil {
		return err
	}
	defer p.Close()
	log.Info("causeway: counting hashtags\n" + p.Topology().Describe().String())
	srv, err := serveMetricsWith(cfg.metricsAddr, p.Topology(), nil, log, []prometheus.Collector{&hashtagsCollector{p: p}},
		dashboard.Panel{Name: "trending", Title: "Trending hashtags (go-streams live view, in memory)", Data: func() any { return p.Trending().Top }})
	if err != nil {
		return err
	}
	defer srv.close()

	var feed *tweets.Pipeline
	if isEmbedded {
		if feed, err = embeddedFeed(ctx, cfg, rc, log); err != nil {
			return err
		}
		defer feed.Close()
	}
	elapsed, err := runUntil(ctx, func(ctx context.Context) error {
		return runWithFeed(ctx, p, feed, emb, cfg, log)
	}, cfg.duration, log, hashtagsCheck(cfg, p, log))
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer qcancel()
	sum := newHashtagsSummary(qctx, pool, cfg, p, elapsed)
	if feed != nil {
		sum.Served = emb.fake.Stats().Tweets
		sum.Produced = feed.Stats().Acked
	}
	sum.print(stdout)
	return errors.Join(err, sum.writeJSON(cfg.summaryJSON))
}

// embeddedFeed declares the tweet pipeline that fills the in-process Kafka
// from the embedded replay (Kafka only: no tweets table is written).
func embeddedFeed(ctx context.Context, cfg *hashtagsConfig, rc *config, log *slog.Logger) (*tweets.Pipeline, error) {
	return tweets.New(ctx, tweets.Config{
		Stream: twitter.Config{URL: rc.streamURL, Token: rc.bearerToken, Sample: true,
			Logger: log.With("component", "x-stream")},
		Keep: stages.KeepLast,
		// One processor and one Kafka batch processor keep the stream's
		// order in each partition: parallel stages reorder by up to their
		// chunks in flight, and a replay that serves hours of event time in
		// a second would turn that into an hour of disorder (late tweets).
		Processors: 1,
		Kafka: tweets.KafkaConfig{Brokers: cfg.kafkaBrokers, Topic: cfg.kafkaTopic,
			Batcher: topology.BatcherSpec[twitter.Tweet]{Concurrency: 1}},
		Logger: log.With("component", "tweets"),
	})
}

// runWithFeed runs the aggregation until ctx ends; with a feed (embedded),
// it runs the feed to the end of the replay first, then stops the
// aggregation once its stored offsets reach the end of the topic.
func runWithFeed(ctx context.Context, p *hashtags.Pipeline, feed *tweets.Pipeline, emb *embedded, cfg *hashtagsConfig,
	log *slog.Logger) error {
	if feed == nil {
		return p.Run(ctx)
	}
	aggCtx, stopAgg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgg()
	aggDone := make(chan error, 1)
	go func() { aggDone <- p.Run(aggCtx) }()
	fcfg := &config{replayLoop: false}
	_, feedErr := runUntil(ctx, feed.Run, 0, log, streamCheck(fcfg, emb, feed, newProgress(io.Discard, 0, log)))
	if feedErr == nil && ctx.Err() == nil {
		log.Info("causeway: the replay is in Kafka; waiting for the aggregation to reach the end of the topic")
		waitAggregated(ctx, p, cfg, log)
	}
	stopAgg()
	return errors.Join(feedErr, <-aggDone)
}

// waitAggregated returns once every partition's stored offset has reached
// the partition's end, or ctx ends.
func waitAggregated(ctx context.Context, p *hashtags.Pipeline, cfg *hashtagsConfig, log *slog.Logger) {
	ends, err := topicEnds(cfg.kafkaBrokers, cfg.kafkaTopic)
	if err != nil {
		log.Warn("causeway: cannot read the topic's end offsets; stopping now", "err", err)
		return
	}
	parts := make([]int32, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		stored, err := p.Sink().StoredOffsets(ctx, cfg.kafkaGroup, cfg.kafkaTopic, parts)
		if err == nil {
			done := true
			for part, end := range ends {
				if stored[part] < end {
					done = false
				}
			}
			if done {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// topicEnds returns the high watermark of each of topic's partitions.
func topicEnds(brokers, topic string) (map[int32]int64, error) {
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "causeway-summary",
		"enable.metrics.push": false, "log_level": 3})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10_000)
	if err != nil {
		return nil, err
	}
	if md.Topics[topic].Error.Code() != ckafka.ErrNoError {
		return nil, md.Topics[topic].Error
	}
	ends := map[int32]int64{}
	for _, pm := range md.Topics[topic].Partitions {
		_, hi, err := c.QueryWatermarkOffsets(topic, pm.ID, 10_000)
		if err != nil {
			return nil, err
		}
		ends[pm.ID] = hi
	}
	return ends, nil
}

// hashtagsCheck logs progress and says when to stop: at -max-tweets.
func hashtagsCheck(cfg *hashtagsConfig, p *hashtags.Pipeline, log *slog.Logger) func() string {
	last := time.Now()
	return func() string {
		ks := p.Consumer().Stats()
		if cfg.maxTweets > 0 && ks.Consumed >= int64(cfg.maxTweets) {
			return fmt.Sprintf("-max-tweets %d reached", cfg.maxTweets)
		}
		if cfg.progress > 0 && time.Since(last) >= cfg.progress {
			last = time.Now()
			s := p.Stats()
			log.Info("causeway: progress", "consumed", ks.Consumed, "counted", s.Counted, "late", s.Late,
				"duplicates", s.Duplicates, "invalid", s.Invalid, "transactions", s.Tx.Batches)
		}
		return ""
	}
}

// hashtagsSummary is what a hashtags run did.
type hashtagsSummary struct {
	Mode            string  `json:"mode"`
	Window          string  `json:"window"`
	Grace           string  `json:"grace"`
	Served          int64   `json:"served,omitempty"`   // by the embedded fake X API
	Produced        int64   `json:"produced,omitempty"` // into the embedded Kafka
	Consumed        int64   `json:"consumed"`
	Counted         int64   `json:"counted"`
	Late            int64   `json:"late"`
	Duplicates      int64   `json:"duplicates"`
	Invalid         int64   `json:"invalid"`
	DeadLettered    int64   `json:"dead_lettered"`
	Skipped         int64   `json:"skipped"`
	Transactions    int64   `json:"transactions"`
	Acked           int64   `json:"acked"`
	Failed          int64   `json:"failed"`
	Unfinished      int64   `json:"unfinished"`
	WindowRows      int64   `json:"window_rows"`
	DurationSeconds float64 `json:"duration_seconds"`
	TweetsPerSecond float64 `json:"tweets_per_second"`
	// BusiestWindow is the window with the most hashtag uses, and
	// TopHashtags its top ten.
	BusiestWindow time.Time `json:"busiest_window"`
	BusiestUses   int64     `json:"busiest_window_uses"`
	// Trending is the live view's last window (go-streams, in memory).
	Trending    *hashtags.Trending `json:"trending,omitempty"`
	TopHashtags []hashtagCount     `json:"top_hashtags"`
}

func newHashtagsSummary(ctx context.Context, pool *pgxpool.Pool, cfg *hashtagsConfig, p *hashtags.Pipeline,
	elapsed time.Duration) *hashtagsSummary {
	s, ts, ks := p.Stats(), p.TopologyStats(), p.Consumer().Stats()
	sum := &hashtagsSummary{Mode: "hashtags", Window: cfg.window.String(), Grace: cfg.grace.String(),
		Consumed: ks.Consumed, Counted: s.Counted, Late: s.Late, Duplicates: s.Duplicates, Invalid: s.Invalid,
		DeadLettered: s.Tx.DeadLettered, Skipped: s.Tx.Skipped, Transactions: s.Tx.Batches,
		Acked: ts.Acked, Failed: ts.Failed, Unfinished: ts.InFlight, DurationSeconds: elapsed.Seconds(), WindowRows: -1}
	if tr := p.Trending(); tr.Window > 0 {
		sum.Trending = &tr
	}
	if elapsed > 0 {
		sum.TweetsPerSecond = float64(s.Counted+s.Late+s.Duplicates+s.Invalid) / elapsed.Seconds()
	}
	table := pgx.Identifier{cfg.table}.Sanitize()
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&sum.WindowRows); err != nil {
		return sum
	}
	err := pool.QueryRow(ctx, `SELECT window_start, sum(tweets) FROM `+table+
		` GROUP BY window_start ORDER BY sum(tweets) DESC, window_start LIMIT 1`).Scan(&sum.BusiestWindow, &sum.BusiestUses)
	if err != nil {
		return sum
	}
	rows, err := pool.Query(ctx, `SELECT hashtag, tweets FROM `+table+` WHERE window_start = $1 ORDER BY tweets DESC, hashtag LIMIT 10`,
		sum.BusiestWindow)
	if err != nil {
		return sum
	}
	sum.TopHashtags, _ = pgx.CollectRows(rows, func(r pgx.CollectableRow) (hashtagCount, error) {
		var h hashtagCount
		return h, r.Scan(&h.Tag, &h.Tweets)
	})
	return sum
}

func (s *hashtagsSummary) print(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "\ncauseway hashtags: %.1fs, %d tweets aggregated exactly once, %.0f tweets/s over the run (%s windows, grace %s)\n",
		s.DurationSeconds, s.Counted+s.Late+s.Duplicates+s.Invalid, s.TweetsPerSecond, s.Window, s.Grace)
	if s.Served > 0 {
		fmt.Fprintf(&b, "  embedded   the fake X API served %d tweets; %d went into the in-process Kafka\n", s.Served, s.Produced)
	}
	fmt.Fprintf(&b, "  kafka      consumed %d records\n", s.Consumed)
	fmt.Fprintf(&b, "  windows    %d tweets counted, %d late (windows final), %d duplicates, %d not tweets; %d dead-lettered\n",
		s.Counted, s.Late, s.Duplicates, s.Invalid, s.DeadLettered)
	fmt.Fprintf(&b, "  postgres   %d transactions (%d records skipped as already applied); the counts table holds %d rows\n",
		s.Transactions, s.Skipped, s.WindowRows)
	fmt.Fprintf(&b, "  topology   acked %d, failed %d, unfinished %d\n", s.Acked, s.Failed, s.Unfinished)
	if tr := s.Trending; tr != nil && len(tr.Top) > 0 {
		fmt.Fprintf(&b, "  trending in the last %v of processing time (go-streams, in memory; %d tweets):", tr.Window, tr.Tweets)
		for _, h := range tr.Top[:min(5, len(tr.Top))] {
			fmt.Fprintf(&b, " #%s %d", h.Tag, h.Tweets)
		}
		b.WriteString("\n")
	}
	if len(s.TopHashtags) > 0 {
		fmt.Fprintf(&b, "  top hashtags of the busiest window, %s (%d hashtag uses):\n",
			s.BusiestWindow.UTC().Format(time.RFC3339), s.BusiestUses)
		for _, h := range s.TopHashtags {
			fmt.Fprintf(&b, "    #%-24s %d\n", h.Tag, h.Tweets)
		}
	}
	io.WriteString(w, b.String())
}

func (s *hashtagsSummary) writeJSON(path string) error {
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

// hashtagsCollector exports the aggregation's decisions and the live view.
type hashtagsCollector struct{ p *hashtags.Pipeline }

var (
	hashtagsTweetsDesc = prometheus.NewDesc("causeway_hashtags_tweets_total",
		"Tweets the exactly-once aggregation decided on, in committed transactions, by outcome (counted, late, duplicate, invalid).", []string{"outcome"}, nil)
	hashtagsTxDesc = prometheus.NewDesc("causeway_hashtags_transactions_total",
		"Committed transactions (counts, offsets, watermarks and seen ids together).", nil, nil)
	hashtagsSkippedDesc = prometheus.NewDesc("causeway_hashtags_skipped_total",
		"Records skipped because a transaction had applied them already (a replay, or a revoked partition's late batch).", nil, nil)
	hashtagsTrendingDesc = prometheus.NewDesc("causeway_hashtags_trending_tweets",
		"Live view (go-streams sliding window, in memory): tweets per hashtag in the last -trending, top ten.", []string{"hashtag"}, nil)
)

func (c *hashtagsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hashtagsTweetsDesc
	ch <- hashtagsTxDesc
	ch <- hashtagsSkippedDesc
	ch <- hashtagsTrendingDesc
}

func (c *hashtagsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for outcome, n := range map[string]int64{"counted": s.Counted, "late": s.Late, "duplicate": s.Duplicates, "invalid": s.Invalid} {
		ch <- prometheus.MustNewConstMetric(hashtagsTweetsDesc, prometheus.CounterValue, float64(n), outcome)
	}
	ch <- prometheus.MustNewConstMetric(hashtagsTxDesc, prometheus.CounterValue, float64(s.Tx.Batches))
	ch <- prometheus.MustNewConstMetric(hashtagsSkippedDesc, prometheus.CounterValue, float64(s.Tx.Skipped))
	for _, tc := range c.p.Trending().Top {
		ch <- prometheus.MustNewConstMetric(hashtagsTrendingDesc, prometheus.GaugeValue, float64(tc.Tweets), tc.Tag)
	}
}
