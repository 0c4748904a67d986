package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestEmbeddedKafkaKeepsItsLogInATempDir: the in-process Kafka writes its
// log under the temporary directory while it runs and leaves nothing there
// once closed.
func TestEmbeddedKafkaKeepsItsLogInATempDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cfg := &config{mode: "run", streamURL: "http://127.0.0.1:1", kafkaTopic: "tweets"}
	e, err := startEmbedded(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if e.kafka == nil || cfg.kafkaBrokers == "" {
		t.Fatal("no in-process Kafka started")
	}
	if filepath.Dir(e.kafkaDir) != tmp {
		t.Fatalf("the log is in %q, want a directory under %s", e.kafkaDir, tmp)
	}
	if _, err := os.Stat(e.kafkaDir); err != nil {
		t.Fatalf("the log directory: %v", err)
	}
	e.close()
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("left in the temporary directory after close: %v", left)
	}
}
