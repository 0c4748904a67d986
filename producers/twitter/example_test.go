package twitter_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// A topology fed by the filtered stream: the rules are synced at start, and
// each tweet carries the rules it matched. Here the stream is the fake
// server replaying the recorded edge cases over TLS.
func ExampleNewStream() {
	lines, err := twittertest.LoadLines("../../testdata/edge.jsonl")
	if err != nil {
		panic(err)
	}
	srv, err := twittertest.NewServer(twittertest.Config{Token: "app-token", Lines: lines})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	stream := twitter.NewStream(twitter.Config{
		URL:       srv.URL(), // https://127.0.0.1:port
		TLSConfig: srv.TLSConfig(),
		Token:     "app-token",
		Rules:     []twitter.Rule{{Value: "lang:en OR lang:fr", Tag: "en-fr"}},
		OnReconnect: func(ev twitter.ReconnectEvent) {
			fmt.Println("reconnect:", ev.Reason, ev.Class, ev.Backoff)
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	var matched atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	top, err := topology.New(topology.Spec[twitter.Tweet]{
		Name:     "tweets",
		Producer: topology.ProducerSpec[twitter.Tweet]{Producer: stream, BufferSize: 10_000},
		Processors: topology.ProcessorSpec[twitter.Tweet]{
			Concurrency: 2,
			Handle: func(ctx context.Context, m *stages.Message[twitter.Tweet]) error {
				if m.Data.RuleTags()[0] == "en-fr" && matched.Add(1) == 5 {
					cancel() // the five English and French edge cases are in
				}
				return nil
			},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	if err := top.Run(ctx); err != nil {
		panic(err)
	}
	st := stream.Stats()
	fmt.Println("matched:", matched.Load())
	fmt.Println("received:", st.Received, "emitted:", st.Emitted, "malformed:", st.Malformed)
	// Output:
	// matched: 5
	// received: 5 emitted: 5 malformed: 0
}

// A program that resumes where it stopped. At start it loads the resume
// point from its state file (the zero time on a first start) into
// Config.ResumeFrom; after each stored batch it saves the ReceivedAt of the
// batch's last tweet (one processor and one batch processor keep stream
// order here, so every tweet received before it is stored). On a restart
// the first connection asks for backfill from that point. The replay of
// tweets already stored is dropped when their ids are passed in
// Config.StoredIDs; here the store is taken to be idempotent by id.
func ExampleStateFile() {
	lines, err := twittertest.LoadLines("../../testdata/edge.jsonl")
	if err != nil {
		panic(err)
	}
	srv, err := twittertest.NewServer(twittertest.Config{H2C: true, Token: "app-token", Lines: lines})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	dir, err := os.MkdirTemp("", "causeway-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	state := twitter.StateFile{Path: filepath.Join(dir, "x-stream.state")}
	quiet := slog.New(slog.DiscardHandler)

	run := func() {
		from, err := state.Load()
		if err != nil {
			panic(err)
		}
		stream := twitter.NewStream(twitter.Config{
			URL: srv.URL(), Token: "app-token", Sample: true,
			BackfillMinutes: 5,
			ResumeFrom:      from,
			OnConnect: func(ev twitter.ConnectEvent) {
				fmt.Println("connected: backfill_minutes", ev.Backfill, "resume", ev.Resume)
			},
			Logger: quiet,
		})
		var stored atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		top, err := topology.New(topology.Spec[twitter.Tweet]{
			Name:       "resume",
			Producer:   topology.ProducerSpec[twitter.Tweet]{Producer: stream},
			Processors: topology.ProcessorSpec[twitter.Tweet]{Concurrency: 1},
			Batchers: map[string]topology.BatcherSpec[twitter.Tweet]{"store": {
				BatchSize: 2, BatchTimeout: 10 * time.Millisecond,
				Handle: func(ctx context.Context, b *stages.Batch[twitter.Tweet]) error {
					// ... store the batch, then move the resume point.
					if err := state.Save(b.Messages[len(b.Messages)-1].Data.ReceivedAt); err != nil {
						return err
					}
					if stored.Add(int64(len(b.Messages))) == int64(len(lines)) {
						cancel()
					}
					return nil
				},
			}},
			Logger: quiet,
		})
		if err != nil {
			panic(err)
		}
		if err := top.Run(ctx); err != nil {
			panic(err)
		}
		fmt.Println("stored:", stored.Load())
	}
	run() // a first start
	run() // a restart: the fake replays what it served in the last minute
	// Output:
	// connected: backfill_minutes 0 resume false
	// stored: 7
	// connected: backfill_minutes 1 resume true
	// stored: 7
}
