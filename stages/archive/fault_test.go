package archive_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/causeway-go/causeway/stages/archive"
)

// disk is a file system that can run out of space: a write longer than
// room writes what fits and fails with ENOSPC, as a full disk does.
type disk struct {
	room         atomic.Int64 // bytes left; < 0: unlimited
	failSync     atomic.Bool
	failTruncate atomic.Bool
}

type diskFile struct {
	*os.File
	d *disk
}

func (d *disk) open(path string, mode os.FileMode) (archive.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, mode)
	if err != nil {
		return nil, err
	}
	return diskFile{f, d}, nil
}

func (f diskFile) Write(p []byte) (int, error) {
	room := f.d.room.Load()
	if room < 0 || int64(len(p)) <= room {
		if room >= 0 {
			f.d.room.Add(-int64(len(p)))
		}
		return f.File.Write(p)
	}
	f.d.room.Store(0)
	n, _ := f.File.Write(p[:room])
	return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
}

func (f diskFile) Sync() error {
	if f.d.failSync.Load() {
		return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

func (f diskFile) Truncate(size int64) error {
	if f.d.failTruncate.Load() {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(size)
}

// A full disk, a failing fsync, and both with a failing truncation: the
// batch fails with an error naming the file and the cause, nothing of it
// stays in the file (it is valid gzip throughout), and once the disk is
// healthy again the next batch is written.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		break_ func(d *disk)
		want   string
	}{
		{"no space", func(d *disk) { d.room.Store(20) }, "no space left on device"},
		{"fsync fails", func(d *disk) { d.failSync.Store(true) }, "sync: input/output error"},
		{"no space, truncate fails", func(d *disk) { d.room.Store(20); d.failTruncate.Store(true) }, "no space left on device"},
		{"fsync and truncate fail", func(d *disk) { d.failSync.Store(true); d.failTruncate.Store(true) }, "sync: input/output error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			w := newWriter(t, archive.Config[string]{Dir: dir})
			ctx := context.Background()
			if err := w.HandleBatch(ctx, batchOf("a1", "a2")); err != nil {
				t.Fatal(err)
			}
			good, _ := os.Stat(w.Path())
			d := &disk{}
			d.room.Store(-1)
			archive.SetOpenFile(w, d.open)
			if err := w.Reopen(); err != nil {
				t.Fatal(err)
			}
			tc.break_(d)
			for _, lines := range [][]string{{"b1", "b2", "b3"}, {"c1"}} {
				err := w.HandleBatch(ctx, batchOf(lines...))
				want := tc.want
				if lines[0] == "c1" && d.failTruncate.Load() {
					want = "truncate: input/output error" // the open, cutting b1-b3 off, fails
				}
				if err == nil || !strings.Contains(err.Error(), w.Path()) || !strings.Contains(err.Error(), want) {
					t.Fatalf("HandleBatch on a broken disk = %v, want an error naming %s and %q", err, w.Path(), want)
				}
				t.Log(err)
				if !d.failTruncate.Load() {
					if st, _ := os.Stat(w.Path()); st.Size() != good.Size() {
						t.Fatalf("file is %d bytes after a failed batch, want %d", st.Size(), good.Size())
					}
					gzipT(t, w.Path())
				}
			}
			// The disk is healthy again.
			d.room.Store(-1)
			d.failSync.Store(false)
			d.failTruncate.Store(false)
			if err := w.HandleBatch(ctx, batchOf("d1")); err != nil {
				t.Fatal(err)
			}
			gzipT(t, w.Path())
			if got := readLines(t, w.Path()); !slices.Equal(got, []string{"a1", "a2", "d1"}) {
				t.Fatalf("lines %q", got)
			}
			s := w.Stats()
			if s.WriteErrors != 2 || s.Failed != 4 || s.Lines != 3 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// A directory that cannot be written — here its path names a regular file
// — fails New, and fails batches with an error naming the path; once the
// path is usable again, the next batch creates the directory and goes on.
func TestUnwritableDirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	blocker := filepath.Join(root, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	under := filepath.Join(blocker, "archive")
	if _, err := archive.New(archive.Config[string]{Dir: under, Logger: quiet}); err == nil || !strings.Contains(err.Error(), under) {
		t.Fatalf("New under a file = %v, want an error naming %s", err, under)
	}

	dir := filepath.Join(root, "archive")
	w := newWriter(t, archive.Config[string]{Dir: dir})
	ctx := context.Background()
	if err := w.HandleBatch(ctx, batchOf("before")); err != nil {
		t.Fatal(err)
	}
	// The directory goes away (renamed, as logrotate's olddir could) and a
	// file takes its path.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Reopen = %v, want an error naming %s", err, dir)
	}
	b := batchOf("lost-1", "lost-2")
	err := w.HandleBatch(ctx, b)
	if err == nil || !strings.Contains(err.Error(), "2 lines not written to "+w.Path()) || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("HandleBatch = %v", err)
	}
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != dir {
		t.Fatalf("error %v does not wrap the *os.PathError of %s", err, dir)
	}
	if os.Geteuid() != 0 {
		// A read-only directory (root writes anyway, so only as others).
		os.Remove(dir)
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		if err := w.HandleBatch(ctx, batchOf("lost-3")); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("HandleBatch into a read-only directory = %v", err)
		}
		os.Chmod(dir, 0o700)
	}
	os.Remove(dir)
	if err := w.HandleBatch(ctx, batchOf("after")); err != nil {
		t.Fatalf("after the path is free again: %v", err)
	}
	if got := readLines(t, w.Path()); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("lines %q", got)
	}
	if got := readLines(t, archive.ActivePath(dir+".old", "")); !slices.Equal(got, []string{"before"}) {
		t.Fatalf("lines in the old directory %q", got)
	}
	if s := w.Stats(); s.WriteErrors < 1 || s.Lines != 2 {
		t.Fatalf("stats %+v", s)
	}
}
