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

// stateJSON is the file's content.
type stateJSON struct {
	LastStored time.Time `json:"last_stored"`
}

// Load returns the saved resume point, or the zero time and no error when
// the file does not exist yet (a first start: no backfill is asked for).
func (f StateFile) Load() (time.Time, error) {
	if f.Path == "" {
		return time.Time{}, errors.New("twitter: StateFile.Path is empty")
	}
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("twitter: read the state file: %w", err)
	}
	var st stateJSON
	if err := json.Unmarshal(b, &st); err != nil {
		return time.Time{}, fmt.Errorf("twitter: state file %s: %v (content %s)", f.Path, err, quoteCut(b, 80))
	}
	return st.LastStored, nil
}

// Save replaces the resume point with t, atomically and durably.
func (f StateFile) Save(t time.Time) (err error) {
	if f.Path == "" {
		return errors.New("twitter: StateFile.Path is empty")
	}
	b, err := json.Marshal(stateJSON{LastStored: t.UTC()})
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
