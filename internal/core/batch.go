package core

import (
	"context"
	"errors"
	"fmt"
)

// Trigger says why a batcher handed over a batch.
type Trigger uint8

const (
	// TriggerSize: the batch reached its batcher's BatchSize.
	TriggerSize Trigger = iota + 1
	// TriggerTimeout: BatchTimeout passed since the batch's first message.
	TriggerTimeout
	// TriggerDrain: the topology is shutting down and flushed the batch.
	TriggerDrain
	// TriggerFlush: a message of the batch asked for it (Message.FlushBatch).
	TriggerFlush
	// TriggerReplay: the batch is read back from the batcher's spill.
	TriggerReplay
)

func (t Trigger) String() string {
	switch t {
	case TriggerSize:
		return "size"
	case TriggerTimeout:
		return "timeout"
	case TriggerDrain:
		return "drain"
	case TriggerFlush:
		return "flush"
	case TriggerReplay:
		return "replay"
	}
	return fmt.Sprintf("Trigger(%d)", uint8(t))
}

// BatchInfo describes a batch.
type BatchInfo struct {
	// Batcher is the name of the batcher that made the batch.
	Batcher string
	// Key is the batch key shared by every message in the batch.
	Key string
	// Partition is the batch processor partition the batch belongs to; 0
	// when the batcher is not partitioned.
	Partition int
	// Size is the number of messages in the batch when it was made.
	Size int
	// Trigger says what closed the batch: size, timeout or drain.
	Trigger Trigger
	// Attempt counts calls to the handler for this batch, from 1. A retry
	// sees only the messages that failed the previous attempt.
	Attempt int
}

// Batch is what a batch handler receives.
//
// Messages point into storage the topology owns until the batch has been
// acknowledged; the slice itself is the handler's own copy. The handler may
// change the messages (Data, status) and may fail single messages with
// Messages[i].Fail. A handler that drops messages from the slice (returns
// fewer than it got, or filters it in place) has the missing ones failed
// with ErrMissingFromBatch: nothing is lost.
type Batch[T any] struct {
	Messages []*Message[T]
	BatchInfo
}

// BatchHandler handles a batch. A non-nil error or a panic fails every
// message of the batch with that error (unless a retry policy succeeds
// later); the batcher keeps running.
type BatchHandler[T any] func(ctx context.Context, b *Batch[T]) error

// ErrMissingFromBatch is the error of a message that a batch handler dropped
// from its batch.
var ErrMissingFromBatch = errors.New("stages: batch handler dropped the message from its batch")

// Outage says what a batcher does when its sink fails a batch with errors
// that may pass (a connection lost, a server restarting), as opposed to
// permanent ones (a row the database refuses; see Permanent).
type Outage uint8

const (
	// OutageFail retries as the batcher's RetryPolicy says, then fails the
	// messages. It is the zero value.
	OutageFail Outage = iota
	// OutageBlock retries transient failures without a budget, with capped
	// back-off, holding the batch (and so, once the batcher's pool is busy,
	// its processors and the producer) until the sink takes it. Right for
	// pull sources such as Kafka, which keep the data meanwhile. Permanent
	// failures still fail. A hard stop (ShutdownTimeout) ends the retries.
	OutageBlock
	// OutageSpill appends what the sink cannot take to a local write-ahead
	// log, acknowledges it as held, and replays it in order when the sink
	// returns. Right for push sources, which cannot wait.
	OutageSpill
)

func (o Outage) String() string {
	switch o {
	case OutageFail:
		return "fail"
	case OutageBlock:
		return "block"
	case OutageSpill:
		return "spill"
	}
	return fmt.Sprintf("Outage(%d)", uint8(o))
}

// PermanentError marks an error that retrying cannot fix: bad data, a
// record too large, a constraint the row violates. Batch handlers fail such
// messages with Permanent(err); OutageBlock and OutageSpill do not retry
// them, and HandleFailed can dead-letter them.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports true.
func (e *PermanentError) Permanent() bool { return true }

// Permanent marks err as permanent (nil stays nil).
func Permanent(err error) error {
	if err == nil || IsPermanent(err) {
		return err
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or an error it wraps, says retrying
// cannot fix it: it has a Permanent() bool method that returns true (as
// *PermanentError and the sinks' data errors do), or it is a panic.
func IsPermanent(err error) bool {
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		return true
	}
	var pe *PanicError
	return errors.As(err, &pe)
}
