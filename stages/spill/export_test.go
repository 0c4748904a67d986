package spill

import (
	"log/slog"
	"os"
)

// Exported for the tests of package spill_test.
const (
	SegHeaderLen   = segHeaderLen
	FrameHeaderLen = frameHeaderLen
)

// SegPath is segPath for tests.
func SegPath(dir string, id uint64) string { return segPath(dir, id) }

// AppendGroup is appendGroup for tests.
func AppendGroup(dst []byte, records [][]byte) []byte { return appendGroup(dst, records) }

// PosSegment returns the segment id of p.
func PosSegment(p Position) uint64 { return p.seg }

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o600) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
