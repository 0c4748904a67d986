package archive_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/archive"
)

func newWriter[T any](t testing.TB, cfg archive.Config[T]) *archive.Writer[T] {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	w, err := archive.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func TestBatchIsOneMember(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := newWriter(t, archive.Config[string]{Dir: dir})
	if want := filepath.Join(dir, "tweets.jsonl.gz"); w.Path() != want {
		t.Fatalf("Path() = %s, want %s", w.Path(), want)
	}
	ctx := context.Background()
	if err := w.HandleBatch(ctx, batchOf(`{"n":1}`, `{"n":2}`, "{\"n\":3}\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.HandleBatch(ctx, batchOf(`{"n":4}`+"\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.HandleBatch(ctx, batchOf()); err != nil {
		t.Fatal(err)
	}
	got := readLines(t, w.Path())
	if want := []string{`{"n":1}`, `{"n":2}`, `{"n":3}`, `{"n":4}`}; !slices.Equal(got, want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	gzipT(t, w.Path())
	rep, err := archive.Verify(dir, archive.VerifyOptions{IDField: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Files) != 1 || rep.Files[0].Members != 2 || rep.Lines != 4 || rep.JSONLines != 4 || rep.UniqueIDs != 4 || !rep.OK() {
		t.Fatalf("report %+v", rep)
	}
	s := w.Stats()
	st, _ := os.Stat(w.Path())
	if s.Lines != 4 || s.Batches != 2 || s.BytesIn != 4*8 || s.BytesOut != st.Size() || s.Failed != 0 {
		t.Fatalf("stats %+v (file %d bytes)", s, st.Size())
	}
}

func TestLineFailsOnlyItsMessage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := newWriter(t, archive.Config[string]{Dir: dir, Line: func(m *stages.Message[string]) ([]byte, error) {
		switch m.Data {
		case "err":
			return nil, errors.New("cannot encode")
		case "panic":
			panic("boom")
		}
		return []byte(m.Data), nil
	}})
	b := batchOf("a", "err", "b", "panic", "two\nlines", "", "c")
	if err := w.HandleBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"", "Line failed: cannot encode", "", "Line panicked: panic: boom", "newline at byte 3", "empty line", ""} {
		m := b.Messages[i]
		switch {
		case want == "" && m.Failed():
			t.Errorf("message %d (%q) failed: %v", i, m.Data, m.Err())
		case want != "" && (!m.Failed() || !strings.Contains(m.Err().Error(), want)):
			t.Errorf("message %d (%q): error %v, want one with %q", i, m.Data, m.Err(), want)
		case want != "":
			var le *archive.LineError
			if !errors.As(m.Err(), &le) {
				t.Errorf("message %d: %T is not a *LineError", i, m.Err())
			}
		}
	}
	if got := readLines(t, w.Path()); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("lines %q", got)
	}
	if s := w.Stats(); s.Lines != 3 || s.Failed != 4 {
		t.Fatalf("stats %+v", s)
	}
}

func TestDefaultLine(t *testing.T) {
	t.Parallel()
	type point struct{ X, Y int }
	dir := t.TempDir()
	w := newWriter(t, archive.Config[point]{Dir: dir, Name: "points"})
	msgs := []stages.Message[point]{{Data: point{1, 2}}, {Data: point{3, 4}}}
	if err := w.HandleBatch(context.Background(), &stages.Batch[point]{Messages: []*stages.Message[point]{&msgs[0], &msgs[1]}}); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, filepath.Join(dir, "points.jsonl.gz")); !slices.Equal(got, []string{`{"X":1,"Y":2}`, `{"X":3,"Y":4}`}) {
		t.Fatalf("lines %q", got)
	}
	raw := newWriter(t, archive.Config[[]byte]{Dir: dir, Name: "raw"})
	m := stages.Message[[]byte]{Data: []byte(`{"raw":true}`)}
	if err := raw.HandleBatch(context.Background(), &stages.Batch[[]byte]{Messages: []*stages.Message[[]byte]{&m}}); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, raw.Path()); !slices.Equal(got, []string{`{"raw":true}`}) {
		t.Fatalf("lines %q", got)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  archive.Config[string]
		want string
	}{
		{archive.Config[string]{}, "Config.Dir must be set"},
		{archive.Config[string]{Dir: "d", Name: "a/b"}, `Config.Name must be a plain file name, got "a/b"`},
		{archive.Config[string]{Dir: "d", Level: 10}, "Config.Level must be 1 to 9, -1 (DefaultCompression) or -2 (HuffmanOnly), got 10"},
		{archive.Config[string]{Dir: "d", RotateSize: -1}, "Config.RotateSize must be >= 0, got -1"},
		{archive.Config[string]{Dir: "d", RotateEvery: -1}, "Config.RotateEvery must be >= 0, got -1ns"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if _, err := archive.New(tc.cfg); err == nil {
				t.Fatal("New accepted the config")
			}
		})
	}
}

