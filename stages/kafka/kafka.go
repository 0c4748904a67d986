// Package kafka is a Causeway batch handler that produces each batch to
// Kafka with confluent-kafka-go (librdkafka, so it needs cgo) and decides
// every message's fate by its own delivery report.
//
// One idempotent producer (acks=all) serves all the batch processors of a
// batcher. HandleBatch enqueues the batch's records asynchronously and
// returns once each has a delivery report: a delivered record's message
// succeeds, one the broker refused, or that could not be delivered within
// Config.DeliveryTimeout (broker down, say), fails with that error and goes
// to the topology's HandleFailed. Nothing is fire-and-forget.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/kafka/kafkalog"
)

// Config configures a Sink producing messages of type T.
type Config[T any] struct {
	// Brokers is the bootstrap list, "host:port,host:port". Required.
	Brokers string
	// Topic is where records go when TopicFunc is nil or returns "".
	// Required unless TopicFunc is set.
	Topic string
	// TopicFunc, if set, picks each message's topic.
	TopicFunc func(m *stages.Message[T]) string
	// Key returns a message's record key. Default: the key of the Kafka
	// record the message came from (its Metadata implements
	// RecordMetadata), else no key.
	Key func(m *stages.Message[T]) []byte
	// Value returns a message's record value; an error fails that message
	// alone. Required (NewTweets sets it).
	Value func(m *stages.Message[T]) ([]byte, error)
	// Headers returns a message's record headers. Default: the headers of
	// the Kafka record the message came from (RecordMetadata), else none.
	Headers func(m *stages.Message[T]) []ckafka.Header
	// Compression is the codec for record batches: "none" (default),
	// "gzip", "snappy", "lz4" or "zstd".
	Compression string
	// Linger is how long the client waits to fill a record batch. Default
	// 5ms.
	Linger time.Duration
	// BatchMessages is the most records in one record batch. Default 10,000.
	BatchMessages int
	// DeliveryTimeout bounds the time from enqueueing a record to its
	// delivery report (librdkafka's message.timeout.ms): a record not
	// acknowledged by the brokers by then fails. Default 30s.
	DeliveryTimeout time.Duration
	// CloseTimeout bounds Close's flush. Default 10s.
	CloseTimeout time.Duration
	// Properties are extra librdkafka properties; they override the ones
	// the fields above set.
	Properties ckafka.ConfigMap
	// Logger receives the client's logs and errors. Default slog.Default().
	Logger *slog.Logger
}

// RecordMetadata is implemented by message metadata that carries the key and
// headers of a Kafka record, such as producers/kafka's Metadata; the sink's
// default Key and Headers copy them, so a record consumed from one topic is
// produced to another with the same key and headers.
type RecordMetadata interface {
	RecordKey() []byte
	RecordHeaders() []ckafka.Header
}

// Validate reports the fields of c that are missing or out of range.
func (c *Config[T]) Validate() error {
	var errs []error
	if c.Brokers == "" {
		errs = append(errs, errors.New("kafka: Config.Brokers is required"))
	}
	if c.Topic == "" && c.TopicFunc == nil {
		errs = append(errs, errors.New("kafka: Config.Topic or Config.TopicFunc is required"))
	}
	if c.Value == nil {
		errs = append(errs, errors.New("kafka: Config.Value is required"))
	}
	switch c.Compression {
	case "", "none", "gzip", "snappy", "lz4", "zstd":
	default:
		errs = append(errs, fmt.Errorf("kafka: Config.Compression must be none, gzip, snappy, lz4 or zstd, got %q", c.Compression))
	}
	if c.Linger < 0 || c.DeliveryTimeout < 0 || c.CloseTimeout < 0 || c.BatchMessages < 0 {
		errs = append(errs, fmt.Errorf("kafka: Config durations and sizes must not be negative, got Linger %v, DeliveryTimeout %v, CloseTimeout %v, BatchMessages %d",
			c.Linger, c.DeliveryTimeout, c.CloseTimeout, c.BatchMessages))
	}
	return errors.Join(errs...)
}

