package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/stages/archive"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
)

// archiveArgs runs causeway archive on the embedded fake X API replaying
// testdata/ into dir.
func archiveArgs(dir string, extra ...string) []string {
	return append([]string{"archive", "-dir", dir, "-replay-data", "../../testdata/*.jsonl"}, extra...)
}

// checkArchive verifies dir: valid, every acknowledged tweet exactly once,
// and every tweet of the corpus there (the replay runs to its end).
func checkArchive(t *testing.T, dir string, r result, c *corpus) *archive.Report {
	t.Helper()
	rep, err := archive.Verify(dir, archive.VerifyOptions{IDField: "data.id"})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !rep.OK() || rep.Duplicates != 0 || rep.Lines != rep.UniqueIDs || rep.Lines != rep.JSONLines {
		t.Fatalf("archive not clean:\n%s", text.String())
	}
	if r.sum.Archived != rep.Lines || r.sum.Acked != rep.Lines || r.sum.Emitted != rep.Lines || r.sum.Dropped != 0 {
		t.Fatalf("summary archived %d, acked %d, emitted %d, dropped %d; archive holds %d lines:\n%s",
			r.sum.Archived, r.sum.Acked, r.sum.Emitted, r.sum.Dropped, rep.Lines, text.String())
	}
	if rep.Lines != int64(len(c.ids)) {
		t.Fatalf("archive holds %d lines, the replay served %d tweets", rep.Lines, len(c.ids))
	}
	if len(r.sum.ArchiveFiles) != len(rep.Files) {
		t.Errorf("summary archive_files %v, directory holds %d files", r.sum.ArchiveFiles, len(rep.Files))
	}
	return rep
}

// causeway archive replays testdata/ into the archive alone: no Kafka, no
// Postgres, every tweet archived and acknowledged exactly once.
func TestArchiveMode(t *testing.T) {
	c := testCorpus(t)
	dir := t.TempDir()
	r := runBinary(t, archiveArgs(dir), nil)
	rep := checkArchive(t, dir, r, c)
	if len(rep.Files) != 1 || filepath.Base(rep.Files[0].Path) != "tweets.jsonl.gz" {
		t.Fatalf("files %v, want tweets.jsonl.gz alone", r.sum.ArchiveFiles)
	}
	if _, ok := r.sum.Batchers["kafka"]; ok {
		t.Fatal("archive mode ran a kafka batcher")
	}
	if !strings.Contains(r.stdout, "lines archived") {
		t.Errorf("the summary does not show the archive:\n%s", r.stdout)
	}
	// causeway archive verify reads it back.
	var out, errOut bytes.Buffer
	if st := run(t.Context(), []string{"archive", "verify", dir}, nil, &out, &errOut, nil, nil); st != 0 ||
		!strings.Contains(out.String(), "ok") {
		t.Fatalf("archive verify exited %d:\n%s%s", st, out.String(), errOut.String())
	}
	// Damage makes it exit non-zero.
	if err := os.WriteFile(filepath.Join(dir, "broken.jsonl.gz"), []byte("\x1f\x8b\x08garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if st := run(t.Context(), []string{"archive", "verify", dir}, nil, &out, &errOut, nil, nil); st != 1 ||
		!strings.Contains(out.String(), "damage") {
		t.Fatalf("archive verify of a damaged file exited %d:\n%s", st, out.String())
	}
}

// logrotate's rename-then-SIGHUP mid-run: a new active file, the renamed
// one complete, no line lost or doubled.
func TestArchiveSIGHUPReopens(t *testing.T) {
	c := testCorpus(t)
	dir := t.TempDir()
	active := archive.ActivePath(dir, "tweets")
	rotated := filepath.Join(dir, "tweets.1.jsonl.gz")
	hup := make(chan os.Signal, 1)
	hupped := make(chan error, 1)
	go func() {
		// Wait (bounded by the test's timeout) for the first batch on disk.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if fi, err := os.Stat(active); err == nil && fi.Size() > 0 {
				break
			}
		}
		if err := os.Rename(active, rotated); err != nil {
			hupped <- err
			return
		}
		hup <- syscall.SIGHUP
		hupped <- nil
	}()
	r, err := runBinaryHUP(t, archiveArgs(dir, "-replay-rate", "2000"), nil, hup)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-hupped; err != nil {
		t.Fatal(err)
	}
	rep := checkArchive(t, dir, r, c)
	lines := map[string]int64{}
	for _, f := range rep.Files {
		lines[filepath.Base(f.Path)] = f.Lines
	}
	if len(rep.Files) != 2 || lines["tweets.1.jsonl.gz"] == 0 || lines["tweets.jsonl.gz"] == 0 {
		t.Fatalf("files %v: want the renamed file and a new active one, both with lines", lines)
	}
	if r.sum.ArchiveReopens != 1 {
		t.Errorf("summary archive_reopens %d, want 1", r.sum.ArchiveReopens)
	}
}

