package spill_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/causeway-go/causeway/stages/spill"
)

// logBuf collects what a Log logs, for tests that check it.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *logBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *logBuf) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// open opens a Log in dir and closes it at the end of the test.
func open(t testing.TB, dir string, opts spill.Options) *spill.Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	l, err := spill.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// rec is record i of a test: its number, padded to a length that varies
// with i so that frames do not line up with segment sizes.
func rec(i int) []byte {
	s := fmt.Sprintf("record-%06d;", i)
	return []byte(s + strings.Repeat("x", i%37))
}

// recs returns records from to to-1.
func recs(from, to int) [][]byte {
	var out [][]byte
	for i := from; i < to; i++ {
		out = append(out, rec(i))
	}
	return out
}

// appendGroups appends records from to to-1 in groups of size.
func appendGroups(t testing.TB, l *spill.Log, from, to, size int) {
	t.Helper()
	for i := from; i < to; i += size {
		if err := l.Append(recs(i, min(i+size, to))); err != nil {
			t.Fatalf("Append(records %d..): %v", i, err)
		}
	}
}

// drain peeks batches of up to batch records and acknowledges each until
// the log is empty, and returns what it read.
func drain(t testing.TB, l *spill.Log, batch int) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		rs, err := l.Peek(batch)
		if err != nil {
			t.Fatalf("Peek(%d): %v", batch, err)
		}
		if len(rs) == 0 {
			return out
		}
		for _, r := range rs {
			out = append(out, r.Data)
		}
		if err := l.Ack(rs[len(rs)-1].End); err != nil {
			t.Fatalf("Ack(%v): %v", rs[len(rs)-1].End, err)
		}
	}
}

// wantRecords fails the test unless got is records from to to-1.
func wantRecords(t testing.TB, got [][]byte, from, to int) {
	t.Helper()
	want := recs(from, to)
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d (records %d to %d)", len(got), len(want), from, to-1)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("record %d is %q, want %q", i, got[i], want[i])
		}
	}
}

// segments returns the segment files in dir.
func segments(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// frame returns the bytes on disk of records appended as one group.
func frame(records ...[]byte) []byte { return spill.AppendGroup(nil, records) }

func slogTo(w *logBuf) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
