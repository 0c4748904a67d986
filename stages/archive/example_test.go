package archive_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/archive"
	"github.com/causeway-go/causeway/topology"
)

// The archive as a topology's batcher: each batch of raw JSON lines is one
// fsync'ed gzip member of dir/events.jsonl.gz, so a message is acknowledged
// only once it is on disk. Verify then checks the directory.
func Example() {
	dir, _ := os.MkdirTemp("", "archive-example")
	defer os.RemoveAll(dir)

	w, err := archive.New(archive.Config[[]byte]{
		Dir:         dir,
		Name:        "events",
		RotateSize:  64 << 20,  // finish a file at 64 MiB...
		RotateEvery: time.Hour, // ...or an hour after its first line
		Logger:      slog.New(slog.DiscardHandler),
		// The binary calls w.Reopen() on SIGHUP, after logrotate renamed the file.
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	var events [][]byte
	for i := range 250 {
		events = append(events, fmt.Appendf(nil, `{"data":{"id":"%d","text":"event %d"}}`, i, i))
	}
	top, err := topology.New(topology.Spec[[]byte]{
		Name:     "archive",
		Producer: topology.ProducerSpec[[]byte]{Producer: stages.FromSlice(events...)},
		Batchers: map[string]topology.BatcherSpec[[]byte]{
			"archive": {BatchSize: 100, BatchTimeout: 100 * time.Millisecond, Concurrency: 2, Handle: w.HandleBatch},
		},
		DefaultBatcher: "archive",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := top.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	if err := w.Close(context.Background()); err != nil {
		fmt.Println(err)
	}

	rep, err := archive.Verify(dir, archive.VerifyOptions{IDField: "data.id"})
	if err != nil {
		fmt.Println(err)
		return
	}
	f := rep.Files[0]
	fmt.Printf("acked %d; %s: %d lines, one member per batch: %v; %d unique ids, ok %v\n",
		top.Stats().Acked, filepath.Base(f.Path), f.Lines, int64(f.Members) == w.Stats().Batches, rep.UniqueIDs, rep.OK())
	// Output: acked 250; events.jsonl.gz: 250 lines, one member per batch: true; 250 unique ids, ok true
}
