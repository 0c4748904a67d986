package browsertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/causeway-go/causeway/dashboard"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

const interval = 250 * time.Millisecond

// chromium finds Debian's Chromium; without it the test skips, or fails
// under make test (CAUSEWAY_REQUIRE_INTEGRATION=1), which installs it
// first (scripts/install-chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium: run scripts/install-chromium (apt-get install chromium)"
	if os.Getenv("CAUSEWAY_REQUIRE_INTEGRATION") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// bursts is a push producer: each value sent on it is a burst of that many
// messages, emitted at once into a small KeepLast buffer, so that most of a
// large burst is dropped.
type bursts chan int

func (b bursts) Run(ctx context.Context, out *stages.Emitter[int]) error {
	next := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-b:
			for range n {
				next++
				if err := out.Emit(ctx, stages.Message[int]{Data: next}); err != nil {
					return nil
				}
			}
		}
	}
}

// pipeline is a topology of ints: processors fail multiples of 10; the
// "store" sink fails multiples of 7 with an error holding a password; the
// "archive" sink takes everything.
func pipeline(t *testing.T, in bursts, errs *dashboard.Errors) *topology.Topology[int] {
	t.Helper()
	top, err := topology.New(topology.Spec[int]{
		Name:     "numbers",
		Producer: topology.ProducerSpec[int]{Producer: in, BufferSize: 500, Keep: stages.KeepLast},
		Processors: topology.ProcessorSpec[int]{Concurrency: 2, MaxDemand: 4, Handle: func(_ context.Context, m *stages.Message[int]) error {
			time.Sleep(200 * time.Microsecond) // slower than the bursts: the buffer fills
			if m.Data%10 == 0 {
				return fmt.Errorf("number %d: divisible by ten", m.Data)
			}
			m.Route("store", "archive")
			return nil
		}},
		Batchers: map[string]topology.BatcherSpec[int]{
			"archive": {BatchSize: 20, BatchTimeout: 10 * time.Millisecond, Handle: func(context.Context, *stages.Batch[int]) error { return nil }},
			"store": {BatchSize: 10, BatchTimeout: 10 * time.Millisecond, Concurrency: 2, Handle: func(_ context.Context, b *stages.Batch[int]) error {
				for _, m := range b.Messages {
					if m.Data%7 == 0 {
						m.Fail(errors.New("copy into postgres://loader:hunter2@db/app refused the row"))
					}
				}
				return nil
			}},
		},
		HandleFailed: dashboard.HandleFailed[int](errs, nil),
		Hooks:        errs.Hooks(stages.Hooks{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// waitFor polls cond (which reads counters that have no channel to wait
// on) until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eventStreams counts the goroutines serving the page's event stream.
func eventStreams() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "dashboard.(*Dashboard).serveEvents(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// shownJS reads every number the page marks with data-k, by key, and the
// time of the sample the page shows.
const shownJS = `(() => {
	const o = {updated: document.body.getAttribute("data-updated") || ""};
	document.querySelectorAll("[data-k]").forEach(e => { o[e.getAttribute("data-k")] = e.textContent; });
	return o;
})()`

// firstNumber parses the first number in s ("acked 1,234 · ..." is 1234).
func firstNumber(s string) (int64, bool) {
	f := strings.FieldsFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != ',' })
	for _, w := range f {
		if w = strings.ReplaceAll(w, ",", ""); w != "" {
			n, err := strconv.ParseInt(w, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func TestPageInChromium(t *testing.T) {
	exe := chromium(t)
	in := make(bursts)
	errs := &dashboard.Errors{}
	top := pipeline(t, in, errs)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- top.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	d := dashboard.New(dashboard.Options{Interval: interval, Panels: []dashboard.Panel{{
		Name: "source", Title: "source connection", Data: func() any { return map[string]any{"state": "connected", "reconnects": 3} },
	}}}, dashboard.WithErrors(top, errs))
	mux := http.NewServeMux()
	mux.Handle("/causeway/", d)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { d.Close(); srv.Close() })

	// A normal user agent: headless Chromium's would make the page poll
	// (see app.js); this test checks the event stream a person's browser uses.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000),
		chromedp.UserAgent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0 Safari/537.36"))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	bctx, tcancel := context.WithTimeout(bctx, 90*time.Second)
	defer tcancel()

	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/causeway/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-stage="sink-store"]`))); err != nil {
		t.Fatalf("loading the page: %v", err)
	}
	waitFor(t, "the page's event stream", 10*time.Second, func() bool { return eventStreams() == 1 })

	// Live: a burst larger than the buffer (drops) with failures.
	in <- 3000
	waitFor(t, "the burst to settle", 30*time.Second, func() bool {
		s := top.Stats()
		return s.Producer.Emitted == 3000 && s.InFlight == 0
	})
	want := top.Stats()
	if want.Dropped == 0 || want.Failed == 0 {
		t.Fatalf("the burst made no drop or no failure: %+v", want)
	}
	wantShown := map[string]int64{
		"emitted": want.Producer.Emitted, "acked": want.Acked, "failed": want.Failed, "dropped": want.Dropped,
		"inflight": want.InFlight, "producer-dropped": want.Dropped, "processors-failed": want.Processors.Failed,
		"processors-received": want.Processors.Received,
	}
	for _, b := range want.Batchers {
		wantShown["sink-acked-"+b.Name] = b.Acked
		wantShown["sink-failed-"+b.Name] = b.Failed
		wantShown["batcher-received-"+b.Name] = b.Received
	}
	// The first update sampled after the counters settled shows them: the
	// page's data-updated attribute is the time of the sample it shows.
	settled := time.Now()
	var shown map[string]string
	for deadline := time.Now().Add(20 * time.Second); ; {
		var err error
		if shown, err = chromedp.Run(bctx, chromedp.Evaluate[map[string]string](shownJS)); err != nil {
			t.Fatal(err)
		}
		sampled, err := time.Parse(time.RFC3339Nano, shown["updated"])
		if err == nil && sampled.After(settled) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no update of the page sampled after %v (last %q)", settled, shown["updated"])
		}
		time.Sleep(interval / 5)
	}
	var mismatch string
	for k, w := range wantShown {
		if got, ok := firstNumber(shown[k]); !ok || got != w {
			mismatch += fmt.Sprintf("\n  %s: page %q, Stats %d", k, shown[k], w)
		}
	}
	if mismatch != "" {
		t.Fatalf("the first update after the counters settled does not show Stats():%s", mismatch)
	}
	if c := shown["conservation"]; !strings.Contains(c, "holds") {
		t.Errorf("conservation shown as %q", c)
	}

	// Every stage of Describe() is drawn.
	desc := top.Describe()
	stagesDrawn := []string{"producer", "processors"}
	for _, b := range desc.Batchers {
		stagesDrawn = append(stagesDrawn, "batcher-"+b.Name, "sink-"+b.Name)
	}
	text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stagesDrawn {
		n, err := chromedp.Run(bctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll('svg [data-stage=%q]').length`, s)))
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("stage %s drawn %d times, want once", s, n)
		}
	}
	// The failures show with their (redacted) latest errors; drops and
	// failures are marked.
	for _, s := range []string{"refused the row", "divisible by ten", "postgres://loader:xxx@db/app", "source connection", "reconnects"} {
		if !strings.Contains(text, s) {
			t.Errorf("the page does not show %q", s)
		}
	}
	if strings.Contains(text, "hunter2") {
		t.Error("the page shows a password")
	}
	marked, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".bad-text[data-k], .node.bad, .node.warn")].map(e => e.getAttribute("data-k") || e.getAttribute("data-stage"))`))
	if err != nil {
		t.Fatal(err)
	}
	if m := strings.Join(marked, " "); !strings.Contains(m, "failed") || !strings.Contains(m, "dropped") || !strings.Contains(m, "producer") || !strings.Contains(m, "sink-store") {
		t.Errorf("marked as failing or dropping: %v", marked)
	}

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("CAUSEWAY_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, "dashboard-test.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if len(png) < 10_000 {
		t.Errorf("screenshot of %d bytes", len(png))
	}

	// Closing the page ends its event stream on the server.
	if err := chromedp.Cancel(bctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the closed page's event stream to end", 10*time.Second, func() bool { return eventStreams() == 0 })
}
