package spill_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/causeway-go/causeway/stages/spill"
)

// lastGroup is where the last group appended lies: in segment path, from
// start to size, the file's size.
type lastGroup struct {
	path        string
	start, size int64
}

// appendFile appends b to the file at path.
func appendFile(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// A crash leaves the last segment in any of these states; Open cuts it
// back to its last complete group and keeps every group before.
func TestOpenCutsTornTail(t *testing.T) {
	t.Parallel()
	const groups, perGroup = 10, 3
	const n = groups * perGroup
	cases := []struct {
		name string
		// crash changes the last segment and returns how many records
		// survive and the offset Open must cut it at.
		crash func(t *testing.T, g lastGroup) (keep int, cutAt int64)
	}{
		{"truncated inside the last record", func(t *testing.T, g lastGroup) (int, int64) {
			truncate(t, g.path, g.size-3)
			return n - perGroup, g.start
		}},
		{"truncated between frames of a group", func(t *testing.T, g lastGroup) (int, int64) {
			truncate(t, g.path, g.start+int64(len(frame(rec(n-perGroup)))))
			return n - perGroup, g.start
		}},
		{"truncated inside a frame header", func(t *testing.T, g lastGroup) (int, int64) {
			truncate(t, g.path, g.start+4)
			return n - perGroup, g.start
		}},
		{"a flipped byte in the last group", func(t *testing.T, g lastGroup) (int, int64) {
			b, _ := os.ReadFile(g.path)
			b[g.size-1] ^= 0xff
			os.WriteFile(g.path, b, 0o600)
			return n - perGroup, g.start
		}},
		{"garbage appended", func(t *testing.T, g lastGroup) (int, int64) {
			appendFile(t, g.path, []byte("\x17\x00\x00\x00\x01garbage that is not a frame"))
			return n, g.size
		}},
		{"zeros appended", func(t *testing.T, g lastGroup) (int, int64) {
			appendFile(t, g.path, make([]byte, 4096))
			return n, g.size
		}},
		{"a frame header with a huge length appended", func(t *testing.T, g lastGroup) (int, int64) {
			h := make([]byte, spill.FrameHeaderLen)
			binary.LittleEndian.PutUint32(h, 1<<29)
			h[4] = 1
			appendFile(t, g.path, h)
			return n, g.size
		}},
		{"a group missing its last frame appended", func(t *testing.T, g lastGroup) (int, int64) {
			two := frame([]byte("first of two"), []byte("second of two"))
			appendFile(t, g.path, two[:len(frame([]byte("first of two")))])
			return n, g.size
		}},
		{"a whole group after garbage", func(t *testing.T, g lastGroup) (int, int64) {
			appendFile(t, g.path, append([]byte("junk"), frame([]byte("complete"))...))
			return n, g.size
		}},
	}
	for _, segBytes := range []int64{1 << 20, 300} {
		for _, tc := range cases {
			name := tc.name
			if segBytes < 1<<20 {
				name += ", small segments"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				opts := spill.Options{SegmentBytes: segBytes}
				l := open(t, dir, opts)
				var g lastGroup
				for i := 0; i < n; i += perGroup {
					before := segments(t, dir)
					appendGroups(t, l, i, i+perGroup, perGroup)
					after := segments(t, dir)
					g.path = after[len(after)-1]
					g.start = g.size
					if len(after) != len(before) {
						g.start = spill.SegHeaderLen
					}
					g.size = fileSize(t, g.path)
				}
				l.Close()

				keep, cutAt := tc.crash(t, g)
				crashed := fileSize(t, g.path)
				var logs logBuf
				l = open(t, dir, spill.Options{SegmentBytes: segBytes, Logger: slogTo(&logs)})
				st := l.Stats()
				if l.Len() != keep || st.Recovered != int64(keep) {
					t.Fatalf("after the crash: Len() = %d, Recovered = %d; want %d", l.Len(), st.Recovered, keep)
				}
				if st.TornBytes != crashed-cutAt {
					t.Fatalf("Stats.TornBytes = %d, want %d (file of %d cut at %d)", st.TornBytes, crashed-cutAt, crashed, cutAt)
				}
				if !strings.Contains(logs.String(), "torn tail") {
					t.Fatalf("the cut was not logged as a torn tail; logs:\n%s", logs.String())
				}
				if _, err := os.Stat(g.path); err == nil {
					if size := fileSize(t, g.path); size != cutAt {
						t.Fatalf("segment is %d bytes after Open, want %d", size, cutAt)
					}
				} else if cutAt != spill.SegHeaderLen {
					t.Fatalf("segment deleted, though it holds records: %v", err)
				}

				// The log goes on: new records after the survivors, and a
				// clean restart cuts nothing more.
				appendGroups(t, l, keep, keep+5, 2)
				l.Close()
				l = open(t, dir, opts)
				if st := l.Stats(); st.TornBytes != 0 {
					t.Fatalf("second Open cut %d bytes more", st.TornBytes)
				}
				wantRecords(t, drain(t, l, 7), 0, keep+5)
			})
		}
	}
}

