package stages

import (
	"context"

	"github.com/causeway-go/causeway/internal/core"
)

// The runtime that moves messages (the producer stage's buffer, processors,
// batchers, the acknowledger) lives in an internal package that package
// topology drives; these declarations are the contracts a program uses.
// They are aliases, so a value of one is a value of the other.

// Message is one unit of data flowing through a topology: its Data, the
// Metadata its source attached (a Kafka record's topic, partition and
// offset, say) and the Acker told when it leaves the topology.
//
// Stages keep messages by value in slices they own and hand handlers
// pointers into them; a handler must not keep the pointer after it returns.
// A processor handler may change Data and call:
//
//   - Fail(err): the message goes to no batcher; HandleFailed sees it and it
//     is acknowledged as failed. Failed reports whether it was failed, Err
//     with what (ErrFailed for a nil error).
//   - Route(names...): send it to those batchers (several: fan-out,
//     acknowledged once after all its batches; none: acknowledged right
//     after processing). A name the topology does not declare fails it with
//     an *UnknownBatcherError. Routes lists where it goes.
//   - SetBatchKey(key): batch it only with messages of the same key
//     (BatchKey returns it).
//   - FlushBatch(): hand the batch it joins over at once, as if full.
//
// A batch handler may call Fail on single messages of its batch.
type Message[T any] = core.Message[T]

// Batch is what a batch handler receives: pointers to its messages (the
// slice is the handler's own; the messages live in the topology's storage
// until the batch is acknowledged) and the BatchInfo that describes it. A
// handler may fail single messages with Messages[i].Fail; messages it drops
// from the slice are failed with ErrMissingFromBatch.
type Batch[T any] = core.Batch[T]

// BatchInfo describes a batch: its batcher, batch key, partition, size,
// the Trigger that closed it, and the attempt (from 1; a retry sees only
// the messages that failed the previous attempt).
type BatchInfo = core.BatchInfo

// BatchHandler handles a batch. A non-nil error or a panic fails every
// message of the batch (unless a retry succeeds later); the batcher lives
// on.
type BatchHandler[T any] = core.BatchHandler[T]

// Trigger says why a batcher handed over a batch.
type Trigger = core.Trigger

// The triggers.
const (
	TriggerSize    = core.TriggerSize    // the batch reached BatchSize
	TriggerTimeout = core.TriggerTimeout // BatchTimeout passed since its first message
	TriggerDrain   = core.TriggerDrain   // the topology is draining
	TriggerFlush   = core.TriggerFlush   // a message asked for it (Message.FlushBatch)
	TriggerReplay  = core.TriggerReplay  // read back from the batcher's spill
)

// Producer is a source of messages. The producer stage calls Run once per
// goroutine of its concurrency, each with its own *Emitter, and Run emits
// until its source is exhausted (it returns nil) or ctx ends (it returns nil
// or ctx's error). Any other error stops the topology: it drains what it
// holds and returns that error.
//
// A pull producer (a Kafka consumer, a channel) loops on Emitter.Demand and
// emits the demand it was told, never more. A push producer (a network
// stream) emits whenever data arrives; the bounded buffer absorbs bursts
// and drops by its Keep policy when full, counting every drop. After ctx
// ends a producer may still emit what it has already read, until it
// returns. A producer that implements io.Closer is closed once the topology
// has drained.
type Producer[T any] = core.Producer[T]

// ProducerFunc adapts a function to the Producer interface.
type ProducerFunc[T any] = core.ProducerFunc[T]

// Emitter is a producer goroutine's handle on its stage's buffer; it is not
// safe for concurrent use.
//
//   - Demand(ctx) blocks until processors want messages that are neither
//     buffered nor promised to another producer goroutine, and returns how
//     many. Demand told to one goroutine that it does not use within a short
//     lease (or leaves unused when it returns) is offered to the others;
//     under a rate limit only what the limit can let out is told.
//   - TryDemand() is Demand without the wait: the demand there is now.
//   - Emit(ctx, m) and EmitAll(ctx, msgs) add messages to the buffer (they
//     are copied). Messages within the told demand wait for room rather
//     than drop; beyond it, a full buffer drops by its Keep policy (counted)
//     or, with Block, waits for room or for ctx.
//   - Keep() returns the stage's Keep policy.
//
// Demand returns ErrClosed once the topology drains (a producer may still
// emit what it has read), and Emit once the stage takes no more input.
type Emitter[T any] = core.Emitter[T]

// FromSlice returns a pull producer that emits data in order, as demand
// allows, and then finishes, so the topology drains and Run returns.
func FromSlice[T any](data ...T) Producer[T] { return core.FromSlice(data...) }

// Keep says what a full producer-stage buffer does with a new message.
type Keep = core.Keep

// The keep policies.
const (
	// KeepLast drops the oldest buffered message to make room for the new
	// one (GenStage's buffer_keep: :last). It is the zero value.
	KeepLast = core.KeepLast
	// KeepFirst drops the new message and keeps what is buffered.
	KeepFirst = core.KeepFirst
	// Block makes Emit wait until there is room (or its context ends); for
	// producers that can be slowed.
	Block = core.Block
)

// Acknowledger is told how messages left the topology: one Ack call per
// acknowledger per batch (or per processor chunk, for messages that go to
// no batcher), with the successful and the failed messages of that group.
// The slices and messages are valid only during the call. Any type works,
// comparable or not; messages share one call when they carry the same
// acknowledger value.
type Acknowledger[T any] = core.Acknowledger[T]

