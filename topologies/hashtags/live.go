package hashtags

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/reugn/go-streams/flow"

	"github.com/causeway-go/causeway/producers/gostreams"
)

// TagCount is a hashtag and how many tweets carried it.
type TagCount struct {
	Tag    string `json:"tag"`
	Tweets int64  `json:"tweets"`
}

// trending is the live view: the topology's "live" batcher hands valid
// tweets to a go-streams sliding window over processing time, and each
// window the window emits becomes the current top hashtags. It lives in
// memory only: a restart starts it empty, and it counts a tweet each time
// it is consumed (no de-duplication, no exactly-once). The durable,
// exact counts are hashtag_counts.
type trending struct {
	outlet *gostreams.Outlet[Tweet]
	done   chan struct{}
	size   time.Duration

	mu     sync.Mutex
	top    []TagCount
	tweets int
}

func newTrending(size, slide time.Duration) *trending {
	t := &trending{outlet: gostreams.NewOutlet[Tweet](1024, false), done: make(chan struct{}), size: size}
	sw := flow.NewSlidingWindowWithOpts(size, slide, flow.SlidingWindowOpts[Tweet]{EmitPartialWindow: true})
	t.outlet.Via(sw)
	go func() {
		defer close(t.done)
		for w := range sw.Out() {
			t.update(w.([]Tweet))
		}
	}()
	return t
}

// update makes window's tweets the current view.
func (t *trending) update(window []Tweet) {
	counts := map[string]int64{}
	for i := range window {
		for _, tag := range window[i].Hashtags {
			counts[tag]++
		}
	}
	top := make([]TagCount, 0, len(counts))
	for tag, n := range counts {
		top = append(top, TagCount{tag, n})
	}
	slices.SortFunc(top, func(a, b TagCount) int { return cmp.Or(cmp.Compare(b.Tweets, a.Tweets), cmp.Compare(a.Tag, b.Tag)) })
	t.mu.Lock()
	t.top, t.tweets = top[:min(len(top), 10)], len(window)
	t.mu.Unlock()
}

// close ends the go-streams pipeline (its last window is emitted) and
// waits for it. The topology must have stopped.
func (t *trending) close() {
	t.outlet.Close()
	<-t.done
}

// Trending is the live view's latest window: the top ten hashtags of the
// tweets consumed in the last Config.Trending (processing time), and how
// many tweets the window held.
type Trending struct {
	Window time.Duration `json:"window_ns"`
	Tweets int           `json:"tweets"`
	Top    []TagCount    `json:"top"`
}

func (t *trending) snapshot() Trending {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Trending{Window: t.size, Tweets: t.tweets, Top: slices.Clone(t.top)}
}
