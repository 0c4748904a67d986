package spill

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
)

// DefaultMaxBytes is the size limit of a log when Options.MaxBytes is 0:
// 1 GiB of segment files.
const DefaultMaxBytes = 1 << 30

// DefaultSegmentBytes is the segment size when Options.SegmentBytes is 0
// and MaxBytes is at least 16 times as large; below that, the default is
// MaxBytes/16 (at least 4 KiB, at most MaxBytes), so that consumed records
// waiting for their segment to be deleted never hold much of the limit.
const DefaultSegmentBytes = 64 << 20

// minMaxBytes is the smallest MaxBytes accepted: room for a segment header
// and a small record.
const minMaxBytes = 64

// SyncPolicy says when the log forces its writes to stable storage.
type SyncPolicy int

const (
	// SyncAlways, the default, fsyncs the segment file before Append
	// returns, the segment file and the directory when a segment is
	// created, and the checkpoint file and the directory before Ack
	// returns. What Append accepted survives a crash of the process, of
	// the operating system and a power cut; what Ack consumed is not
	// replayed again. It costs one fsync per Append and two per Ack: from
	// well under a millisecond each (an SSD with a protected write cache)
	// to several (a cloud block device: 1 to 3 ms where BenchmarkAppend
	// ran) or tens (a spinning disk).
	SyncAlways SyncPolicy = iota

	// SyncNone leaves writes in the operating system's page cache. What
	// Append accepted survives a crash of the process (kill -9, a panic),
	// not one of the operating system or a power cut, which can lose held
	// groups (Open cuts what is left of them) and bring consumed records
	// back. For tests and for data that may be lost.
	SyncNone
)

// String returns the policy's name.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "SyncAlways"
	case SyncNone:
		return "SyncNone"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Options configures a Log. The zero value is a usable default: 1 GiB,
// 64 MiB segments, fsync on every Append and Ack.
type Options struct {
	// MaxBytes bounds the bytes of the log's segment files: an Append that
	// would take them past it fails with ErrFull. It counts framing (9
	// bytes a record, 16 a segment) and the records of the oldest segment
	// that were consumed already, which are deleted with their segment
	// once all of it is consumed: at most one segment's worth. Default
	// DefaultMaxBytes.
	MaxBytes int64

	// SegmentBytes is the size past which the writer starts a new segment
	// file. A group never spans two segments, so a segment holding one
	// group larger than this is larger than this. Default: see
	// DefaultSegmentBytes.
	SegmentBytes int64

	// Sync is when writes are forced to disk. Default SyncAlways.
	Sync SyncPolicy

	// FileMode is the permission of the files created. Default 0o600.
	FileMode os.FileMode

	// Logger receives the log's messages: torn tails cut at Open, damaged
	// segments, write errors. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports every bad field, naming it.
func (o Options) Validate() error {
	var errs []error
	if o.MaxBytes != 0 && o.MaxBytes < minMaxBytes {
		errs = append(errs, fmt.Errorf("spill: Options.MaxBytes must be 0 (default) or >= %d, got %d", minMaxBytes, o.MaxBytes))
	}
	if o.SegmentBytes < 0 {
		errs = append(errs, fmt.Errorf("spill: Options.SegmentBytes must be >= 0, got %d", o.SegmentBytes))
	}
	if max := o.withDefaults().MaxBytes; o.SegmentBytes > max {
		errs = append(errs, fmt.Errorf("spill: Options.SegmentBytes must be <= MaxBytes (%d), got %d", max, o.SegmentBytes))
	}
	if o.Sync != SyncAlways && o.Sync != SyncNone {
		errs = append(errs, fmt.Errorf("spill: Options.Sync must be SyncAlways or SyncNone, got %v", o.Sync))
	}
	if o.FileMode&^os.ModePerm != 0 {
		errs = append(errs, fmt.Errorf("spill: Options.FileMode must hold permission bits only, got %v", o.FileMode))
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = min(DefaultSegmentBytes, max(o.MaxBytes/16, 4<<10), o.MaxBytes)
	}
	if o.FileMode == 0 {
		o.FileMode = 0o600
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
