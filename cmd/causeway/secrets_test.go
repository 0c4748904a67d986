package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages/kafka/kafkatest"
	"github.com/causeway-go/causeway/stages/postgres/pgtest"
)

// Every mode runs, at debug level, with secrets planted in every place a
// secret can be given: the bearer token, a password in a postgres:// URL,
// one in a keyword/value connection string, and $PGPASSWORD. Neither the
// output of any run (stdout, stderr, the summary JSON), nor what its
// /metrics, /healthz and /readyz serve, nor the files it leaves, nor the
// errors of runs that fail (an unreachable server, a malformed URL) show
// any of them.
func TestNoSecretsInAnyOutput(t *testing.T) {
	const (
		bearer  = "planted-bearer-7f3a9c2e"
		urlPass = "planted-urlpass-41d2"
		kvPass  = "planted-kvpass-9e1b"
		envPass = "planted-envpass-5c8d"
	)
	secrets := []string{bearer, urlPass, kvPass, envPass}
	t.Setenv("PGPASSWORD", envPass) // read by pgx from the process environment

	c := testCorpus(t)
	k := kafkatest.Start(t, kfake.SeedTopics(4, "tweets", "tweets.dlq"))
	_, schema := pgtest.Schema(t)
	base := withSearchPath(pgtest.URL(t), schema)
	// The test server trusts local connections, so any password connects.
	withPass := strings.Replace(base, "postgres://postgres@", "postgres://postgres:"+urlPass+"@", 1)
	if withPass == base {
		t.Fatalf("cannot plant a password in %s", base)
	}
	kv := keywordDSN(t, base, kvPass)
	fake, err := twittertest.NewServer(twittertest.Config{Addr: "127.0.0.1:0", Token: bearer, Lines: c.lines[:1000], Rate: 2000, H2C: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	dir := t.TempDir()

	var outputs []string // "where: text"
	scan := func(where, text string) {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("%s shows a planted secret: ...%s...", where, text[max(0, i-120):min(len(text), i+len(s)+40)])
			}
		}
		outputs = append(outputs, where)
	}
	runMode := func(name string, wantOK bool, args ...string) {
		t.Helper()
		summary := filepath.Join(dir, name+".json")
		if name != "verify" { // archive verify takes no flags
			args = append(args, "-summary-json", summary, "-progress", "0", "-log-level", "debug")
		}
		var stdout, stderr syncBuffer
		status := run(context.Background(), args, os.LookupEnv, &stdout, &stderr, make(chan os.Signal), nil)
		if (status == 0) != wantOK {
			t.Errorf("%s: exit %d\n%s", name, status, tail(stderr.String(), 2000))
		}
		scan(name+" stdout", stdout.String())
		scan(name+" stderr", stderr.String())
		if b, err := os.ReadFile(summary); err == nil {
			scan(name+" summary", string(b))
		}
	}

	// The tweet topology, scraped while it runs.
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", kafkatest.FreePort(t))
	scraped := make(chan string, 1)
	go func() {
		deadline := time.Now().Add(time.Minute)
		for fake.Stats().Tweets < 300 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		var out strings.Builder
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			if resp, err := http.Get("http://" + metricsAddr + path); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				out.Write(b)
			}
		}
		scraped <- out.String()
	}()
	runMode("run", true, "-stream-url", fake.URL(), "-bearer-token", bearer, "-database-url", withPass, "-kafka-brokers", k.Brokers,
		"-max-tweets", "1000", "-metrics-addr", metricsAddr, "-spill-dir", filepath.Join(dir, "spill"), "-backfill-minutes", "1")
	if m := <-scraped; !strings.Contains(m, "causeway_") {
		t.Errorf("the scrape during the run got no metrics: %.200s", m)
	} else {
		scan("run /metrics, /healthz, /readyz", m)
	}
	runMode("load", true, "load", "-database-url", kv, "-kafka-brokers", k.Brokers, "-kafka-group", "secrets", "-max-tweets", "1000",
		"-pg-table", "loaded")
	runMode("archive", true, "archive", "-dir", filepath.Join(dir, "archive"), "-stream-url", fake.URL(), "-bearer-token", bearer,
		"-duration", "1s")
	runMode("verify", true, "archive", "verify", filepath.Join(dir, "archive"))
	runMode("gbfs", true, "gbfs", "-database-url", withPass, "-max-polls", "2", "-poll-interval", "1s")

	// Runs that fail: the error names the flag, not the secret.
	runMode("unreachable-postgres", false, "-database-url", "postgres://app:"+urlPass+"@127.0.0.1:1/db", "-connect-timeout", "2s",
		"-spill-dir", filepath.Join(dir, "spill2"))
	runMode("unreachable-postgres-kv", false, "load", "-database-url", "host=127.0.0.1 port=1 user=app password="+kvPass,
		"-kafka-brokers", k.Brokers, "-connect-timeout", "2s")
	runMode("malformed-url", false, "-database-url", "postgres://app:"+urlPass+"@127.0.0.1:notaport/db")
	runMode("malformed-kv", false, "-database-url", "host=127.0.0.1 password="+kvPass+" port=notaport")
	runMode("gbfs-unreachable", false, "gbfs", "-database-url", "postgres://app:"+urlPass+"@127.0.0.1:1/db", "-max-polls", "1")
	runMode("bad-token", false, "-stream-url", fake.URL(), "-bearer-token", bearer+"-wrong", "-database-url", withPass,
		"-kafka-brokers", k.Brokers, "-duration", "5s", "-spill-dir", filepath.Join(dir, "spill3"))

	// Whatever the runs left on disk: spills, state files, the archive.
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".gz") {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil {
			scan(path, string(b))
		}
		return nil
	})
	t.Logf("scanned %d outputs", len(outputs))
}

// keywordDSN turns the test server's URL into a keyword/value connection
// string with password pass.
func keywordDSN(t *testing.T, url, pass string) string {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cc := cfg.ConnConfig
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable search_path=%s",
		cc.Host, cc.Port, cc.User, pass, cc.Database, cc.RuntimeParams["search_path"])
}