func (c Config[T]) withDefaults() Config[T] {
	if c.Compression == "" {
		c.Compression = "none"
	}
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.BatchMessages == 0 {
		c.BatchMessages = 10_000
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 30 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Key == nil {
		c.Key = func(m *stages.Message[T]) []byte {
			if md, ok := m.Metadata.(RecordMetadata); ok {
				return md.RecordKey()
			}
			return nil
		}
	}
	if c.Headers == nil {
		c.Headers = func(m *stages.Message[T]) []ckafka.Header {
			if md, ok := m.Metadata.(RecordMetadata); ok {
				return md.RecordHeaders()
			}
			return nil
		}
	}
	return c
}

// configMap returns the librdkafka configuration of a producer for c.
func (c *Config[T]) configMap() ckafka.ConfigMap {
	m := ckafka.ConfigMap{
		"bootstrap.servers":         c.Brokers,
		"client.id":                 "causeway",
		"enable.idempotence":        true,
		"acks":                      "all",
		"compression.type":          c.Compression,
		"linger.ms":                 int(c.Linger / time.Millisecond),
		"batch.num.messages":        c.BatchMessages,
		"message.timeout.ms":        int(c.DeliveryTimeout / time.Millisecond),
		"enable.metrics.push":       false,
		"go.logs.channel.enable":    true,
		"go.delivery.report.fields": "none",
		"go.events.channel.size":    1024,
	}
	for k, v := range c.Properties {
		m[k] = v
	}
	return m
}

// Sink is a Kafka batch handler. HandleBatch is safe for concurrent use by
// several batch processors; they share one producer.
type Sink[T any] struct {
	cfg   Config[T]
	conf  ckafka.ConfigMap
	log   *slog.Logger
	topic *string // cfg.Topic, shared by every record that goes there

	mu      sync.Mutex
	client  *client // nil after Close
	closed  bool
	retired sync.WaitGroup // closing producers replaced after a fatal error
}

// client is one librdkafka producer and the goroutines draining its events
// and logs.
type client struct {
	p     *ckafka.Producer
	wg    sync.WaitGroup
	mu    sync.Mutex
	fatal error
}

// New validates cfg and starts the producer. Close it when the topology
// has drained.
func New[T any](cfg Config[T]) (*Sink[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Sink[T]{cfg: cfg, conf: cfg.configMap(), log: cfg.Logger.With("sink", "kafka")}
	if cfg.Topic != "" {
		topic := cfg.Topic
		s.topic = &topic
	}
	c, err := s.newClient()
	if err != nil {
		return nil, err
	}
	s.client = c
	return s, nil
}

// NewTweets returns a sink for tweets: unless cfg sets them, the record key
// is the tweet id and the value is the tweet's raw JSON as the stream sent
// it (a tweet without it fails).
func NewTweets(cfg Config[twitter.Tweet]) (*Sink[twitter.Tweet], error) {
	if cfg.Key == nil {
		cfg.Key = func(m *stages.Message[twitter.Tweet]) []byte { return []byte(m.Data.ID) }
	}
	if cfg.Value == nil {
		cfg.Value = func(m *stages.Message[twitter.Tweet]) ([]byte, error) {
			if len(m.Data.Raw) == 0 {
				return nil, fmt.Errorf("tweet %q has no raw JSON to produce", m.Data.ID)
			}
			return m.Data.Raw, nil
		}
	}
	return New(cfg)
}

func (s *Sink[T]) newClient() (*client, error) {
	conf := ckafka.ConfigMap{}
	for k, v := range s.conf {
		conf[k] = v
	}
	p, err := ckafka.NewProducer(&conf)
	if err != nil {
		return nil, fmt.Errorf("kafka: new producer: %w", err)
	}
	c := &client{p: p}
	c.wg.Go(func() {
		for ev := range p.Events() {
			switch e := ev.(type) {
			case ckafka.Error:
				if e.IsFatal() {
					c.mu.Lock()
					c.fatal = e
					c.mu.Unlock()
					s.log.Error("kafka: fatal producer error; the producer is replaced before the next batch", "err", e)
				} else {
					s.log.Warn("kafka: producer error", "code", e.Code().String(), "err", e)
				}
			case *ckafka.Message:
				// Delivery reports go to each batch's channel; one here
				// belongs to nobody.
			default:
				s.log.Debug("kafka: producer event", "event", e.String())
			}
		}
	})
	c.wg.Go(func() { kafkalog.Forward(s.log, p.Logs()) })
	return c, nil
}

func (c *client) fatalErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fatal
}

// close flushes for up to timeout and closes the producer; it returns how
// many records were still undelivered.
func (c *client) close(timeout time.Duration) int {
	left := c.p.Flush(int(timeout / time.Millisecond))
	c.p.Close()
	c.wg.Wait()
	return left
}

// ErrClosed is the error of batches handled after Close.
var ErrClosed = errors.New("kafka: sink closed")

// current returns the producer to use, replacing one that hit a fatal
// error (an idempotent producer that lost its sequence, say).
func (s *Sink[T]) current() (*client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.client != nil {
		if err := s.client.fatalErr(); err == nil {
			return s.client, nil
		}
		old := s.client
		s.client = nil
		// Its records already have delivery reports with the fatal error.
		s.retired.Go(func() { old.close(0) })
	}
	c, err := s.newClient()
	if err != nil {
		return nil, err
	}
	s.client = c
	return c, nil
}

// pending is one record of a batch waiting for its delivery report.
type pending[T any] struct {
	m    *stages.Message[T]
	done bool
}

// HandleBatch produces the batch's messages and waits for their delivery
// reports; it is a stages.BatchHandler. Each message whose record was not
// delivered is failed with the error its report carries; a message whose
// Value fails is failed with that error and not produced. If ctx ends
// first, the messages still waiting are failed with ctx's error.
func (s *Sink[T]) HandleBatch(ctx context.Context, b *stages.Batch[T]) error {
	if len(b.Messages) == 0 {
		return nil
	}
	c, err := s.current()
	if err != nil {
		return err
	}
	reports := make(chan ckafka.Event, len(b.Messages))
	waiting := make([]pending[T], len(b.Messages))
	sent, got := 0, 0
	receive := func(ev ckafka.Event) {
		km, ok := ev.(*ckafka.Message)
		if !ok {
			return
		}
		got++
		pm := km.Opaque.(*pending[T])
		pm.done = true
		if err := km.TopicPartition.Error; err != nil {
			pm.m.Fail(fmt.Errorf("kafka: deliver to %s: %w", topicOf(km), err))
		}
	}
	var retry *time.Timer
	var msg ckafka.Message // librdkafka copies what it needs: reused for every record
	for i, m := range b.Messages {
		err := s.record(m, &msg)
		if err != nil {
			m.Fail(err)
			waiting[i].done = true
			continue
		}
		waiting[i].m = m
		msg.Opaque = &waiting[i]
		for {
			err := c.p.Produce(&msg, reports)
			if err == nil {
				sent++
				break
			}
			var kerr ckafka.Error
			if !errors.As(err, &kerr) || kerr.Code() != ckafka.ErrQueueFull {
				m.Fail(fmt.Errorf("kafka: produce to %s: %w", *msg.TopicPartition.Topic, err))
				waiting[i].done = true
				break
			}
			// The client's queue is full: wait for one of our reports, or
			// for room made by other batches.
			if sent > got {
				select {
				case ev := <-reports:
					receive(ev)
					continue
				case <-ctx.Done():
				}
			} else {
				if retry == nil {
					retry = time.NewTimer(5 * time.Millisecond)
				} else {
					retry.Reset(5 * time.Millisecond)
				}
				select {
				case <-retry.C:
					continue
				case <-ctx.Done():
				}
			}
			s.failWaiting(waiting, fmt.Errorf("kafka: produce: %w", ctx.Err()))
			return nil
		}
	}
	// librdkafka reports every record within DeliveryTimeout; the guard
	// only protects against a report that never comes.
	guard := time.NewTimer(2*s.cfg.DeliveryTimeout + 10*time.Second)
	defer guard.Stop()
	for got < sent {
		select {
		case ev := <-reports:
			receive(ev)
		case <-ctx.Done():
			s.failWaiting(waiting, fmt.Errorf("kafka: waiting for delivery reports: %w", ctx.Err()))
			return nil
		case <-guard.C:
			s.failWaiting(waiting, fmt.Errorf("kafka: no delivery report within %v", 2*s.cfg.DeliveryTimeout+10*time.Second))
			return nil
		}
	}
	return nil
}

func (s *Sink[T]) failWaiting(waiting []pending[T], err error) {
	for i := range waiting {
		if !waiting[i].done && waiting[i].m != nil {
			waiting[i].m.Fail(err)
		}
	}
}

// record makes msg m's Kafka record.
func (s *Sink[T]) record(m *stages.Message[T], msg *ckafka.Message) error {
	topic := s.topic
	if s.cfg.TopicFunc != nil {
		if t := s.cfg.TopicFunc(m); t != "" {
			topic = &t
		}
	}
	if topic == nil {
		return errors.New("kafka: TopicFunc returned no topic and Config.Topic is empty")
	}
	value, err := s.cfg.Value(m)
	if err != nil {
		return fmt.Errorf("kafka: value for %s: %w", *topic, err)
	}
	*msg = ckafka.Message{
		TopicPartition: ckafka.TopicPartition{Topic: topic, Partition: ckafka.PartitionAny},
		Key:            s.cfg.Key(m),
		Value:          value,
		Headers:        s.cfg.Headers(m),
	}
	return nil
}

func topicOf(km *ckafka.Message) string {
	if km.TopicPartition.Topic == nil {
		return "?"
	}
	return *km.TopicPartition.Topic
}

// Close flushes what the producer still holds, for up to
// Config.CloseTimeout, and closes it. After Close, HandleBatch fails
// batches with ErrClosed. Close is safe to call more than once.
func (s *Sink[T]) Close() error {
	s.mu.Lock()
	c := s.client
	s.client, s.closed = nil, true
	s.mu.Unlock()
	s.retired.Wait()
	if c == nil {
		return nil
	}
	if left := c.close(s.cfg.CloseTimeout); left > 0 {
		return fmt.Errorf("kafka: close: %d records undelivered after %v", left, s.cfg.CloseTimeout)
	}
	return nil
}
