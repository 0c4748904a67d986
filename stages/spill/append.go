package spill

import (
	"errors"
	"fmt"
	"os"
)

// Append writes records to the end of the log as one group and, under
// SyncAlways, fsyncs it before it returns. When it returns nil the records
// are held: they survive a crash (see SyncPolicy) and Peek returns them, in
// order, after every record appended before. A crash during Append leaves
// all of the group or none of it: a restart replays it whole if it reached
// the disk whole, though Append never returned, and cuts off what did.
// Within the process, a group whose Append returned an error is never
// replayed; after a restart it may be, in one rare case (logged): the
// write failed, and so did cutting it off again.
//
// It fails with ErrFull when the group would take the log past
// Options.MaxBytes, with ErrTooLarge when it never could fit, with
// ErrClosed after Close, and with the I/O error otherwise; then nothing of
// the group is held, and the next Append starts a new segment. An empty
// group is a no-op. Append does not keep records.
//
// Its cost is a write of the records with 9 bytes of framing each and an
// fsync; one Append in SegmentBytes creates a file too (an fsync of it and
// of the directory).
func (l *Log) Append(records [][]byte) error {
	if len(records) == 0 {
		return nil
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	n := groupLen(records)
	if err := l.checkSize(records, n); err != nil {
		l.stats.refused.Add(int64(len(records)))
		return err
	}
	roll := l.wf == nil || (l.wsize > segHeaderLen && l.wsize+n > l.opts.SegmentBytes)
	need := n
	if roll {
		need += segHeaderLen
	}
	l.mu.Lock()
	closed, disk := l.closed, l.disk
	l.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if disk+need > l.opts.MaxBytes {
		l.stats.refused.Add(int64(len(records)))
		return fmt.Errorf("%w: %d records need %d bytes, %d of %d held in %s",
			ErrFull, len(records), need, disk, l.opts.MaxBytes, l.dir)
	}
	if roll {
		if err := l.roll(); err != nil {
			l.stats.appendErrors.Add(1)
			return fmt.Errorf("spill: append %d records: start segment %s: %w",
				len(records), segPath(l.dir, l.nextID-1), err)
		}
	}
	l.wbuf = appendGroup(l.wbuf[:0], records)
	if err := l.write(l.wbuf); err != nil {
		l.stats.appendErrors.Add(1)
		return fmt.Errorf("spill: append %d records to %s: %w", len(records), segPath(l.dir, l.wid), err)
	}
	if cap(l.wbuf) > 4<<20 {
		l.wbuf = nil // keep no large group's buffer around
	}
	l.wsize += n
	l.mu.Lock()
	l.segs[len(l.segs)-1].size = l.wsize
	l.disk += n
	l.tail += uint64(len(records))
	if l.waiting {
		close(l.notify)
		l.notify = make(chan struct{})
		l.waiting = false
	}
	l.mu.Unlock()
	l.stats.appended.Add(int64(len(records)))
	l.stats.groups.Add(1)
	return nil
}

func (l *Log) checkSize(records [][]byte, n int64) error {
	for i, r := range records {
		if len(r) > maxRecordLen {
			return fmt.Errorf("%w: record %d of %d has %d bytes, more than %d",
				ErrTooLarge, i, len(records), len(r), maxRecordLen)
		}
	}
	if n+segHeaderLen > l.opts.MaxBytes {
		return fmt.Errorf("%w: %d records need %d bytes with a segment header, Options.MaxBytes is %d",
			ErrTooLarge, len(records), n+segHeaderLen, l.opts.MaxBytes)
	}
	return nil
}

// write writes a group's frames at the end of the active segment and
// syncs it. On an error it cuts the segment back to its complete groups
// and drops it as the active segment.
func (l *Log) write(b []byte) error {
	_, err := l.wf.WriteAt(b, l.wsize)
	if err == nil && l.sync {
		err = l.wf.Sync()
	}
	if err == nil {
		return nil
	}
	terr := l.wf.Truncate(l.wsize)
	if terr == nil && l.sync {
		terr = l.wf.Sync()
	}
	if terr != nil {
		l.log.Error("spill: could not cut a failed append off its segment; a restart may replay it",
			"segment", segPath(l.dir, l.wid), "offset", l.wsize, "err", terr)
	}
	l.wf.Close()
	l.wf = nil
	return err
}

// roll closes the active segment and creates the next one. A new segment
// is published to the reader once its header is durable.
func (l *Log) roll() error {
	if l.wf != nil {
		if err := l.wf.Close(); err != nil {
			// Its groups were synced; only the descriptor is in question.
			l.log.Warn("spill: close segment", "segment", segPath(l.dir, l.wid), "err", err)
		}
		l.wf = nil
	}
	id := l.nextID
	l.nextID++
	path := segPath(l.dir, id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, l.opts.FileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(appendSegHeader(nil, id))
	if err == nil && l.sync {
		err = f.Sync()
		if err == nil {
			err = syncDir(l.dir)
		}
	}
	if err != nil {
		f.Close()
		return errors.Join(err, os.Remove(path))
	}
	l.wf, l.wid, l.wsize = f, id, segHeaderLen
	l.mu.Lock()
	l.segs = append(l.segs, segment{id: id, size: segHeaderLen})
	l.disk += segHeaderLen
	l.mu.Unlock()
	return nil
}
