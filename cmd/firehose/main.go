// Command firehose is a stand-alone fake X (Twitter) API v2 stream server:
// it replays recorded tweets (testdata/*.jsonl) over HTTP/2 — TLS with a
// self-signed certificate, or cleartext h2c with prior knowledge — with
// bearer auth, the filtered-stream rules API, the filtered and sample
// streams, keep-alives, backfill and injectable faults.
//
//	go run ./cmd/firehose -h2c -token secret
//	curl --http2-prior-knowledge -H 'Authorization: Bearer secret' \
//	     http://127.0.0.1:8443/2/tweets/sample/stream
//
// Every fault of twittertest.Faults has a -fault-* flag; -h lists them all.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/causeway-go/causeway/producers/twitter/twittertest"
)

// ruleFlags collects repeated -rule flags.
type ruleFlags []string

func (r *ruleFlags) String() string     { return strings.Join(*r, ", ") }
func (r *ruleFlags) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "firehose:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := start(args, stdout, stderr)
	if err != nil {
		return err
	}
	if srv == nil {
		return nil // -h
	}
	defer srv.Close()
	go func() {
		select {
		case <-srv.Done():
			st := srv.Stats()
			fmt.Fprintf(stdout, "firehose: replay finished: %d tweets served (%d distinct); holding connections with keep-alives\n",
				st.Tweets, st.Published)
		case <-ctx.Done():
		}
	}()
	<-ctx.Done()
	st := srv.Stats()
	fmt.Fprintf(stdout, "firehose: stopping: %d connections, %d tweets served (%d distinct), %d keep-alives, %d malformed, %d oversized, %d fault disconnects, rejected %v\n",
		st.Connections, st.Tweets, st.Published, st.KeepAlives, st.Malformed, st.Oversized, st.Disconnects, st.Rejected)
	return nil
}

