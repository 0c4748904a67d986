package spill_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/causeway-go/causeway/stages/spill"
)

// A batcher whose sink is down spills its batch, then, after a restart,
// replays it once the sink is back: the records come back in order, and
// what was acknowledged is gone for good.
func Example() {
	dir, _ := os.MkdirTemp("", "spill-example")
	defer os.RemoveAll(dir)
	opts := spill.Options{
		MaxBytes: 64 << 20, // refuse (ErrFull) past 64 MiB on disk
		Logger:   slog.New(slog.DiscardHandler),
	}

	// The sink is down: hold the batch on disk. Once Append returns nil,
	// the messages may be acknowledged as held.
	l, err := spill.Open(dir, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	batch := [][]byte{[]byte(`{"id":"1"}`), []byte(`{"id":"2"}`), []byte(`{"id":"3"}`)}
	if err := l.Append(batch); err != nil {
		fmt.Println(err) // errors.Is(err, spill.ErrFull): the spill is full too
		return
	}
	l.Close() // or a crash: the batch is on disk either way

	// After a restart, a non-empty spill is replayed first.
	l, err = spill.Open(dir, opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	fmt.Println("held at start:", l.Len())
	ctx := context.Background()
	for l.Len() > 0 {
		if err := l.Wait(ctx); err != nil { // returns at once: records are held
			fmt.Println(err)
			return
		}
		recs, err := l.Peek(2)
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, r := range recs {
			fmt.Printf("replay %s\n", r.Data) // the sink takes them...
		}
		// ...then they are consumed: a later restart will not replay them.
		if err := l.Ack(recs[len(recs)-1].End); err != nil {
			fmt.Println(err)
			return
		}
	}
	st := l.Stats()
	fmt.Printf("recovered %d, acked %d, held %d\n", st.Recovered, st.Acked, st.Records)
	// Output:
	// held at start: 3
	// replay {"id":"1"}
	// replay {"id":"2"}
	// replay {"id":"3"}
	// recovered 3, acked 3, held 0
}
