package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/causeway-go/causeway/stages/window"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func starts(w window.Windows, t time.Time) []time.Time {
	var out []time.Time
	for _, s := range w.Starts(t, nil) {
		out = append(out, time.Unix(0, s).UTC())
	}
	return out
}

func TestStartsBoundaries(t *testing.T) {
	t.Parallel()
	tumbling := window.Windows{Size: time.Minute}
	hopping := window.Windows{Size: time.Minute, Hop: 20 * time.Second}
	for _, tc := range []struct {
		name string
		w    window.Windows
		t    time.Time
		want []time.Time
	}{
		{"tumbling start is inside", tumbling, at(0), []time.Time{at(0)}},
		{"tumbling last nanosecond", tumbling, at(time.Minute - 1), []time.Time{at(0)}},
		{"tumbling end is the next window", tumbling, at(time.Minute), []time.Time{at(time.Minute)}},
		{"before the epoch", tumbling, time.Unix(-1, 0), []time.Time{time.Unix(-60, 0).UTC()}},
		{"hopping: three windows", hopping, at(25 * time.Second), []time.Time{at(-20 * time.Second), at(0), at(20 * time.Second)}},
		{"hopping on a boundary", hopping, at(40 * time.Second), []time.Time{at(0), at(20 * time.Second), at(40 * time.Second)}},
		{"hop equal to size is tumbling", window.Windows{Size: time.Minute, Hop: time.Minute}, at(90 * time.Second), []time.Time{at(time.Minute)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := starts(tc.w, tc.t)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Starts(%v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func TestValidateNamesTheField(t *testing.T) {
	t.Parallel()
	for _, w := range []window.Windows{{}, {Size: time.Minute, Hop: 2 * time.Minute}, {Size: time.Minute, Hop: 25 * time.Second}, {Size: time.Minute, Hop: -1}} {
		if err := w.Validate(); err == nil {
			t.Errorf("%+v: no error", w)
		}
	}
	if err := (window.Windows{Size: time.Minute, Hop: 15 * time.Second}).Validate(); err != nil {
		t.Error(err)
	}
}

type event struct {
	at  time.Duration
	key string
}

// run counts events in order from a stored watermark and returns the
// counts (as "start key" → n), the late events' indexes and the new
// watermark.
func run(w window.Windows, grace time.Duration, wm window.Watermark, evs []event) (map[string]int64, []int, window.Watermark) {
	c := window.Counter[string]{Windows: w, Grace: grace}
	var late []int
	for i, e := range evs {
		if c.Add(&wm, at(e.at), e.key) {
			late = append(late, i)
		}
	}
	out := map[string]int64{}
	for cell, n := range c.Counts {
		out[cell.StartTime().Format("15:04:05")+" "+cell.Key] = n
	}
	return out, late, wm
}

func TestLateAndOutOfOrder(t *testing.T) {
	t.Parallel()
	w := window.Windows{Size: time.Minute}
	evs := []event{
		{10 * time.Second, "a"},
		{3 * time.Minute, "a"},               // the watermark moves to 12:03
		{90 * time.Second, "b"},              // window 12:01 ends 12:02, + grace 1m = 12:03: final → late
		{2*time.Minute + 5*time.Second, "c"}, // window 12:02 ends 12:03 + 1m > 12:03: in grace, applied
		{5 * time.Second, "a"},               // window 12:00: final → late
		{3*time.Minute + 1, "a"},
	}
	counts, late, wm := run(w, time.Minute, window.Watermark{}, evs)
	want := map[string]int64{"12:00:00 a": 1, "12:03:00 a": 2, "12:02:00 c": 1}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	if fmt.Sprint(late) != "[2 4]" {
		t.Errorf("late events %v, want [2 4]", late)
	}
	if wm.Time() != at(3*time.Minute+1) {
		t.Errorf("watermark %v", wm.Time())
	}
}

func TestHoppingLateOnlyInFinalWindows(t *testing.T) {
	t.Parallel()
	w := window.Windows{Size: time.Minute, Hop: 30 * time.Second}
	c := window.Counter[string]{Windows: w}
	wm := window.Watermark{}
	c.Add(&wm, at(2*time.Minute), "x") // windows 12:01:30 and 12:02:00
	// 12:01:10 is in 12:00:30 (ends 12:01:30 ≤ 12:02: final) and 12:01:00
	// (ends 12:02:00 ≤ 12:02: final): late.
	if !c.Add(&wm, at(70*time.Second), "y") {
		t.Error("an event whose windows are all final was not late")
	}
	// 12:01:40 is in 12:01:00 (final) and 12:01:30 (open): counted there only.
	if c.Add(&wm, at(100*time.Second), "z") {
		t.Error("an event with an open window was late")
	}
	if c.Counts[window.Cell[string]{Start: at(90 * time.Second).UnixNano(), Key: "z"}] != 1 || c.LateCells != 3 || c.Late != 1 || c.OnTime != 2 {
		t.Errorf("counts %v, late cells %d, late %d, on time %d", c.Counts, c.LateCells, c.Late, c.OnTime)
	}
}

// A replay from the stored watermark, whatever the batch boundaries, makes
// the same decisions as one pass.
func TestReplayFromStoredWatermarkDecidesTheSame(t *testing.T) {
	t.Parallel()
	w := window.Windows{Size: time.Minute}
	var evs []event
	for i := range 200 {
		d := time.Duration(i)*7*time.Second - time.Duration(i%13)*20*time.Second
		evs = append(evs, event{d, fmt.Sprint("k", i%5)})
	}
	whole, wholeLate, wholeWM := run(w, 30*time.Second, window.Watermark{}, evs)
	for _, cut := range []int{1, 17, 100, 199} {
		first, late1, wm := run(w, 30*time.Second, window.Watermark{}, evs[:cut])
		b, _ := wm.MarshalBinary()
		var stored window.Watermark
		if err := stored.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		second, late2, wm2 := run(w, 30*time.Second, stored, evs[cut:])
		for k, n := range second {
			first[k] += n
		}
		for _, i := range late2 {
			late1 = append(late1, i+cut)
		}
		if fmt.Sprint(first) != fmt.Sprint(whole) || fmt.Sprint(late1) != fmt.Sprint(wholeLate) || wm2 != wholeWM {
			t.Fatalf("cut at %d: the replay decided differently", cut)
		}
	}
	if len(wholeLate) == 0 {
		t.Fatal("the test has no late events")
	}
}

func TestWatermarkEncoding(t *testing.T) {
	t.Parallel()
	var w window.Watermark
	if err := w.UnmarshalBinary(nil); err != nil || w.Max != 0 {
		t.Fatalf("empty: %v %v", w, err)
	}
	if err := w.UnmarshalBinary([]byte{1, 2, 3}); err == nil {
		t.Fatal("3 bytes decoded")
	}
}

func ExampleCounter() {
	c := window.Counter[string]{Windows: window.Windows{Size: time.Minute}, Grace: 30 * time.Second}
	var wm window.Watermark // stored per partition, with the offsets
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	c.Add(&wm, base.Add(10*time.Second), "go", "kafka")
	c.Add(&wm, base.Add(2*time.Minute), "go")
	late := c.Add(&wm, base.Add(20*time.Second), "go") // 12:00 closed at 12:01:30
	fmt.Println(late, c.OnTime, c.Late, len(c.Counts))
	// Output: true 2 1 3
}
