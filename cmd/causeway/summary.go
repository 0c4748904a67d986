package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
)

// summary is what a run did, printed at exit and written as JSON.
type summary struct {
	Mode string `json:"mode"`
	// Stream accounting: received = emitted + deduplicated + malformed +
	// stream_errors + ignored + abandoned.
	Received     int64 `json:"received"`
	Tweets       int64 `json:"tweets"`
	Emitted      int64 `json:"emitted"`
	Deduplicated int64 `json:"deduplicated"`
	Malformed    int64 `json:"malformed"`
	// MalformedLate: tweet lines the processors found malformed when they
	// decoded them (within emitted, and failed).
	MalformedLate int64 `json:"malformed_late"`
	StreamErrors  int64 `json:"stream_errors"`
	Ignored       int64 `json:"ignored"`
	Abandoned     int64 `json:"abandoned"`
	KeepAlives    int64 `json:"keep_alives"`
	// Topology accounting: emitted = acked + failed + dropped + unfinished.
	Dropped    int64 `json:"dropped"`
	Acked      int64 `json:"acked"`
	Failed     int64 `json:"failed"`
	Unfinished int64 `json:"unfinished"`
	// Sinks.
	KafkaRecords      int64 `json:"kafka_records"`
	KafkaTopicRecords int64 `json:"kafka_topic_records"`
	PostgresRows      int64 `json:"postgres_rows"`
	PostgresNewRows   int64 `json:"postgres_rows_new"`
	PostgresTableRows int64 `json:"postgres_table_rows"`
	// DeadLettered counts failed tweets stored in the dead-letter topic
	// (-dlq-topic) with their error; DeadLetterFailed those it could not
	// store (they are only counted as failed).
	DeadLettered     int64 `json:"dead_lettered"`
	DeadLetterFailed int64 `json:"dead_letter_failed,omitempty"`

	// Archive (causeway archive, or -archive-dir): lines written, fsync'ed
	// and acknowledged by the "archive" batcher, and the files this run
	// wrote (created or appended to; a file renamed by logrotate under its
	// new name).
	Archived         int64    `json:"archived"`
	ArchiveFiles     []string `json:"archive_files,omitempty"`
	ArchiveTornBytes int64    `json:"archive_torn_bytes,omitempty"`
	ArchiveRotations int64    `json:"archive_rotations,omitempty"`
	ArchiveReopens   int64    `json:"archive_reopens,omitempty"`

	Batchers        map[string]batcherSummary `json:"batchers"`
	Reconnects      map[string]int64          `json:"reconnects,omitempty"`
	Served          int64                     `json:"served,omitempty"` // by the embedded fake X API
	DurationSeconds float64                   `json:"duration_seconds"`
	TweetsPerSecond float64                   `json:"tweets_per_second"` // received (emitted into the topology) per second; kept for old readers
	// ReceivedPerSecond counts what entered the topology (dropped tweets
	// included); StoredPerSecond what every sink holds: acknowledged,
	// less what still waits in a spill.
	ReceivedPerSecond float64        `json:"received_per_second"`
	Stored            int64          `json:"stored"`
	StoredPerSecond   float64        `json:"stored_per_second"`
	TopHashtags       []hashtagCount `json:"top_hashtags"`
}

type batcherSummary struct {
	Acked   int64 `json:"acked"`
	Failed  int64 `json:"failed"`
	Batches int64 `json:"batches"`
	// With a spill: tweets held there while the sink was down, replayed
	// into it since, and still waiting at the end.
	Spilled      int64 `json:"spilled,omitempty"`
	Replayed     int64 `json:"replayed,omitempty"`
	SpillWaiting int64 `json:"spill_waiting,omitempty"`
	ReplayFailed int64 `json:"replay_failed,omitempty"` // replayed from the spill, then failed for good
}

type hashtagCount struct {
	Tag    string `json:"tag"`
	Tweets int64  `json:"tweets"`
}

// stored counts the tweets every sink holds: acknowledged, less what still
// waits in a spill and what a replay from it then failed for good
// (dead-lettered).
func stored(s stages.Stats) int64 {
	n := s.Acked
	for _, b := range s.Batchers {
		if sp := b.Spill; sp != nil {
			n -= int64(sp.Records) + sp.ReplayFailed
		}
	}
	return max(n, 0)
}

func newSummary(mode string, s stages.Stats, elapsed time.Duration) *summary {
	sum := &summary{
		Mode: mode, Emitted: s.Producer.Emitted, Dropped: s.Dropped, Acked: s.Acked, Failed: s.Failed, Unfinished: s.InFlight,
		Batchers: map[string]batcherSummary{}, DurationSeconds: elapsed.Seconds(), KafkaTopicRecords: -1,
	}
	sum.Stored = stored(s)
	for _, b := range s.Batchers {
		bs := batcherSummary{Acked: b.Acked, Failed: b.Failed, Batches: b.Batches}
		if sp := b.Spill; sp != nil {
			bs.Spilled, bs.Replayed, bs.SpillWaiting = sp.Spilled, sp.Replayed, int64(sp.Records)
			bs.ReplayFailed = sp.ReplayFailed
		}
		sum.Batchers[b.Name] = bs
	}
	k, pg := sum.Batchers["kafka"], sum.Batchers["postgres"]
	sum.KafkaRecords = k.Acked - k.SpillWaiting - k.ReplayFailed
	sum.PostgresRows = pg.Acked - pg.SpillWaiting - pg.ReplayFailed
	if elapsed > 0 {
		sum.TweetsPerSecond = float64(sum.Emitted) / elapsed.Seconds()
		sum.ReceivedPerSecond = sum.TweetsPerSecond
		sum.StoredPerSecond = float64(sum.Stored) / elapsed.Seconds()
	}
	return sum
}

