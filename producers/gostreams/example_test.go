package gostreams_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/reugn/go-streams/extension"
	"github.com/reugn/go-streams/flow"

	"github.com/causeway-go/causeway/producers/gostreams"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// A go-streams source feeds a topology, whose batcher feeds a go-streams
// tumbling window downstream.
func Example() {
	in := make(chan any, 10)
	for _, w := range []string{"a", "bb", "ccc", "dddd", "eeeee"} {
		in <- w
	}
	close(in)

	outlet := gostreams.NewOutlet[string](0, false)
	windows := make(chan any)
	go outlet.Via(flow.NewTumblingWindow[string](time.Hour)).To(extension.NewChanSink(windows))

	top, _ := topology.New(topology.Spec[string]{
		Producer: topology.ProducerSpec[string]{Producer: gostreams.NewSource[string](extension.NewChanSource(in), nil)},
		Processors: topology.ProcessorSpec[string]{Concurrency: 1, Handle: func(_ context.Context, m *stages.Message[string]) error {
			m.Data = strings.ToUpper(m.Data)
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[string]{"window": {Handle: outlet.HandleBatch}},
	})
	top.Run(context.Background()) // returns when the go-streams source is exhausted
	outlet.Close()                // closing the window's input flushes it

	for w := range windows {
		fmt.Println("window:", w)
	}
	// Output: window: [A BB CCC DDDD EEEEE]
}
