package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/dashboard"
	pkafka "github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topologies/tweets"
	"github.com/causeway-go/causeway/topology"
)

// embedded holds the in-process stand-ins for the X API and Kafka.
type embedded struct {
	fake     *twittertest.Server
	kafka    *kfake.Cluster
	kafkaDir string // the in-process Kafka's log, removed by close
}

func (e *embedded) close() {
	if e.fake != nil {
		e.fake.Close()
	}
	if e.kafka != nil {
		e.kafka.Close()
	}
	if e.kafkaDir != "" {
		os.RemoveAll(e.kafkaDir)
	}
}

// startEmbedded starts what cfg leaves unset: a fake X API replaying
// -replay-data and an in-process Kafka. It fills cfg with their addresses.
func startEmbedded(cfg *config, log *slog.Logger) (*embedded, error) {
	e := &embedded{}
	if cfg.streamURL == "" {
		lines, err := twittertest.LoadLines(cfg.replayData)
		if err != nil {
			return nil, fmt.Errorf("-replay-data %s: %w", cfg.replayData, err)
		}
		if len(lines) == 0 {
			return nil, fmt.Errorf("-replay-data %s: no tweets found (run from the repository root, or point it at *.jsonl files)", cfg.replayData)
		}
		token := randomToken()
		e.fake, err = twittertest.NewServer(twittertest.Config{
			Addr: "127.0.0.1:0", Token: token, Lines: lines, Rate: float64(cfg.replayRate), Loop: cfg.replayLoop,
			H2C: true, Logger: log.With("component", "fake-x-api"),
		})
		if err != nil {
			return nil, fmt.Errorf("embedded X API: %w", err)
		}
		cfg.streamURL, cfg.bearerToken = e.fake.URL(), token
		log.Info("causeway: serving testdata from an in-process fake X API", "url", cfg.streamURL, "tweets", len(lines))
	}
	if cfg.kafkaBrokers == "" && cfg.mode != "archive" {
		var err error
		// kfake keeps each partition's log as segment files, in memory
		// unless given a directory. In memory a segment grows by doubling,
		// and copying into and faulting in that fresh memory cost ~15% of
		// the tweets stored per second on 2 cores; with a directory the page
		// cache holds the records instead of the Go heap. It is removed at
		// exit; 4 MiB segments keep the in-memory fallback small.
		// 8 partitions, not 4, so that librdkafka's idempotent producer
		// does not spin (see the stages/kafka package doc).
		opts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(8, cfg.kafkaTopic, cfg.kafkaTopic+".dlq"),
			kfake.BrokerConfigs(map[string]string{"log.segment.bytes": strconv.Itoa(4 << 20)})}
		if dir, err := os.MkdirTemp("", "causeway-kafka-"); err == nil {
			e.kafkaDir = dir
			opts = append(opts, kfake.DataDir(dir))
		} else {
			log.Warn("causeway: the in-process Kafka keeps its log in memory", "err", err)
		}
		e.kafka, err = kfake.NewCluster(opts...)
		if err != nil {
			e.close()
			return nil, fmt.Errorf("embedded Kafka: %w", err)
		}
		cfg.kafkaBrokers = strings.Join(e.kafka.ListenAddrs(), ",")
		log.Info("causeway: running an in-process Kafka (kfake)", "brokers", cfg.kafkaBrokers, "topic", cfg.kafkaTopic)
	}
	return e, nil
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// runStream runs the reference topology until ctx ends, -duration or
// -max-tweets is reached, or the embedded replay is over.
// In archive mode the only batcher is "archive": no Kafka, no Postgres.
func runStream(ctx context.Context, cfg *config, log *slog.Logger, stdout, stderr io.Writer, hup <-chan os.Signal) error {
	archiveOnly := cfg.mode == "archive"
	stopProfile, err := startCPUProfile(cfg.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	emb, err := startEmbedded(cfg, log)
	if err != nil {
		return err
	}
	defer emb.close()
	rules, err := parseRules(cfg.rules)
	if err != nil {
		return err
	}

	var reconnects atomic.Int64
	xcfg := twitter.Config{
		URL: cfg.streamURL, Token: cfg.bearerToken, Sample: cfg.sample || len(rules) == 0,
		BackfillMinutes: cfg.backfill, StallTimeout: cfg.stallTimeout,
		NetworkBackoff:   twitter.Backoff{Initial: cfg.backoffNetwork},
		HTTPBackoff:      twitter.Backoff{Initial: cfg.backoffHTTP},
		RateLimitBackoff: twitter.Backoff{Initial: cfg.backoffRateLimit},
		Logger:           log.With("component", "x-stream"),
		OnReconnect:      func(twitter.ReconnectEvent) { reconnects.Add(1) },
	}
	for _, r := range rules {
		xcfg.Rules = append(xcfg.Rules, twitter.Rule{Value: r.value, Tag: r.tag})
	}
	if err := xcfg.Validate(); err != nil {
		return err
	}
	errs := &dashboard.Errors{} // the latest errors, for the dashboard
	tcfg := tweets.Config{
		Stream:          xcfg,
		Processors:      cfg.processors,
		BufferSize:      cfg.buffer,
		Keep:            stages.KeepLast,
		HandleFailed:    dashboard.HandleFailed(errs, newFailureLog(log).handle),
		Hooks:           errs.Hooks(stages.Hooks{}),
		ShutdownTimeout: cfg.shutdownTimeout,
		Logger:          log,
	}
	var pool *pgxpool.Pool
	var dlq *pkafka.DeadLetter[twitter.Tweet]
	if archiveOnly {
		tcfg.StateFile = cfg.stateFile // no spill in this mode: no default under -spill-dir
	} else {
		pool, err = pgxpool.New(ctx, cfg.databaseURL)
		if err != nil {
			return fmt.Errorf("postgres %s: %w", redactURL(cfg.databaseURL), err)
		}
		defer pool.Close()
		if err := checkPostgres(ctx, pool, cfg.databaseURL, cfg.connectTimeout); err != nil {
			return err
		}
		if emb.kafka == nil {
			if err := checkKafka(cfg.kafkaBrokers, cfg.connectTimeout); err != nil {
				return err
			}
		}
		tcfg.Kafka = tweets.KafkaConfig{Brokers: cfg.kafkaBrokers, Topic: cfg.kafkaTopic,
			Batcher: topology.BatcherSpec[twitter.Tweet]{BatchSize: cfg.kafkaBatchSize, BatchTimeout: cfg.kafkaBatchTimeout,
				Concurrency: cfg.kafkaConcurrency, MaxConcurrency: adaptiveMax(cfg.kafkaConcurrency, cfg.kafkaMaxConc)}}
		tcfg.Postgres = tweets.PostgresConfig{Pool: pool, Table: cfg.pgTable,
			Batcher: topology.BatcherSpec[twitter.Tweet]{BatchSize: cfg.pgBatchSize, BatchTimeout: cfg.pgBatchTimeout,
				Concurrency: cfg.pgConcurrency, MaxConcurrency: adaptiveMax(cfg.pgConcurrency, cfg.pgMaxConc)}}
		tcfg.Spill = tweets.SpillConfig{Dir: cfg.spillDir, MaxBytes: cfg.spillMaxBytes}
		tcfg.StateFile = cfg.streamStateFile()
		if dlq, err = newStreamDeadLetter(cfg, log); err != nil {
			return err
		}
		if dlq != nil {
			defer dlq.Close() // after the topology's drain: p.Close runs first
			logFailed := tcfg.HandleFailed
			tcfg.HandleFailed = func(ctx context.Context, failed []*stages.Message[twitter.Tweet]) {
				logFailed(ctx, failed)
				dlq.HandleFailed(ctx, failed)
			}
		}
	}
	var arch *tweetArchive
	if cfg.archiveDir != "" {
		if arch, err = openArchive(cfg, log); err != nil {
			return err
		}
		// Closed after Run (the drain) at the latest; closing twice is harmless.
		defer arch.close(context.WithoutCancel(ctx))
		tcfg.Batchers = map[string]topology.BatcherSpec[twitter.Tweet]{"archive": arch.batcher()}
		hupCtx, stopHUP := context.WithCancel(ctx)
		defer stopHUP()
		if hup != nil {
			go arch.w.ReopenOn(hupCtx, hup)
		}
	}

	p, err := tweets.New(ctx, tcfg)
	if err != nil {
		return err // it names the sink (table, brokers) that failed
	}
	defer p.Close()
	var rowsBefore int64
	if pool != nil {
		rowsBefore, _ = countRows(ctx, pool, cfg.pgTable)
	}
	log.Info("causeway: starting\n" + p.Topology().Describe().String())

	srv, err := serveMetrics(cfg.metricsAddr, dashboard.WithErrors(p.Topology(), errs), p.Stream(), log)
	if err != nil {
		return err
	}
	defer srv.close()

	prog := newProgress(stderr, cfg.progress, log)
	// Run drains the topology and closes the sinks: the Kafka producer
	// flushes before the summary counts the topic.
	elapsed, err := runUntil(ctx, p.Run, cfg.duration, log, streamCheck(cfg, emb, p, prog))
	prog.finish()

	if arch != nil {
		// The drain is over: nothing more comes. Close the active file (an
		// empty one is removed) before the summary lists the files.
		if cerr := arch.close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("archive: %w", cerr))
		}
	}
	sum := newSummary(cfg.mode, p.Stats(), elapsed)
	sum.addStream(p.Stream().Stats())
	if emb.fake != nil {
		sum.Served = emb.fake.Stats().Tweets
	}
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer qcancel()
	if arch != nil {
		sum.addArchive(arch)
	}
	if pool != nil {
		sum.addPostgres(qctx, pool, cfg.pgTable, rowsBefore)
		sum.KafkaTopicRecords = topicRecords(cfg.kafkaBrokers, cfg.kafkaTopic)
	}
	if dlq != nil {
		ds := dlq.Stats()
		sum.DeadLettered, sum.DeadLetterFailed = ds.Stored, ds.Failed
	}
	sum.print(stdout)
	return errors.Join(err, sum.writeJSON(cfg.summaryJSON))
}