// A crash while a new segment was being created leaves a file shorter
// than its header: Open deletes it.
func TestOpenDeletesTornSegmentHeader(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := open(t, dir, spill.Options{})
	appendGroups(t, l, 0, 10, 2)
	l.Close()
	next := spill.SegPath(dir, 2)
	if err := os.WriteFile(next, []byte("CWSPI"), 0o600); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, spill.Options{})
	if st := l.Stats(); st.TornBytes != 5 || l.Len() != 10 {
		t.Fatalf("Stats.TornBytes = %d, Len() = %d; want 5 and 10", st.TornBytes, l.Len())
	}
	if _, err := os.Stat(next); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("torn segment %s not deleted: %v", next, err)
	}
	appendGroups(t, l, 10, 12, 1)
	wantRecords(t, drain(t, l, 5), 0, 12)
}

// Damage inside an older segment (not a crash: a failing disk) costs the
// records after it in that segment, logged as an error, and no others.
func TestOpenCutsDamagedSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := spill.Options{SegmentBytes: 300}
	l := open(t, dir, opts)
	appendGroups(t, l, 0, 40, 2)
	rs, _ := l.Peek(40)
	inFirst := 0
	for _, r := range rs {
		if spill.PosSegment(r.End) == spill.PosSegment(rs[0].End) {
			inFirst++
		}
	}
	l.Close()
	first := segments(t, dir)[0]
	b, _ := os.ReadFile(first)
	b[spill.SegHeaderLen+spill.FrameHeaderLen+len(rec(0))+spill.FrameHeaderLen] ^= 1 // record 1's first byte
	os.WriteFile(first, b, 0o600)

	var logs logBuf
	l = open(t, dir, spill.Options{SegmentBytes: 300, Logger: slogTo(&logs)})
	if want := 40 - inFirst; l.Len() != want {
		t.Fatalf("Len() = %d, want %d: every record but those of the damaged segment", l.Len(), want)
	}
	cut := int64(len(b) - spill.SegHeaderLen)
	if st := l.Stats(); st.TornBytes != cut {
		t.Fatalf("Stats.TornBytes = %d, want %d", st.TornBytes, cut)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "damaged") {
		t.Fatalf("damage not logged as an error:\n%s", logs.String())
	}
	wantRecords(t, drain(t, l, 9), inFirst, 40)
}

// Bytes damaged after Open: Peek returns the records before them, then
// ErrCorrupt; a new Open cuts them.
func TestPeekReportsDamage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := open(t, dir, spill.Options{})
	appendGroups(t, l, 0, 5, 1)
	seg := segments(t, dir)[0]
	b, _ := os.ReadFile(seg)
	off := spill.SegHeaderLen + len(frame(rec(0))) + len(frame(rec(1))) + spill.FrameHeaderLen
	b[off] ^= 1 // record 2's first byte
	os.WriteFile(seg, b, 0o600)

	rs, err := l.Peek(10)
	if err != nil || len(rs) != 2 {
		t.Fatalf("Peek(10) = %d records, %v; want the 2 before the damage", len(rs), err)
	}
	l.Ack(rs[1].End)
	if _, err := l.Peek(10); !errors.Is(err, spill.ErrCorrupt) || !strings.Contains(err.Error(), seg) {
		t.Fatalf("Peek at the damage: %v, want ErrCorrupt naming %s", err, seg)
	}
	l.Close()
	l = open(t, dir, spill.Options{})
	if l.Len() != 0 || l.Stats().TornBytes == 0 {
		t.Fatalf("after reopening: Len() = %d, TornBytes = %d", l.Len(), l.Stats().TornBytes)
	}
	if err := l.Append(recs(5, 6)); err != nil {
		t.Fatal(err)
	}
	got := drain(t, l, 10)
	if len(got) != 1 || !bytes.Equal(got[0], rec(5)) {
		t.Fatalf("got %q", got)
	}
}
