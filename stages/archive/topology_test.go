package archive_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/archive"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

// tweetID returns the data.id of a recorded stream line.
func tweetID(t testing.TB, line []byte) string {
	t.Helper()
	var v struct {
		Data struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(line, &v); err != nil || v.Data.ID == "" {
		t.Fatalf("no data.id in %.80s: %v", line, err)
	}
	return v.Data.ID
}

// The archive as a batcher of a topology: every recorded tweet acknowledged
// is in the archive exactly once, and every tweet Line refuses is failed,
// shown to HandleFailed, and absent from the archive.
func TestTopologyArchivesEveryAckedMessageOnce(t *testing.T) {
	t.Parallel()
	lines := recordedTweets(t)[:2000] // enough for several files, quick under -race
	dir := t.TempDir()
	refused := errors.New("refused by the test")
	w := newWriter(t, archive.Config[[]byte]{Dir: dir, RotateSize: 256 << 10,
		Line: func(m *stages.Message[[]byte]) ([]byte, error) {
			if len(m.Data)%97 == 0 {
				return nil, refused
			}
			return m.Data, nil
		}})
	var mu sync.Mutex
	failed := map[string]bool{}
	top, err := topology.New(topology.Spec[[]byte]{
		Name:       "archive",
		Producer:   topology.ProducerSpec[[]byte]{Producer: stages.FromSlice(lines...)},
		Processors: topology.ProcessorSpec[[]byte]{Concurrency: 4},
		Batchers: map[string]topology.BatcherSpec[[]byte]{
			"archive": {BatchSize: 200, BatchTimeout: 50 * time.Millisecond, Concurrency: 4, Handle: w.HandleBatch},
		},
		DefaultBatcher: "archive",
		HandleFailed: func(_ context.Context, msgs []*stages.Message[[]byte]) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				if !errors.Is(m.Err(), refused) {
					t.Errorf("message failed with %v", m.Err())
				}
				failed[tweetID(t, m.Data)] = true
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := top.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := top.Stats()
	if err := topologytest.CheckConservation(s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	rep, err := archive.Verify(dir, archive.VerifyOptions{IDField: "data.id"})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Duplicates != 0 || rep.Lines != s.Acked || rep.UniqueIDs != s.Acked || rep.JSONLines != s.Acked {
		t.Fatalf("acked %d, failed %d; verify: lines %d, json %d, unique ids %d, duplicates %d, damaged %d",
			s.Acked, s.Failed, rep.Lines, rep.JSONLines, rep.UniqueIDs, rep.Duplicates, rep.Damaged)
	}
	if s.Failed == 0 || int(s.Failed) != len(failed) || s.Acked+s.Failed != int64(len(lines)) {
		t.Fatalf("acked %d + failed %d (%d seen by HandleFailed) != %d tweets", s.Acked, s.Failed, len(failed), len(lines))
	}
	archived := map[string]bool{}
	for _, f := range gzFiles(t, dir) {
		for _, l := range readLines(t, f) {
			archived[tweetID(t, []byte(l))] = true
		}
	}
	for id := range failed {
		if archived[id] {
			t.Fatalf("failed tweet %s is in the archive", id)
		}
	}
	if len(rep.Files) < 2 {
		t.Fatalf("RotateSize 256 KiB made %d files", len(rep.Files))
	}
	if ws := w.Stats(); ws.Lines != s.Acked || ws.Failed != s.Failed {
		t.Fatalf("writer stats %+v; topology acked %d failed %d", ws, s.Acked, s.Failed)
	}
}

// A topology whose archive directory cannot be created: every message is
// failed with an error naming the path, none is acknowledged as archived.
func TestTopologyUnwritableArchiveFailsEverything(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "archive")
	w := newWriter(t, archive.Config[string]{Dir: dir})
	os.Remove(w.Path())
	os.Remove(dir)
	if err := os.WriteFile(dir, nil, 0o644); err != nil { // a file where the directory was
		t.Fatal(err)
	}
	if err := w.Reopen(); err == nil {
		t.Fatal("Reopen succeeded")
	}
	var mu sync.Mutex
	var failed int
	top, err := topology.New(topology.Spec[string]{
		Producer: topology.ProducerSpec[string]{Producer: stages.FromSlice("a", "b", "c", "d", "e")},
		Batchers: map[string]topology.BatcherSpec[string]{"archive": {BatchSize: 2, Handle: w.HandleBatch}},
		HandleFailed: func(_ context.Context, msgs []*stages.Message[string]) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				if !strings.Contains(m.Err().Error(), "not written to "+w.Path()) {
					t.Errorf("message %s failed with %v", m.Data, m.Err())
				}
				failed++
			}
		},
		DefaultBatcher: "archive",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := top.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := top.Stats()
	if err := topologytest.CheckConservation(s); err != nil {
		t.Fatal(err)
	}
	if s.Acked != 0 || s.Failed != 5 || failed != 5 {
		t.Fatalf("acked %d, failed %d, HandleFailed saw %d", s.Acked, s.Failed, failed)
	}
}
