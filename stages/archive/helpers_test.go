package archive_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/causeway-go/causeway/stages"
)

// quiet is a logger for tests that expect warnings.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// batchOf returns a batch of string messages, one per line.
func batchOf(lines ...string) *stages.Batch[string] {
	msgs := make([]stages.Message[string], len(lines))
	b := &stages.Batch[string]{Messages: make([]*stages.Message[string], len(lines))}
	for i, l := range lines {
		msgs[i].Data = l
		b.Messages[i] = &msgs[i]
	}
	b.Size = len(lines)
	return b
}

// gzFiles returns the *.gz files of dir, sorted.
func gzFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// readLines decompresses path (every member) and returns its lines. It
// fails the test if the file is not valid gzip or its last line has no
// newline.
func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	st, _ := f.Stat()
	if st.Size() == 0 {
		return nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: not valid gzip: %v", path, err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("%s: the last line has no newline", path)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// gzipT runs `gzip -t` on each file, when gzip is installed.
func gzipT(t testing.TB, files ...string) {
	t.Helper()
	gz, err := exec.LookPath("gzip")
	if err != nil {
		t.Log("gzip not installed: not checked with gzip -t")
		return
	}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Size() == 0 {
			continue // gzip -t rejects an empty file; an empty active file is fine
		}
		if out, err := exec.Command(gz, "-t", f).CombinedOutput(); err != nil {
			t.Errorf("gzip -t %s: %v: %s", f, err, out)
		}
	}
}

// lineFiles maps every line in dir to the files holding it (once per
// occurrence).
func lineFiles(t testing.TB, dir string) map[string][]string {
	t.Helper()
	where := map[string][]string{}
	for _, f := range gzFiles(t, dir) {
		for _, l := range readLines(t, f) {
			where[l] = append(where[l], filepath.Base(f))
		}
	}
	return where
}

var (
	tweetsOnce sync.Once
	tweets     [][]byte
	tweetsErr  error
)

// recordedTweets returns the recorded X API stream lines of the
// repository's testdata/tweets.jsonl, without their CRLF.
func recordedTweets(t testing.TB) [][]byte {
	t.Helper()
	tweetsOnce.Do(func() {
		var data []byte
		data, tweetsErr = os.ReadFile("../../testdata/tweets.jsonl")
		for _, l := range bytes.Split(data, []byte("\n")) {
			if l = bytes.TrimRight(l, "\r"); len(l) > 0 {
				tweets = append(tweets, l)
			}
		}
	})
	if tweetsErr != nil {
		t.Fatal(tweetsErr)
	}
	return tweets
}

// gzipBytes compresses data as one gzip member.
func gzipBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
