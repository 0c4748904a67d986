package spill

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// ErrFull is the error of an Append that would take the log past
// Options.MaxBytes. Nothing of the group was written; it may succeed once
// the reader has acknowledged enough for a segment to be deleted.
var ErrFull = errors.New("spill: log is full")

// ErrTooLarge is the error of an Append whose group could never fit: its
// frames and a segment header are larger than Options.MaxBytes, or one
// record is larger than 1 GiB. Nothing of the group was written.
var ErrTooLarge = errors.New("spill: group larger than the log can hold")

// ErrClosed is the error of a call on a closed Log, and of a Wait that
// Close ended.
var ErrClosed = errors.New("spill: log is closed")

// ErrLocked is the error of an Open of a directory that another Log, in
// this process or another, has open.
var ErrLocked = errors.New("spill: directory in use by another Log")

// ErrCorrupt is the error of a Peek that found damaged bytes where
// complete records were written: the disk changed them after Open checked
// them. Closing and opening the log again cuts the segment at the damage,
// losing the records after it in that segment (logged, and counted in
// Stats.TornBytes), and goes on with the next.
var ErrCorrupt = errors.New("spill: damaged record")

// Position is a place in the log: just past a record, or the start. Ack
// takes one to say how far the records were consumed. The zero Position is
// the start of an empty log.
type Position struct {
	seg uint64 // segment id
	off int64  // byte offset in the segment
	seq uint64 // records before this position, since the log was created
}

// Seq returns the number of records before p since the log was created:
// the first record ends at Seq 1. It goes on counting across restarts.
func (p Position) Seq() uint64 { return p.seq }

// String returns p as "segment 3 offset 4096 (after record 17)".
func (p Position) String() string {
	return fmt.Sprintf("segment %d offset %d (after record %d)", p.seg, p.off, p.seq)
}

// Record is one record read back from the log.
type Record struct {
	// Data is the record as it was appended. Peek allocates it; it is the
	// caller's to keep or change.
	Data []byte
	// End is the position just past the record: Ack(End) consumes this
	// record and every one before it.
	End Position
}

// Stats is a snapshot of a Log's counters. Record counts are records, not
// Append groups; the "since Open" counters start at 0 with each Open.
type Stats struct {
	Records   int64 // records held: appended and not yet acknowledged (Len)
	DiskBytes int64 // bytes of the segment files, what Options.MaxBytes bounds (Bytes)
	Segments  int64 // segment files
	Recovered int64 // records Open found held, to be replayed first

	Appended     int64 // records appended since Open
	Groups       int64 // successful Append calls since Open
	Refused      int64 // records refused with ErrFull or ErrTooLarge since Open
	AppendErrors int64 // Append calls failed by I/O since Open; their records were not held
	Replayed     int64 // records returned by Peek since Open; one peeked twice counts twice
	Acked        int64 // records consumed by Ack since Open
	TornBytes    int64 // bytes cut at Open: torn tails of unfinished Appends, and damaged bytes
	RemoveErrors int64 // consumed segments whose file could not be deleted
}

type counters struct {
	recovered, appended, groups, refused, appendErrors atomic.Int64
	replayed, acked, tornBytes, removeErrors           atomic.Int64
}

// segment is a segment file as the log knows it: its id and the bytes of
// it that hold complete groups.
type segment struct {
	id   uint64
	size int64
}

// Log is a durable, bounded, ordered log of records in a directory: the
// place a batcher puts the messages its sink cannot take, to replay them
// when it can. See the package documentation for what it guarantees.
//
// A Log is safe for one goroutine that appends and one that reads (Peek,
// Ack, Wait) at the same time; calls of the same kind take turns.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger
	sync bool
	lock *os.File // holds the directory's lock; nil where there is none

	// The writer's state, under wmu.
	wmu    sync.Mutex
	wf     *os.File // the active segment; nil: the next Append starts a new one
	wid    uint64   // wf's segment id
	wsize  int64    // bytes of complete groups in wf
	nextID uint64   // id of the next segment
	wbuf   []byte

	// The reader's state, under rmu.
	rmu sync.Mutex
	rf  *os.File // the segment read last, kept open
	rid uint64   // rf's segment id
	fr  frameReader

	// Shared state, under mu. Lock order: wmu, rmu, mu.
	mu     sync.Mutex
	segs   []segment // oldest first; the writer appends to the last
	head   Position  // how far the records were acknowledged
	tail   uint64    // seq of the next record appended
	disk   int64     // sum of segs' sizes
	closed bool
	notify chan struct{} // closed at Close, and at an Append when waiting
	// waiting says a Wait took notify: the next Append closes and
	// replaces it (and only then, saving an allocation per Append).
	waiting bool

	stats counters
}

// Open opens the log in dir, creating the directory if it is missing. It
// reads the checkpoint, deletes the segments it says were consumed, checks
// every frame of the others, and cuts off a torn tail (an Append a crash
// interrupted; it had not returned) or damaged bytes, logging and
// counting them (Stats.TornBytes). The records found are replayed first:
// Len reports them. Its cost is a read of the unconsumed bytes.
//
// One Log at a time may use a directory: Open locks it (on Unix systems,
// with flock on dir/lock) and fails with ErrLocked while another Log holds
// it; Close, or the end of the process, releases it.
func Open(dir string, opts Options) (*Log, error) {
	if dir == "" {
		return nil, errors.New("spill: Open: dir must be set")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spill: open %s: %w", dir, err)
	}
	l := &Log{
		dir:    dir,
		opts:   opts,
		log:    opts.Logger.With("spill", dir),
		sync:   opts.Sync == SyncAlways,
		notify: make(chan struct{}),
	}
	lock, err := lockDir(dir, opts.FileMode)
	if err != nil {
		return nil, fmt.Errorf("spill: open %s: %w", dir, err)
	}
	l.lock = lock
	if err := l.recover(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("spill: open %s: %w", dir, err)
	}
	return l, nil
}

// Len returns the number of records held: appended and not yet
// acknowledged.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return int(l.tail - l.head.seq)
}

// Bytes returns the bytes of the log's segment files, what
// Options.MaxBytes bounds.
func (l *Log) Bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.disk
}

// Stats returns a snapshot of the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	s := Stats{
		Records:   int64(l.tail - l.head.seq),
		DiskBytes: l.disk,
		Segments:  int64(len(l.segs)),
	}
	l.mu.Unlock()
	c := &l.stats
	s.Recovered = c.recovered.Load()
	s.Appended = c.appended.Load()
	s.Groups = c.groups.Load()
	s.Refused = c.refused.Load()
	s.AppendErrors = c.appendErrors.Load()
	s.Replayed = c.replayed.Load()
	s.Acked = c.acked.Load()
	s.TornBytes = c.tornBytes.Load()
	s.RemoveErrors = c.removeErrors.Load()
	return s
}

// Close waits for a running Append, Peek or Ack, ends any Wait with
// ErrClosed and closes the files. What was appended stays held for the
// next Open. Closing twice is a no-op.
func (l *Log) Close() error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.notify)
	l.mu.Unlock()
	if err := l.closeFiles(); err != nil {
		return fmt.Errorf("spill: close %s: %w", l.dir, err)
	}
	return nil
}

func (l *Log) closeFiles() error {
	var errs []error
	if l.wf != nil {
		errs = append(errs, l.wf.Close())
		l.wf = nil
	}
	if l.rf != nil {
		errs = append(errs, l.rf.Close())
		l.rf = nil
	}
	if l.lock != nil {
		errs = append(errs, l.lock.Close())
		l.lock = nil
	}
	return errors.Join(errs...)
}
