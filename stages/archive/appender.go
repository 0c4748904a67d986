package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is the error of a call on a closed Writer.
var ErrClosed = errors.New("archive: writer is closed")

// file is what the appender needs of an open file; tests put a failing one
// in its place.
type file interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Stat() (os.FileInfo, error)
	Close() error
}

func openAppend(path string, mode os.FileMode) (file, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, mode)
}

// counters are the appender's statistics; see Stats.
type counters struct {
	lines, batches, bytesIn, bytesOut  atomic.Int64
	failed, writeErrors                atomic.Int64
	rotations, reopens, hookErrors     atomic.Int64
	tornBytes, tornFiles, damagedFiles atomic.Int64
}

// appender owns the active file: it appends complete gzip members to it,
// repairs it when it opens it, rotates it and reopens it. One mutex
// serializes everything that touches the file; compression happens before,
// outside it.
type appender struct {
	dir, name, path string
	mode            os.FileMode
	rotateSize      int64
	rotateEvery     time.Duration
	onRotate        func(ctx context.Context, path string) error
	command         string
	log             *slog.Logger
	openFile        func(path string, mode os.FileMode) (file, error)

	mu       sync.Mutex
	f        file        // nil: not open (not yet, after a failed write, or closed)
	info     os.FileInfo // f's identity when it was opened
	size     int64       // bytes of complete members in f
	first    time.Time   // when f got its first member; zero while f is empty
	timer    *time.Timer // age rotation of f
	gen      uint64      // counts the files f has been; stale timers compare it
	closed   bool
	lastName time.Time // time in the newest finished file's name
	// cutTo, when mustCut, is where the file of info must be cut back to
	// before anything else is appended: a failed append's truncation
	// failed too.
	cutTo   int64
	mustCut bool

	hookCtx    context.Context
	hookCancel context.CancelFunc
	hooks      sync.WaitGroup

	stats counters
}

// append writes member, which holds lines lines of in uncompressed bytes,
// to the end of the active file and syncs it. When it returns nil the
// member is on disk; when it returns an error nothing of it is left in the
// file.
func (a *appender) append(member []byte, lines, in int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if a.f != nil && a.ageDue(time.Now()) {
		a.rotateLocked("age")
	}
	if a.f == nil {
		if err := a.openLocked(); err != nil {
			return a.writeErr(lines, err)
		}
	}
	off := a.size
	n, err := a.f.Write(member)
	if err == nil {
		err = a.f.Sync()
	}
	if err != nil {
		a.cutLocked(off, n)
		return a.writeErr(lines, err)
	}
	a.size += int64(n)
	if a.first.IsZero() {
		a.first = time.Now()
		a.armTimer()
	}
	a.stats.lines.Add(int64(lines))
	a.stats.batches.Add(1)
	a.stats.bytesIn.Add(int64(in))
	a.stats.bytesOut.Add(int64(n))
	if a.rotateSize > 0 && a.size >= a.rotateSize {
		a.rotateLocked("size")
	}
	return nil
}

// writeErr counts a failed batch and names the file in its error.
func (a *appender) writeErr(lines int, err error) error {
	a.stats.writeErrors.Add(1)
	a.stats.failed.Add(int64(lines))
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Path == a.path {
		err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return fmt.Errorf("archive: %d lines not written to %s: %w", lines, a.path, err)
}

// cutLocked undoes a failed append: it truncates the file back to off, the
// end of the last complete member, and closes it, so the next append opens
// it afresh. If even the truncation fails, the open that follows finds the
// partial member and cuts it off.
func (a *appender) cutLocked(off int64, written int) {
	if err := a.f.Truncate(off); err != nil {
		a.log.Error("archive: cannot cut a failed member off; the next open will", "path", a.path, "offset", off, "err", err)
		a.cutTo, a.mustCut = off, true
	} else if err := a.f.Sync(); err != nil {
		a.log.Error("archive: sync after cutting a partial member off", "path", a.path, "err", err)
	}
	if written > 0 {
		a.log.Warn("archive: cut a partially written member off", "path", a.path, "offset", off, "bytes", written)
	}
	a.closeLocked()
}

func (a *appender) closeLocked() error {
	a.stopTimer()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}

// openLocked opens (creating if needed) the active file for appending. A
// file that is not the one this appender last had open, or that changed
// size since, is checked first: a torn last member is cut off.
func (a *appender) openLocked() error {
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return err
	}
	f, err := a.openFile(a.path, a.mode)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size := st.Size()
	same := a.info != nil && os.SameFile(a.info, st)
	if a.mustCut && same && size > a.cutTo {
		// Cut what a failed append left, even a complete member: its
		// batch was failed, so its lines must not be in the archive.
		if err := f.Truncate(a.cutTo); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		size = a.cutTo
	}
	if a.mustCut && !same {
		a.log.Error("archive: the file a failed member could not be cut off was renamed; its tail holds lines of a failed batch",
			"path", a.path, "offset", a.cutTo)
	}
	a.mustCut = false
	known := same && size == a.size
	if size > 0 && !known {
		var damaged bool
		size, damaged, err = a.repair(f, size)
		if err != nil {
			f.Close()
			return err
		}
		if damaged {
			// Keep the damaged file whole under a finished name, for
			// Verify and for whoever recovers what follows the damage.
			f.Close()
			a.info = st
			if err := a.finishLocked("damaged"); err != nil {
				return err
			}
			return a.openLocked()
		}
	}
	if !known {
		if err := syncDir(a.dir); err != nil {
			f.Close()
			return err
		}
	}
	a.f, a.info, a.size = f, st, size
	a.gen++
	a.first = time.Time{}
	if size > 0 {
		a.first = time.Now()
		a.armTimer()
	}
	return nil
}

