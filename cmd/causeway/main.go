// Command causeway runs the reference tweet topology: one HTTP/2 X API v2
// stream -> a pool of processors (decode, enrich, de-duplicate) -> batchers
// "kafka" and "postgres", each tweet acknowledged once both have it. With
// "causeway load" it reads the Kafka topic as a consumer group and loads
// Postgres; run several with one -kafka-group to scale out.
//
// On embedded defaults (no -stream-url, no -kafka-brokers) it serves
// testdata/ from an in-process fake X API and runs an in-process Kafka, so
// `make run` needs no account and no network. Run causeway -h for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	// SIGHUP reopens the archive's active file (logrotate: rename, then
	// signal); it never stops the run.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	os.Exit(run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, sigs, hup))
}

// exitForced is the status of a run a second signal cut short.
const exitForced = 130

// run is main without the process: tests call it with their own
// environment, output and signals. sigs stop the run (the first drains,
// the second exits at once); hup (nil: none) reopens the archive's active
// file. It returns the exit status.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer,
	sigs, hup <-chan os.Signal) int {
	if len(args) >= 2 && args[0] == "archive" && args[1] == "verify" {
		return runArchiveVerify(args[2:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "gbfs" {
		return runGBFSMode(ctx, args[1:], lookup, stdout, stderr, sigs)
	}
	if len(args) >= 1 && args[0] == "hashtags" {
		return runHashtagsCommand(ctx, args[1:], lookup, stdout, stderr, sigs)
	}
	cfg, err := parseConfig(args, lookup, stderr)
	return runCommand(ctx, "causeway", err, func() string { return cfg.logLevel }, stderr, sigs,
		func(ctx context.Context, log *slog.Logger) error {
			if cfg.mode == "load" {
				return runLoad(ctx, cfg, log, stdout, stderr)
			}
			return runStream(ctx, cfg, log, stdout, stderr, hup) // "run" and "archive"
		})
}

// runCommand is what every mode does around its run: a parse error is
// printed one line per problem, then "see NAME -h" (exit 2; -h exits 0);
// otherwise body runs with a logger at level(), the first signal cancels
// its context (the drain starts) and the second exits 130 at once. It
// returns the exit status: 1 when body fails.
func runCommand(ctx context.Context, name string, parseErr error, level func() string, stderr io.Writer,
	sigs <-chan os.Signal, body func(ctx context.Context, log *slog.Logger) error) int {
	if errors.Is(parseErr, flag.ErrHelp) {
		return 0
	}
	if parseErr != nil {
		for _, line := range strings.Split(parseErr.Error(), "\n") {
			fmt.Fprintf(stderr, "%s: %s\n", name, line)
		}
		fmt.Fprintf(stderr, "%s: see %s -h\n", name, name)
		return 2
	}
	lvl, _ := parseLevel(level())
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	finished := make(chan struct{})
	defer close(finished)
	forced := watchSignals(sigs, cancel, finished, log)

	done := make(chan error, 1)
	go func() { done <- body(ctx, log) }()
	var err error
	select {
	case err = <-done:
	case <-forced:
		fmt.Fprintf(stderr, "%s: second signal: exiting without finishing the drain\n", name)
		return exitForced
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// watchSignals cancels the run at the first signal (the drain starts) and
// closes the returned channel at the second (exit at once). It stops
// watching once finished is closed.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelFunc, finished <-chan struct{}, log *slog.Logger) <-chan struct{} {
	forced := make(chan struct{})
	go func() {
		select {
		case sig := <-sigs:
			log.Info("causeway: draining; send the signal again to exit at once", "signal", sig.String())
			cancel()
		case <-finished:
			return
		}
		// The run's context is cancelled now: wait for a second signal or
		// the end of the run, not for the context.
		select {
		case <-sigs:
			close(forced)
		case <-finished:
		}
	}()
	return forced
}
