package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
	"github.com/causeway-go/causeway/topology/topologytest/sinktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// item is the test data: an id and a body of about 400 bytes, like the raw
// JSON line of a tweet.
type item struct {
	ID   string
	Body []byte
}

// newItem returns the i-th test item.
func newItem(i int) item {
	id := strconv.Itoa(1_000_000 + i)
	body := fmt.Sprintf(`{"data":{"id":"%s","text":"item %d about #go and #kafka","author_id":"%d","lang":"en"},"matching_rules":[{"id":"1","tag":"golang"}]}`, id, i, 500+i%7)
	body += strings.Repeat(" ", max(0, 400-len(body)))
	return item{ID: id, Body: []byte(body)}
}

func items(from, n int) []item {
	out := make([]item, n)
	for i := range out {
		out[i] = newItem(from + i)
	}
	return out
}

func batchOf[T any](data ...T) *stages.Batch[T] {
	msgs := make([]stages.Message[T], len(data))
	b := &stages.Batch[T]{BatchInfo: stages.BatchInfo{Batcher: "kafka", Size: len(data), Attempt: 1}}
	for i := range msgs {
		msgs[i].Data = data[i]
		b.Messages = append(b.Messages, &msgs[i])
	}
	return b
}

// itemConfig is the mapping the tests use: key = id, value = body (an item
// without one fails).
func itemConfig(brokers, topic string) kafka.Config[item] {
	return kafka.Config[item]{
		Brokers: brokers,
		Topic:   topic,
		Key:     func(m *stages.Message[item]) []byte { return []byte(m.Data.ID) },
		Value: func(m *stages.Message[item]) ([]byte, error) {
			if len(m.Data.Body) == 0 {
				return nil, fmt.Errorf("item %q has no body", m.Data.ID)
			}
			return m.Data.Body, nil
		},
		Logger: quiet,
	}
}

func newItemSink(t testing.TB, brokers, topic string, mod func(*kafka.Config[item])) *kafka.Sink[item] {
	t.Helper()
	cfg := itemConfig(brokers, topic)
	if mod != nil {
		mod(&cfg)
	}
	s, err := kafka.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func readAll(t *testing.T, c *kafkatest.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	recs, err := c.ReadAll(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func keys(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Key)
	}
	return out
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Harness[item] {
		c := kafkatest.Start(t, kfake.SeedTopics(4, "tweets"))
		s := newItemSink(t, c.Brokers, "tweets", nil)
		return sinktest.Harness[item]{
			Handle: s.HandleBatch,
			Make:   newItem,
			ID:     func(it item) string { return it.ID },
			Stored: func(ctx context.Context, want int) ([]string, error) {
				recs, err := c.ReadAll(ctx, "tweets")
				return keys(recs), err
			},
		}
	})
}

// TestRecords checks the records a batch becomes: key and value from the
// mapping, in batch order on a one-partition topic; a message whose value
// fails fails alone, with a *RecordError.
func TestRecords(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "tweets"))
	s := newItemSink(t, c.Brokers, "tweets", func(cfg *kafka.Config[item]) { cfg.Compression = "lz4" })
	in := items(0, 300)
	in[10].Body = nil // no body: fails alone
	b := batchOf(in...)
	if err := s.HandleBatch(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	for i, m := range b.Messages {
		if i == 10 {
			var rerr *kafka.RecordError
			if !errors.As(m.Err(), &rerr) || rerr.Topic != "tweets" || !rerr.Permanent() ||
				m.Err().Error() != `kafka: record for tweets: value: item "1000010" has no body` {
				t.Errorf("message 10: err %v, want a *RecordError for tweets: no body", m.Err())
			}
			continue
		}
		if m.Failed() {
			t.Fatalf("message %d failed: %v", i, m.Err())
		}
	}
	recs := readAll(t, c, "tweets")
	if len(recs) != 299 {
		t.Fatalf("topic holds %d records, want 299", len(recs))
	}
	want := slices.Delete(slices.Clone(in), 10, 11)
	for i, r := range recs {
		if string(r.Key) != want[i].ID || string(r.Value) != string(want[i].Body) || r.Offset != int64(i) {
			t.Fatalf("record %d = key %q offset %d value %.40q…, want key %q", i, r.Key, r.Offset, r.Value, want[i].ID)
		}
	}
}

// fromKafka is metadata like producers/kafka's: a consumed record's key and
// headers.
type fromKafka struct {
	key     []byte
	headers []ckafka.Header
}

func (f *fromKafka) RecordKey() []byte              { return f.key }
func (f *fromKafka) RecordHeaders() []ckafka.Header { return f.headers }

