package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"strconv"
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
)

// benchRecords is how many recorded tweets (~1 KB each) the source
// benchmarks consume: enough for many fetch cycles of every partition.
const benchRecords = 200_000

// benchTopic is a topic of benchRecords recorded tweets in 8 partitions on
// a 3-broker kfake cluster, produced uncompressed so that fetches carry the
// tweets' real size. It is shared by the benchmarks of one run.
var benchTopic = sync.OnceValues(func() (*kafkatest.Cluster, error) {
	raw, err := os.ReadFile("../../testdata/tweets.jsonl")
	if err != nil {
		return nil, err
	}
	var lines [][]byte
	for l := range bytes.SplitSeq(raw, []byte("\n")) {
		if l = bytes.TrimRight(l, "\r"); len(l) > 0 {
			lines = append(lines, l)
		}
	}
	c, err := kafkatest.New(kfake.NumBrokers(3), kfake.SeedTopics(8, "tweets"))
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		c.Close()
		return nil, err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, benchRecords)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "tweets", Key: []byte(strconv.Itoa(i)), Value: lines[i%len(lines)]}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		c.Close()
		return nil, fmt.Errorf("produce %d tweets: %w", len(recs), err)
	}
	return c, nil
})

func benchCluster(b *testing.B) *kafkatest.Cluster {
	b.Helper()
	c, err := benchTopic()
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkKafkaSource measures records/s consumed from kfake (3 brokers,
// 8 partitions, 200,000 recorded tweets of ~1 KB) side by side:
//
//   - raw: one confluent-kafka-go consumer polling every record in a loop
//     and committing at the end, librdkafka's defaults otherwise (the
//     client's ceiling);
//   - source/P=n: the Kafka source with producer concurrency n (n group
//     members in one process) through a topology with a no-op batcher,
//     every record acknowledged and committed.
//
// The clock runs from the first record (after the group join) until every
// offset is committed; each iteration consumes the whole topic with a new
// group.
func BenchmarkKafkaSource(b *testing.B) {
	c := benchCluster(b)
	b.Run("raw", func(b *testing.B) { benchRaw(b, c) })
	for _, p := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("source/P=%d", p), func(b *testing.B) { benchSource(b, c, p) })
	}
}

var benchGroups atomic.Int64

func benchRaw(b *testing.B, c *kafkatest.Cluster) {
	b.ReportAllocs()
	var total time.Duration
	for b.Loop() {
		cons, err := ckafka.NewConsumer(&ckafka.ConfigMap{
			"bootstrap.servers": c.Brokers, "group.id": fmt.Sprintf("raw-%d", benchGroups.Add(1)),
			"auto.offset.reset": "earliest", "enable.auto.commit": false,
			"enable.metrics.push": false, "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
			"log_level": 0,
		})
		if err != nil {
			b.Fatal(err)
		}
		if err := cons.Subscribe("tweets", nil); err != nil {
			b.Fatal(err)
		}
		var start time.Time
		n := 0
		for n < benchRecords {
			switch e := cons.Poll(100).(type) {
			case *ckafka.Message:
				if e.TopicPartition.Error != nil {
					b.Fatal(e.TopicPartition.Error)
				}
				if n == 0 {
					start = time.Now()
				}
				n++
			case ckafka.Error:
				if e.IsFatal() {
					b.Fatal(e)
				}
			}
		}
		if _, err := cons.Commit(); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		cons.Close()
	}
	b.ReportMetric(float64(b.N*benchRecords)/total.Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

func benchSource(b *testing.B, c *kafkatest.Cluster, producers int) {
	ends := endOffsetsB(b, c)
	b.ReportAllocs()
	var total time.Duration
	for b.Loop() {
		group := fmt.Sprintf("source-%d", benchGroups.Add(1))
		total += runSource(b, c, group, producers)
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := kafkatest.CommittedOffsets(cctx, c.Client(b), group, "tweets")
		ccancel()
		if err != nil {
			b.Fatal(err)
		}
		if !maps.Equal(got, ends) {
			b.Fatalf("committed %v, want %v", got, ends)
		}
	}
	b.ReportMetric(float64(b.N*benchRecords)/total.Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// runSource consumes the whole topic with a new group through a topology
// and returns the time from the first batch to the last commit.
func runSource(b *testing.B, c *kafkatest.Cluster, group string, producers int) time.Duration {
	cons, err := kafka.New(kafka.Config[[]byte]{
		Brokers: c.Brokers, GroupID: group, Topics: []string{"tweets"}, Logger: quiet,
	})
	if err != nil {
		b.Fatal(err)
	}
	var acked atomic.Int64
	var first atomic.Pointer[time.Time]
	done := make(chan struct{})
	top, err := topology.New(topology.Spec[[]byte]{
		Producer:   topology.ProducerSpec[[]byte]{Producer: cons, Keep: stages.Block, Concurrency: producers},
		Processors: topology.ProcessorSpec[[]byte]{Concurrency: 2, MaxDemand: 1000},
		Batchers: map[string]topology.BatcherSpec[[]byte]{
			"noop": {BatchSize: 1000, BatchTimeout: 10 * time.Millisecond, Concurrency: 2,
				Handle: func(_ context.Context, batch *stages.Batch[[]byte]) error {
					now := time.Now()
					first.CompareAndSwap(nil, &now)
					if acked.Add(int64(len(batch.Messages))) == benchRecords {
						close(done)
					}
					return nil
				}},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- top.Run(ctx) }()
	<-done
	cancel()
	if err := <-runErr; err != nil { // drains, then closes cons: final commit
		b.Fatal(err)
	}
	return time.Since(*first.Load())
}

func endOffsetsB(b *testing.B, c *kafkatest.Cluster) map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := kafkatest.EndOffsets(ctx, c.Client(b), "tweets")
	if err != nil {
		b.Fatal(err)
	}
	return got
}
