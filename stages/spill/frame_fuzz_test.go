package spill

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// fuzzSeeds are segment bodies (what follows the segment header) a crash
// or a damaged disk can leave.
func fuzzSeeds() [][]byte {
	one := appendGroup(nil, [][]byte{[]byte("a record")})
	three := appendGroup(nil, [][]byte{[]byte("first"), {}, []byte("third")})
	huge := make([]byte, frameHeaderLen)
	binary.LittleEndian.PutUint32(huge, 1<<31)
	flipped := bytes.Clone(three)
	flipped[len(flipped)-2] ^= 0x40
	return [][]byte{
		nil,
		one,
		append(bytes.Clone(one), three...),
		three[:len(three)-3],                // torn inside the last record
		three[:frameHeaderLen+len("first")], // a group without its last frame
		append(bytes.Clone(one), make([]byte, 64)...), // zeros after a crash
		append(bytes.Clone(one), huge...),
		flipped,
		append([]byte("junk"), one...),
	}
}

// Whatever bytes a segment holds, the frame scanner neither panics nor
// keeps anything but complete groups, which re-encode to exactly the
// bytes it kept.
func FuzzScanFrames(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr frameReader
		size := int64(len(data))
		res, err := scanFrames(&fr, bytes.NewReader(data), 0, size)
		if err != nil {
			t.Fatalf("scanFrames: %v", err)
		}
		if res.end < 0 || res.end > size {
			t.Fatalf("end %d outside 0..%d", res.end, size)
		}
		if res.end < size && res.stop == nil {
			t.Fatalf("stopped at %d of %d with no reason", res.end, size)
		}
		if res.end == size && res.stop != nil {
			t.Fatalf("kept everything but reports %v", res.stop)
		}

		fr.reset(bytes.NewReader(data[:res.end]), 0, res.end)
		var out []byte
		var group [][]byte
		var records, groups int64
		for {
			rec, last, err := fr.next(nil)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("frame at %d of the kept bytes: %v", fr.off, err)
			}
			group = append(group, rec)
			if last {
				out = appendGroup(out, group)
				records += int64(len(group))
				groups++
				group = nil
			}
		}
		if group != nil {
			t.Fatalf("kept %d frames of an incomplete group", len(group))
		}
		if !bytes.Equal(out, data[:res.end]) {
			t.Fatalf("kept groups re-encode to %d bytes, not the %d kept", len(out), res.end)
		}
		if records != res.records || groups != res.groups {
			t.Fatalf("scan counted %d records in %d groups, reading found %d in %d", res.records, res.groups, records, groups)
		}
	})
}

// Whatever follows a segment's header, Open succeeds, cuts what is not a
// complete group, and Peek reads every record it kept.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		dir := t.TempDir()
		seg := append(appendSegHeader(nil, 1), body...)
		if err := writeFile(segPath(dir, 1), seg); err != nil {
			t.Fatal(err)
		}
		opts := Options{Sync: SyncNone, Logger: discard()}
		l, err := Open(dir, opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer l.Close()
		n := l.Len()
		if torn := l.Stats().TornBytes; torn < 0 || torn > int64(len(body)) {
			t.Fatalf("TornBytes = %d of a %d-byte body", torn, len(body))
		}
		rs, err := l.Peek(n + 1)
		if err != nil || len(rs) != n {
			t.Fatalf("Peek(%d) = %d records, %v; Len() = %d", n+1, len(rs), err, n)
		}
		l.Close()
		l, err = Open(dir, opts)
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		defer l.Close()
		if st := l.Stats(); st.TornBytes != 0 || l.Len() != n {
			t.Fatalf("second Open: TornBytes = %d, Len() = %d; want 0 and %d", st.TornBytes, l.Len(), n)
		}
	})
}