// start parses the flags and starts the server; it returns nil, nil for -h.
func start(args []string, stdout, stderr io.Writer) (*twittertest.Server, error) {
	fs := flag.NewFlagSet("firehose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg      twittertest.Config
		f        twittertest.Faults
		data     string
		certOut  string
		mode     string
		verbose  bool
		rules    ruleFlags
		tokenEnv = os.Getenv("TWITTER_BEARER_TOKEN")
	)
	if tokenEnv == "" {
		tokenEnv = twittertest.DefaultToken
	}
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8443", "listen address")
	fs.StringVar(&cfg.Token, "token", tokenEnv, "bearer token clients must send; $TWITTER_BEARER_TOKEN sets the default")
	fs.StringVar(&data, "data", "testdata/*.jsonl", "recorded stream lines to replay: comma-separated globs, files or directories")
	fs.Float64Var(&cfg.Rate, "rate", 100, "tweets per second on the timeline; 0 serves as fast as the client reads")
	fs.BoolVar(&cfg.Loop, "loop", false, "replay forever (each pass with its own tweet ids) instead of once")
	fs.BoolVar(&cfg.H2C, "h2c", false, "serve cleartext HTTP/2 with prior knowledge instead of TLS with a self-signed certificate")
	fs.DurationVar(&cfg.KeepAlive, "keepalive", twittertest.DefaultKeepAlive, "send a bare CRLF after this long without a message; negative disables")
	fs.StringVar(&certOut, "cert-out", "", "TLS mode: write the self-signed certificate (PEM) to this file, for clients to trust (curl --cacert)")
	fs.IntVar(&cfg.BackfillLimit, "backfill-limit", twittertest.DefaultBackfillLimit, "most tweets backfill_minutes replays")
	fs.IntVar(&cfg.FlushBytes, "flush-bytes", twittertest.DefaultFlushBytes, "with -rate 0, flush once this many `bytes` are pending (and whenever the replay pauses); negative flushes every line; with a -rate every line is flushed")
	fs.IntVar(&cfg.MaxRules, "max-rules", twittertest.DefaultMaxRules, "most rules held; more get rule-cap errors")
	fs.Var(&rules, "rule", "a filtered-stream rule to start with, as `tag=value` or value; repeatable")
	fs.BoolVar(&verbose, "v", false, "log connections and faults")

	fs.IntVar(&f.Unauthorized, "fault-unauthorized", 0, "answer the next `N` stream connections with 401 Unauthorized")
	fs.IntVar(&f.Forbidden, "fault-forbidden", 0, "answer the next `N` stream connections with 403 Client Forbidden")
	fs.IntVar(&f.RateLimited, "fault-rate-limited", 0, "answer the next `N` stream connections with 429 Too Many Requests and x-rate-limit-reset")
	fs.DurationVar(&f.RateLimitReset, "fault-rate-limit-reset", time.Minute, "x-rate-limit-reset is now + this, for -fault-rate-limited")
	fs.IntVar(&f.UsageCapped, "fault-usage-capped", 0, "answer the next `N` stream connections with 429 UsageCapExceeded")
	fs.IntVar(&f.Unavailable, "fault-unavailable", 0, "answer the next `N` stream connections with 503 Service Unavailable")
	fs.IntVar(&f.MaxConnections, "fault-max-connections", 0, "answer a stream connection beyond `N` concurrent ones with 429 TooManyConnections (0: no limit)")
	fs.IntVar(&f.DisconnectAfterTweets, "fault-disconnect-after-tweets", 0, "end each stream connection after `N` tweets")
	fs.DurationVar(&f.DisconnectAfter, "fault-disconnect-after", 0, "end each stream connection after this long")
	fs.StringVar(&mode, "fault-disconnect-mode", string(twittertest.DisconnectEnd), "how disconnect faults end a stream: end (END_STREAM), reset (RST_STREAM) or close (close the TCP connection)")
	fs.IntVar(&f.OperationalDisconnectAfter, "fault-operational-disconnect-after", 0, "send an in-stream operational-disconnect error after `N` tweets on each connection, then end it")
	fs.BoolVar(&f.Stall, "fault-stall", false, "stall each connection (no bytes at all, not even keep-alives) after -fault-stall-after-tweets tweets")
	fs.IntVar(&f.StallAfterTweets, "fault-stall-after-tweets", 0, "tweets served before -fault-stall stalls a connection")
	fs.IntVar(&f.MalformedEvery, "fault-malformed-every", 0, "inject a malformed (truncated) line after every `N` tweets")
	fs.IntVar(&f.OversizedEvery, "fault-oversized-every", 0, "inject an oversized line after every `N` tweets")
	fs.IntVar(&f.OversizedSize, "fault-oversized-size", 1<<20+1<<10, "size in `bytes` of -fault-oversized-every lines")
	fs.IntVar(&f.SplitFrames, "fault-split-frames", 0, "write every line in pieces of `N` bytes, each flushed as its own DATA frame")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: firehose [flags]\n\nA fake X API v2 stream server over HTTP/2 (TLS or h2c) replaying recorded tweets, with fault injection.\n"+
			"Endpoints: GET / (status), GET /2/tweets/sample/stream, GET /2/tweets/search/stream, GET|POST /2/tweets/search/stream/rules.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil, nil
		}
		return nil, err
	}
	switch m := twittertest.DisconnectMode(mode); m {
	case twittertest.DisconnectEnd, twittertest.DisconnectReset, twittertest.DisconnectClose:
		f.DisconnectMode = m
	default:
		return nil, fmt.Errorf("-fault-disconnect-mode must be end, reset or close, got %q", mode)
	}
	cfg.Faults = f
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	var patterns []string
	for p := range strings.SplitSeq(data, ",") {
		if p = strings.TrimSpace(p); p != "" {
			patterns = append(patterns, p)
		}
	}
	if len(patterns) > 0 {
		lines, err := twittertest.LoadLines(patterns...)
		if err != nil {
			return nil, err
		}
		cfg.Lines = lines
	}
	srv, err := twittertest.NewServer(cfg)
	if err != nil {
		return nil, err
	}
	for _, r := range rules {
		tag, value, ok := strings.Cut(r, "=")
		if !ok {
			tag, value = "", r
		}
		if _, err := srv.AddRule(value, tag); err != nil {
			srv.Close()
			return nil, fmt.Errorf("-rule %q: %v", r, err)
		}
	}
	if certOut != "" && srv.CertPEM() != nil {
		if err := os.WriteFile(certOut, srv.CertPEM(), 0o644); err != nil {
			srv.Close()
			return nil, err
		}
	}
	proto := "HTTP/2 over TLS (self-signed)"
	if cfg.H2C {
		proto = "cleartext HTTP/2 (h2c, prior knowledge)"
	}
	rate := "as fast as clients read"
	if cfg.Rate > 0 {
		rate = fmt.Sprintf("at %g tweets/s", cfg.Rate)
	}
	fmt.Fprintf(stdout, "firehose: %s serving %d tweets %s, %s, on %s\n",
		srv.URL(), srv.Len(), rate, map[bool]string{true: "looping", false: "once"}[cfg.Loop], proto)
	return srv, nil
}
