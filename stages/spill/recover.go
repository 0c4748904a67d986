package spill

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const segSuffix = ".seg"

// segPath is the path of segment id in dir: 20 digits, so names sort in
// id order.
func segPath(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", id, segSuffix))
}

// listSegments returns the ids of the segment files in dir, in order.
// Other files are left alone.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok || len(name) != 20 || !e.Type().IsRegular() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// recover builds the log's state from dir: the checkpoint, then each
// segment file, checked frame by frame.
func (l *Log) recover() error {
	head, err := readHead(l.dir)
	if err != nil {
		// Replaying everything again beats losing what was not consumed.
		l.log.Error("spill: checkpoint unreadable; replaying every record held", "err", err)
		head = Position{}
	}
	if err := os.Remove(filepath.Join(l.dir, headTmpName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	ids, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	l.head, l.tail = head, head.seq
	l.nextID = head.seg + 1
	for i, id := range ids {
		l.nextID = max(l.nextID, id+1)
		if id < head.seg {
			// Consumed; a crash came between the checkpoint and the delete.
			if err := os.Remove(segPath(l.dir, id)); err != nil {
				return err
			}
			continue
		}
		start := int64(segHeaderLen)
		if id == head.seg {
			start = head.off
		}
		if err := l.recoverSegment(id, start, i == len(ids)-1); err != nil {
			return fmt.Errorf("segment %s: %w", segPath(l.dir, id), err)
		}
	}
	l.stats.recovered.Store(int64(l.tail - l.head.seq))
	if n := l.tail - l.head.seq; n > 0 {
		l.log.Info("spill: records held from before, to replay first", "records", n, "bytes", l.disk, "segments", len(l.segs))
	}
	return nil
}

// recoverSegment checks segment id from offset start on, cuts what follows
// its last complete group, and adds it to the log, or deletes it when it
// holds no record to replay.
func (l *Log) recoverSegment(id uint64, start int64, last bool) error {
	path := segPath(l.dir, id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size < segHeaderLen {
		// A crash while the segment was being created.
		l.cut(path, 0, size, last, errTorn)
		return l.remove(f, path)
	}
	var h [segHeaderLen]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return err
	}
	got, err := parseSegHeader(h[:])
	if err != nil {
		return err
	}
	if got != id {
		return fmt.Errorf("header names segment %d", got)
	}
	if start < segHeaderLen || start > size {
		l.log.Error("spill: checkpoint points outside its segment; taking the segment as consumed",
			"segment", path, "offset", start, "size", size)
		return l.remove(f, path)
	}
	res, err := scanFrames(&l.fr, io.NewSectionReader(f, start, size-start), start, size)
	if err != nil {
		return err
	}
	if res.end < size {
		l.cut(path, res.end, size, last, res.stop)
		if err := f.Truncate(res.end); err != nil {
			return err
		}
		if l.sync {
			if err := f.Sync(); err != nil {
				return err
			}
		}
	}
	if res.records == 0 {
		return l.remove(f, path)
	}
	l.segs = append(l.segs, segment{id: id, size: res.end})
	l.disk += res.end
	l.tail += uint64(res.records)
	return nil
}

// cut logs and counts the bytes from off to size of a segment that Open
// cuts off.
func (l *Log) cut(path string, off, size int64, last bool, why error) {
	l.stats.tornBytes.Add(size - off)
	if last {
		l.log.Warn("spill: cut the torn tail of an append a crash interrupted (never acknowledged)",
			"segment", path, "offset", off, "bytes", size-off, "why", why)
		return
	}
	l.log.Error("spill: cut damaged bytes from a segment; the records in them are lost",
		"segment", path, "offset", off, "bytes", size-off, "why", why)
}

func (l *Log) remove(f *os.File, path string) error {
	f.Close()
	return os.Remove(path)
}
