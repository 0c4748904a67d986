package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/causeway-go/causeway/producers/kafka"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fastGroup makes consumer-group membership quick against kfake.
var fastGroup = ckafka.ConfigMap{
	"session.timeout.ms":    3000,
	"heartbeat.interval.ms": 200,
	"max.poll.interval.ms":  60000,
	"fetch.wait.max.ms":     50,
}

// record is what a test handler saw of one message.
type record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	Value     string
	Header    string
}

func (r record) String() string {
	return fmt.Sprintf("%s/%d@%d %s=%s", r.Topic, r.Partition, r.Offset, r.Key, r.Value)
}

// produce writes n records k<i>=v<i> (i from `from`) with a header.
func produce(t *testing.T, c *kafkatest.Cluster, topic string, from, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		k := strconv.Itoa(from + i)
		recs[i] = &kgo.Record{Topic: topic, Key: []byte("k" + k), Value: []byte("v" + k),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("h" + k)}}}
	}
	c.Produce(t, recs...)
}

func newConsumer(t *testing.T, c *kafkatest.Cluster, group string, mod func(*kafka.Config[string])) *kafka.Consumer[string] {
	t.Helper()
	cfg := kafka.Config[string]{
		Brokers: c.Brokers,
		GroupID: group,
		Topics:  []string{"events"},
		Decode: func(v []byte, md *kafka.Metadata) (string, error) {
			if strings.HasPrefix(string(v), "bad") {
				return "", fmt.Errorf("undecodable value %q", v)
			}
			return string(v), nil
		},
		CommitInterval: 100 * time.Millisecond,
		PollInterval:   20 * time.Millisecond,
		Properties:     fastGroup,
		Logger:         quiet,
	}
	if mod != nil {
		mod(&cfg)
	}
	cons, err := kafka.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close() })
	return cons
}

// collector is a batch handler that records what it sees.
type collector struct {
	mu     sync.Mutex
	recs   []record
	notify chan struct{}
	hold   func(m *stages.Message[string]) // called per message, may block or fail it
}

func newCollector() *collector { return &collector{notify: make(chan struct{}, 1)} }

func (c *collector) handle(ctx context.Context, b *stages.Batch[string]) error {
	for _, m := range b.Messages {
		if c.hold != nil {
			c.hold(m)
		}
		md := m.Metadata.(*kafka.Metadata)
		var hdr string
		for _, h := range md.Headers {
			hdr += h.Key + "=" + string(h.Value)
		}
		c.mu.Lock()
		c.recs = append(c.recs, record{md.Topic, md.Partition, md.Offset, string(md.Key), m.Data, hdr})
		c.mu.Unlock()
	}
	select {
	case c.notify <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) records() []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs)
}

// waitFor waits until cond holds, checking after every batch the collector
// sees and at least every 20ms, or fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

type topoOpts struct {
	procs, maxDemand, batchSize, batchConc int
	failed                                 func(context.Context, []*stages.Message[string])
}

