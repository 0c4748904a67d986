package twitter

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStateFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := StateFile{Path: filepath.Join(dir, "x.state")}

	// A first start: no file, no resume point, no error.
	if got, err := f.Load(); err != nil || !got.IsZero() {
		t.Fatalf("Load of a missing file: %v, %v; want the zero time, nil", got, err)
	}
	at := time.Date(2026, 3, 1, 12, 34, 56, 789012345, time.FixedZone("CET", 3600))
	for _, want := range []time.Time{at, at.Add(time.Second), at.Add(-time.Hour)} {
		if err := f.Save(want); err != nil {
			t.Fatal(err)
		}
		got, err := f.Load()
		if err != nil || !got.Equal(want) {
			t.Fatalf("Load after Save(%v): %v, %v", want, got, err)
		}
	}
	b, _ := os.ReadFile(f.Path)
	if want := `{"last_stored":"2026-03-01T10:34:56.789012345Z"}` + "\n"; string(b) != want {
		t.Errorf("file holds %q, want %q", b, want)
	}

	// Concurrent saves leave one whole value and no temporary file.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if err := f.Save(at.Add(time.Duration(i) * time.Minute)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := f.Load()
	if err != nil || got.Before(at) || got.After(at.Add(7*time.Minute)) {
		t.Errorf("after concurrent saves: %v, %v", got, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the state file alone: %v", len(ents), ents)
	}
}

func TestStateFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.state")
	os.WriteFile(bad, []byte("<html>not json"), 0o600)
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"no path", func() error { _, err := StateFile{}.Load(); return err }, "StateFile.Path is empty"},
		{"no path save", func() error { return StateFile{}.Save(time.Now()) }, "StateFile.Path is empty"},
		{"corrupt", func() error { _, err := StateFile{Path: bad}.Load(); return err }, "state file " + bad + ": invalid character"},
		{"missing directory", func() error { return StateFile{Path: filepath.Join(dir, "nope", "x.state")}.Save(time.Now()) }, "save the state file"},
		{"a directory", func() error { _, err := StateFile{Path: dir}.Load(); return err }, "read the state file"},
	}
	for _, tt := range tests {
		if err := tt.err(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestStoredIDsNeedDedup(t *testing.T) {
	err := Config{Token: "x", StoredIDs: []string{"1"}, DedupWindow: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "Config.StoredIDs need de-duplication, and DedupWindow -1 disables it") {
		t.Errorf("Validate: %v", err)
	}
	// Seeded ids widen the window: none of them pushes out another.
	s := NewStream(Config{Token: "x", DedupWindow: 2, StoredIDs: []string{"1", "2", "3"}})
	for _, id := range []string{"1", "2", "3"} {
		if !s.dedup.seen(id) {
			t.Errorf("stored id %s not remembered", id)
		}
	}
}
