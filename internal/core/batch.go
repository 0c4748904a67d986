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