// AckFunc adapts a function to the Acknowledger interface; use a pointer to
// one AckFunc for all the messages it should be told of.
type AckFunc[T any] = core.AckFunc[T]

// RateLimit allows at most Messages messages per Interval out of the
// producer stage; the zero value means no limit. Validate reports a limit
// that is neither zero nor fully set.
type RateLimit = core.RateLimit

// RetryPolicy re-runs failed batches before their messages count as
// failed: Attempts calls in all, waiting Backoff (doubling, capped by
// MaxBackoff) between them, for the failures Retryable accepts.
type RetryPolicy = core.RetryPolicy

// Hooks are optional callbacks on stage events, the role Broadway's
// telemetry plays. They run on the stage's goroutine: keep them fast. A
// panic in one is logged and contained.
type Hooks = core.Hooks

// ProcessorEvent describes a processor goroutine starting or stopping.
type ProcessorEvent = core.ProcessorEvent

// BatchEvent describes a batch handler call.
type BatchEvent = core.BatchEvent

// DropEvent reports messages a full producer-stage buffer dropped.
type DropEvent = core.DropEvent

// Stats is a snapshot of a topology's counters. Conservation holds at
// every snapshot: Producer.Emitted = Acked + Failed + Dropped + InFlight.
type Stats = core.Stats

// BufferStats is a snapshot of the producer stage.
type BufferStats = core.BufferStats

// ProcessorStats counts what the processor pool did.
type ProcessorStats = core.ProcessorStats

// BatcherStats counts what one batcher and its batch processors did.
type BatcherStats = core.BatcherStats

// HistogramSnapshot is a histogram's counts at one moment (batch sizes,
// latencies); Quantile, Mean and Cumulative read it.
type HistogramSnapshot = core.HistogramSnapshot

// Worker identifies the goroutine running a handler: a processor (Batcher
// is "") or a batch processor of the named batcher, by Index in its pool.
type Worker = core.Worker

// WorkerFrom returns the worker running the handler that got ctx, and false
// for a context no processor or batch processor handed out.
func WorkerFrom(ctx context.Context) (Worker, bool) { return core.WorkerFrom(ctx) }

// PanicError is the error of a message or batch whose user callback (a
// handler, a size or partition function) panicked, with the panic value and
// the stack.
type PanicError = core.PanicError

// UnknownBatcherError is the error of a message routed to a batcher the
// topology does not declare; it names the known batchers.
type UnknownBatcherError = core.UnknownBatcherError

// MaxBatchers is the most batchers one topology can declare.
const MaxBatchers = core.MaxBatchers

// Errors a program may test for with errors.Is.
var (
	// ErrFailed is the error of a message failed with a nil error.
	ErrFailed = core.ErrFailed
	// ErrClosed is returned by Emitter methods once the producer stage takes
	// no more input.
	ErrClosed = core.ErrClosed
	// ErrMissingFromBatch is the error of a message a batch handler dropped
	// from its batch.
	ErrMissingFromBatch = core.ErrMissingFromBatch
	// ErrShutdownTimeout is wrapped by Topology.Run's error when the drain
	// did not finish within ShutdownTimeout.
	ErrShutdownTimeout = core.ErrShutdownTimeout
)

// DeadLetteredError is the error of a failed message that a dead-letter
// destination holds: a HandleFailed hook that stored the message fails it
// again with &DeadLetteredError{Err: m.Err(), Destination: ...}. Sources
// that must not skip data (the Kafka source commits an offset only past
// messages that succeeded or were dead-lettered) test it with
// IsDeadLettered.
type DeadLetteredError = core.DeadLetteredError

// IsDeadLettered reports whether err says a dead-letter destination holds
// the message.
func IsDeadLettered(err error) bool { return core.IsDeadLettered(err) }

// Outage says what a batcher does while its sink fails batches with errors
// that may pass: OutageFail (the zero value: its RetryPolicy, then fail),
// OutageBlock (retry without a budget with capped back-off, holding
// back-pressure: for pull sources, which keep the data) or OutageSpill (a
// local write-ahead log, acknowledged as held and replayed in order: for
// push sources, which cannot wait).
type Outage = core.Outage

// The outage policies.
const (
	OutageFail  = core.OutageFail
	OutageBlock = core.OutageBlock
	OutageSpill = core.OutageSpill
)

// PermanentError marks an error retrying cannot fix (bad data, a record too
// large): OutageBlock and OutageSpill do not retry it, and HandleFailed can
// dead-letter the message. Make one with Permanent.
type PermanentError = core.PermanentError

// Permanent marks err as permanent; nil stays nil.
func Permanent(err error) error { return core.Permanent(err) }

// IsPermanent reports whether err says retrying cannot fix it: it (or an
// error it wraps) has a Permanent() bool method returning true, or it is a
// *PanicError.
func IsPermanent(err error) bool { return core.IsPermanent(err) }

// SpillConfig configures a batcher's spill for OutageSpill: Dir (one per
// batcher), MaxBytes (default 1 GiB; a full spill holds the batcher back
// until there is room), and Encode/Decode for a message's Data. Replayed
// messages carry Data only: their source was acknowledged when they were
// held.
type SpillConfig[T any] = core.SpillConfig[T]

// SpillStats counts what a batcher's spill did (BatcherStats.Spill).
type SpillStats = core.SpillStats
