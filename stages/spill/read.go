package spill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Peek returns up to max of the oldest records held, in the order they
// were appended, without consuming them: it returns the same records again
// until Ack consumes them. It returns no records and a nil error when none
// are held; Wait waits for some.
//
// It reads only what Append has completed (and synced), never part of a
// group being appended. If it meets bytes that are no longer the frames
// written, it returns the records before them, or, when there are none, an
// error wrapping ErrCorrupt that names the segment and offset.
//
// Its cost is a read of the records from the segment files (mostly the
// page cache, when they were appended recently) and their checksums; the
// records' Data share a few allocations, growing by doubling.
func (l *Log) Peek(max int) ([]Record, error) {
	if max <= 0 {
		return nil, nil
	}
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	pos, end := l.head, l.tail
	segs := slices.Clone(l.segs)
	l.mu.Unlock()

	max = int(min(uint64(max), end-pos.seq))
	var recs []Record
	var data []byte
	for len(recs) < max {
		s, ok := nextSegment(segs, &pos)
		if !ok {
			break
		}
		f, err := l.readFile(s.id)
		if err != nil {
			return l.peeked(recs, fmt.Errorf("spill: read %s: %w", segPath(l.dir, s.id), err))
		}
		l.fr.reset(io.NewSectionReader(f, pos.off, s.size-pos.off), pos.off, s.size)
		for len(recs) < max {
			start := len(data)
			var err error
			data, _, err = l.fr.next(data)
			if err == io.EOF {
				break
			}
			if errors.Is(err, errTorn) || errors.Is(err, errDamaged) {
				err = fmt.Errorf("%w: %s offset %d: %v", ErrCorrupt, segPath(l.dir, s.id), pos.off, err)
			}
			if err != nil {
				return l.peeked(recs, err)
			}
			pos.off, pos.seq = l.fr.off, pos.seq+1
			recs = append(recs, Record{Data: data[start:len(data):len(data)], End: pos})
		}
	}
	return l.peeked(recs, nil)
}

// peeked counts the records Peek returns, and drops err when there are
// some: the next Peek reports it.
func (l *Log) peeked(recs []Record, err error) ([]Record, error) {
	if len(recs) > 0 {
		err = nil
	}
	l.stats.replayed.Add(int64(len(recs)))
	return recs, err
}

// nextSegment moves pos to the first record at or after it that segs
// hold, and returns its segment. It returns false when there is no such
// record.
func nextSegment(segs []segment, pos *Position) (segment, bool) {
	for _, s := range segs {
		if s.id < pos.seg {
			continue
		}
		if s.id > pos.seg {
			pos.seg, pos.off = s.id, segHeaderLen
		}
		if pos.off < s.size {
			return s, true
		}
	}
	return segment{}, false
}

// readFile returns segment id opened for reading; the last one opened is
// kept open.
func (l *Log) readFile(id uint64) (*os.File, error) {
	if l.rf != nil && l.rid == id {
		return l.rf, nil
	}
	if l.rf != nil {
		l.rf.Close()
		l.rf = nil
	}
	f, err := os.Open(segPath(l.dir, id))
	if err != nil {
		return nil, err
	}
	l.rf, l.rid = f, id
	return f, nil
}

// Ack consumes the records up to p, a Record's End from Peek: the oldest
// records up to and including that one. They are no longer held, counted
// by Len or returned by Peek, and, once Ack returned nil, a restart does
// not replay them (under SyncNone, a crash of the operating system may).
// Segments all of whose records are consumed are deleted, releasing their
// bytes from Options.MaxBytes. Acknowledging a position at or before one
// acknowledged already is a no-op.
//
// Records a restart finds not acknowledged are replayed, also those Peek
// returned and the sink took before the crash: the log is at-least-once
// for the records between the last Ack and a crash.
//
// Its cost, under SyncAlways, is a 36-byte checkpoint file written, fsynced
// and renamed, and an fsync of the directory: acknowledge a batch at once,
// not each record.
func (l *Log) Ack(p Position) error {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	head, tail := l.head, l.tail
	i := slices.IndexFunc(l.segs, func(s segment) bool { return s.id == p.seg })
	valid := i >= 0 && p.off >= segHeaderLen && p.off <= l.segs[i].size
	l.mu.Unlock()
	if p.seq <= head.seq {
		return nil
	}
	if p.seq > tail || !valid {
		return fmt.Errorf("spill: Ack(%v): not a position of a record held in %s", p, l.dir)
	}
	if err := writeHead(l.dir, p, l.opts.FileMode, l.sync); err != nil {
		return fmt.Errorf("spill: Ack(%v): %w", p, err)
	}
	l.stats.acked.Add(int64(p.seq - head.seq))

	// Delete the segments now consumed: those before p's, and p's when p
	// is at its end and the writer has moved on to a later one.
	l.mu.Lock()
	l.head = p
	var gone []segment
	for len(l.segs) > 1 && (l.segs[0].id < p.seg || l.segs[0].id == p.seg && p.off >= l.segs[0].size) {
		gone = append(gone, l.segs[0])
		l.disk -= l.segs[0].size
		l.segs = l.segs[1:]
	}
	l.mu.Unlock()
	for _, s := range gone {
		if l.rf != nil && l.rid == s.id {
			l.rf.Close()
			l.rf = nil
		}
		if err := os.Remove(segPath(l.dir, s.id)); err != nil {
			// The checkpoint says it is consumed: Open deletes it.
			l.stats.removeErrors.Add(1)
			l.log.Warn("spill: delete consumed segment", "segment", segPath(l.dir, s.id), "err", err)
		}
	}
	return nil
}

// Wait blocks until the log holds a record (Len() > 0), ctx is done, or
// the log is closed; it returns nil, ctx.Err() or ErrClosed. It costs
// nothing while it waits: Append wakes it.
func (l *Log) Wait(ctx context.Context) error {
	for {
		l.mu.Lock()
		closed, held, ch := l.closed, l.tail > l.head.seq, l.notify
		l.waiting = l.waiting || !held
		l.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case held:
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
