package kafka

import (
	"context"
	"fmt"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// OffsetStore keeps, outside Kafka, the next offset to read of each
// partition a group consumes: a sink that writes its results and the
// offsets in one database transaction (stages/postgres' TxSink) is one.
// With Config.OffsetStore set, the Consumer starts every partition it is
// assigned from the stored offset, or from the partition's beginning when
// none is stored, never from the offset committed to Kafka; it still
// commits acknowledged offsets to Kafka, for monitoring tools.
type OffsetStore interface {
	// StoredOffsets returns the stored next offset of each of topic's
	// partitions that has one; a partition absent from the map has none.
	StoredOffsets(ctx context.Context, group, topic string, partitions []int32) (map[int32]int64, error)
}

// KafkaPosition returns the record's topic, partition and offset: what a
// transactional sink stores (stages/postgres reads it through an interface,
// so that it imports no Kafka client).
func (m *Metadata) KafkaPosition() (topic string, partition int32, offset int64) {
	return m.Topic, m.Partition, m.Offset
}

// storeTimeout bounds one read of the offset store during an assignment.
const storeTimeout = 10 * time.Second

// startOffsets sets each assigned partition's start to its stored offset,
// or to the beginning when none is stored. It retries a failing store a
// few times (an assignment cannot start anywhere else without breaking
// exactly-once) and returns the last error.
func (m *member[T]) startOffsets(tps []ckafka.TopicPartition) error {
	byTopic := map[string][]int32{}
	for _, tp := range tps {
		byTopic[*tp.Topic] = append(byTopic[*tp.Topic], tp.Partition)
	}
	stored := map[partKey]int64{}
	for topic, parts := range byTopic {
		var (
			got map[int32]int64
			err error
		)
		for attempt := 1; attempt <= 5; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
			got, err = m.c.cfg.OffsetStore.StoredOffsets(ctx, m.c.cfg.GroupID, topic, parts)
			cancel()
			if err == nil {
				break
			}
			m.log.Warn("kafka: reading the offset store failed; retrying", "topic", topic, "attempt", attempt, "err", err)
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("kafka: offset store for group %s, topic %s: %w", m.c.cfg.GroupID, topic, err)
		}
		for p, off := range got {
			stored[partKey{topic, p}] = off
		}
	}
	for i := range tps {
		if off, ok := stored[partKey{*tps[i].Topic, tps[i].Partition}]; ok {
			tps[i].Offset = ckafka.Offset(off)
		} else {
			tps[i].Offset = ckafka.OffsetBeginning
		}
	}
	m.log.Info("kafka: partitions start from the offset store", "partitions", describeOffsets(tps))
	return nil
}

func describeOffsets(tps []ckafka.TopicPartition) string {
	s := ""
	for i, tp := range tps {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf("%s/%d@%v", *tp.Topic, tp.Partition, tp.Offset)
	}
	return s
}