func (s *summary) addStream(x twitter.Stats) {
	s.Received, s.Tweets, s.Deduplicated, s.Malformed = x.Received, x.Tweets, x.Deduplicated, x.Malformed
	s.MalformedLate = x.MalformedLate
	s.StreamErrors, s.Ignored, s.Abandoned, s.KeepAlives = x.StreamErrors, x.Ignored, x.Abandoned, x.KeepAlives
	s.Reconnects = map[string]int64{}
	for r, n := range x.Reconnects {
		if n > 0 {
			s.Reconnects[string(r)] = n
		}
	}
}

// addPostgres counts the table's rows and asks it for the top hashtags.
func (s *summary) addPostgres(ctx context.Context, pool *pgxpool.Pool, table string, before int64) {
	n, err := countRows(ctx, pool, table)
	if err != nil {
		s.PostgresTableRows = -1
		return
	}
	s.PostgresTableRows, s.PostgresNewRows = n, n-before
	rows, err := pool.Query(ctx, fmt.Sprintf(topHashtagsSQL, pgx.Identifier{table}.Sanitize()))
	if err != nil {
		return
	}
	s.TopHashtags, _ = pgx.CollectRows(rows, func(r pgx.CollectableRow) (hashtagCount, error) {
		var h hashtagCount
		err := r.Scan(&h.Tag, &h.Tweets)
		return h, err
	})
}

// topHashtagsSQL is the sample query the summary shows.
const topHashtagsSQL = `SELECT tag, count(*) FROM %s, unnest(hashtags) AS tag GROUP BY tag ORDER BY count(*) DESC, tag LIMIT 10`

func countRows(ctx context.Context, pool *pgxpool.Pool, table string) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n)
	return n, err
}

// topicRecords sums the topic's partitions' high minus low watermarks: the
// records it holds. It returns -1 if the broker cannot tell.
func topicRecords(brokers, topic string) int64 {
	c, err := ckafka.NewConsumer(&ckafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "causeway-summary",
		"enable.metrics.push": false, "log_level": 3})
	if err != nil {
		return -1
	}
	defer c.Close()
	md, err := c.GetMetadata(&topic, false, 10_000)
	if err != nil || md.Topics[topic].Error.Code() != ckafka.ErrNoError {
		return -1
	}
	var total int64
	for _, p := range md.Topics[topic].Partitions {
		lo, hi, err := c.QueryWatermarkOffsets(topic, p.ID, 10_000)
		if err != nil {
			return -1
		}
		total += hi - lo
	}
	return total
}

func (s *summary) print(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "\ncauseway %s: %.1fs, received %.0f tweets/s, stored %.0f tweets/s (in every sink)\n",
		s.Mode, s.DurationSeconds, s.ReceivedPerSecond, s.StoredPerSecond)
	if s.Mode != "load" {
		fmt.Fprintf(&b, "  stream     received %d lines: %d tweets (%d emitted, %d deduplicated, %d abandoned), %d malformed, %d stream errors; %d keep-alives",
			s.Received, s.Tweets, s.Emitted, s.Deduplicated, s.Abandoned, s.Malformed, s.StreamErrors, s.KeepAlives)
		if s.MalformedLate > 0 {
			fmt.Fprintf(&b, "; %d emitted found malformed by the processors", s.MalformedLate)
		}
		if s.Served > 0 {
			fmt.Fprintf(&b, "; the embedded fake served %d", s.Served)
		}
		b.WriteString("\n")
		if len(s.Reconnects) > 0 {
			fmt.Fprintf(&b, "  reconnects %v\n", s.Reconnects)
		}
	} else {
		fmt.Fprintf(&b, "  kafka      consumed %d records\n", s.Emitted)
	}
	fmt.Fprintf(&b, "  topology   emitted %d = acked %d + failed %d + dropped %d + unfinished %d\n",
		s.Emitted, s.Acked, s.Failed, s.Dropped, s.Unfinished)
	if s.DeadLettered+s.DeadLetterFailed > 0 {
		fmt.Fprintf(&b, "  dead letters %d failed tweets stored in the dead-letter topic, %d could not be\n", s.DeadLettered, s.DeadLetterFailed)
	}
	names := make([]string, 0, len(s.Batchers))
	for n := range s.Batchers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		bs := s.Batchers[n]
		fmt.Fprintf(&b, "  batcher %-9s %d ok, %d failed, %d batches\n", n, bs.Acked, bs.Failed, bs.Batches)
	}
	if s.ArchiveFiles != nil {
		fmt.Fprintf(&b, "  archive    %d lines archived in %d files", s.Archived, len(s.ArchiveFiles))
		if s.ArchiveTornBytes > 0 {
			fmt.Fprintf(&b, "; %d torn bytes cut at start", s.ArchiveTornBytes)
		}
		b.WriteString("\n")
		for _, f := range s.ArchiveFiles {
			fmt.Fprintf(&b, "    %s\n", f)
		}
	}
	if s.Mode == "run" {
		fmt.Fprintf(&b, "  kafka      %d records produced; the topic holds %d\n", s.KafkaRecords, s.KafkaTopicRecords)
	}
	if s.Mode != "archive" {
		fmt.Fprintf(&b, "  postgres   %d rows stored (%d new); the table holds %d\n", s.PostgresRows, s.PostgresNewRows, s.PostgresTableRows)
	}
	if len(s.TopHashtags) > 0 {
		b.WriteString("  top hashtags in Postgres:\n")
		for _, h := range s.TopHashtags {
			fmt.Fprintf(&b, "    #%-24s %d\n", h.Tag, h.Tweets)
		}
	}
	io.WriteString(w, b.String())
}

func (s *summary) writeJSON(path string) error {
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
