package spill

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
)

// The checkpoint file, DIR/head, says how far the log was consumed:
//
//	"CWSPHEAD" | segment id (uint64 LE) | offset (int64 LE) | seq (uint64 LE) | CRC-32C of the 32 bytes before (uint32 LE)
//
// Ack writes it to DIR/head.tmp and renames that over DIR/head, so a crash
// leaves the old checkpoint or the new one, never a mix.
const (
	headName    = "head"
	headTmpName = "head.tmp"
	headLen     = 36
)

var headMagic = [8]byte{'C', 'W', 'S', 'P', 'H', 'E', 'A', 'D'}

func encodeHead(p Position) []byte {
	b := make([]byte, 0, headLen)
	b = append(b, headMagic[:]...)
	b = binary.LittleEndian.AppendUint64(b, p.seg)
	b = binary.LittleEndian.AppendUint64(b, uint64(p.off))
	b = binary.LittleEndian.AppendUint64(b, p.seq)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeHead(b []byte) (Position, error) {
	if len(b) != headLen || [8]byte(b[:8]) != headMagic {
		return Position{}, fmt.Errorf("not a spill checkpoint (%d bytes)", len(b))
	}
	if crc32.Checksum(b[:32], castagnoli) != binary.LittleEndian.Uint32(b[32:]) {
		return Position{}, errors.New("checkpoint checksum mismatch")
	}
	p := Position{
		seg: binary.LittleEndian.Uint64(b[8:]),
		off: int64(binary.LittleEndian.Uint64(b[16:])),
		seq: binary.LittleEndian.Uint64(b[24:]),
	}
	if p.off < 0 {
		return Position{}, fmt.Errorf("checkpoint offset %d is negative", p.off)
	}
	return p, nil
}

// readHead reads the checkpoint of dir; a missing one is the zero
// Position: nothing consumed.
func readHead(dir string) (Position, error) {
	b, err := os.ReadFile(filepath.Join(dir, headName))
	if errors.Is(err, fs.ErrNotExist) {
		return Position{}, nil
	}
	if err != nil {
		return Position{}, err
	}
	return decodeHead(b)
}

// writeHead replaces the checkpoint of dir with p, atomically; with sync,
// durably too.
func writeHead(dir string, p Position, mode os.FileMode, sync bool) error {
	tmp := filepath.Join(dir, headTmpName)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(encodeHead(p))
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, headName))
	}
	if err == nil && sync {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("write checkpoint %s: %w", filepath.Join(dir, headName), err)
	}
	return nil
}

// syncDir fsyncs a directory, making the names created, renamed or
// removed in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
