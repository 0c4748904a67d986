package kafka_test

import (
	"testing"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
	"github.com/causeway-go/causeway/topology/topologytest/sinktest"
)

// BenchmarkKafkaBatcher measures records/s of ~400-byte values into kfake
// (3 brokers, 4 partitions, idempotent, acks=all, linger 5ms): through a
// topology whose "kafka" batcher is the sink, and with a raw
// confluent-kafka-go produce loop on the same settings.
func BenchmarkKafkaBatcher(b *testing.B) {
	b.Run("impl=topology", func(b *testing.B) {
		c := benchCluster(b)
		sink, err := kafka.New(itemConfig(c.Brokers, "tweets"))
		if err != nil {
			b.Fatal(err)
		}
		defer sink.Close()
		data := items(0, b.N)
		src := sinktest.NewSliceSource(data)
		top, err := topology.New(topology.Spec[item]{
			Producer:   topology.ProducerSpec[item]{Producer: src, Keep: stages.Block},
			Processors: topology.ProcessorSpec[item]{Concurrency: 2, MaxDemand: 1000},
			Batchers: map[string]topology.BatcherSpec[item]{
				"kafka": {BatchSize: 2000, BatchTimeout: 20 * time.Millisecond, Concurrency: 4, Handle: sink.HandleBatch},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		stop := topologytest.Start(b, top)
		<-src.Done()
		elapsed := time.Since(start)
		b.StopTimer()
		if err := stop(); err != nil {
			b.Fatal(err)
		}
		if ok, _ := src.Counts(); ok != int64(b.N) {
			b.Fatalf("%d of %d delivered", ok, b.N)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	})
	b.Run("impl=raw", func(b *testing.B) {
		c := benchCluster(b)
		p, err := ckafka.NewProducer(&ckafka.ConfigMap{
			"bootstrap.servers": c.Brokers, "enable.idempotence": true, "acks": "all", "linger.ms": 5,
			"batch.num.messages": 10000, "enable.metrics.push": false, "go.delivery.report.fields": "none",
		})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		data := items(0, b.N)
		topic := "tweets"
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		done := make(chan int)
		go func() {
			ok := 0
			for range b.N {
				if m := (<-p.Events()).(*ckafka.Message); m.TopicPartition.Error == nil {
					ok++
				}
			}
			done <- ok
		}()
		for i := range data {
			msg := &ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny},
				Key: []byte(data[i].ID), Value: data[i].Body}
			for {
				err := p.Produce(msg, nil)
				if err == nil {
					break
				}
				if e, ok := err.(ckafka.Error); !ok || e.Code() != ckafka.ErrQueueFull {
					b.Fatal(err)
				}
				p.Flush(10)
			}
		}
		ok := <-done
		elapsed := time.Since(start)
		b.StopTimer()
		if ok != b.N {
			b.Fatalf("%d of %d delivered", ok, b.N)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	})
}

func benchCluster(b *testing.B) *kafkatest.Cluster {
	b.Helper()
	return kafkatest.Start(b, kfake.NumBrokers(3), kfake.SeedTopics(4, "tweets"))
}
