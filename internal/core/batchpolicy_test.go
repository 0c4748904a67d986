package core

import (
	"testing"
	"time"
)

func TestBatchPolicy(t *testing.T) {
	counted := batchPolicy{size: 3, timeout: time.Second}
	sized := batchPolicy{size: 10, sized: true, timeout: time.Second}
	t.Run("overflows", func(t *testing.T) {
		for _, c := range []struct {
			name string
			p    batchPolicy
			f    fill
			size int
			want bool
		}{
			{"counted never overflows", counted, fill{2, 2}, 1, false},
			{"sized, empty batch takes anything", sized, fill{0, 0}, 50, false},
			{"sized, fits exactly", sized, fill{2, 4}, 6, false},
			{"sized, one byte over", sized, fill{2, 4}, 7, true},
			{"sized, full batch", sized, fill{1, 10}, 1, true},
		} {
			if got := c.p.overflows(c.f, c.size); got != c.want {
				t.Errorf("%s: overflows(%+v, %d) = %v", c.name, c.f, c.size, got)
			}
		}
	})
	t.Run("room", func(t *testing.T) {
		for f, want := range map[fill]int{{0, 0}: 3, {2, 2}: 1, {3, 3}: 0, {5, 5}: 0} {
			if got := counted.room(f); got != want {
				t.Errorf("room(%+v) = %d, want %d", f, got, want)
			}
		}
	})
	t.Run("closes", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			p     batchPolicy
			f     fill
			flush bool
			want  Trigger
		}{
			{"counted, not full", counted, fill{2, 2}, false, 0},
			{"counted, full", counted, fill{3, 3}, false, TriggerSize},
			{"counted, flush asked", counted, fill{1, 1}, true, TriggerFlush},
			{"full and flush asked: size wins", counted, fill{3, 3}, true, TriggerSize},
			{"sized, under", sized, fill{3, 9}, false, 0},
			{"sized, reached", sized, fill{3, 10}, false, TriggerSize},
			{"sized, one big message", sized, fill{1, 50}, false, TriggerSize},
		} {
			got, ok := c.p.closes(c.f, c.flush)
			if ok != (c.want != 0) || got != c.want {
				t.Errorf("%s: closes(%+v, %v) = %v, %v; want %v", c.name, c.f, c.flush, got, ok, c.want)
			}
		}
	})
	t.Run("timeout from the first message", func(t *testing.T) {
		first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		d := counted.deadline(first)
		if !d.Equal(first.Add(time.Second)) {
			t.Fatalf("deadline %v", d)
		}
		if counted.due(d, first.Add(999*time.Millisecond)) || !counted.due(d, d) || !counted.due(d, d.Add(time.Hour)) {
			t.Fatal("due is wrong around the deadline")
		}
	})
}
