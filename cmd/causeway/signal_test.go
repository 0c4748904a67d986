package main

import (
	"context"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"
)

// The first signal starts the drain; the second forces the exit, however
// long the drain would take (it used to wait on the context it had just
// cancelled, and so never heard the second signal).
func TestSecondSignalForcesExit(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	defer close(finished)
	forced := watchSignals(sigs, cancel, finished, slog.New(slog.DiscardHandler))
	sigs <- syscall.SIGTERM
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the first signal did not start the drain")
	}
	select {
	case <-forced:
		t.Fatal("one signal forced the exit")
	default:
	}
	sigs <- syscall.SIGTERM
	select {
	case <-forced:
	case <-time.After(10 * time.Second):
		t.Fatal("the second signal did not force the exit")
	}
}
