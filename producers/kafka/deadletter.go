package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/causeway-go/causeway/internal/ratelog"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkalog"
)

// The headers DeadLetter adds to every record it stores, after the
// original record's own headers.
const (
	HeaderError     = "causeway.error"     // why the message failed
	HeaderTopic     = "causeway.topic"     // the consumed record's topic
	HeaderPartition = "causeway.partition" // its partition, in decimal
	HeaderOffset    = "causeway.offset"    // its offset, in decimal
	HeaderTruncated = "causeway.truncated" // the value's length before it was cut to MaxValueBytes
)

// DeadLetterConfig configures a DeadLetter.
type DeadLetterConfig[T any] struct {
	// Brokers is the bootstrap list of the cluster holding the dead-letter
	// topics. Required.
	Brokers string
	// Topic is the dead-letter topic. Default: "<topic>.dlq" for a message
	// a Consumer read from <topic>; a message from elsewhere needs Topic
	// (without it, it stays plainly failed). The topic must exist, or the
	// cluster create it on first use.
	Topic string
	// Value returns the bytes to store for a message. Default: the consumed
	// record's value (Metadata.Value), or the data itself when T is []byte.
	Value func(m *stages.Message[T]) ([]byte, error)
	// Key returns the record key for a message that did not come from a
	// Consumer (whose own key is kept). Default: no key.
	Key func(m *stages.Message[T]) []byte
	// Permanent, if set, chooses what to store by the message's error: a
	// message whose error it rejects stays plainly failed, so a Consumer
	// does not commit past it and it is read again after a rebalance or a
	// restart. stages.IsPermanent keeps out everything not marked permanent
	// (the Consumer marks its decode errors, the sinks their data errors).
	// Default: store every failed message (see DeadLetter).
	Permanent func(err error) bool
	// MaxValueBytes cuts longer values to that length (the record then
	// carries HeaderTruncated), so that a record too large for its sink is
	// not also too large for the dead-letter topic. Default 900 KiB, under
	// a broker's default 1 MB limit with room for the headers.
	MaxValueBytes int
	// DeliveryTimeout bounds the wait for a record's delivery
	// (message.timeout.ms); a record not delivered by then stays plainly
	// failed. Default 30s.
	DeliveryTimeout time.Duration
	// Properties are extra librdkafka producer properties; they override
	// the defaults (enable.idempotence=true, acks=all, linger.ms=5, ...).
	Properties ckafka.ConfigMap
	// Logger receives the dead-letter producer's logs and librdkafka's.
	// Default slog.Default().
	Logger *slog.Logger
}

// Validate reports the fields of c that are missing or out of range.
func (c *DeadLetterConfig[T]) Validate() error {
	var errs []error
	if c.Brokers == "" {
		errs = append(errs, errors.New("kafka: DeadLetterConfig.Brokers is required"))
	}
	if c.MaxValueBytes < 0 {
		errs = append(errs, fmt.Errorf("kafka: DeadLetterConfig.MaxValueBytes must not be negative, got %d", c.MaxValueBytes))
	}
	if c.DeliveryTimeout < 0 {
		errs = append(errs, fmt.Errorf("kafka: DeadLetterConfig.DeliveryTimeout must not be negative, got %v", c.DeliveryTimeout))
	}
	return errors.Join(errs...)
}

// DeadLetter keeps failed messages in a Kafka topic. Its HandleFailed is a
// topology's HandleFailed: it produces each failed message to the
// dead-letter topic (the original record's value, key and headers, plus
// the error and the original topic, partition and offset in headers),
// waits for the deliveries, and fails each delivered message again with
// &stages.DeadLetteredError{Destination: "kafka:<topic>"}. A Consumer
// commits past a failed message only then; a message whose dead-letter
// delivery fails stays plainly failed, and its partition's commit stops at
// it.
//
// DeadLetter cannot tell a transient failure from a permanent one: it
// stores what it is shown. HandleFailed sees only what a processor or a
// batch handler decided was failed, so the handlers must fail a message
// only for a permanent reason (a row the database refuses, a record too
// large) and retry transient errors themselves (a batcher's RetryPolicy or
// Block policy), never letting an outage fail messages; or set Permanent
// (stages.IsPermanent) to keep transient failures out of the dead-letter
// topic.
type DeadLetter[T any] struct {
	cfg    DeadLetterConfig[T]
	log    *slog.Logger
	prod   *ckafka.Producer
	logsWG sync.WaitGroup

	stored, failed atomic.Int64
	failLog        ratelog.Limiter
	closeOnce      sync.Once
	closeErr       error
}

