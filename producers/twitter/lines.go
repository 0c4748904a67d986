package twitter

import (
	"bytes"
	"io"
)

// lineReader splits a stream body into lines on "\n" (the API ends lines
// with "\r\n"; the "\r" is trimmed), however the bytes were split across
// reads and DATA frames. Lines longer than max are skipped whole and
// reported, so one bad line costs at most max bytes of memory.
type lineReader struct {
	r          io.Reader
	buf        []byte
	start, end int   // buf[start:end] is read and not yet split
	off        int64 // stream offset of buf[start]
	max        int
	minRead    int
	size       int // the buffer's size when no long line grows it
	// keep: bytes once read are never overwritten; a buffer that runs out
	// of room is replaced, not reused, so the lines next returns stay
	// valid for as long as anyone holds them (DeferDecode's tweets).
	keep bool

	skipping bool // inside an oversized line, dropping bytes until "\n"
}

// split is what lineReader.next found.
type split uint8

const (
	splitNone split = iota // no complete line buffered: fill again
	splitLine              // a line
	splitOver              // a line over the limit, skipped
)

func newLineReader(r io.Reader, limit int) *lineReader {
	size := max(min(64<<10, limit+2), 4<<10)
	return &lineReader{r: r, buf: make([]byte, size), max: limit, minRead: 4 << 10, size: size}
}

// fill reads once from the body, making room first. It returns the number of
// bytes read and the read's error.
func (lr *lineReader) fill() (int, error) {
	if lr.keep {
		if len(lr.buf)-lr.end < lr.minRead {
			size := lr.size
			if pending := lr.end - lr.start; pending+lr.minRead > size {
				size = 2*pending + lr.minRead // a long partial line (up to the limit, checked by next)
			}
			nb := make([]byte, size)
			lr.end = copy(nb, lr.buf[lr.start:lr.end])
			lr.start = 0
			lr.buf = nb
		}
		n, err := lr.r.Read(lr.buf[lr.end:])
		lr.end += n
		return n, err
	}
	if lr.start == lr.end {
		lr.start, lr.end = 0, 0
	}
	if len(lr.buf)-lr.end < lr.minRead {
		if lr.start > 0 {
			lr.end = copy(lr.buf, lr.buf[lr.start:lr.end])
			lr.start = 0
		}
		if len(lr.buf)-lr.end < lr.minRead {
			// The pending partial line fills the buffer: grow it (up to
			// the limit, checked by next).
			nb := make([]byte, 2*len(lr.buf)+lr.minRead)
			lr.end = copy(nb, lr.buf[:lr.end])
			lr.buf = nb
		}
	}
	n, err := lr.r.Read(lr.buf[lr.end:])
	lr.end += n
	return n, err
}

// next returns the next complete line (its "\r\n" trimmed) and its stream
// offset; the line is valid until the next fill. A line over the limit is
// reported as splitOver with the bytes seen so far (once per line: as soon as
// it passes the limit, or when its end arrives in one piece) and never
// returned.
func (lr *lineReader) next() (line []byte, offset int64, size int, what split) {
	for {
		pending := lr.buf[lr.start:lr.end]
		i := bytes.IndexByte(pending, '\n')
		if lr.skipping {
			if i < 0 {
				lr.advance(len(pending))
				return nil, 0, 0, splitNone
			}
			lr.advance(i + 1)
			lr.skipping = false
			continue
		}
		if i < 0 {
			if len(pending) > lr.max+1 { // +1: a trailing "\r" is not counted
				offset, size = lr.off, len(pending)
				lr.skipping = true
				lr.advance(len(pending))
				return nil, offset, size, splitOver
			}
			return nil, 0, 0, splitNone
		}
		line, offset = pending[:i], lr.off
		lr.advance(i + 1)
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > lr.max {
			return nil, offset, len(line), splitOver
		}
		return line, offset, len(line), splitLine
	}
}

func (lr *lineReader) advance(n int) {
	lr.start += n
	lr.off += int64(n)
}

// pending returns how many bytes of an unfinished line are buffered (0
// while skipping an oversized line, already counted).
func (lr *lineReader) pending() int {
	if lr.skipping {
		return 0
	}
	return lr.end - lr.start
}

// offset returns the stream offset of the first byte not yet split.
func (lr *lineReader) offset() int64 { return lr.off }
