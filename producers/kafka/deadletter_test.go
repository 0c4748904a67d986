package kafka_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// TestDeadLetter runs a Consumer into a topology whose HandleFailed is a
// DeadLetter. Permanently failed messages (an undecodable record, a record
// the sink refuses, one of them cut to MaxValueBytes) land in events.dlq with their
// value, key, headers, error and origin, and the commits pass them; a
// transient failure that Permanent rejects stays plainly failed and holds
// its partition's commit; a message whose dead-letter record the producer
// refuses stays failed too.
func TestDeadLetter(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "events", "events.dlq"))
	produce(t, c, "events", 0, 10) // offsets 0-9
	c.Produce(t, &kgo.Record{Topic: "events", Key: []byte("kbad"), Value: []byte("bad value"),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("hbad")}}}) // 10: undecodable
	c.Produce(t, &kgo.Record{Topic: "events", Key: []byte("klong"), Value: []byte("long " + strings.Repeat("x", 95))}) // 11: refused, 100 bytes
	produce(t, c, "events", 12, 8)                                                                                     // 12-19
	c.Produce(t, &kgo.Record{Topic: "events", Key: []byte("kbig"), Value: []byte("big")})                              // 20: refused, its DLQ record too big
	c.Produce(t, &kgo.Record{Topic: "events", Key: []byte("kflaky"), Value: []byte("flaky")})                          // 21: transient
	produce(t, c, "events", 22, 8)                                                                                     // 22-29

	dl, err := kafka.NewDeadLetter(kafka.DeadLetterConfig[string]{
		Brokers:       c.Brokers,
		Permanent:     func(err error) bool { return !strings.Contains(err.Error(), "transient") },
		MaxValueBytes: 64,
		Properties:    ckafka.ConfigMap{"message.max.bytes": 2000},
		Logger:        quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	cons := newConsumer(t, c, "g", nil)
	col := newCollector()
	col.hold = func(m *stages.Message[string]) {
		switch {
		case strings.HasPrefix(m.Data, "long"):
			m.Fail(errors.New("sink refused the record"))
		case strings.HasPrefix(m.Data, "big"):
			// A 3,000-byte reason makes a record over the DLQ producer's
			// message.max.bytes, whatever MaxValueBytes cuts.
			m.Fail(errors.New("sink refused the record: " + strings.Repeat("z", 3000)))
		case m.Data == "flaky":
			m.Fail(errors.New("transient: sink unreachable"))
		}
	}
	top, stop := startTopology(t, cons, col.handle, topoOpts{procs: 1, batchConc: 1, failed: dl.HandleFailed})
	waitFor(t, 30*time.Second, "30 acknowledgements", func() bool { return top.Stats().Acked+top.Stats().Failed >= 30 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if err := topologytest.CheckConservation(top.Stats()); err != nil {
		t.Fatal(err)
	}
	if st := top.Stats(); st.Acked != 26 || st.Failed != 4 {
		t.Fatalf("acked %d failed %d, want 26 and 4", st.Acked, st.Failed)
	}
	if st := dl.Stats(); st.Stored != 2 || st.Failed != 1 {
		t.Fatalf("DeadLetter stats %+v, want 2 stored, 1 failed (the transient one is not tried)", st)
	}
	// The commit passed 10 and 11 (dead-lettered) and stopped at 20, whose
	// dead-letter record was refused.
	if got, want := committed(t, c, "g", "events"), map[int32]int64{0: 20}; !maps.Equal(got, want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
	if st := cons.Stats(); st.Uncommittable != 2 {
		t.Fatalf("Stats().Uncommittable = %d, want 2 (offsets 20 and 21)", st.Uncommittable)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	dlq, err := c.ReadAll(ctx, "events.dlq")
	if err != nil {
		t.Fatal(err)
	}
	type dlqRecord struct{ key, value, headers string }
	var got []dlqRecord
	for _, r := range dlq {
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		got = append(got, dlqRecord{string(r.Key), string(r.Value), strings.Join(hs, " ")})
	}
	want := []dlqRecord{
		{"kbad", "bad value", `h=hbad causeway.error=kafka: decode events/0@10: undecodable value "bad value" causeway.topic=events causeway.partition=0 causeway.offset=10`},
		{"klong", "long " + strings.Repeat("x", 59), "causeway.error=sink refused the record causeway.topic=events causeway.partition=0 causeway.offset=11 causeway.truncated=100"},
	}
	if len(got) != len(want) {
		t.Fatalf("events.dlq holds %d records %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events.dlq record %d = %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

// TestDeadLetterMarksDestination: HandleFailed marks each stored message
// with a *stages.DeadLetteredError naming the topic, keeps its reason,
// leaves messages already dead-lettered alone, and stores messages from
// elsewhere in Topic with the []byte data as value.
func TestDeadLetterMarksDestination(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "dead"))
	dl, err := kafka.NewDeadLetter(kafka.DeadLetterConfig[[]byte]{Brokers: c.Brokers, Topic: "dead", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	reason := errors.New("no such user")
	var msgs []stages.Message[[]byte]
	for i := range 3 {
		m := stages.Message[[]byte]{Data: []byte("m" + strconv.Itoa(i))}
		m.Fail(reason)
		msgs = append(msgs, m)
	}
	held := &stages.DeadLetteredError{Err: reason, Destination: "postgres:rejects"}
	msgs[2].Fail(held)
	dl.HandleFailed(t.Context(), []*stages.Message[[]byte]{&msgs[0], &msgs[1], &msgs[2]})
	for i, m := range msgs[:2] {
		var d *stages.DeadLetteredError
		if !errors.As(m.Err(), &d) || d.Destination != "kafka:dead" || !errors.Is(m.Err(), reason) {
			t.Fatalf("message %d: error %v, want dead-lettered to kafka:dead wrapping %v", i, m.Err(), reason)
		}
	}
	if msgs[2].Err() != held {
		t.Fatalf("an already dead-lettered message was changed: %v", msgs[2].Err())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	recs, err := c.ReadAll(ctx, "dead")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Value) != "m0" || string(recs[1].Value) != "m1" {
		t.Fatalf("dead holds %d records, want m0 and m1", len(recs))
	}
	if h := recs[0].Headers; len(h) != 1 || h[0].Key != kafka.HeaderError || string(h[0].Value) != "no such user" {
		t.Fatalf("headers %v, want only the error", h)
	}
}

func TestDeadLetterConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := kafka.NewDeadLetter(kafka.DeadLetterConfig[string]{MaxValueBytes: -1, DeliveryTimeout: -1})
	for _, want := range []string{"DeadLetterConfig.Brokers is required", "DeadLetterConfig.MaxValueBytes must not be negative, got -1",
		"DeadLetterConfig.DeliveryTimeout must not be negative, got -1ns"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
