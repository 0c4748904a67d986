package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// countingReader reads through a bufio.Reader and counts the bytes handed
// out. It implements io.ByteReader, so neither gzip nor flate wraps it in a
// buffer of their own: the count is exactly the number of bytes the
// decompressor consumed, which makes it the offset of a member's end.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func newCountingReader(r io.Reader, off int64) *countingReader {
	return &countingReader{r: bufio.NewReaderSize(r, 64<<10), n: off}
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// memberScanner decodes a gzip file one member at a time and tracks the
// byte offset where each complete member ends.
type memberScanner struct {
	cr  *countingReader
	zr  *gzip.Reader
	buf bytes.Buffer
	end int64 // offset just past the last complete member
}

func newMemberScanner(r io.Reader, off int64) *memberScanner {
	return &memberScanner{cr: newCountingReader(r, off), end: off}
}

// next decodes the next member into s.buf. It returns io.EOF at a clean end
// (the file ends right after a complete member), nil after a complete member,
// and any other error when the bytes from s.end on are not a complete, valid
// member: a torn member, a bad checksum, or something that is not gzip.
func (s *memberScanner) next(keep bool) error {
	s.buf.Reset()
	var err error
	if s.zr == nil {
		s.zr, err = gzip.NewReader(s.cr)
	} else {
		err = s.zr.Reset(s.cr)
	}
	if err == io.EOF && s.cr.n == s.end {
		return io.EOF
	}
	if err != nil {
		return memberErr(err)
	}
	s.zr.Multistream(false)
	dst := io.Discard
	if keep {
		dst = &s.buf
	}
	if _, err := io.Copy(dst, s.zr); err != nil {
		return memberErr(err)
	}
	s.end = s.cr.n
	return nil
}

// memberErr names what is wrong with a member in words an operator reads.
func memberErr(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return fmt.Errorf("torn member (the file ends inside it): %w", err)
	case errors.Is(err, gzip.ErrHeader):
		return fmt.Errorf("no gzip member starts here: %w", err)
	case errors.Is(err, gzip.ErrChecksum):
		return fmt.Errorf("member fails its checksum: %w", err)
	}
	return fmt.Errorf("member does not decode: %w", err)
}

// scanMembers reads r from offset off to its end and returns the offset just
// past the last complete member and the number of complete members. err is
// nil when the data ends exactly there; otherwise it says what is wrong at
// end. If fn is not nil it gets each complete member's offset and
// decompressed content.
func scanMembers(r io.Reader, off int64, fn func(off int64, content []byte)) (end int64, members int, err error) {
	s := newMemberScanner(r, off)
	for {
		start := s.end
		err := s.next(fn != nil)
		if err == io.EOF {
			return s.end, members, nil
		}
		if err != nil {
			return s.end, members, err
		}
		members++
		if fn != nil {
			fn(start, s.buf.Bytes())
		}
	}
}

// gzipMagic starts every gzip member whose compression method is deflate.
var gzipMagic = []byte{0x1f, 0x8b, 0x08}

// nextMember looks for the first offset in [from, size) where a complete,
// valid gzip member starts, and returns it, or -1 if there is none. It is
// how damage in the middle of a file is told apart from a torn tail: after a
// torn tail, nothing valid follows.
func nextMember(r io.ReaderAt, from, size int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk+len(gzipMagic)-1)
	for pos := from; pos < size; pos += chunk {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
		if err != nil && err != io.EOF {
			return -1, err
		}
		b := buf[:n]
		for i := 0; ; {
			j := bytes.Index(b[i:], gzipMagic)
			if j < 0 || int64(i+j) >= chunk {
				break
			}
			at := pos + int64(i+j)
			s := newMemberScanner(io.NewSectionReader(r, at, size-at), at)
			if s.next(false) == nil {
				return at, nil
			}
			i += j + 1
		}
	}
	return -1, nil
}
