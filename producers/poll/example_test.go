package poll_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/causeway-go/causeway/producers/poll"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// A topology fed by a polled document: each poll of a price list emits one
// message per product, a 304 emits nothing. Here the topology stops once
// the first document's three products are acknowledged.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, `{"updated": 1767225600, "products": [{"sku": "a-1", "price": 3}, {"sku": "b-2", "price": 5}, {"sku": "c-3", "price": 8}]}`)
	}))
	defer srv.Close()

	type product struct {
		SKU   string `json:"sku"`
		Price int    `json:"price"`
	}
	prices, err := poll.New(poll.Config[product]{
		Feeds: []poll.Feed[product]{{
			URL:         srv.URL + "/prices.json",
			FollowHints: true, // poll again when max-age says (else every Interval)
			Split: func(doc []byte) ([]product, error) {
				var d struct{ Products []product }
				err := json.Unmarshal(doc, &d)
				return d.Products, err
			},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []string
	top, err := topology.New(topology.Spec[product]{
		Name:     "prices",
		Producer: topology.ProducerSpec[product]{Producer: prices},
		Processors: topology.ProcessorSpec[product]{
			Concurrency: 2,
			Handle: func(_ context.Context, m *stages.Message[product]) error {
				doc := m.Metadata.(*poll.Document) // where the message came from
				mu.Lock()
				defer mu.Unlock()
				got = append(got, fmt.Sprintf("%s=%d (document %d)", strings.ToUpper(m.Data.SKU), m.Data.Price, doc.Seq))
				if len(got) == 3 {
					cancel() // enough for the example: drain and stop
				}
				return nil
			},
		},
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := top.Run(ctx); err != nil {
		fmt.Println(err)
	}
	slices.Sort(got)
	fmt.Println(strings.Join(got, "\n"))
	s := prices.Stats()
	fmt.Printf("polls %d, documents %d, items %d, errors %d\n", s.Polls, s.Documents, s.Items, s.Errors())
	// Output:
	// A-1=3 (document 1)
	// B-2=5 (document 1)
	// C-3=8 (document 1)
	// polls 1, documents 1, items 3, errors 0
}
