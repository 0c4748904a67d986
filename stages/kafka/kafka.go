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
//
// The sink knows nothing of the data it produces: the topology supplies
// each record's value (Config.Value) and, optionally, its key, headers and
// topic. A message whose record can never be produced (its Value function
// fails, or the brokers refuse the record itself, as too large say) fails
// with a *RecordError, a permanent data error that a dead-letter step can
// tell apart from an outage.
//
// Throughput comes from batches in flight, not from big batches: a batch
// processor only waits on delivery reports, so give the batcher many of
// them (the tweet topology adapts between 1 and 32). Give the topic enough
// partitions for them too: an idempotent librdkafka producer allows 5
// requests in flight per partition, and while a partition has more records
// ready than those can carry its broker thread polls without sleeping
// (measured on 4 partitions of an in-process broker: ~115,000 polls a
// second, a fifth of 2 cores; none on 8).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ckafka "github.com/confluentinc/confluent-kafka-go/v2/kafka"

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
	// alone, with a *RecordError. Required.
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

// RecordError is the error of a message whose record cannot be produced
// however often it is tried: its Value function failed, no topic could be
// chosen for it, or the client or the brokers refused the record itself
// (larger than the message size limit, say, or invalid). It is a permanent
// data error, unlike a delivery timeout or a broker outage, which a later
// attempt may get past: a dead-letter step finds it with errors.As.
type RecordError struct {
	// Topic is the topic the record was for; "" when none could be chosen.
	Topic string
	// Err is why: the Value function's error, or the client's.
	Err error
}

func (e *RecordError) Error() string {
	if e.Topic == "" {
		return "kafka: record: " + e.Err.Error()
	}
	return "kafka: record for " + e.Topic + ": " + e.Err.Error()
}

// Unwrap returns why the record could not be produced.
func (e *RecordError) Unwrap() error { return e.Err }

// Permanent reports true: trying the message again does not help. It lets a
// dead-letter step tell permanent data errors of any sink apart by one
// method (interface{ Permanent() bool }) without importing this package.
func (e *RecordError) Permanent() bool { return true }

// refused reports whether a produce or delivery error is about the record
// itself rather than the cluster's state.
func refused(err error) bool {
	var kerr ckafka.Error
	if !errors.As(err, &kerr) {
		return false
	}
	switch kerr.Code() {
	case ckafka.ErrMsgSizeTooLarge, ckafka.ErrInvalidMsgSize, ckafka.ErrInvalidRecord:
		return true
	}
	return false
}

// pending is one record of a batch waiting for its delivery report.
type pending[T any] struct {
	m    *stages.Message[T]
	done bool
}

// batchRun is one HandleBatch call: its records and the delivery reports
// they wait for.
type batchRun[T any] struct {
	s       *Sink[T]
	c       *client
	reports chan ckafka.Event
	waiting []pending[T]
	sent    int // records the client took
	got     int // delivery reports received
	retry   *time.Timer
}

// HandleBatch produces the batch's messages and waits for their delivery
// reports; it is a stages.BatchHandler. Each message whose record was not
// delivered is failed with the error its report carries (a *RecordError
// when the brokers refused the record itself); a message whose record
// cannot be made (Value fails) is failed with a *RecordError and not
// produced. If ctx ends first, the messages still waiting are failed with
// ctx's error.
func (s *Sink[T]) HandleBatch(ctx context.Context, b *stages.Batch[T]) error {
	if len(b.Messages) == 0 {
		return nil
	}
	c, err := s.current()
	if err != nil {
		return err
	}
	r := &batchRun[T]{s: s, c: c, reports: make(chan ckafka.Event, len(b.Messages)), waiting: make([]pending[T], len(b.Messages))}
	for i, m := range b.Messages {
		r.waiting[i].m = m // messages not produced when ctx ends fail too
	}
	var msg ckafka.Message // librdkafka copies what it needs: reused for every record
	for i, m := range b.Messages {
		if err := s.record(m, &msg); err != nil {
			m.Fail(err)
			r.waiting[i].done = true
			continue
		}
		msg.Opaque = &r.waiting[i]
		if err := r.produce(ctx, &msg); err != nil {
			r.failWaiting(fmt.Errorf("kafka: produce: %w", err))
			return nil
		}
	}
	r.await(ctx)
	return nil
}

// produce hands msg to the client, waiting while its queue is full. It
// fails msg's message when the client refuses it, and returns ctx's error
// if ctx ends while it waits.
func (r *batchRun[T]) produce(ctx context.Context, msg *ckafka.Message) error {
	p := msg.Opaque.(*pending[T])
	for {
		err := r.c.p.Produce(msg, r.reports)
		if err == nil {
			r.sent++
			return nil
		}
		var kerr ckafka.Error
		if !errors.As(err, &kerr) || kerr.Code() != ckafka.ErrQueueFull {
			topic := *msg.TopicPartition.Topic
			if refused(err) {
				err = &RecordError{Topic: topic, Err: err}
			} else {
				err = fmt.Errorf("kafka: produce to %s: %w", topic, err)
			}
			p.m.Fail(err)
			p.done = true
			return nil
		}
		// The client's queue is full: wait for one of our reports, or for
		// room made by other batches.
		if r.sent > r.got {
			select {
			case ev := <-r.reports:
				r.receive(ev)
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if r.retry == nil {
			r.retry = time.NewTimer(5 * time.Millisecond)
		} else {
			r.retry.Reset(5 * time.Millisecond)
		}
		select {
		case <-r.retry.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// await receives the delivery reports of every record sent.
func (r *batchRun[T]) await(ctx context.Context) {
	// librdkafka reports every record within DeliveryTimeout; the guard
	// only protects against a report that never comes.
	limit := 2*r.s.cfg.DeliveryTimeout + 10*time.Second
	guard := time.NewTimer(limit)
	defer guard.Stop()
	for r.got < r.sent {
		select {
		case ev := <-r.reports:
			r.receive(ev)
		case <-ctx.Done():
			r.failWaiting(fmt.Errorf("kafka: waiting for delivery reports: %w", ctx.Err()))
			return
		case <-guard.C:
			r.failWaiting(fmt.Errorf("kafka: no delivery report within %v", limit))
			return
		}
	}
}

// receive settles the message of one delivery report.
func (r *batchRun[T]) receive(ev ckafka.Event) {
	km, ok := ev.(*ckafka.Message)
	if !ok {
		return
	}
	r.got++
	p := km.Opaque.(*pending[T])
	p.done = true
	switch err := km.TopicPartition.Error; {
	case err == nil:
	case refused(err):
		p.m.Fail(&RecordError{Topic: topicOf(km), Err: err})
	default:
		p.m.Fail(fmt.Errorf("kafka: deliver to %s: %w", topicOf(km), err))
	}
}

// failWaiting fails every message still waiting for its report with err.
func (r *batchRun[T]) failWaiting(err error) {
	for i := range r.waiting {
		if !r.waiting[i].done {
			r.waiting[i].m.Fail(err)
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
		return &RecordError{Err: errors.New("TopicFunc returned no topic and Config.Topic is empty")}
	}
	value, err := s.cfg.Value(m)
	if err != nil {
		return &RecordError{Topic: *topic, Err: fmt.Errorf("value: %w", err)}
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
