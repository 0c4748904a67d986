package spill_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway-go/causeway/stages/spill"
)

func TestOrderAcrossSegments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		segmentBytes int64
		group, batch int
	}{
		{"one segment", 1 << 20, 10, 64},
		{"small segments, single appends", 256, 1, 7},
		{"small segments, groups larger than a segment", 256, 25, 3},
		{"batch of one", 512, 4, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l := open(t, dir, spill.Options{SegmentBytes: tc.segmentBytes, MaxBytes: 1 << 20})
			appendGroups(t, l, 0, 300, tc.group)
			if got := l.Len(); got != 300 {
				t.Fatalf("Len() = %d, want 300", got)
			}
			st := l.Stats()
			if st.Segments != int64(len(segments(t, dir))) {
				t.Fatalf("Stats.Segments = %d, files %d", st.Segments, len(segments(t, dir)))
			}
			if tc.segmentBytes < 1<<20 && st.Segments < 3 {
				t.Fatalf("Stats.Segments = %d, want several with %d-byte segments", st.Segments, tc.segmentBytes)
			}
			var sum int64
			for _, p := range segments(t, dir) {
				sum += fileSize(t, p)
			}
			if l.Bytes() != sum || st.DiskBytes != sum {
				t.Fatalf("Bytes() = %d, Stats.DiskBytes = %d; the files hold %d", l.Bytes(), st.DiskBytes, sum)
			}

			got := drain(t, l, tc.batch)
			wantRecords(t, got, 0, 300)
			st = l.Stats()
			if l.Len() != 0 || st.Appended != 300 || st.Acked != 300 || st.Replayed != 300 || st.Groups != int64((300+tc.group-1)/tc.group) {
				t.Fatalf("after draining: Len() = %d, Stats = %+v", l.Len(), st)
			}
			// Every consumed segment but the writer's is deleted.
			if n := len(segments(t, dir)); n != 1 || st.Segments != 1 {
				t.Fatalf("after draining: %d segment files, Stats.Segments = %d; want 1, the active one", n, st.Segments)
			}
		})
	}
}

func TestPeekDoesNotConsume(t *testing.T) {
	t.Parallel()
	l := open(t, t.TempDir(), spill.Options{SegmentBytes: 200})
	appendGroups(t, l, 0, 20, 3)
	for range 2 {
		rs, err := l.Peek(5)
		if err != nil || len(rs) != 5 {
			t.Fatalf("Peek(5) = %d records, %v", len(rs), err)
		}
		for i, r := range rs {
			if !bytes.Equal(r.Data, rec(i)) || r.End.Seq() != uint64(i+1) {
				t.Fatalf("record %d: %q ending at %v", i, r.Data, r.End)
			}
		}
	}
	rs, _ := l.Peek(100)
	if len(rs) != 20 {
		t.Fatalf("Peek(100) = %d records, want all 20", len(rs))
	}
	if err := l.Ack(rs[9].End); err != nil {
		t.Fatal(err)
	}
	// Acknowledging an older position again is a no-op.
	if err := l.Ack(rs[3].End); err != nil {
		t.Fatalf("Ack of an older position: %v", err)
	}
	if l.Len() != 10 {
		t.Fatalf("Len() = %d after acknowledging 10 of 20", l.Len())
	}
	rs, _ = l.Peek(1)
	if len(rs) != 1 || !bytes.Equal(rs[0].Data, rec(10)) {
		t.Fatalf("Peek(1) after Ack = %v", rs)
	}
	if rs, err := l.Peek(0); rs != nil || err != nil {
		t.Fatalf("Peek(0) = %v, %v", rs, err)
	}
}

func TestFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const maxBytes, segBytes = 1024, 256
	l := open(t, dir, spill.Options{MaxBytes: maxBytes, SegmentBytes: segBytes})
	r := bytes.Repeat([]byte("a"), 100-spill.FrameHeaderLen) // 100 bytes a frame
	n := 0
	var err error
	for ; n < 100; n++ {
		if err = l.Append([][]byte{r}); err != nil {
			break
		}
	}
	if !errors.Is(err, spill.ErrFull) {
		t.Fatalf("Append %d: %v, want ErrFull", n, err)
	}
	// Segments of two 100-byte frames and a 16-byte header: 216 bytes;
	// four of them and the header and one frame of a fifth: 980 bytes.
	if n != 9 || l.Bytes() != 980 || l.Len() != 9 {
		t.Fatalf("held %d records in %d bytes (Len %d), want 9 in 980", n, l.Bytes(), l.Len())
	}
	if !strings.Contains(err.Error(), "980 of 1024") {
		t.Errorf("ErrFull says %q; want it to say how much is held", err)
	}
	before := l.Bytes()
	if err := l.Append([][]byte{r, r}); !errors.Is(err, spill.ErrFull) {
		t.Fatalf("Append of 2: %v, want ErrFull", err)
	}
	if l.Bytes() != before || fileSizes(t, dir) != before {
		t.Fatalf("a refused Append changed the log: %d bytes, files %d, was %d", l.Bytes(), fileSizes(t, dir), before)
	}
	// A group that could never fit.
	big := bytes.Repeat([]byte("b"), maxBytes)
	if err := l.Append([][]byte{big}); !errors.Is(err, spill.ErrTooLarge) || errors.Is(err, spill.ErrFull) {
		t.Fatalf("Append of %d bytes: %v, want ErrTooLarge", len(big), err)
	}
	if st := l.Stats(); st.Refused != 4 || st.Appended != 9 {
		t.Fatalf("Stats.Refused = %d, Appended = %d; want 4 and 9", st.Refused, st.Appended)
	}

	// Consuming a whole segment makes room; consuming part of one does not.
	rs, _ := l.Peek(1)
	if err := l.Ack(rs[0].End); err != nil {
		t.Fatal(err)
	}
	if err := l.Append([][]byte{r}); !errors.Is(err, spill.ErrFull) {
		t.Fatalf("Append after consuming half a segment: %v, want ErrFull", err)
	}
	rs, _ = l.Peek(1)
	if err := l.Ack(rs[0].End); err != nil {
		t.Fatal(err)
	}
	if l.Bytes() != before-216 {
		t.Fatalf("Bytes() = %d after consuming the first segment, want %d", l.Bytes(), before-216)
	}
	if err := l.Append([][]byte{r}); err != nil {
		t.Fatalf("Append after a segment was freed: %v", err)
	}
}

func fileSizes(t testing.TB, dir string) int64 {
	var n int64
	for _, p := range segments(t, dir) {
		n += fileSize(t, p)
	}
	return n
}

func TestRestartReplaysOnlyUnconsumed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		acked int // records acknowledged before the restart
	}{
		{"none", 0},
		{"mid-segment", 30},
		{"at a segment's end", 0}, // set below
		{"all", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			opts := spill.Options{SegmentBytes: 300}
			l := open(t, dir, opts)
			appendGroups(t, l, 0, 100, 4)
			rs, err := l.Peek(100)
			if err != nil || len(rs) != 100 {
				t.Fatalf("Peek(100) = %d, %v", len(rs), err)
			}
			acked := tc.acked
			if tc.name == "at a segment's end" {
				// The last record of the first segment: the next one
				// starts at the header of the next segment.
				for i := 1; i < len(rs); i++ {
					if spill.PosSegment(rs[i].End) != spill.PosSegment(rs[0].End) {
						acked = i
						break
					}
				}
			}
			if acked > 0 {
				if err := l.Ack(rs[acked-1].End); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			l = open(t, dir, opts)
			st := l.Stats()
			if l.Len() != 100-acked || st.Recovered != int64(100-acked) || st.TornBytes != 0 {
				t.Fatalf("after restart: Len() = %d, Stats = %+v; want %d held", l.Len(), st, 100-acked)
			}
			// New records come after the old ones, and positions go on
			// counting.
			appendGroups(t, l, 100, 110, 3)
			rs, _ = l.Peek(1)
			if len(rs) == 1 && rs[0].End.Seq() != uint64(acked+1) {
				t.Fatalf("first record after restart ends at %v, want Seq %d", rs[0].End, acked+1)
			}
			wantRecords(t, drain(t, l, 16), acked, 110)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = open(t, dir, opts)
			if l.Len() != 0 {
				t.Fatalf("after draining and a restart: Len() = %d", l.Len())
			}
		})
	}
}

// A crash between writing the checkpoint and deleting the segments it
// consumed: Open deletes them.
func TestOpenDeletesConsumedSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := spill.Options{SegmentBytes: 200}
	l := open(t, dir, opts)
	appendGroups(t, l, 0, 40, 2)
	first := segments(t, dir)[0]
	saved, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := l.Peek(20)
	if err := l.Ack(rs[19].End); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("consumed segment %s not deleted: %v", first, err)
	}
	l.Close()
	if err := os.WriteFile(first, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	l = open(t, dir, opts)
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open left consumed segment %s: %v", first, err)
	}
	wantRecords(t, drain(t, l, 100), 20, 40)
}

