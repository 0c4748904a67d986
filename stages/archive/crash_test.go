package archive_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages/archive"
)

// member returns lines compressed as one gzip member, as the Writer writes
// a batch.
func member(t testing.TB, lines ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	for _, l := range lines {
		fmt.Fprintln(zw, l)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func appendFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// After a crash the active file can end in the middle of a member: the one
// being written when the process died. Opening it again cuts that tail off
// and reports it; every acknowledged line is still there and the file is
// valid gzip again.
func TestCrashTornTail(t *testing.T) {
	t.Parallel()
	partial := member(t, "lost-1", "lost-2", "lost-3")
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, path string) (acked []string, torn int64)
	}{
		{"half a member appended", func(t *testing.T, path string) ([]string, int64) {
			appendFile(t, path, partial[:len(partial)/2])
			return nil, int64(len(partial) / 2)
		}},
		{"gzip header only", func(t *testing.T, path string) ([]string, int64) {
			appendFile(t, path, partial[:10])
			return nil, 10
		}},
		{"one byte of a header", func(t *testing.T, path string) ([]string, int64) {
			appendFile(t, path, partial[:1])
			return nil, 1
		}},
		{"member without its trailer", func(t *testing.T, path string) ([]string, int64) {
			appendFile(t, path, partial[:len(partial)-3])
			return nil, int64(len(partial) - 3)
		}},
		{"zeros after the last member", func(t *testing.T, path string) ([]string, int64) {
			appendFile(t, path, make([]byte, 4096))
			return nil, 4096
		}},
		{"last member truncated", func(t *testing.T, path string) ([]string, int64) {
			st, _ := os.Stat(path)
			w := newWriter(t, archive.Config[string]{Dir: filepath.Dir(path)})
			if err := w.HandleBatch(context.Background(), batchOf("dying-1", "dying-2")); err != nil {
				t.Fatal(err)
			}
			w.Close(context.Background())
			st2, _ := os.Stat(path)
			cut := st.Size() + (st2.Size()-st.Size())/2
			if err := os.Truncate(path, cut); err != nil {
				t.Fatal(err)
			}
			return nil, cut - st.Size()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			w := newWriter(t, archive.Config[string]{Dir: dir})
			var acked []string
			for b := range 5 {
				lines := []string{fmt.Sprintf(`{"id":"%d-a"}`, b), fmt.Sprintf(`{"id":"%d-b"}`, b)}
				if err := w.HandleBatch(context.Background(), batchOf(lines...)); err != nil {
					t.Fatal(err)
				}
				acked = append(acked, lines...)
			}
			w.Close(context.Background())
			before, _ := os.Stat(w.Path())
			_, torn := tc.tear(t, w.Path())

			w2 := newWriter(t, archive.Config[string]{Dir: dir})
			if s := w2.Stats(); s.TornBytes != torn || s.TornFiles != 1 {
				t.Fatalf("stats after open: %+v, want %d torn bytes", s, torn)
			}
			if after, _ := os.Stat(w2.Path()); after.Size() != before.Size() {
				t.Fatalf("file is %d bytes after the cut, want %d", after.Size(), before.Size())
			}
			gzipT(t, w2.Path())
			if got := readLines(t, w2.Path()); !slices.Equal(got, acked) {
				t.Fatalf("lines after the cut %q, want %q", got, acked)
			}
			if err := w2.HandleBatch(context.Background(), batchOf(`{"id":"after"}`)); err != nil {
				t.Fatal(err)
			}
			rep, err := archive.Verify(dir, archive.VerifyOptions{IDField: "id"})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Lines != int64(len(acked)+1) || rep.UniqueIDs != rep.Lines {
				t.Fatalf("verify: %+v", rep)
			}
		})
	}
}

// Damage followed by valid members is not a torn tail: cutting it off
// would lose acknowledged lines. The file is moved aside whole and Verify
// reports the damage and still counts the members after it.
func TestDamageBeforeTheEndMovesTheFileAside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := archive.ActivePath(dir, "")
	first := member(t, `{"id":"1"}`, `{"id":"2"}`)
	rest := append(member(t, `{"id":"3"}`), member(t, `{"id":"4"}`, `{"id":"5"}`)...)
	data := append(slices.Clone(first), rest...)
	data[len(first)-6] ^= 0xff // inside the first member's CRC-32
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, archive.Config[string]{Dir: dir})
	if s := w.Stats(); s.DamagedFiles != 1 || s.TornBytes != 0 {
		t.Fatalf("stats %+v", s)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("active file after moving the damaged one aside: %v, %v", st, err)
	}
	files := gzFiles(t, dir)
	// "tweets-<time>.jsonl.gz" sorts before "tweets.jsonl.gz".
	if len(files) != 2 || !strings.HasPrefix(filepath.Base(files[0]), "tweets-") {
		t.Fatalf("files %v", files)
	}
	if kept, _ := os.ReadFile(files[0]); !bytes.Equal(kept, data) {
		t.Fatal("the damaged file was changed")
	}
	rep, err := archive.Verify(dir, archive.VerifyOptions{IDField: "id"})
	if err != nil {
		t.Fatal(err)
	}
	fr := rep.Files[0]
	if rep.OK() || rep.Damaged != 1 || fr.Members != 2 || fr.Lines != 3 || len(fr.Damage) != 1 {
		t.Fatalf("verify: %+v", rep)
	}
	if d := fr.Damage[0]; d.Offset != 0 || d.Length != int64(len(first)) || !strings.Contains(d.Reason, "checksum") {
		t.Fatalf("damage %v", d)
	}
}

// A real crash: a child process archives batches and reports each one
// acknowledged; it is killed with SIGKILL mid-run. A new Writer on the same
// directory finds every acknowledged line, and the archive is valid.
func TestCrashSIGKILL(t *testing.T) {
	if dir := os.Getenv("ARCHIVE_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashSIGKILL$")
	cmd.Env = append(os.Environ(), "ARCHIVE_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := 0
	for sc.Scan() && acked < 200 {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "acked ")); err == nil {
			acked = n + 1
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if acked < 200 {
		t.Fatalf("the child acknowledged only %d batches", acked)
	}

	w := newWriter(t, archive.Config[string]{Dir: dir})
	w.Close(context.Background())
	files := gzFiles(t, dir)
	gzipT(t, files...)
	where := lineFiles(t, dir)
	for b := range acked {
		for i := range 20 {
			if l := crashLine(b, i); len(where[l]) != 1 {
				t.Fatalf("acknowledged line %s is in %d files", l, len(where[l]))
			}
		}
	}
	t.Logf("%d batches acknowledged before SIGKILL; %d lines on disk; %d torn bytes cut", acked, len(where), w.Stats().TornBytes)
}

func crashLine(batch, i int) string {
	return fmt.Sprintf(`{"batch":%d,"line":%d,"text":"%s"}`, batch, i, strings.Repeat("z", batch%50))
}

// crashChild archives batches until it is killed, printing "acked N" after
// batch N is on disk. It rotates by size to crash in rotations too.
func crashChild(dir string) {
	w, err := archive.New(archive.Config[string]{Dir: dir, RotateSize: 16 << 10, Logger: quiet})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	deadline := time.Now().Add(time.Minute)
	for b := 0; time.Now().Before(deadline); b++ {
		lines := make([]string, 20)
		for i := range lines {
			lines[i] = crashLine(b, i)
		}
		if err := w.HandleBatch(context.Background(), batchOf(lines...)); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", b)
	}
	os.Exit(1)
}
