package spill

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// A failed write holds nothing, is counted and logged, and the next Append
// goes on in a new segment.
func TestAppendWriteFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs syncBuf
	l, err := Open(dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Append([][]byte{[]byte("one")}); err != nil {
		t.Fatal(err)
	}
	first := l.wid
	l.wf.Close() // the next write fails, and so does cutting it off

	err = l.Append([][]byte{[]byte("lost")})
	if err == nil || !strings.Contains(err.Error(), segPath(dir, first)) {
		t.Fatalf("Append to a failing file: %v, want an error naming the segment", err)
	}
	if st := l.Stats(); st.AppendErrors != 1 || st.Appended != 1 || l.Len() != 1 {
		t.Fatalf("after a failed Append: Len() = %d, Stats = %+v", l.Len(), st)
	}
	if !strings.Contains(logs.b.String(), "could not cut a failed append") {
		t.Fatalf("failed cut not logged:\n%s", logs.b.String())
	}
	if err := l.Append([][]byte{[]byte("two")}); err != nil {
		t.Fatalf("Append after a failure: %v", err)
	}
	if l.wid == first {
		t.Fatalf("Append after a failure went on in segment %d", first)
	}
	rs, err := l.Peek(10)
	if err != nil || len(rs) != 2 || string(rs[0].Data) != "one" || string(rs[1].Data) != "two" {
		t.Fatalf("Peek = %v, %v; want one, two", rs, err)
	}
}