func startTopology(t *testing.T, cons *kafka.Consumer[string], handle stages.BatchHandler[string], o topoOpts) (*topology.Topology[string], func() error) {
	t.Helper()
	if o.procs == 0 {
		o.procs = 2
	}
	if o.batchSize == 0 {
		o.batchSize = 50
	}
	if o.batchConc == 0 {
		o.batchConc = 2
	}
	top, err := topology.New(topology.Spec[string]{
		Name:       "kafka-source",
		Producer:   topology.ProducerSpec[string]{Producer: cons, Keep: stages.Block},
		Processors: topology.ProcessorSpec[string]{Concurrency: o.procs, MaxDemand: o.maxDemand},
		Batchers: map[string]topology.BatcherSpec[string]{
			"sink": {BatchSize: o.batchSize, BatchTimeout: 10 * time.Millisecond, Concurrency: o.batchConc, Handle: handle},
		},
		HandleFailed: o.failed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return top, topologytest.Start(t, top)
}

func committed(t *testing.T, c *kafkatest.Cluster, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cl := c.Client(t)
	got, err := kafkatest.CommittedOffsets(ctx, cl, group, topic)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func endOffsets(t *testing.T, c *kafkatest.Cluster, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := kafkatest.EndOffsets(ctx, c.Client(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestConsumeExactRecords consumes a 4-partition topic through a topology:
// every record arrives exactly once with its metadata, offsets come in
// order within each partition, and after the drain the group's committed
// offsets are the end of every partition.
func TestConsumeExactRecords(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(4, "events"))
	produce(t, c, "events", 0, 2000)
	cons := newConsumer(t, c, "g1", nil)
	col := newCollector()
	top, stop := startTopology(t, cons, col.handle, topoOpts{procs: 1, batchConc: 1})
	waitFor(t, 60*time.Second, "2000 records", func() bool { return top.Stats().Acked >= 2000 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	recs := col.records()
	if len(recs) != 2000 {
		t.Fatalf("handled %d records, want 2000", len(recs))
	}
	seen := map[string]bool{}
	last := map[int32]int64{0: -1, 1: -1, 2: -1, 3: -1}
	for _, r := range recs {
		i := strings.TrimPrefix(r.Key, "k")
		if r.Topic != "events" || r.Value != "v"+i || r.Header != "h=h"+i || seen[r.Key] {
			t.Fatalf("bad or repeated record %v (header %q)", r, r.Header)
		}
		seen[r.Key] = true
		// One processor and one batch processor keep each partition's order.
		if r.Offset <= last[r.Partition] {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, last[r.Partition])
		}
		last[r.Partition] = r.Offset
	}
	ends := endOffsets(t, c, "events")
	if got := committed(t, c, "g1", "events"); !maps.Equal(got, ends) {
		t.Fatalf("committed %v, want the end offsets %v", got, ends)
	}
	if st := top.Stats(); st.Acked != 2000 || st.Failed != 0 || st.Producer.Emitted != 2000 {
		t.Fatalf("stats: emitted %d acked %d failed %d", st.Producer.Emitted, st.Acked, st.Failed)
	}
}

// TestResumeFromCommitted: a second member of the group, started after the
// first closed, consumes exactly the records produced since: the first
// committed everything it acknowledged, on close.
func TestResumeFromCommitted(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(2, "events"))
	produce(t, c, "events", 0, 300)
	first := newConsumer(t, c, "g", func(cfg *kafka.Config[string]) { cfg.CommitInterval = time.Hour })
	col1 := newCollector()
	top1, stop1 := startTopology(t, first, col1.handle, topoOpts{})
	waitFor(t, 30*time.Second, "300 records", func() bool { return top1.Stats().Acked >= 300 })
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	// CommitInterval is an hour: the offsets were committed by Close.
	if got, want := committed(t, c, "g", "events"), endOffsets(t, c, "events"); !maps.Equal(got, want) {
		t.Fatalf("after close: committed %v, want %v", got, want)
	}
	produce(t, c, "events", 300, 200)
	second := newConsumer(t, c, "g", nil)
	col2 := newCollector()
	top2, stop2 := startTopology(t, second, col2.handle, topoOpts{})
	waitFor(t, 30*time.Second, "200 more records", func() bool { return top2.Stats().Acked >= 200 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range col2.records() {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.Key, "k"))
		got = append(got, i)
	}
	slices.Sort(got)
	want := make([]int, 200)
	for i := range want {
		want[i] = 300 + i
	}
	if !slices.Equal(got, want) {
		t.Fatalf("second member consumed %d records %v…, want exactly k300..k499", len(got), got[:min(5, len(got))])
	}
}

// TestCommitsOnlyAcknowledged holds back one batch: the committed offset
// stops right before it, though everything after it was acknowledged, and
// failed messages that HandleFailed dead-letters count as done. Releasing
// the batch lets the commit reach the end.
func TestCommitsOnlyAcknowledged(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "events"))
	produce(t, c, "events", 0, 100)
	cons := newConsumer(t, c, "g", nil)
	release := make(chan struct{})
	col := newCollector()
	col.hold = func(m *stages.Message[string]) {
		switch off := m.Metadata.(*kafka.Metadata).Offset; {
		case off == 30:
			<-release
		case off >= 5 && off <= 7:
			m.Fail(errors.New("rejected"))
		}
	}
	var failed atomic.Int64
	top, stop := startTopology(t, cons, col.handle, topoOpts{procs: 1, batchSize: 10, batchConc: 4,
		failed: func(_ context.Context, f []*stages.Message[string]) {
			failed.Add(int64(len(f)))
			deadLetter(f)
		}})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(free) // runs before the topology stops
	waitFor(t, 30*time.Second, "90 acknowledgements", func() bool { return top.Stats().Acked+top.Stats().Failed >= 90 })
	waitFor(t, 30*time.Second, "offset 30 committed", func() bool { return committed(t, c, "g", "events")[0] == 30 })
	// Every acknowledgement that can move the commit is in: more commit
	// rounds must not move it past the held batch.
	ticks := cons.CommitTicks()
	waitFor(t, 30*time.Second, "commit rounds", func() bool { return cons.CommitTicks() >= ticks+3 })
	if got := committed(t, c, "g", "events")[0]; got != 30 {
		t.Fatalf("committed %d while offset 30 was unacknowledged, want 30", got)
	}
	if got := cons.Stats().Committed["events"][0]; got != 30 {
		t.Fatalf("Stats().Committed = %d, want 30", got)
	}
	free()
	waitFor(t, 30*time.Second, "offset 100 committed", func() bool { return committed(t, c, "g", "events")[0] == 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st := top.Stats(); st.Acked != 97 || st.Failed != 3 || failed.Load() != 3 {
		t.Fatalf("acked %d failed %d (HandleFailed saw %d), want 97 and 3", st.Acked, st.Failed, failed.Load())
	}
	if st := cons.Stats(); st.Uncommittable != 0 {
		t.Fatalf("Stats().Uncommittable = %d, want 0: every failure was dead-lettered", st.Uncommittable)
	}
}

// deadLetter marks failed messages as a dead-letter destination holding
// them, as DeadLetter does once the DLQ has them.
func deadLetter(f []*stages.Message[string]) {
	for _, m := range f {
		m.Fail(&stages.DeadLetteredError{Err: m.Err(), Destination: "test"})
	}
}

// TestFailedNotDeadLetteredHoldsCommit: messages that fail without being
// dead-lettered hold their partition's commit at the first of them, however
// far the acknowledgements after them go; the consumer counts them and
// names the partition and offset; the group's lag stays. A new member of
// the group reads them again from there.
func TestFailedNotDeadLetteredHoldsCommit(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(2, "events"))
	produce(t, c, "events", 0, 200)
	ends := endOffsets(t, c, "events")
	cons := newConsumer(t, c, "g", nil)
	col := newCollector()
	col.hold = func(m *stages.Message[string]) {
		md := m.Metadata.(*kafka.Metadata)
		switch {
		case md.Partition == 0 && (md.Offset == 20 || md.Offset == 40):
			m.Fail(errors.New("transient: sink unreachable")) // not dead-lettered
		case md.Partition == 1 && md.Offset == 7:
			m.Fail(errors.New("permanent: bad row")) // dead-lettered below
		}
	}
	var sawFailed atomic.Int64
	top, stop := startTopology(t, cons, col.handle, topoOpts{failed: func(_ context.Context, f []*stages.Message[string]) {
		sawFailed.Add(int64(len(f)))
		for _, m := range f {
			if strings.HasPrefix(m.Err().Error(), "permanent") {
				m.Fail(&stages.DeadLetteredError{Err: m.Err(), Destination: "test"})
			}
		}
	}})
	waitFor(t, 30*time.Second, "200 acknowledgements", func() bool { return top.Stats().Acked+top.Stats().Failed >= 200 })
	want := map[int32]int64{0: 20, 1: ends[1]}
	waitFor(t, 30*time.Second, "commits at 20 and the end", func() bool { return maps.Equal(committed(t, c, "g", "events"), want) })
	ticks := cons.CommitTicks()
	waitFor(t, 30*time.Second, "commit rounds", func() bool { return cons.CommitTicks() >= ticks+3 })
	if got := committed(t, c, "g", "events"); !maps.Equal(got, want) {
		t.Fatalf("committed %v, want %v: partition 0 held at its first failure", got, want)
	}
	st := cons.Stats()
	if st.Uncommittable != 2 || !maps.Equal(st.Stuck["events"], map[int32]int64{0: 20}) || st.Committed["events"][0] != 20 {
		t.Fatalf("Stats: uncommittable %d, stuck %v, committed %v; want 2, {0: 20}, 20", st.Uncommittable, st.Stuck, st.Committed)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, c, "g", "events"); !maps.Equal(got, want) {
		t.Fatalf("after close: committed %v, want %v", got, want)
	}
	if st := top.Stats(); st.Acked != 197 || st.Failed != 3 || sawFailed.Load() != 3 {
		t.Fatalf("acked %d failed %d (HandleFailed saw %d), want 197, 3, 3", st.Acked, st.Failed, sawFailed.Load())
	}

	// The group reads partition 0 again from offset 20: the failed messages
	// are redelivered (and what came after them, at least once).
	again := newConsumer(t, c, "g", nil)
	col2 := newCollector()
	top2, stop2 := startTopology(t, again, col2.handle, topoOpts{})
	waitFor(t, 30*time.Second, "the rest of partition 0", func() bool { return top2.Stats().Acked >= ends[0]-20 })
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for _, r := range col2.records() {
		if r.Partition != 0 {
			t.Fatalf("redelivered %v: partition 1 was committed to its end", r)
		}
		offs = append(offs, r.Offset)
	}
	slices.Sort(offs)
	if len(offs) != int(ends[0]-20) || offs[0] != 20 || offs[len(offs)-1] != ends[0]-1 {
		t.Fatalf("redelivered %d offsets of partition 0 (%v…), want 20..%d", len(offs), offs[:min(3, len(offs))], ends[0]-1)
	}
	if got := committed(t, c, "g", "events"); !maps.Equal(got, ends) {
		t.Fatalf("committed %v, want the end offsets %v", got, ends)
	}
}

// TestDecodeErrorFailsMessage: an undecodable record is emitted failed, is
// seen by HandleFailed with its coordinates and its value, and does not
// stop the stream; once dead-lettered, it does not stop the commits.
func TestDecodeErrorFailsMessage(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "events"))
	produce(t, c, "events", 0, 10)
	c.Produce(t, &kgo.Record{Topic: "events", Key: []byte("kbad"), Value: []byte("bad value")})
	produce(t, c, "events", 11, 9)
	cons := newConsumer(t, c, "g", nil)
	var mu sync.Mutex
	var errs []string
	col := newCollector()
	top, stop := startTopology(t, cons, col.handle, topoOpts{failed: func(_ context.Context, f []*stages.Message[string]) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range f {
			errs = append(errs, fmt.Sprintf("%v value=%s permanent=%v", m.Err(), m.Metadata.(*kafka.Metadata).Value, stages.IsPermanent(m.Err())))
		}
		deadLetter(f)
	}})
	waitFor(t, 30*time.Second, "20 acknowledgements", func() bool { return top.Stats().Acked+top.Stats().Failed >= 20 })
	waitFor(t, 30*time.Second, "offset 20 committed", func() bool { return committed(t, c, "g", "events")[0] == 20 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{`kafka: decode events/0@10: undecodable value "bad value" value=bad value permanent=true`}
	if !slices.Equal(errs, want) {
		t.Fatalf("HandleFailed saw %q, want %q", errs, want)
	}
	if n := len(col.records()); n != 19 {
		t.Fatalf("the batch handler saw %d records, want the 19 good ones", n)
	}
}

// TestFetchesOnlyOnDemand: with the sink stuck, the consumer takes only
// what the stages can hold, and keeps the rest in Kafka.
func TestFetchesOnlyOnDemand(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(1, "events"))
	produce(t, c, "events", 0, 5000)
	cons := newConsumer(t, c, "g", nil)
	release := make(chan struct{})
	var once sync.Once
	blocked := make(chan struct{})
	handle := func(ctx context.Context, b *stages.Batch[string]) error {
		once.Do(func() { close(blocked) })
		<-release
		return nil
	}
	// 1 processor asking for up to 10, batches of 10, 1 batch processor:
	// at most 10 in the handler, 3 closed batches of 10 queued for it (the
	// batcher holds its processors back past one per queue and processor,
	// and the processor that closed the third waits), and 10 demanded; plus
	// one more demand's worth (10) when a promise lapsed (its 10ms lease)
	// while the consumer was still polling for it and was granted again, as
	// happens on a loaded machine.
	top, stop := startTopology(t, cons, handle, topoOpts{procs: 1, maxDemand: 10, batchSize: 10, batchConc: 1})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(free) // runs before the topology stops
	<-blocked
	ticks := cons.IdleTicks()
	waitFor(t, 30*time.Second, "the consumer to idle", func() bool { return cons.IdleTicks() >= ticks+5 })
	if got := cons.Stats().Consumed; got > 60 {
		t.Fatalf("consumed %d records with the sink stuck, want at most 60", got)
	}
	if got := top.Stats().Producer.Emitted; got > 60 {
		t.Fatalf("emitted %d records with the sink stuck, want at most 60", got)
	}
	free()
	waitFor(t, 60*time.Second, "5000 records", func() bool { return top.Stats().Acked >= 5000 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	_, err := kafka.New(kafka.Config[int]{CommitInterval: -1})
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"Config.Brokers is required", "Config.GroupID is required",
		"Config.Topics must name at least one topic", "Config.Decode is required for data of type int", "must not be negative"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = kafka.New(kafka.Config[[]byte]{Brokers: "b", GroupID: "g", Topics: []string{"t"}, HeartbeatInterval: 6 * time.Second})
	if want := "Config.HeartbeatInterval must be less than SessionTimeout (6s), got 6s"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v lacks %q", err, want)
	}
	// []byte data needs no Decode.
	cons, err := kafka.New(kafka.Config[[]byte]{Brokers: "127.0.0.1:1", GroupID: "g", Topics: []string{"t"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOffsetTracker(t *testing.T) {
	t.Parallel()
	tr := kafka.NewTracker()
	tr.Emit(10, 11, 12, 15, 16) // a gap (15) as after compaction
	steps := []struct {
		done     int64
		ok       bool
		next     int64
		inFlight int
	}{
		{11, true, -1, 5}, // 10 still out: nothing to commit
		{10, true, 12, 3}, // 10 and 11 done
		{13, false, 12, 3},
		{16, true, 12, 3},
		{12, true, 13, 2},
		{15, true, 17, 0},
		{15, false, 17, 0}, // an ack twice (or late) is ignored
	}
	for i, s := range steps {
		ok := tr.Done(s.done)
		if ok != s.ok || tr.Next() != s.next || tr.InFlight() != s.inFlight {
			t.Fatalf("step %d: Done(%d) = %v, next %d, in flight %d; want %v, %d, %d",
				i, s.done, ok, tr.Next(), tr.InFlight(), s.ok, s.next, s.inFlight)
		}
	}
}

// TestOffsetTrackerStuck: a message failed without a dead letter holds the
// commit at its offset for good; the entries after it still finish (and
// are let go), and revocation waits only for the pending ones.
func TestOffsetTrackerStuck(t *testing.T) {
	t.Parallel()
	tr := kafka.NewTracker()
	tr.Emit(10, 11, 12, 13, 14)
	check := func(step string, next, stuck int64, pending int) {
		t.Helper()
		if tr.Next() != next || tr.Stuck() != stuck || tr.Pending() != pending {
			t.Fatalf("%s: next %d stuck %d pending %d; want %d, %d, %d", step, tr.Next(), tr.Stuck(), tr.Pending(), next, stuck, pending)
		}
	}
	tr.Done(10)
	check("10 done", 11, -1, 4)
	tr.Done(12)
	tr.Fail(11)
	check("11 failed", 11, 11, 2)
	tr.Fail(13) // a second failure changes nothing
	tr.Done(14)
	check("all finished", 11, 11, 0)
	if tr.InFlight() != 0 || tr.Done(11) {
		t.Fatalf("in flight %d after every offset finished, or 11 finished twice", tr.InFlight())
	}
	tr.Emit(15, 16)
	tr.Done(15)
	tr.Done(16)
	check("later offsets", 11, 11, 0)

	first := kafka.NewTracker() // the very first message fails
	first.Emit(100, 101)
	first.Done(101)
	first.Fail(100)
	if first.Next() != 100 || first.Stuck() != 100 {
		t.Fatalf("next %d stuck %d, want 100 and 100", first.Next(), first.Stuck())
	}
}

// TestConcurrentMembers: with producer Concurrency 3 the Consumer is three
// group members sharing a 6-partition topic; every record is handled once,
// each partition's records in order, and the group commits every partition
// to its end.
func TestConcurrentMembers(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, kfake.SeedTopics(6, "events"))
	produce(t, c, "events", 0, 3000)
	cons := newConsumer(t, c, "g", nil)
	col := newCollector()
	byPartition := func(m *stages.Message[string]) uint64 { return uint64(m.Metadata.(*kafka.Metadata).Partition) }
	top, err := topology.New(topology.Spec[string]{
		Producer:   topology.ProducerSpec[string]{Producer: cons, Keep: stages.Block, Concurrency: 3},
		Processors: topology.ProcessorSpec[string]{Concurrency: 2, PartitionBy: byPartition},
		Batchers: map[string]topology.BatcherSpec[string]{
			"sink": {BatchSize: 100, BatchTimeout: 10 * time.Millisecond, Concurrency: 2, PartitionBy: byPartition, Handle: col.handle},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := topologytest.Start(t, top)
	waitFor(t, 60*time.Second, "3000 records", func() bool { return top.Stats().Acked >= 3000 })
	// The group may still be settling an incremental rebalance when the
	// last record is acknowledged: wait for the steady state.
	waitFor(t, 30*time.Second, "3 members holding all 6 partitions", func() bool {
		st := cons.Stats()
		return st.Members == 3 && len(st.Partitions["events"]) == 6
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := cons.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	last := map[int32]int64{}
	for _, r := range col.records() {
		if seen[r.Key] {
			t.Fatalf("record %v handled twice", r)
		}
		seen[r.Key] = true
		if prev, ok := last[r.Partition]; ok && r.Offset <= prev {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
		}
		last[r.Partition] = r.Offset
	}
	if len(seen) != 3000 {
		t.Fatalf("handled %d distinct records, want 3000", len(seen))
	}
	if err := topologytest.CheckConservation(top.Stats()); err != nil {
		t.Fatal(err)
	}
	ends := endOffsets(t, c, "events")
	if got := committed(t, c, "g", "events"); !maps.Equal(got, ends) {
		t.Fatalf("committed %v, want the end offsets %v", got, ends)
	}
}
