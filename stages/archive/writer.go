package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"sync"

	"github.com/causeway-go/causeway/stages"
)

// Writer is a batch handler that archives messages as gzip JSON lines. Its
// methods are safe for concurrent use: any number of batch processors may
// call HandleBatch at once. Each compresses its batch on its own goroutine;
// the appends to the file (write and fsync) take turns.
type Writer[T any] struct {
	line     func(*stages.Message[T]) ([]byte, error)
	level    int
	a        *appender
	encoders sync.Pool // *encoder
}

// encoder compresses one batch into one gzip member.
type encoder struct {
	buf bytes.Buffer
	zw  *gzip.Writer
}

// maxPooledBuffer is the largest member buffer kept for reuse.
const maxPooledBuffer = 16 << 20

// New returns a Writer for cfg and opens (creating the directory and file
// if needed) the active file, cutting off a torn tail a crash left there.
// An error names the bad field or the path that could not be opened.
func New[T any](cfg Config[T]) (*Writer[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	w := &Writer[T]{line: cfg.Line, level: cfg.Level}
	w.a = &appender{
		dir: cfg.Dir, name: cfg.Name, path: ActivePath(cfg.Dir, cfg.Name), mode: cfg.FileMode,
		rotateSize: cfg.RotateSize, rotateEvery: cfg.RotateEvery,
		onRotate: cfg.OnRotate, command: cfg.OnRotateCommand,
		log: cfg.Logger, openFile: openAppend,
	}
	w.a.hookCtx, w.a.hookCancel = context.WithCancel(context.Background())
	if err := w.open(); err != nil {
		w.a.hookCancel()
		return nil, err
	}
	return w, nil
}

func (w *Writer[T]) open() error {
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	if err := w.a.openLocked(); err != nil {
		return fmt.Errorf("archive: open %s: %w", w.a.path, err)
	}
	return nil
}

// Path returns the path of the active file, Dir/<Name>.jsonl.gz.
func (w *Writer[T]) Path() string { return w.a.path }

// HandleBatch appends the batch's messages to the active file as one gzip
// member, one line each, and returns once the member is written and
// fsync'ed, so the topology acknowledges only messages that are on disk. A
// message whose Line fails is failed alone and not written. If the member
// cannot be written (disk full, directory gone or read-only), HandleBatch
// returns an error naming the file, which fails every message of the batch,
// and leaves the file as it was before; the next batch tries again.
//
// HandleBatch does not stop for ctx: an append that has begun finishes, so
// a drain flushes every batch it can.
func (w *Writer[T]) HandleBatch(_ context.Context, b *stages.Batch[T]) error {
	e := w.encoder()
	defer w.release(e)
	lines, in := 0, 0
	for _, m := range b.Messages {
		if m.Failed() {
			continue
		}
		line, err := w.lineOf(m)
		if err != nil {
			m.Fail(err)
			w.a.stats.failed.Add(1)
			continue
		}
		e.zw.Write(line) // writes to a bytes.Buffer do not fail
		e.zw.Write(newline)
		lines++
		in += len(line) + 1
	}
	if lines == 0 {
		return nil
	}
	e.zw.Close()
	return w.a.append(e.buf.Bytes(), lines, in)
}

var newline = []byte{'\n'}

// LineError is the error of a message the Writer could not turn into a
// line: Line failed or panicked, or gave an empty line or one with a
// newline inside.
type LineError struct {
	Reason string
	Err    error // Line's error or a *stages.PanicError, if any
}

func (e *LineError) Error() string {
	if e.Err != nil {
		return "archive: message not archived: " + e.Reason + ": " + e.Err.Error()
	}
	return "archive: message not archived: " + e.Reason
}

func (e *LineError) Unwrap() error { return e.Err }

// lineOf calls Line on m, containing a panic, and checks that its result
// is one line.
func (w *Writer[T]) lineOf(m *stages.Message[T]) (line []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &LineError{Reason: "Line panicked", Err: &stages.PanicError{Value: r, Stack: debug.Stack()}}
		}
	}()
	line, err = w.line(m)
	if err != nil {
		return nil, &LineError{Reason: "Line failed", Err: err}
	}
	line = bytes.TrimSuffix(line, newline)
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) == 0 {
		return nil, &LineError{Reason: "Line returned an empty line"}
	}
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		return nil, &LineError{Reason: fmt.Sprintf("Line returned %d bytes with a newline at byte %d; a line must be one line of JSON", len(line), i)}
	}
	return line, nil
}

