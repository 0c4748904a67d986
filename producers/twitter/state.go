package twitter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// StateFile keeps a stream's resume point, the time of the last tweet a
// program stored, in a small JSON file, so that the next start can pass it
// as Config.ResumeFrom. The zero value has no Path and fails; a StateFile is
// safe for concurrent use (each Save replaces the whole file).
//
// Save is atomic and durable: it writes a temporary file beside Path, syncs
// it, renames it over Path and syncs the directory, so a crash at any point
// leaves the previous resume point or the new one, never a torn file. It
// writes the time it is given: the caller keeps it a low watermark (every
// tweet received before it is stored), which under concurrent batchers is
// the oldest unacknowledged ReceivedAt rather than the latest acknowledged.
// Each Save costs two fsyncs; save per acknowledged batch or on a ticker,
// not per tweet.
type StateFile struct {
	Path string
}

// State is what a StateFile holds.
type State struct {
	// LastStored is the resume point (Config.ResumeFrom): every tweet
	// received before it is stored.
	LastStored time.Time `json:"last_stored"`
	// StoredIDs are ids of tweets stored already that a backfill from
	// LastStored would bring again (Config.StoredIDs): those stored after
	// LastStored, and any before it the program chose to keep.
	StoredIDs []string `json:"stored_ids,omitempty"`
}

// Load returns the saved resume point, or the zero time and no error when
// the file does not exist yet (a first start: no backfill is asked for).
func (f StateFile) Load() (time.Time, error) {
	st, err := f.LoadState()
	return st.LastStored, err
}

// LoadState returns the saved state, or the zero State and no error when
// the file does not exist yet.
func (f StateFile) LoadState() (State, error) {
	var st State
	if f.Path == "" {
		return st, errors.New("twitter: StateFile.Path is empty")
	}
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("twitter: read the state file: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("twitter: state file %s: %v (content %s)", f.Path, err, quoteCut(b, 80))
	}
	return st, nil
}

// Save replaces the resume point with t, atomically and durably.
func (f StateFile) Save(t time.Time) error { return f.SaveState(State{LastStored: t}) }

// SaveState replaces the state with st, atomically and durably.
func (f StateFile) SaveState(st State) (err error) {
	if f.Path == "" {
		return errors.New("twitter: StateFile.Path is empty")
	}
	st.LastStored = st.LastStored.UTC()
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("twitter: state file %s: %w", f.Path, err)
	}
	dir, base := filepath.Split(f.Path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("twitter: save the state file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("twitter: save the state file: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("twitter: save the state file: sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("twitter: save the state file: %w", err)
	}
	if err = os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("twitter: save the state file: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable (where directories can be synced).
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("twitter: save the state file: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("twitter: save the state file: sync directory %s: %w", dir, err)
	}
	return nil
}
