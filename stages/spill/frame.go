package spill

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A segment file is a segment header followed by record frames:
//
//	segment header (16 bytes): "CWSPILL" 0x01 | segment id (uint64 LE)
//	record frame:              length (uint32 LE) | flags (1 byte) | CRC-32C (uint32 LE) | payload
//
// The CRC covers the length, the flags and the payload, so a damaged length
// is caught as well as damaged data. Flag bit 0 marks the last record of an
// Append group; the other bits are zero. A group counts only once its last
// frame is complete: a reader that meets a torn or damaged frame keeps the
// data up to the end of the last complete group.
const (
	segHeaderLen   = 16
	frameHeaderLen = 9

	flagLast = 1 << 0

	// maxRecordLen bounds one record, whatever Options.MaxBytes allows.
	maxRecordLen = 1 << 30
)

var segMagic = [8]byte{'C', 'W', 'S', 'P', 'I', 'L', 'L', 1}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errTorn and errDamaged say why a frame could not be read: it ends past
// the data (a write that did not finish), or its bytes are not a frame (a
// checksum or flag mismatch).
var (
	errTorn    = errors.New("torn frame")
	errDamaged = errors.New("damaged frame")
)

func appendSegHeader(dst []byte, id uint64) []byte {
	dst = append(dst, segMagic[:]...)
	return binary.LittleEndian.AppendUint64(dst, id)
}

// parseSegHeader returns the id a segment header names.
func parseSegHeader(h []byte) (uint64, error) {
	if len(h) < segHeaderLen || [8]byte(h[:8]) != segMagic {
		return 0, errors.New("not a spill segment (bad magic)")
	}
	return binary.LittleEndian.Uint64(h[8:16]), nil
}

// frameLen is the size on disk of a record of n bytes.
func frameLen(n int) int64 { return frameHeaderLen + int64(n) }

// groupLen is the size on disk of records appended as one group.
func groupLen(records [][]byte) int64 {
	var n int64
	for _, r := range records {
		n += frameLen(len(r))
	}
	return n
}

// appendGroup appends the frames of records, the last one flagged as the
// end of the group, to dst.
func appendGroup(dst []byte, records [][]byte) []byte {
	for i, r := range records {
		var flags byte
		if i == len(records)-1 {
			flags = flagLast
		}
		start := len(dst)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r)))
		dst = append(dst, flags, 0, 0, 0, 0)
		crc := crc32.Update(crc32.Checksum(dst[start:start+5], castagnoli), castagnoli, r)
		binary.LittleEndian.PutUint32(dst[start+5:start+9], crc)
		dst = append(dst, r...)
	}
	return dst
}

// frameReader reads record frames from r, which holds the remain bytes of
// a segment from offset off on.
type frameReader struct {
	r      *bufio.Reader
	off    int64 // offset of the next frame in the segment
	remain int64 // bytes left in r
	hdr    [frameHeaderLen]byte
}

func (fr *frameReader) reset(r io.Reader, off, size int64) {
	if fr.r == nil {
		fr.r = bufio.NewReaderSize(r, 64<<10)
	} else {
		fr.r.Reset(r)
	}
	fr.off, fr.remain = off, size-off
}

// next appends the payload of the next frame to dst. It returns io.EOF at
// the end of the data, errTorn for a frame that ends past it, errDamaged
// for one whose checksum or flags are wrong, and other errors as the
// underlying reader returned them. On an error, dst and fr.off are as they
// were.
func (fr *frameReader) next(dst []byte) (out []byte, last bool, err error) {
	if fr.remain == 0 {
		return dst, false, io.EOF
	}
	if fr.remain < frameHeaderLen {
		return dst, false, errTorn
	}
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return dst, false, fmt.Errorf("read frame header: %w", noEOF(err))
	}
	n := int64(binary.LittleEndian.Uint32(fr.hdr[0:4]))
	flags := fr.hdr[4]
	if flags&^flagLast != 0 || n > maxRecordLen {
		return dst, false, errDamaged
	}
	if frameHeaderLen+n > fr.remain {
		return dst, false, errTorn
	}
	start := len(dst)
	dst = grow(dst, int(n))
	if _, err := io.ReadFull(fr.r, dst[start:]); err != nil {
		return dst[:start], false, fmt.Errorf("read frame payload: %w", noEOF(err))
	}
	crc := crc32.Update(crc32.Checksum(fr.hdr[:5], castagnoli), castagnoli, dst[start:])
	if crc != binary.LittleEndian.Uint32(fr.hdr[5:9]) {
		return dst[:start], false, errDamaged
	}
	fr.off += frameHeaderLen + n
	fr.remain -= frameHeaderLen + n
	return dst, flags&flagLast != 0, nil
}

// grow extends dst by n bytes, reallocating when its capacity is short.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) < n {
		nd := make([]byte, len(dst), 2*cap(dst)+n)
		copy(nd, dst)
		dst = nd
	}
	return dst[:len(dst)+n]
}

// noEOF turns an end of file inside a frame, which the size checked
// beforehand should have prevented (the file shrank under the reader),
// into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// scanResult is what scanFrames found.
type scanResult struct {
	end     int64 // offset just past the last complete group
	records int64 // records in complete groups
	groups  int64
	stop    error // why scanning stopped before the data's end: errTorn or errDamaged; nil if it did not
	stopAt  int64 // offset of the frame it stopped at
}

// scanFrames reads the frames of a segment's bytes in r, from offset off up
// to size, and reports how far they hold complete groups. It returns an
// error only when r fails.
func scanFrames(fr *frameReader, r io.Reader, off, size int64) (scanResult, error) {
	fr.reset(r, off, size)
	res := scanResult{end: off}
	var buf []byte
	var pending int64 // records of the group under way
	for {
		var last bool
		var err error
		buf, last, err = fr.next(buf[:0])
		switch {
		case err == io.EOF:
			if pending > 0 {
				// The data ends inside a group: its last frame is missing.
				res.stop, res.stopAt = errTorn, fr.off
			}
			return res, nil
		case errors.Is(err, errTorn) || errors.Is(err, errDamaged):
			res.stop, res.stopAt = err, fr.off
			return res, nil
		case err != nil:
			return res, err
		}
		pending++
		if last {
			res.end = fr.off
			res.records += pending
			res.groups++
			pending = 0
		}
		if cap(buf) > 1<<20 {
			buf = nil // keep no large record's buffer around
		}
	}
}