// runUntil calls run until ctx ends, run returns by itself, duration (if
// not 0) passes, or check, called every 50ms, gives a reason to stop; then
// it cancels run's context, waits for run (the drain) and returns how long
// it ran and run's error.
func runUntil(ctx context.Context, run func(context.Context) error, duration time.Duration, log *slog.Logger,
	check func() string) (time.Duration, error) {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- run(runCtx) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var deadline <-chan time.Time
	if duration > 0 {
		t := time.NewTimer(duration)
		defer t.Stop()
		deadline = t.C
	}
	reason := ""
	for reason == "" && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case err := <-runErr: // it stopped by itself: a fatal producer error
			return time.Since(start), err
		case <-deadline:
			reason = fmt.Sprintf("-duration %v reached", duration)
		case <-tick.C:
			reason = check()
		}
	}
	stop()
	err := <-runErr
	if reason != "" {
		log.Info("causeway: stopped", "reason", reason)
	}
	return time.Since(start), err
}

// streamCheck shows progress and says when the stream run is done: at
// -max-tweets, or once the stream has read everything the embedded replay
// served.
func streamCheck(cfg *config, emb *embedded, p *tweets.Pipeline, prog *progress) func() string {
	replayOver := false
	return func() string {
		xs := p.Stream().Stats()
		prog.show(xs, p.Stats())
		if cfg.maxTweets > 0 && xs.Emitted >= int64(cfg.maxTweets) {
			return fmt.Sprintf("-max-tweets %d reached", cfg.maxTweets)
		}
		if emb.fake == nil || cfg.replayLoop {
			return ""
		}
		if !replayOver {
			select {
			case <-emb.fake.Done():
				replayOver = true
			default:
				return ""
			}
		}
		// Everything the fake served has been read once the stream has seen
		// as many lines as the fake wrote.
		fs := emb.fake.Stats()
		if xs.Received >= fs.Tweets+fs.Malformed+fs.Oversized {
			return "end of the embedded replay"
		}
		return ""
	}
}