// NewDeadLetter validates cfg and creates the dead-letter producer.
func NewDeadLetter[T any](cfg DeadLetterConfig[T]) (*DeadLetter[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxValueBytes == 0 {
		cfg.MaxValueBytes = 900 << 10
	}
	cfg.DeliveryTimeout = orDefault(cfg.DeliveryTimeout, 30*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conf := ckafka.ConfigMap{
		"bootstrap.servers":         cfg.Brokers,
		"client.id":                 "causeway-dlq",
		"enable.idempotence":        true,
		"acks":                      "all",
		"linger.ms":                 5,
		"message.timeout.ms":        int(cfg.DeliveryTimeout / time.Millisecond),
		"go.delivery.report.fields": "none",
		"enable.metrics.push":       false,
		"go.logs.channel.enable":    true,
	}
	for k, v := range cfg.Properties {
		conf[k] = v
	}
	prod, err := ckafka.NewProducer(&conf)
	if err != nil {
		return nil, fmt.Errorf("kafka: new dead-letter producer: %w", err)
	}
	d := &DeadLetter[T]{cfg: cfg, log: cfg.Logger.With("dead_letter", "kafka"), prod: prod,
		failLog: ratelog.Limiter{Every: 10 * time.Second}}
	d.logsWG.Go(func() { kafkalog.Forward(d.log, prod.Logs()) })
	d.logsWG.Go(func() {
		for e := range prod.Events() { // errors not tied to a record
			if err, ok := e.(ckafka.Error); ok {
				d.log.Warn("kafka: dead-letter producer error", "err", err)
			}
		}
	})
	return d, nil
}

// HandleFailed stores failed in the dead-letter topic and marks each
// stored message with a *stages.DeadLetteredError. It returns once every
// record is delivered or has failed, or ctx ends (what was not delivered by
// then stays plainly failed). Messages already dead-lettered are left as
// they are. Use it as a topology's HandleFailed.
func (d *DeadLetter[T]) HandleFailed(ctx context.Context, failed []*stages.Message[T]) {
	reports := make(chan ckafka.Event, len(failed))
	pending := 0
	for i, m := range failed {
		if stages.IsDeadLettered(m.Err()) || (d.cfg.Permanent != nil && !d.cfg.Permanent(m.Err())) {
			continue
		}
		rec, err := d.record(m)
		if err != nil {
			d.fail(m, "", err)
			continue
		}
		rec.Opaque = i
		for {
			err = d.prod.Produce(rec, reports)
			var kerr ckafka.Error
			if err == nil || !errors.As(err, &kerr) || kerr.Code() != ckafka.ErrQueueFull || pending == 0 {
				break
			}
			// The producer's queue is full: wait for a delivery, then retry.
			if !d.receive(ctx, reports, failed) {
				return
			}
			pending--
		}
		if err != nil {
			d.fail(m, *rec.TopicPartition.Topic, err)
			continue
		}
		pending++
	}
	for ; pending > 0; pending-- {
		if !d.receive(ctx, reports, failed) {
			return
		}
	}
}

// receive takes one delivery report and marks its message; false if ctx
// ended first.
func (d *DeadLetter[T]) receive(ctx context.Context, reports chan ckafka.Event, failed []*stages.Message[T]) bool {
	select {
	case <-ctx.Done():
		d.log.Warn("kafka: stopped waiting for dead-letter deliveries: those messages stay failed", "err", ctx.Err())
		return false
	case e := <-reports:
		r, ok := e.(*ckafka.Message)
		if !ok {
			return true
		}
		m := failed[r.Opaque.(int)]
		topic := *r.TopicPartition.Topic
		if err := r.TopicPartition.Error; err != nil {
			d.fail(m, topic, err)
			return true
		}
		d.stored.Add(1)
		m.Fail(&stages.DeadLetteredError{Err: m.Err(), Destination: "kafka:" + topic})
		return true
	}
}

// record builds the dead-letter record of m.
func (d *DeadLetter[T]) record(m *stages.Message[T]) (*ckafka.Message, error) {
	md, _ := m.Metadata.(*Metadata)
	topic := d.cfg.Topic
	if topic == "" {
		if md == nil {
			return nil, errors.New("DeadLetterConfig.Topic is needed for messages that did not come from a kafka.Consumer")
		}
		topic = md.Topic + ".dlq"
	}
	var value []byte
	switch {
	case d.cfg.Value != nil:
		v, err := d.value(m)
		if err != nil {
			return nil, err
		}
		value = v
	case md != nil:
		value = md.Value
	default:
		b, ok := any(m.Data).([]byte)
		if !ok {
			return nil, fmt.Errorf("DeadLetterConfig.Value is needed for %T data that did not come from a kafka.Consumer", m.Data)
		}
		value = b
	}
	var headers []ckafka.Header
	if md != nil {
		headers = append(headers, md.Headers...)
	}
	headers = append(headers, ckafka.Header{Key: HeaderError, Value: []byte(errText(m.Err(), 4096))})
	if md != nil {
		headers = append(headers,
			ckafka.Header{Key: HeaderTopic, Value: []byte(md.Topic)},
			ckafka.Header{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(md.Partition), 10)},
			ckafka.Header{Key: HeaderOffset, Value: strconv.AppendInt(nil, md.Offset, 10)})
	}
	if len(value) > d.cfg.MaxValueBytes {
		headers = append(headers, ckafka.Header{Key: HeaderTruncated, Value: strconv.AppendInt(nil, int64(len(value)), 10)})
		value = value[:d.cfg.MaxValueBytes]
	}
	rec := &ckafka.Message{TopicPartition: ckafka.TopicPartition{Topic: &topic, Partition: ckafka.PartitionAny},
		Value: value, Headers: headers}
	if md != nil {
		rec.Key = md.Key
		rec.Timestamp = md.Timestamp
	} else if d.cfg.Key != nil {
		key, err := d.key(m)
		if err != nil {
			return nil, err
		}
		rec.Key = key
	}
	return rec, nil
}

// key runs DeadLetterConfig.Key; a panic in it becomes its error.
func (d *DeadLetter[T]) key(m *stages.Message[T]) (k []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("DeadLetterConfig.Key panicked: %v", p)
		}
	}()
	return d.cfg.Key(m), nil
}

