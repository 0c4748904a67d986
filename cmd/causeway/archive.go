package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/archive"
	"github.com/causeway-go/causeway/topology"
)

// tweetArchive is the "archive" batcher of a run: every tweet's raw JSON
// line, gzip JSON lines in a directory (stages/archive).
type tweetArchive struct {
	w      *archive.Writer[twitter.Tweet]
	dir    string
	before map[string]int64 // the archive's files at start and their sizes

	closeOnce sync.Once
	closeErr  error
}

// openArchive opens the archive of -dir / -archive-dir: a torn tail left by
// a crash is cut off now.
func openArchive(cfg *config, log *slog.Logger) (*tweetArchive, error) {
	a := &tweetArchive{dir: cfg.archiveDir, before: archiveFiles(cfg.archiveDir)}
	w, err := archive.New(archive.Config[twitter.Tweet]{
		Dir: cfg.archiveDir, Name: cfg.archiveName,
		Line:       func(m *stages.Message[twitter.Tweet]) ([]byte, error) { return archiveLine(m.Data.Raw), nil },
		RotateSize: cfg.rotateSizeBytes, RotateEvery: cfg.rotateEvery, OnRotateCommand: cfg.onRotate,
		Logger: log.With("component", "archive"),
	})
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", cfg.archiveDir, err)
	}
	a.w = w
	return a, nil
}

// batcher is the topology's "archive" batcher: a batch is one gzip member,
// fsync'ed before its tweets are acknowledged.
func (a *tweetArchive) batcher() topology.BatcherSpec[twitter.Tweet] {
	return topology.BatcherSpec[twitter.Tweet]{BatchSize: 1000, BatchTimeout: 200 * time.Millisecond, Concurrency: 2, Handle: a.w.HandleBatch}
}

// close closes the writer once; later calls return the first's error.
func (a *tweetArchive) close(ctx context.Context) error {
	a.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		a.closeErr = a.w.Close(ctx)
	})
	return a.closeErr
}

// written lists the files of the archive directory this run created or
// changed (a file logrotate renamed counts under its new name).
func (a *tweetArchive) written() []string {
	var out []string
	for path, size := range archiveFiles(a.dir) {
		if old, ok := a.before[path]; !ok || old != size {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out
}

// archiveFiles maps the *.gz files of dir to their sizes.
func archiveFiles(dir string) map[string]int64 {
	files := map[string]int64{}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.gz"))
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			files[p] = fi.Size()
		}
	}
	return files
}

// addArchive fills the summary's archive fields: archived is what the
// "archive" batcher acknowledged (written and fsync'ed).
func (s *summary) addArchive(a *tweetArchive) {
	s.Archived = s.Batchers["archive"].Acked
	s.ArchiveFiles = a.written()
	if s.ArchiveFiles == nil {
		s.ArchiveFiles = []string{}
	}
	st := a.w.Stats()
	s.ArchiveTornBytes = st.TornBytes
	s.ArchiveRotations, s.ArchiveReopens = st.Rotations, st.Reopens
}

const archiveVerifyUsage = `Usage: causeway archive verify DIR

Checks every *.gz file of the archive directory DIR: complete gzip members,
lines, JSON lines, tweet ids (data.id) and duplicates across files, and any
damage (offset, length, cause). Exits 1 if a file is damaged or unreadable.
`

// runArchiveVerify is `causeway archive verify DIR`.
func runArchiveVerify(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stderr, archiveVerifyUsage)
		return 0
	}
	if len(args) != 1 {
		fmt.Fprint(stderr, "causeway: archive verify takes one directory\n"+archiveVerifyUsage)
		return 2
	}
	if fi, err := os.Stat(args[0]); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "causeway: archive verify %s: not a directory\n", args[0])
		return 2
	}
	r, err := archive.Verify(args[0], archive.VerifyOptions{IDField: "data.id", MaxDuplicates: 20})
	if err != nil {
		fmt.Fprintf(stderr, "causeway: archive verify %s: %v\n", args[0], err)
		return 1
	}
	r.WriteText(stdout)
	if !r.OK() {
		return 1
	}
	return 0
}

// archiveLine is the line archived for a tweet: its raw JSON line as the X
// API sent it, except that an escaped UTF-16 surrogate that is not half of
// a pair (\ud83d alone: half an emoji) becomes \ufffd, the replacement
// character. Such a line is ill-formed Unicode that strict JSON readers
// (jq 1.6, PostgreSQL's jsonb) refuse, and one bad line must not make the
// archive unreadable to them; Go's encoding/json makes the same
// substitution when it decodes the original. Every other byte is kept.
func archiveLine(raw []byte) []byte {
	var out []byte // nil until a change is needed
	from := 0
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' || i+1 >= len(raw) {
			continue
		}
		if raw[i+1] != 'u' {
			i++ // \\, \" and the like: skip the escaped byte
			continue
		}
		hi, lo := surrogateAt(raw, i)
		if !hi && !lo {
			continue
		}
		if hi {
			if _, lo2 := surrogateAt(raw, i+6); lo2 {
				i += 11 // a valid pair
				continue
			}
		}
		out = append(out, raw[from:i]...)
		out = append(out, `\ufffd`...)
		from = i + 6
		i += 5
	}
	if out == nil {
		return raw
	}
	return append(out, raw[from:]...)
}

// surrogateAt reports whether raw holds an escaped high or low surrogate
// (\ud800-\udbff, \udc00-\udfff) at i.
func surrogateAt(raw []byte, i int) (high, low bool) {
	if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' || (raw[i+2]|0x20) != 'd' || !isHex(raw[i+4]) || !isHex(raw[i+5]) {
		return false, false
	}
	switch raw[i+3] | 0x20 {
	case '8', '9', 'a', 'b':
		return true, false
	case 'c', 'd', 'e', 'f':
		return false, true
	}
	return false, false
}

func isHex(b byte) bool { return '0' <= b && b <= '9' || 'a' <= b|0x20 && b|0x20 <= 'f' }
