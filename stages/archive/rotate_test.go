package archive_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/stages/archive"
)

// hookLog records the paths OnRotate is called with.
type hookLog struct {
	mu    sync.Mutex
	paths []string
}

func (h *hookLog) hook(_ context.Context, path string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.paths = append(h.paths, path)
	return nil
}

func (h *hookLog) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.paths)
}

// Rotation by size: a file is finished once it reaches RotateSize, under a
// name with the UTC time of the rotation; two rotations in one millisecond
// get distinct names that still sort in rotation order; OnRotate and the
// on-rotate command see every finished file.
func TestRotateBySize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		list := filepath.Join(t.TempDir(), "rotated.txt")
		var hooks hookLog
		w := newWriter(t, archive.Config[string]{Dir: dir, RotateSize: 1, OnRotate: hooks.hook,
			OnRotateCommand: fmt.Sprintf(`printf '%%s %%s\n' "$CAUSEWAY_ARCHIVE_FILE" >>%s`, list)})
		ctx := context.Background()
		// synctest's clock starts at 2000-01-01 00:00:00 UTC and stands
		// still until every goroutine waits: three rotations in one instant.
		for i := range 3 {
			if err := w.HandleBatch(ctx, batchOf(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if err := w.HandleBatch(ctx, batchOf("3")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		want := []string{
			filepath.Join(dir, "tweets-20000101T000000.000Z.jsonl.gz"),
			filepath.Join(dir, "tweets-20000101T000000.001Z.jsonl.gz"),
			filepath.Join(dir, "tweets-20000101T000000.002Z.jsonl.gz"),
			filepath.Join(dir, "tweets-20000101T000001.500Z.jsonl.gz"),
		}
		got := hooks.get()
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("OnRotate saw %q, want %q", got, want)
		}
		for i, p := range want {
			if lines := readLines(t, p); !slices.Equal(lines, []string{fmt.Sprint(i)}) {
				t.Errorf("%s holds %q", p, lines)
			}
		}
		cmdOut, err := os.ReadFile(list)
		if err != nil {
			t.Fatal(err)
		}
		ran := strings.Split(strings.TrimSpace(string(cmdOut)), "\n")
		slices.Sort(ran)
		for i, p := range want {
			// The command gets the path in $CAUSEWAY_ARCHIVE_FILE and as its
			// last argument.
			if ran[i] != p+" "+p {
				t.Errorf("command run %d: %q, want %q", i, ran[i], p+" "+p)
			}
		}
		if s := w.Stats(); s.Rotations != 4 || s.HookErrors != 0 {
			t.Fatalf("stats %+v", s)
		}
		// The last rotation left an empty active file; Close removed it.
		if _, err := os.Stat(w.Path()); !os.IsNotExist(err) {
			t.Fatalf("empty active file after Close: %v", err)
		}
	})
}

// Rotation by age: the active file is finished RotateEvery after its first
// line, even when no batch comes; an empty file is never finished.
func TestRotateByAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		var hooks hookLog
		w := newWriter(t, archive.Config[string]{Dir: dir, RotateEvery: time.Hour, OnRotate: hooks.hook})
		ctx := context.Background()
		time.Sleep(3 * time.Hour) // empty: nothing to finish
		synctest.Wait()
		if got := hooks.get(); len(got) != 0 {
			t.Fatalf("an empty file was finished: %v", got)
		}
		if err := w.HandleBatch(ctx, batchOf("a")); err != nil { // at 03:00
			t.Fatal(err)
		}
		time.Sleep(30 * time.Minute)
		if err := w.HandleBatch(ctx, batchOf("b")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30*time.Minute - time.Nanosecond)
		synctest.Wait()
		if got := hooks.get(); len(got) != 0 {
			t.Fatalf("finished before its time: %v", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		first := filepath.Join(dir, "tweets-20000101T040000.000Z.jsonl.gz")
		if got := hooks.get(); !slices.Equal(got, []string{first}) {
			t.Fatalf("OnRotate saw %q, want %q", got, first)
		}
		if lines := readLines(t, first); !slices.Equal(lines, []string{"a", "b"}) {
			t.Fatalf("%s holds %q", first, lines)
		}
		// The next file's age counts from its own first line.
		time.Sleep(10 * time.Minute)
		if err := w.HandleBatch(ctx, batchOf("c")); err != nil { // at 04:10
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		second := filepath.Join(dir, "tweets-20000101T051000.000Z.jsonl.gz")
		if got := hooks.get(); !slices.Equal(got, []string{first, second}) {
			t.Fatalf("OnRotate saw %q", got)
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if s := w.Stats(); s.Rotations != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// A failing hook or command is logged and counted; the archive goes on.
func TestRotateHookFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		w := newWriter(t, archive.Config[string]{Dir: dir, RotateSize: 1,
			OnRotate:        func(context.Context, string) error { return errors.New("upload refused") },
			OnRotateCommand: "exit 3"})
		ctx := context.Background()
		for i := range 2 {
			if err := w.HandleBatch(ctx, batchOf(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if s := w.Stats(); s.Rotations != 2 || s.HookErrors != 4 || s.Lines != 2 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// Close with a context that ends kills an on-rotate command that hangs.
func TestCloseCutsHooksShort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	started := filepath.Join(t.TempDir(), "started")
	w := newWriter(t, archive.Config[string]{Dir: dir, RotateSize: 1,
		OnRotateCommand: fmt.Sprintf("touch %s; exec sleep 600", started)})
	if err := w.HandleBatch(context.Background(), batchOf("x")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	if s := w.Stats(); s.HookErrors != 1 {
		t.Fatalf("stats %+v", s)
	}
}