// failureLog logs failed tweets, at most one line per second with the
// count of the others.
type failureLog struct {
	log     *slog.Logger
	last    atomic.Int64
	skipped atomic.Int64
}

func newFailureLog(log *slog.Logger) *failureLog { return &failureLog{log: log} }

func (f *failureLog) handle(_ context.Context, failed []*stages.Message[twitter.Tweet]) {
	now := time.Now().UnixNano()
	if last := f.last.Load(); now-last < int64(time.Second) || !f.last.CompareAndSwap(last, now) {
		f.skipped.Add(int64(len(failed)))
		return
	}
	m := failed[0]
	f.log.Warn("causeway: tweets failed", "count", len(failed), "first_id", m.Data.ID, "first_error", m.Err(),
		"others_since_last_report", f.skipped.Swap(0))
}

// newStreamDeadLetter returns the dead-letter producer of the tweet
// topology: tweets failed for good (a row Postgres refuses, a record the
// broker refuses as too large) go to -dlq-topic with the error in headers,
// their raw JSON as the value (cut to 900 KiB, marked, if longer). nil when
// -dlq-topic is "-".
func newStreamDeadLetter(cfg *config, log *slog.Logger) (*pkafka.DeadLetter[twitter.Tweet], error) {
	topic := cfg.dlqTopic
	switch topic {
	case "-":
		return nil, nil
	case "":
		topic = cfg.kafkaTopic + ".dlq"
	}
	dlq, err := pkafka.NewDeadLetter(pkafka.DeadLetterConfig[twitter.Tweet]{
		Brokers: cfg.kafkaBrokers, Topic: topic, Value: tweets.Value,
		Key: tweets.Key, Permanent: stages.IsPermanent,
		DeliveryTimeout: 10 * time.Second, Logger: log.With("component", "dead-letter"),
	})
	if err != nil {
		return nil, fmt.Errorf("-dlq-topic %s: %w", topic, err)
	}
	return dlq, nil
}

// streamStateFile is -state-file, or stream-state.json in -spill-dir.
func (c *config) streamStateFile() string {
	if c.stateFile != "" || c.spillDir == "" {
		return c.stateFile
	}
	return filepath.Join(c.spillDir, "stream-state.json")
}

// adaptiveMax is a batcher's MaxConcurrency: none when the flag fixed the
// pool, else the flag's bound.
func adaptiveMax(fixed, bound int) int {
	if fixed > 0 {
		return 0
	}
	return bound
}

// startCPUProfile writes a CPU profile to path (none when path is "")
// until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("-cpuprofile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
