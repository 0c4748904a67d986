package archive

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/causeway-go/causeway/stages"
)

// DefaultName is the archive's base name when Config.Name is empty: the
// active file is DIR/tweets.jsonl.gz.
const DefaultName = "tweets"

// DefaultLevel is the gzip level when Config.Level is 0: BestSpeed. On the
// recorded tweets of testdata/ it compresses three to four times faster
// than gzip.DefaultCompression (medians of about 80 against 22 MB/s of
// input, one batch processor, on a busy 2-core development machine) for
// files about 27% larger (25.3% of the input against 19.8%), and the
// archive sits in the acknowledgement path of every message it holds.
// BenchmarkArchive measures both.
const DefaultLevel = gzip.BestSpeed

// Config configures a Writer. The zero value of every field but Dir is a
// usable default.
type Config[T any] struct {
	// Dir is the directory of the archive; it is created if missing.
	// Required.
	Dir string

	// Name is the base name of the files: the active file is
	// Dir/<Name>.jsonl.gz and a file finished by rotation becomes
	// Dir/<Name>-<UTC time>.jsonl.gz. Default DefaultName.
	Name string

	// Line maps a message to the one line that stores it, without a
	// trailing newline (one is added; a trailing "\n" or "\r\n" is
	// removed). An error, a panic or a line that holds a newline fails only
	// that message. Default: []byte, json.RawMessage and string data are
	// written as they are, anything else as its encoding/json encoding.
	Line func(m *stages.Message[T]) ([]byte, error)

	// Level is the gzip compression level: gzip.BestSpeed (1) to
	// gzip.BestCompression (9), gzip.DefaultCompression (-1) or
	// gzip.HuffmanOnly (-2). 0 means DefaultLevel; gzip.NoCompression
	// cannot be asked for.
	Level int

	// RotateSize finishes the active file once it holds at least this many
	// (compressed) bytes. 0: never by size.
	RotateSize int64

	// RotateEvery finishes the active file once its first line is this old
	// (for a file that already held lines when the Writer opened it: once
	// it has been open this long). An empty file is never finished. 0:
	// never by age.
	RotateEvery time.Duration

	// OnRotate, if set, is called with the path of each file that rotation
	// (by size or age) finished, after it got its final name. It runs on a
	// goroutine of its own, so a slow upload holds up no batch; Close waits
	// for it and cancels ctx when its own context ends. An error is logged
	// and counted, never fatal.
	OnRotate func(ctx context.Context, path string) error

	// OnRotateCommand, if set, is a shell command line (run with /bin/sh -c)
	// run for each finished file, with the file's path appended as its last
	// argument and in $CAUSEWAY_ARCHIVE_FILE: the place to upload or
	// checksum it. A failure is logged and counted, never fatal.
	OnRotateCommand string

	// FileMode is the permission of the files created. Default 0o640.
	FileMode os.FileMode

	// Logger receives the writer's logs. Default slog.Default().
	Logger *slog.Logger
}

// Validate reports every bad field, naming it.
func (c Config[T]) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("archive: Config.Dir must be set"))
	}
	if c.Name != "" && (strings.ContainsAny(c.Name, `/\`) || c.Name == "." || c.Name == "..") {
		errs = append(errs, fmt.Errorf("archive: Config.Name must be a plain file name, got %q", c.Name))
	}
	if c.Level < gzip.HuffmanOnly || c.Level > gzip.BestCompression {
		errs = append(errs, fmt.Errorf("archive: Config.Level must be 1 to 9, -1 (DefaultCompression) or -2 (HuffmanOnly), got %d", c.Level))
	}
	if c.RotateSize < 0 {
		errs = append(errs, fmt.Errorf("archive: Config.RotateSize must be >= 0, got %d", c.RotateSize))
	}
	if c.RotateEvery < 0 {
		errs = append(errs, fmt.Errorf("archive: Config.RotateEvery must be >= 0, got %v", c.RotateEvery))
	}
	if c.FileMode&^os.ModePerm != 0 {
		errs = append(errs, fmt.Errorf("archive: Config.FileMode must hold permission bits only, got %v", c.FileMode))
	}
	return errors.Join(errs...)
}

func (c Config[T]) withDefaults() Config[T] {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Line == nil {
		c.Line = defaultLine[T]
	}
	if c.Level == 0 {
		c.Level = DefaultLevel
	}
	if c.FileMode == 0 {
		c.FileMode = 0o640
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Dir = filepath.Clean(c.Dir)
	return c
}

// ActivePath is the path of the active file of an archive named name in
// dir: dir/<name>.jsonl.gz.
func ActivePath(dir, name string) string {
	if name == "" {
		name = DefaultName
	}
	return filepath.Join(dir, name+".jsonl.gz")
}

func defaultLine[T any](m *stages.Message[T]) ([]byte, error) {
	switch d := any(m.Data).(type) {
	case []byte:
		return d, nil
	case json.RawMessage:
		return d, nil
	case string:
		return []byte(d), nil
	}
	return json.Marshal(m.Data)
}

// ParseSize parses a size in bytes for flags such as -rotate-size: a
// plain number of bytes, or one with a unit: K, M, G, T (or KiB, MiB, GiB,
// TiB), powers of 1024, or KB, MB, GB, TB, powers of 1000; "0" is 0.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := t[:i], strings.ToUpper(strings.TrimSpace(t[i:]))
	mult := map[string]int64{"": 1, "B": 1,
		"K": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TIB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("archive: size %q: want bytes, optionally with a unit such as 64MiB or 100MB", s)
	}
	return n * mult, nil
}
