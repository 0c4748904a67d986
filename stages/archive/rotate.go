package archive

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// nameLayout is the UTC time in a finished file's name, to the millisecond:
// tweets-20250301T120000.000Z.jsonl.gz. Names sort in rotation order.
const nameLayout = "20060102T150405.000Z"

// FinishedPath is the path a rotation at t gives the active file of the
// archive named name in dir. The Writer moves the time on by a millisecond
// if that name is taken, so two rotations never share a name.
func FinishedPath(dir, name string, t time.Time) string {
	if name == "" {
		name = DefaultName
	}
	return filepath.Join(dir, name+"-"+t.UTC().Format(nameLayout)+".jsonl.gz")
}

// ageDue reports whether the active file's first line is RotateEvery old.
func (a *appender) ageDue(now time.Time) bool {
	return a.rotateEvery > 0 && !a.first.IsZero() && now.Sub(a.first) >= a.rotateEvery
}

// armTimer makes the active file rotate when it is RotateEvery old, even if
// no batch comes to notice.
func (a *appender) armTimer() {
	if a.rotateEvery <= 0 {
		return
	}
	a.stopTimer()
	gen := a.gen
	a.timer = time.AfterFunc(a.rotateEvery-time.Since(a.first), func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if !a.closed && a.gen == gen && a.f != nil && a.ageDue(time.Now()) {
			a.rotateLocked("age")
		}
	})
}

func (a *appender) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
}

// rotateLocked finishes the active file and opens a new one. A failure is
// logged: the lines already written are on disk either way, and the next
// append tries to open the file again.
func (a *appender) rotateLocked(reason string) {
	if err := a.closeLocked(); err != nil {
		a.log.Warn("archive: closing the active file", "path", a.path, "err", err)
	}
	if err := a.finishLocked(reason); err != nil {
		a.stats.writeErrors.Add(1)
		a.log.Error("archive: rotation failed; appending to the same file", "path", a.path, "reason", reason, "err", err)
	}
	if err := a.openLocked(); err != nil {
		a.log.Error("archive: opening a new active file after rotation; the next batch retries", "path", a.path, "err", err)
	}
}

// finishLocked gives the closed active file its finished name and starts
// the rotation hooks on it. If the file at the active path is no longer the
// one this appender wrote (logrotate renamed it and the reopen signal has
// not come yet), it leaves it alone.
func (a *appender) finishLocked(reason string) error {
	st, err := os.Stat(a.path)
	if os.IsNotExist(err) {
		return nil // renamed by someone else; the open that follows starts a new file
	}
	if err != nil {
		return err
	}
	if a.info == nil || !os.SameFile(st, a.info) {
		return nil
	}
	t := time.Now().UTC().Truncate(time.Millisecond)
	if !t.After(a.lastName) {
		t = a.lastName.Add(time.Millisecond)
	}
	target := FinishedPath(a.dir, a.name, t)
	for {
		if _, err := os.Lstat(target); os.IsNotExist(err) {
			break
		}
		t = t.Add(time.Millisecond)
		target = FinishedPath(a.dir, a.name, t)
	}
	if err := os.Rename(a.path, target); err != nil {
		return err
	}
	a.lastName = t
	if err := syncDir(a.dir); err != nil {
		a.log.Warn("archive: the rename may not survive a crash", "path", target, "err", err)
	}
	if reason != "damaged" {
		a.stats.rotations.Add(1)
	}
	a.log.Info("archive: finished a file", "path", target, "reason", reason, "bytes", st.Size())
	if a.onRotate != nil || a.command != "" {
		a.hooks.Add(1)
		go a.runHooks(target)
	}
	return nil
}

// runHooks runs OnRotate and then OnRotateCommand on a finished file.
func (a *appender) runHooks(path string) {
	defer a.hooks.Done()
	if a.onRotate != nil {
		if err := callHook(a.hookCtx, a.onRotate, path); err != nil {
			a.stats.hookErrors.Add(1)
			a.log.Error("archive: OnRotate failed", "path", path, "err", err)
		}
	}
	if a.command != "" {
		if err := a.runCommand(path); err != nil {
			a.stats.hookErrors.Add(1)
			a.log.Error("archive: on-rotate command failed", "path", path, "command", a.command, "err", err)
		}
	}
}

func callHook(ctx context.Context, fn func(context.Context, string) error, path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return fn(ctx, path)
}

// runCommand runs the on-rotate command line with /bin/sh, path appended as
// its last argument.
func (a *appender) runCommand(path string) error {
	cmd := exec.CommandContext(a.hookCtx, "/bin/sh", "-c", a.command+` "$@"`, "causeway-on-rotate", path)
	cmd.Env = append(os.Environ(), "CAUSEWAY_ARCHIVE_FILE="+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tail := strings.TrimSpace(out.String())
		if len(tail) > 500 {
			tail = "…" + tail[len(tail)-500:]
		}
		if tail != "" {
			return fmt.Errorf("%w: %s", err, tail)
		}
		return err
	}
	return nil
}