// repair checks the complete members of f (size bytes). A torn tail —
// bytes after the last complete member that no valid member follows — is
// cut off and counted. If valid members follow the damage, the file is not
// cut (that would lose acknowledged lines) and damaged is true.
func (a *appender) repair(f file, size int64) (end int64, damaged bool, err error) {
	r, err := os.Open(a.path)
	if err != nil {
		return 0, false, err
	}
	defer r.Close()
	end, members, serr := scanMembers(r, 0, nil)
	if serr == nil {
		return end, false, nil
	}
	next, err := nextMember(r, end+1, size)
	if err != nil {
		return 0, false, err
	}
	if next >= 0 {
		a.stats.damagedFiles.Add(1)
		a.log.Error("archive: the active file is damaged before its end; moving it aside and starting a new one",
			"path", a.path, "offset", end, "next_member", next, "err", serr)
		return end, true, nil
	}
	if err := f.Truncate(end); err != nil {
		return 0, false, err
	}
	if err := f.Sync(); err != nil {
		return 0, false, err
	}
	a.stats.tornBytes.Add(size - end)
	a.stats.tornFiles.Add(1)
	a.log.Warn("archive: cut a torn tail off the active file (bytes of batches that were never acknowledged)",
		"path", a.path, "offset", end, "bytes", size-end, "members_kept", members, "err", serr)
	return end, false, nil
}

// reopen closes the active file and opens the file at the active path:
// after logrotate renamed it, a fresh one.
func (a *appender) reopen() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	a.stats.reopens.Add(1)
	if err := a.closeLocked(); err != nil {
		a.log.Warn("archive: closing the active file", "path", a.path, "err", err)
	}
	if err := a.openLocked(); err != nil {
		return fmt.Errorf("archive: reopen %s: %w", a.path, err)
	}
	return nil
}

// close closes the active file and waits for rotation hooks to finish, or
// for ctx to end, in which case their context is cancelled (commands are
// killed) and close still waits for them to return.
func (a *appender) close(ctx context.Context) error {
	a.mu.Lock()
	var err error
	if !a.closed {
		a.closed = true
		empty := a.f != nil && a.size == 0
		err = a.closeLocked()
		if empty {
			a.removeIfEmpty()
		}
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() { a.hooks.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		a.hookCancel()
		<-done
		err = errors.Join(err, fmt.Errorf("archive: close: rotation hooks cut short: %w", ctx.Err()))
	}
	a.hookCancel()
	return err
}

// removeIfEmpty removes the active file if it is still the empty file this
// appender opened, so that every *.gz file it leaves is valid gzip (gzip -t
// rejects an empty file).
func (a *appender) removeIfEmpty() {
	st, err := os.Stat(a.path)
	if err != nil || st.Size() != 0 || a.info == nil || !os.SameFile(st, a.info) {
		return
	}
	if err := os.Remove(a.path); err != nil {
		a.log.Warn("archive: removing the empty active file", "path", a.path, "err", err)
	}
}

// syncDir makes the directory's entries (a created or renamed file)
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
