package spill_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/causeway-go/causeway/stages/spill"
)

// TestCrashChild is the process TestKilledWhileAppending kills: it
// appends groups of records for ever, printing the number of records held
// after each Append returned.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("SPILL_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestKilledWhileAppending")
	}
	l, err := spill.Open(dir, spill.Options{SegmentBytes: 8 << 10, Logger: quiet()})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for i := l.Len(); ; i += 5 { // records 0 to Len()-1 are there from before
		if err := l.Append(recs(i, i+5)); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(i + 5)
	}
}

// A process killed (SIGKILL) while it appends loses no record an Append
// had acknowledged, and leaves nothing Open cannot read; the records come
// back in order, and a second Log cannot open the directory while the
// first has it.
func TestKilledWhileAppending(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	for round, want := 0, 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SPILL_CRASH_DIR="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Held: the records the child's Appends acknowledged.
		held := 0
		sc := bufio.NewScanner(out)
		for held < want+300 && sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("child: %s", sc.Text())
			}
			held = n
		}
		if _, err := spill.Open(dir, spill.Options{Logger: quiet()}); !errors.Is(err, spill.ErrLocked) {
			t.Errorf("Open of a directory another process has open: %v, want ErrLocked", err)
		}
		cmd.Process.Kill()
		cmd.Wait()

		l, err := spill.Open(dir, spill.Options{Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if l.Len() < held {
			t.Fatalf("round %d: Len() = %d after the kill; the child had %d held", round, l.Len(), held)
		}
		rs, err := l.Peek(l.Len())
		if err != nil {
			t.Fatal(err)
		}
		got := make([][]byte, len(rs))
		for i, r := range rs {
			got[i] = r.Data
		}
		wantRecords(t, got, 0, len(rs))
		want = len(rs)
		l.Close()
	}
}