// TestMapping checks the generic mapping: per-message topic, default key
// and headers carried from the metadata of a consumed record, a Value error
// failing one message.
func TestMapping(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "even", "odd"))
	s, err := kafka.New(kafka.Config[int]{
		Brokers: c.Brokers,
		Topic:   "even",
		TopicFunc: func(m *stages.Message[int]) string {
			if m.Data%2 == 1 {
				return "odd"
			}
			return "" // the default topic
		},
		Value: func(m *stages.Message[int]) ([]byte, error) {
			if m.Data == 13 {
				return nil, errors.New("unlucky")
			}
			return []byte("v" + strconv.Itoa(m.Data)), nil
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := batchOf(10, 11, 12, 13, 14, 15)
	for _, m := range b.Messages {
		m.Metadata = &fromKafka{key: []byte("k" + strconv.Itoa(m.Data)),
			headers: []ckafka.Header{{Key: "trace", Value: []byte("t" + strconv.Itoa(m.Data))}}}
	}
	if err := s.HandleBatch(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	var outcome []string
	for _, m := range b.Messages {
		if m.Failed() {
			outcome = append(outcome, m.Err().Error())
		} else {
			outcome = append(outcome, "ok")
		}
	}
	if want := []string{"ok", "ok", "ok", "kafka: record for odd: value: unlucky", "ok", "ok"}; !slices.Equal(outcome, want) {
		t.Fatalf("outcomes %q, want %q", outcome, want)
	}
	describe := func(recs []*kgo.Record) []string {
		var out []string
		for _, r := range recs {
			var hs []string
			for _, h := range r.Headers {
				hs = append(hs, h.Key+"="+string(h.Value))
			}
			out = append(out, fmt.Sprintf("%s:%s:%s", r.Key, r.Value, strings.Join(hs, ",")))
		}
		return out
	}
	if got, want := describe(readAll(t, c, "even")), []string{"k10:v10:trace=t10", "k12:v12:trace=t12", "k14:v14:trace=t14"}; !slices.Equal(got, want) {
		t.Errorf("even = %q, want %q", got, want)
	}
	if got, want := describe(readAll(t, c, "odd")), []string{"k11:v11:trace=t11", "k15:v15:trace=t15"}; !slices.Equal(got, want) {
		t.Errorf("odd = %q, want %q", got, want)
	}
}

// TestOversizedRecord: a record over the producer's message.max.bytes is
// refused by the client; its message alone fails, with a *RecordError (a
// permanent data error), and the rest of the batch is produced.
func TestOversizedRecord(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "tweets"))
	s := newItemSink(t, c.Brokers, "tweets", func(cfg *kafka.Config[item]) {
		cfg.Properties = ckafka.ConfigMap{"message.max.bytes": 10_000}
	})
	in := items(0, 5)
	in[2].Body = []byte(strings.Repeat("x", 20_000))
	b := batchOf(in...)
	if err := s.HandleBatch(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	for i, m := range b.Messages {
		var rerr *kafka.RecordError
		switch {
		case i == 2 && (!errors.As(m.Err(), &rerr) || rerr.Topic != "tweets"):
			t.Errorf("oversized message: err %v, want a *RecordError", m.Err())
		case i != 2 && m.Failed():
			t.Errorf("message %d failed: %v", i, m.Err())
		}
	}
	if got := keys(readAll(t, c, "tweets")); !slices.Equal(got, []string{"1000000", "1000001", "1000003", "1000004"}) {
		t.Fatalf("topic holds %v, want the four others", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := kafka.New(kafka.Config[int]{Compression: "brotli", Linger: -1})
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"Config.Brokers is required", "Config.Topic or Config.TopicFunc is required",
		"Config.Value is required", `got "brotli"`, "must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// failures collects what HandleFailed sees.
type failures struct {
	mu   sync.Mutex
	errs map[string]error
}

func (f *failures) handle(_ context.Context, failed []*stages.Message[item]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range failed {
		f.errs[m.Data.ID] = m.Err()
	}
}

func (f *failures) snapshot() map[string]error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps(f.errs)
}

func maps(m map[string]error) map[string]error {
	out := make(map[string]error, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// startTopology runs a tweets topology whose "kafka" batcher is s.
func startTopology(t *testing.T, s *kafka.Sink[item], f *failures) (*topologytest.Producer[item], *topology.Topology[item], func() error) {
	t.Helper()
	p := topologytest.NewProducer[item]()
	top, err := topology.New(topology.Spec[item]{
		Producer:   topology.ProducerSpec[item]{Producer: p, Keep: stages.Block},
		Processors: topology.ProcessorSpec[item]{Concurrency: 2},
		Batchers: map[string]topology.BatcherSpec[item]{
			"kafka": {BatchSize: 50, BatchTimeout: 10 * time.Millisecond, Concurrency: 2, Handle: s.HandleBatch},
		},
		HandleFailed: f.handle,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, top, topologytest.Start(t, top)
}

// TestBrokerDownThenBack points the sink at a port where no broker listens:
// every message fails after the delivery timeout with the client's error and
// reaches HandleFailed. Then a broker starts on that port: new batches
// succeed, and the topic holds exactly them.
func TestBrokerDownThenBack(t *testing.T) {
	t.Parallel()
	port := kafkatest.FreePort(t)
	brokers := "127.0.0.1:" + strconv.Itoa(port)
	s := newItemSink(t, brokers, "tweets", func(cfg *kafka.Config[item]) {
		cfg.DeliveryTimeout = 1500 * time.Millisecond
		cfg.Properties = ckafka.ConfigMap{"reconnect.backoff.max.ms": 200}
	})
	f := &failures{errs: map[string]error{}}
	p, top, stop := startTopology(t, s, f)

	start := time.Now()
	down := p.Push(items(0, 100)...).Await(t, 30*time.Second)
	if len(down.Failed) != 100 || len(down.Successful) != 0 {
		t.Fatalf("broker down: %d ok, %d failed; want all 100 failed", len(down.Successful), len(down.Failed))
	}
	if d := time.Since(start); d < 1500*time.Millisecond {
		t.Fatalf("messages failed after %v, before the 1.5s delivery timeout", d)
	}
	seen := f.snapshot()
	for _, it := range items(0, 100) {
		err := seen[it.ID]
		var kerr ckafka.Error
		if !errors.As(err, &kerr) || kerr.Code() != ckafka.ErrMsgTimedOut {
			t.Fatalf("item %s: HandleFailed saw %v, want a message timeout", it.ID, err)
		}
		var rerr *kafka.RecordError
		if errors.As(err, &rerr) {
			t.Fatalf("item %s: a broker outage failed it as a permanent *RecordError: %v", it.ID, err)
		}
	}

	c := kafkatest.Start(t, kfake.Ports(port), kfake.SeedTopics(2, "tweets"))
	up := p.Push(items(100, 200)...).Await(t, 60*time.Second)
	if len(up.Successful) != 200 || len(up.Failed) != 0 {
		t.Fatalf("broker back: %d ok, %d failed; want all 200 ok (first error: %v)", len(up.Successful), len(up.Failed), firstErr(up.Failed))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := keys(readAll(t, c, "tweets"))
	slices.Sort(got)
	var want []string
	for _, tw := range items(100, 200) {
		want = append(want, tw.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("topic holds %d records, want exactly the 200 produced while the broker was up", len(got))
	}
	if st := top.Stats(); st.Acked != 200 || st.Failed != 100 {
		t.Fatalf("stats acked %d failed %d, want 200 and 100", st.Acked, st.Failed)
	}
}

// TestBrokerRestart stops a running broker: batches fail after the
// delivery timeout; a broker restarted on the same port takes batches
// again.
func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	port := kafkatest.FreePort(t)
	c1, err := kafkatest.New(kfake.Ports(port), kfake.SeedTopics(1, "tweets"))
	if err != nil {
		t.Fatal(err)
	}
	s := newItemSink(t, c1.Brokers, "tweets", func(cfg *kafka.Config[item]) {
		cfg.DeliveryTimeout = 1500 * time.Millisecond
		cfg.Properties = ckafka.ConfigMap{"reconnect.backoff.max.ms": 200}
	})
	f := &failures{errs: map[string]error{}}
	p, _, stop := startTopology(t, s, f)
	if acks := p.Push(items(0, 100)...).Await(t, 30*time.Second); len(acks.Successful) != 100 {
		t.Fatalf("before the stop: %d of 100 ok (%v)", len(acks.Successful), firstErr(acks.Failed))
	}
	c1.Close()
	if acks := p.Push(items(100, 50)...).Await(t, 30*time.Second); len(acks.Failed) != 50 {
		t.Fatalf("broker stopped: %d of 50 failed, want all", len(acks.Failed))
	}
	c2 := kafkatest.Start(t, kfake.Ports(port), kfake.SeedTopics(1, "tweets"))
	acks := p.Push(items(150, 100)...).Await(t, 60*time.Second)
	if len(acks.Successful) != 100 {
		t.Fatalf("broker restarted: %d of 100 ok (first error: %v)", len(acks.Successful), firstErr(acks.Failed))
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := keys(readAll(t, c2, "tweets"))
	slices.Sort(got) // two batch processors: batches may land in either order
	var want []string
	for _, tw := range items(150, 100) {
		want = append(want, tw.ID)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("restarted broker holds %d records %v…, want exactly the 100 produced after the restart", len(got), got[:min(5, len(got))])
	}
}

func firstErr[T any](failed []stages.Message[T]) error {
	if len(failed) == 0 {
		return nil
	}
	return failed[0].Err()
}