func (w *Writer[T]) encoder() *encoder {
	if e, ok := w.encoders.Get().(*encoder); ok {
		e.buf.Reset()
		e.zw.Reset(&e.buf)
		return e
	}
	e := &encoder{}
	e.zw, _ = gzip.NewWriterLevel(&e.buf, w.level) // the level was validated
	return e
}

func (w *Writer[T]) release(e *encoder) {
	if e.buf.Cap() <= maxPooledBuffer {
		w.encoders.Put(e)
	}
}

// Reopen closes the active file and opens the file at the active path,
// creating it if it is missing. This is what logrotate's rename-then-signal
// needs: after it renamed Dir/<Name>.jsonl.gz, Reopen (on SIGHUP) starts a
// new file under the old name, and the renamed one is complete — every
// batch went wholly into one file or the other. A batch being written when
// Reopen is called finishes first.
//
// If the path names a file this Writer did not write, Reopen checks it as
// New does and cuts a torn tail off. If the open fails, Reopen returns the
// error and the next batch tries again.
func (w *Writer[T]) Reopen() error { return w.a.reopen() }

// ReopenOn calls Reopen each time c delivers a signal, until ctx ends: give
// it the channel that signal.Notify(c, syscall.SIGHUP) fills. A failed
// Reopen is logged; the next batch tries again.
func (w *Writer[T]) ReopenOn(ctx context.Context, c <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig := <-c:
			if err := w.Reopen(); err != nil {
				w.a.log.Error("archive: reopen on signal", "signal", sig, "err", err)
			} else {
				w.a.log.Info("archive: reopened the active file", "signal", sig, "path", w.a.path)
			}
		}
	}
}

// Close closes the active file (it stays under its active name: a Writer
// that opens the directory later appends to it; if it is empty, it is
// removed, so every *.gz file left is valid for gzip -t) and waits for rotation
// hooks that are still running. When ctx ends first, their context is
// cancelled, on-rotate commands are killed, and Close returns once they
// have returned. After Close, HandleBatch and Reopen return ErrClosed.
func (w *Writer[T]) Close(ctx context.Context) error { return w.a.close(ctx) }

// Stats is a snapshot of a Writer's counters.
type Stats struct {
	Lines    int64 // lines written and fsync'ed
	Batches  int64 // batches written: one gzip member each
	BytesIn  int64 // uncompressed bytes of those lines, newlines included
	BytesOut int64 // compressed bytes written

	Failed      int64 // messages failed: by Line, or in a batch that could not be written
	WriteErrors int64 // appends, opens and rotations that failed

	Rotations  int64 // files finished by RotateSize or RotateEvery
	Reopens    int64 // calls to Reopen
	HookErrors int64 // OnRotate and OnRotateCommand failures

	TornBytes    int64 // bytes cut off torn tails when the active file was opened
	TornFiles    int64 // how many times a torn tail was cut off
	DamagedFiles int64 // active files moved aside because damage was followed by valid members
}

// Stats returns the Writer's counters. It does not wait for an append.
func (w *Writer[T]) Stats() Stats {
	c := &w.a.stats
	return Stats{
		Lines: c.lines.Load(), Batches: c.batches.Load(), BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		Failed: c.failed.Load(), WriteErrors: c.writeErrors.Load(),
		Rotations: c.rotations.Load(), Reopens: c.reopens.Load(), HookErrors: c.hookErrors.Load(),
		TornBytes: c.tornBytes.Load(), TornFiles: c.tornFiles.Load(), DamagedFiles: c.damagedFiles.Load(),
	}
}