func TestArchiveHelpAndConfig(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseConfig([]string{"archive", "-h"}, nil, &stderr); err == nil {
		t.Fatal("-h did not stop")
	}
	for _, f := range []string{"-dir", "-archive-name", "-rotate-size", "-rotate-every", "-on-rotate", "-summary-json", "causeway archive verify"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("causeway archive -h does not mention %s", f)
		}
	}
	env := func(string) (string, bool) { return "", false }
	if _, err := parseConfig([]string{"archive", "-dir", t.TempDir(), "-rotate-size", "64MiB", "-rotate-every", "1h"}, env, &stderr); err != nil {
		t.Fatalf("archive mode wants no -database-url: %v", err)
	}
	if _, err := parseConfig([]string{"archive"}, env, &stderr); err == nil || !strings.Contains(err.Error(), "-dir") {
		t.Fatalf("archive without -dir: %v", err)
	}
	if _, err := parseConfig([]string{"archive", "-dir", "x", "-rotate-size", "lots"}, env, &stderr); err == nil ||
		!strings.Contains(err.Error(), "-rotate-size") {
		t.Fatalf("bad -rotate-size: %v", err)
	}
}

func TestArchiveLine(t *testing.T) {
	for in, want := range map[string]string{
		`{"t":"half \ud83d end"}`:         `{"t":"half \ufffd end"}`,
		`{"t":"pair \ud83d\ude00 ok"}`:    `{"t":"pair \ud83d\ude00 ok"}`,
		`{"t":"low \ude00"}`:              `{"t":"low \ufffd"}`,
		`{"t":"escaped \\ud83d is text"}`: `{"t":"escaped \\ud83d is text"}`,
		`{"t":"plain"}`:                   `{"t":"plain"}`,
	} {
		if got := string(archiveLine([]byte(in))); got != want {
			t.Errorf("archiveLine(%s) = %s, want %s", in, got, want)
		}
	}
}

// -archive-dir in the tweet topology adds a third batcher beside kafka and
// postgres: a tweet is acknowledged once all three hold it, and afterwards
// the archive, Kafka and Postgres each hold every tweet exactly once (but
// the ones Postgres refuses).
func TestArchiveBesideKafkaAndPostgres(t *testing.T) {
	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	s := newSinks(t, k.Brokers)
	dir := t.TempDir()
	r := runBinary(t, append(s.args(), "-replay-data", "../../testdata/*.jsonl", "-archive-dir", dir), nil)
	s.check(t, r, c, true)
	if _, ok := r.sum.Batchers["archive"]; !ok {
		t.Fatalf("no archive batcher: %v", r.sum.Batchers)
	}
	rep, err := archive.Verify(dir, archive.VerifyOptions{IDField: "data.id"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Duplicates != 0 || rep.UniqueIDs != int64(len(c.ids)) || rep.Lines != int64(len(c.ids)) {
		var text bytes.Buffer
		rep.WriteText(&text)
		t.Fatalf("the archive does not hold the %d tweets once each:\n%s", len(c.ids), text.String())
	}
	if r.sum.Archived != rep.Lines || r.sum.Batchers["archive"].Acked != rep.Lines {
		t.Fatalf("summary archived %d, archive batcher acked %d; the archive holds %d", r.sum.Archived,
			r.sum.Batchers["archive"].Acked, rep.Lines)
	}
}
