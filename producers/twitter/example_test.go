package twitter_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

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
