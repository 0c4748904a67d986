// Package pgtest gives tests a Postgres of their own: a fresh schema on the
// server DATABASE_URL names, or a private throwaway cluster they may stop and
// restart.
//
// Run by hand without DATABASE_URL, tests that need Postgres skip with a
// message saying how to run them; with CAUSEWAY_REQUIRE_INTEGRATION=1 (set by
// scripts/with-pg, so by `make test`) a missing server fails the test.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// URL returns DATABASE_URL, or skips (fails, under
// CAUSEWAY_REQUIRE_INTEGRATION=1) the test when it is not set.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("DATABASE_URL")
	if url != "" {
		return url
	}
	msg := "DATABASE_URL is not set: run this test with a throwaway Postgres, e.g. `make test` or `scripts/with-pg .data/pg -- go test ./...`"
	if os.Getenv("CAUSEWAY_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Schema creates a schema of its own for the test on the server at URL(t)
// and returns a pool whose connections use it as their search_path, so
// unqualified table names land in it. The schema is dropped when the test
// ends.
func Schema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return SchemaOn(t, URL(t))
}

// SchemaOn is Schema on the server at url.
func SchemaOn(t testing.TB, url string) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema := schemaName(t.Name())
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", url, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Logf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return Pool(t, url, schema), schema
}

// Pool returns a pool on url whose connections use schema as their
// search_path and application_name (so a test can find its sessions in
// pg_stat_activity). It is closed when the test ends.
func Pool(t testing.TB, url, schema string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("pgtest: parse %s: %v", url, err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.RuntimeParams["application_name"] = schema
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: pool on %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// schemaName makes a schema name from a test name: lower case, at most 63
// bytes, unique.
func schemaName(test string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := unsafeChars.ReplaceAllString(strings.ToLower(test), "_")
	if len(name) > 45 {
		name = name[:45]
	}
	return "t_" + name + "_" + hex.EncodeToString(b[:])
}

// Cluster is a private throwaway Postgres cluster, started by scripts/pg,
// that a test may stop and restart (on the same port) without disturbing
// other tests.
type Cluster struct {
	// URL is the cluster's connection string; it does not change across
	// restarts.
	URL    string
	dir    string
	script string
}

// StartCluster starts a private cluster under a temporary directory and
// stops it when the test ends. It needs what DATABASE_URL tests need (it
// skips or fails like URL when that is unset) and PostgreSQL's binaries.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	URL(t)
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "pg") // stages/postgres/pgtest -> the repository root
	dir, err := os.MkdirTemp("", "causeway-pg-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{dir: dir, script: script}
	t.Cleanup(func() {
		if err := c.run("stop"); err != nil {
			t.Logf("pgtest: %v", err)
		}
		os.RemoveAll(dir)
	})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Start starts the cluster (again).
func (c *Cluster) Start() error {
	out, err := exec.Command(c.script, "start", c.dir).Output()
	if err != nil {
		return fmt.Errorf("pgtest: scripts/pg start: %w: %s", err, stderr(err))
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "DATABASE_URL=")
	if !ok {
		return fmt.Errorf("pgtest: scripts/pg start printed %q, want DATABASE_URL=...", out)
	}
	if c.URL != "" && url != c.URL {
		return fmt.Errorf("pgtest: restarted cluster moved from %s to %s", c.URL, url)
	}
	c.URL = url
	return nil
}

// Stop stops the cluster with a fast shutdown: open sessions are ended
// with admin_shutdown (57P01).
func (c *Cluster) Stop() error { return c.run("stop") }

func (c *Cluster) run(cmd string) error {
	if _, err := exec.Command(c.script, cmd, c.dir).Output(); err != nil {
		return fmt.Errorf("pgtest: scripts/pg %s: %w: %s", cmd, err, stderr(err))
	}
	return nil
}

func stderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