// value runs DeadLetterConfig.Value; a panic in it becomes its error.
func (d *DeadLetter[T]) value(m *stages.Message[T]) (v []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("DeadLetterConfig.Value panicked: %v", p)
		}
	}()
	return d.cfg.Value(m)
}

// fail counts and logs (rate-limited) a message that could not be
// dead-lettered; it stays plainly failed.
func (d *DeadLetter[T]) fail(m *stages.Message[T], topic string, err error) {
	d.failed.Add(1)
	if ok, count := d.failLog.Allow(1); ok {
		args := []any{"topic", topic, "err", err, "message_err", errText(m.Err(), 300), "failed_since_last_line", count}
		if md, ok := m.Metadata.(*Metadata); ok {
			args = append(args, "from", fmt.Sprintf("%s/%d@%d", md.Topic, md.Partition, md.Offset))
		}
		d.log.Warn("kafka: could not dead-letter a failed message; it stays failed (a Consumer does not commit past it)", args...)
	}
}

// DeadLetterStats counts what a DeadLetter did.
type DeadLetterStats struct {
	// Stored counts messages delivered to a dead-letter topic.
	Stored int64
	// Failed counts messages that could not be stored (no topic or value,
	// a refused or undelivered record): they stayed plainly failed.
	Failed int64
}

// Stats returns a snapshot of the counters.
func (d *DeadLetter[T]) Stats() DeadLetterStats {
	return DeadLetterStats{Stored: d.stored.Load(), Failed: d.failed.Load()}
}

// Close flushes what is still being delivered (up to DeliveryTimeout) and
// closes the producer. It is safe to call more than once.
func (d *DeadLetter[T]) Close() error {
	d.closeOnce.Do(func() {
		if left := d.prod.Flush(int(d.cfg.DeliveryTimeout / time.Millisecond)); left > 0 {
			d.closeErr = fmt.Errorf("kafka: dead-letter producer closed with %d records undelivered", left)
		}
		d.prod.Close()
		d.logsWG.Wait()
	})
	return d.closeErr
}