// Several batch processors write while the files are renamed and reopened
// the way logrotate does it, and the Writer rotates by size on its own:
// every line is in exactly one file, every batch wholly in one file, and
// every file is valid gzip.
func TestRotationUnderLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := newWriter(t, archive.Config[string]{Dir: dir, RotateSize: 4 << 10})
	const writers, batches, perBatch = 4, 60, 50
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	progress := make(chan struct{}, writers*batches)
	for g := range writers {
		wg.Go(func() {
			for b := range batches {
				lines := make([]string, perBatch)
				for i := range lines {
					lines[i] = fmt.Sprintf(`{"writer":%d,"batch":%d,"line":%d,"pad":"%s"}`, g, b, i, strings.Repeat("x", 40+i))
				}
				if err := w.HandleBatch(ctx, batchOf(lines...)); err != nil {
					errs <- err
					return
				}
				progress <- struct{}{}
			}
		})
	}
	// Rename and reopen six times, each after some batches landed.
	for i := range 6 {
		for range writers * batches / 8 {
			<-progress
		}
		rotated := filepath.Join(dir, fmt.Sprintf("logrotate.%d.gz", i))
		// The Writer's own rotation renames the active file and creates a
		// new one: in between, the path is missing (logrotate's missingok
		// skips such a run; here, try again).
		for {
			err := os.Rename(w.Path(), rotated)
			if err == nil {
				break
			}
			if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			runtime.Gosched()
		}
		if err := w.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}

	files := gzFiles(t, dir)
	gzipT(t, files...)
	where := lineFiles(t, dir)
	batchFiles := map[string]map[string]bool{}
	for line, fs := range where {
		if len(fs) != 1 {
			t.Fatalf("line %s is in %d files: %v", line, len(fs), fs)
		}
		batch := line[:strings.Index(line, `,"line"`)]
		if batchFiles[batch] == nil {
			batchFiles[batch] = map[string]bool{}
		}
		batchFiles[batch][fs[0]] = true
	}
	if len(where) != writers*batches*perBatch {
		t.Fatalf("%d distinct lines, want %d", len(where), writers*batches*perBatch)
	}
	for batch, fs := range batchFiles {
		if len(fs) != 1 {
			t.Fatalf("batch %s} is split across files %v", batch, fs)
		}
	}
	s := w.Stats()
	if s.Rotations == 0 || s.Reopens != 6 || s.Lines != writers*batches*perBatch {
		t.Fatalf("stats %+v", s)
	}
	rep, err := archive.Verify(dir, archive.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Lines != writers*batches*perBatch || len(rep.Files) != len(files) {
		t.Fatalf("verify: %+v", rep)
	}
	t.Logf("%d files: %d by Reopen, %d rotations by size", len(files), 6, s.Rotations)
}

// Reopen when the file was not renamed (a spurious SIGHUP) goes on
// appending to the same file.
func TestReopenSameFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := newWriter(t, archive.Config[string]{Dir: dir})
	ctx := context.Background()
	for i := range 3 {
		if err := w.HandleBatch(ctx, batchOf(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if err := w.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	if got := readLines(t, w.Path()); !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Fatalf("lines %q", got)
	}
	if files := gzFiles(t, dir); len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.HandleBatch(ctx, batchOf("late")); !errors.Is(err, archive.ErrClosed) {
		t.Fatalf("HandleBatch after Close: %v", err)
	}
	if err := w.Reopen(); !errors.Is(err, archive.ErrClosed) {
		t.Fatalf("Reopen after Close: %v", err)
	}
}