// A checkpoint that cannot be read replays everything still on disk:
// duplicates, rather than losses.
func TestUnreadableCheckpointReplaysAll(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := open(t, dir, spill.Options{SegmentBytes: 1 << 20})
	appendGroups(t, l, 0, 10, 1)
	rs, _ := l.Peek(4)
	if err := l.Ack(rs[3].End); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if err := os.WriteFile(filepath.Join(dir, "head"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs logBuf
	l = open(t, dir, spill.Options{Logger: slogTo(&logs)})
	wantRecords(t, drain(t, l, 100), 0, 10)
	if !strings.Contains(logs.String(), "checkpoint unreadable") {
		t.Fatalf("no error logged for the checkpoint; logs: %s", logs.String())
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := open(t, dir, spill.Options{})
	appendGroups(t, l, 0, 3, 3)
	rs, _ := l.Peek(3)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Append(recs(3, 4)); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if _, err := l.Peek(1); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("Peek after Close: %v", err)
	}
	if err := l.Ack(rs[2].End); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("Ack after Close: %v", err)
	}
	if err := l.Wait(t.Context()); !errors.Is(err, spill.ErrClosed) {
		t.Errorf("Wait after Close: %v", err)
	}
}

func TestAckForeignPosition(t *testing.T) {
	t.Parallel()
	a := open(t, t.TempDir(), spill.Options{})
	b := open(t, t.TempDir(), spill.Options{SegmentBytes: 100})
	appendGroups(t, a, 0, 50, 50)
	appendGroups(t, b, 0, 3, 1)
	rs, _ := a.Peek(50)
	if err := b.Ack(rs[49].End); err == nil {
		t.Fatalf("Ack of a position past the end of the log: no error")
	}
	if b.Len() != 3 {
		t.Fatalf("a refused Ack consumed records: Len() = %d", b.Len())
	}
}

func TestEmptyAppend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := open(t, dir, spill.Options{})
	if err := l.Append(nil); err != nil {
		t.Fatal(err)
	}
	if l.Len() != 0 || len(segments(t, dir)) != 0 {
		t.Fatalf("an empty Append wrote: Len() = %d, %d segments", l.Len(), len(segments(t, dir)))
	}
	// An empty record is a record.
	if err := l.Append([][]byte{{}, nil, []byte("x")}); err != nil {
		t.Fatal(err)
	}
	got := drain(t, l, 10)
	if len(got) != 3 || len(got[0]) != 0 || len(got[1]) != 0 || string(got[2]) != "x" {
		t.Fatalf("got %q", got)
	}
}

func TestSyncNone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := open(t, dir, spill.Options{Sync: spill.SyncNone, SegmentBytes: 128})
	appendGroups(t, l, 0, 50, 5)
	l.Close()
	l = open(t, dir, spill.Options{Sync: spill.SyncNone})
	wantRecords(t, drain(t, l, 8), 0, 50)
}

func TestOpenRefusesForeignSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := spill.SegPath(dir, 7)
	if err := os.WriteFile(path, []byte("this is not a segment of a spill log"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := spill.Open(dir, spill.Options{Logger: quiet()}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open with a foreign .seg file: %v; want an error naming it", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		opts spill.Options
		want string // "" for valid
	}{
		{spill.Options{}, ""},
		{spill.Options{MaxBytes: 64, SegmentBytes: 64, Sync: spill.SyncNone, FileMode: 0o640}, ""},
		{spill.Options{MaxBytes: 10}, "Options.MaxBytes must be 0 (default) or >= 64, got 10"},
		{spill.Options{SegmentBytes: -1}, "Options.SegmentBytes must be >= 0, got -1"},
		{spill.Options{MaxBytes: 1000, SegmentBytes: 2000}, "Options.SegmentBytes must be <= MaxBytes (1000), got 2000"},
		{spill.Options{SegmentBytes: 2 << 30}, "Options.SegmentBytes must be <= MaxBytes (1073741824), got 2147483648"},
		{spill.Options{Sync: 5}, "Options.Sync must be SyncAlways or SyncNone, got SyncPolicy(5)"},
		{spill.Options{FileMode: os.ModeDir | 0o700}, "Options.FileMode must hold permission bits only"},
	} {
		err := tc.opts.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.opts, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := spill.Open(t.TempDir(), spill.Options{MaxBytes: 1}); err == nil {
		t.Error("Open with bad options: no error")
	}
	if _, err := spill.Open("", spill.Options{}); err == nil {
		t.Error("Open with no directory: no error")
	}
}

func TestOneLogADirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l := open(t, dir, spill.Options{})
	if _, err := spill.Open(dir, spill.Options{Logger: quiet()}); !errors.Is(err, spill.ErrLocked) {
		t.Fatalf("second Open of %s: %v, want ErrLocked", dir, err)
	}
	l.Close()
	open(t, dir, spill.Options{})
}
