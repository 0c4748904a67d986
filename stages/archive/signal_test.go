package archive_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"testing/synctest"

	"github.com/causeway-go/causeway/stages/archive"
)

// ReopenOn reopens the active file on each signal, as the binary does on
// SIGHUP after logrotate renamed the file.
func TestReopenOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		w := newWriter(t, archive.Config[string]{Dir: dir})
		ctx, cancel := context.WithCancel(context.Background())
		sigs := make(chan os.Signal, 1)
		done := make(chan struct{})
		go func() { w.ReopenOn(ctx, sigs); close(done) }()
		if err := w.HandleBatch(ctx, batchOf("before")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(w.Path(), filepath.Join(dir, "rotated.gz")); err != nil {
			t.Fatal(err)
		}
		sigs <- syscall.SIGHUP
		synctest.Wait()
		if s := w.Stats(); s.Reopens != 1 {
			t.Fatalf("stats %+v", s)
		}
		if err := w.HandleBatch(ctx, batchOf("after")); err != nil {
			t.Fatal(err)
		}
		cancel()
		<-done
		if got := readLines(t, w.Path()); len(got) != 1 || got[0] != "after" {
			t.Fatalf("active file holds %q", got)
		}
		if got := readLines(t, filepath.Join(dir, "rotated.gz")); len(got) != 1 || got[0] != "before" {
			t.Fatalf("renamed file holds %q", got)
		}
	})
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1234", 1234}, {"64K", 64 << 10}, {"64KiB", 64 << 10}, {"100MB", 100e6}, {"100mb", 100e6},
		{"1GiB", 1 << 30}, {"2 G", 2 << 30}, {"1TB", 1e12}, {"10B", 10},
		{"", -1}, {"MB", -1}, {"-1", -1}, {"1.5G", -1}, {"10XB", -1}, {"9999999999T", -1},
	} {
		got, err := archive.ParseSize(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
}
