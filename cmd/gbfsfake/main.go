// Command gbfsfake is a stand-alone fake GBFS bike-share publisher: it
// serves gbfs.json (auto-discovery), system_information.json,
// station_information.json and station_status.json of a deterministic
// simulated system, in GBFS v2.3 or v3.0, with ttl, ETag, Last-Modified,
// Cache-Control and 304s, and injectable faults. See package
// gbfs/gbfstest for what it simulates.
//
//	go run ./cmd/gbfsfake -stations 500 -version 3.0 -ttl 10s
//	curl -s http://127.0.0.1:8080/gbfs.json
//
// Fault flags inject faults into requests of -fault-feed: the counts are
// "the next N requests", armed at start and, with -fault-every, again every
// that long. -h lists every flag.
package main

import (
	"context"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/causeway-go/causeway/gbfs"
	"github.com/causeway-go/causeway/gbfs/gbfstest"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gbfsfake:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	srv, err := f.start()
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(stdout, "gbfsfake: GBFS %s, %d stations, ttl %v, seed %d: %s\n",
		f.cfg.Version, f.cfg.Stations, f.cfg.TTL, f.cfg.Seed, srv.DiscoveryURL())
	if f.every > 0 {
		go rearm(ctx, srv, f.faults, f.every)
	}
	<-ctx.Done()
	st := srv.Stats()
	fmt.Fprintf(stdout, "gbfsfake: stopping: %d requests (%d ok, %d not modified), %d publications, %d distinct station reports served; faults: %d 5xx, %d 429, %d malformed, %d truncated, %d backwards\n",
		st.Requests, st.OK, st.NotModified, st.Publications, st.Reports,
		st.ServerErrors, st.Throttled, st.Malformed, st.Truncated, st.Backwards)
	return nil
}

// rearm injects faults again every period until ctx ends.
func rearm(ctx context.Context, srv *gbfstest.Server, faults gbfstest.Faults, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			srv.InjectFaults(faults)
		}
	}
}

// flags are the parsed command line.
type flags struct {
	cfg     gbfstest.Config
	faults  gbfstest.Faults
	every   time.Duration
	certOut string
}

// parse reads the flags; it returns flag.ErrHelp for -h.
func parse(args []string, stderr io.Writer) (*flags, error) {
	fs := flag.NewFlagSet("gbfsfake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gbfsfake [flags]\n\nServes a simulated GBFS bike-share system (gbfs.json, system_information,\nstation_information, station_status) until interrupted.\n\nflags:\n")
		fs.PrintDefaults()
	}
	f := &flags{}
	var seed uint64
	var verbose, tls bool
	fs.StringVar(&f.cfg.Addr, "addr", "127.0.0.1:8080", "listen `address` (port 0 picks a free one)")
	fs.IntVar(&f.cfg.Stations, "stations", gbfstest.DefaultStations, "number of simulated stations")
	fs.StringVar(&f.cfg.Version, "version", gbfs.V23, "GBFS version served: 2.3 or 3.0")
	fs.DurationVar(&f.cfg.TTL, "ttl", gbfstest.DefaultTTL, "publication period and ttl, whole seconds (a negative value publishes ttl 0, a new document every second)")
	fs.Uint64Var(&seed, "seed", gbfstest.DefaultSeed, "simulation seed: the same seed gives the same stations and the same events at the same seconds after the start")
	fs.StringVar(&f.cfg.BaseURL, "base-url", "", "`URL` prefix of the feed URLs gbfs.json lists (default: the scheme and host each request came to)")
	fs.BoolVar(&tls, "tls", false, "serve TLS with a self-signed certificate and HTTP/2 (default: cleartext HTTP/1.1)")
	fs.StringVar(&f.certOut, "cert-out", "", "with -tls, write the certificate (PEM) to this `file` for clients to trust")
	fs.StringVar(&f.faults.Feed, "fault-feed", gbfs.FeedStationStatus, "`feed` the faults apply to: gbfs, system_information, station_information, station_status or *")
	fs.IntVar(&f.faults.ServerErrors, "fault-5xx", 0, "answer the next `N` requests with 503")
	fs.IntVar(&f.faults.Throttled, "fault-429", 0, "answer the next `N` requests with 429 and Retry-After")
	fs.DurationVar(&f.faults.RetryAfter, "fault-retry-after", gbfstest.DefaultRetryAfter, "Retry-After of the 429s (rounded up to seconds)")
	fs.IntVar(&f.faults.Malformed, "fault-malformed", 0, "serve the next `N` documents with invalid JSON")
	fs.IntVar(&f.faults.Truncated, "fault-truncated", 0, "serve the next `N` documents cut in half")
	fs.IntVar(&f.faults.Backwards, "fault-backwards", 0, "serve the next `N` station_status requests the previous publication (last_updated goes backwards)")
	fs.DurationVar(&f.faults.Delay, "fault-delay", 0, "hold every response of the fault feed this long")
	fs.DurationVar(&f.every, "fault-every", 0, "arm the counted faults again every this long (0: once, at start)")
	fs.BoolVar(&verbose, "v", false, "log every fault and anomaly")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("-%s: %s", flag, fmt.Sprintf(format, args...)))
	}
	if f.cfg.Version != gbfs.V23 && f.cfg.Version != gbfs.V30 {
		bad("version", "must be 2.3 or 3.0, got %q", f.cfg.Version)
	}
	if f.cfg.Stations <= 0 {
		bad("stations", "must be > 0, got %d", f.cfg.Stations)
	}
	if f.cfg.TTL == 0 || f.cfg.TTL > 0 && f.cfg.TTL%time.Second != 0 {
		bad("ttl", "must be whole seconds (or negative for ttl 0), got %v", f.cfg.TTL)
	}
	if seed == 0 {
		bad("seed", "must be > 0")
	}
	for name, n := range map[string]int{"fault-5xx": f.faults.ServerErrors, "fault-429": f.faults.Throttled,
		"fault-malformed": f.faults.Malformed, "fault-truncated": f.faults.Truncated, "fault-backwards": f.faults.Backwards} {
		if n < 0 {
			bad(name, "must be >= 0, got %d", n)
		}
	}
	switch f.faults.Feed {
	case "*", gbfs.FeedDiscovery, gbfs.FeedSystemInformation, gbfs.FeedStationInformation, gbfs.FeedStationStatus:
	default:
		bad("fault-feed", "unknown feed %q", f.faults.Feed)
	}
	if f.faults.Delay < 0 || f.faults.RetryAfter <= 0 || f.every < 0 {
		bad("fault-delay, -fault-retry-after, -fault-every", "must not be negative (nor a zero Retry-After)")
	}
	if f.certOut != "" && !tls {
		bad("cert-out", "needs -tls")
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	f.cfg.Seed = seed
	f.cfg.Plain = !tls
	f.cfg.Faults = f.faults
	if verbose {
		f.cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	return f, nil
}

// start starts the server the flags describe.
func (f *flags) start() (*gbfstest.Server, error) {
	srv, err := gbfstest.NewServer(f.cfg)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(); err != nil {
		return nil, err
	}
	if f.certOut != "" {
		if err := os.WriteFile(f.certOut, pemCertificate(srv.Certificate()), 0o644); err != nil {
			srv.Close()
			return nil, fmt.Errorf("-cert-out: %w", err)
		}
	}
	return srv, nil
}

func pemCertificate(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
