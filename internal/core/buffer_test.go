package core

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func msgs(ids ...int) []Message[int] {
	out := make([]Message[int], len(ids))
	for i, id := range ids {
		out[i].Data = id
	}
	return out
}

func data(ms []Message[int]) []int {
	out := make([]int, len(ms))
	for i := range ms {
		out[i] = ms[i].Data
	}
	return out
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBufferTakeNeverExceedsDemand(t *testing.T) {
	b := NewBuffer(BufferConfig[int]{Size: 100, Consumers: 2})
	em := b.NewEmitter()
	if _, err := em.EmitAll(context.Background(), msgs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)); err != nil {
		t.Fatal(err)
	}
	b.Ask(0, 3)
	b.Ask(1, 4)
	got0, err := b.Take(context.Background(), 0, nil)
	if err != nil || !equal(data(got0), []int{1, 2, 3}) {
		t.Fatalf("consumer 0 took %v, %v; want [1 2 3] (its demand)", data(got0), err)
	}
	got1, _ := b.Take(context.Background(), 1, nil)
	if !equal(data(got1), []int{4, 5, 6, 7}) {
		t.Fatalf("consumer 1 took %v; want [4 5 6 7]", data(got1))
	}
	if s := b.Stats(); s.Buffered != 3 || s.Demand != 0 || s.Delivered != 7 {
		t.Fatalf("stats %+v: want 3 buffered, 0 demand, 7 delivered", s)
	}
	// No demand left: Take blocks until there is.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.Take(ctx, 0, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Take without demand returned %v, want it to block until ctx ends", err)
	}
}

func TestBufferDemandIsOutstandingMinusBufferedAndPromised(t *testing.T) {
	var told []int
	b := NewBuffer(BufferConfig[int]{Size: 100, Consumers: 3, OnDemand: func(n int) { told = append(told, n) }})
	ctx := context.Background()
	b.Ask(0, 10)
	b.Ask(1, 10)
	em := b.NewEmitter()
	if n, _ := em.Demand(ctx); n != 20 {
		t.Fatalf("demand %d, want 20 (two consumers asked 10 each)", n)
	}
	em.EmitAll(ctx, msgs(1, 2, 3, 4, 5)) // 5 of 20 promised
	b.Ask(2, 10)
	// A second emitter sees only what is neither buffered nor promised.
	em2 := b.NewEmitter()
	if n, _ := em2.Demand(ctx); n != 10 {
		t.Fatalf("second emitter told %d, want 10 (30 asked - 5 buffered - 15 promised)", n)
	}
	// The first emitter's next Demand releases its unfulfilled promise.
	if n, _ := em.Demand(ctx); n != 15 {
		t.Fatalf("first emitter told %d on its second call, want 15", n)
	}
	if !equal(told, []int{20, 10, 15}) {
		t.Fatalf("demands told %v", told)
	}
}

func TestBufferDemandBlocksUntilAsked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBuffer(BufferConfig[int]{Size: 100, Consumers: 1})
		got := make(chan int, 1)
		go func() {
			n, _ := b.NewEmitter().Demand(context.Background())
			got <- n
		}()
		synctest.Wait()
		select {
		case n := <-got:
			t.Fatalf("Demand returned %d before anyone asked", n)
		default:
		}
		b.Ask(0, 7)
		synctest.Wait()
		if n := <-got; n != 7 {
			t.Fatalf("Demand = %d, want 7", n)
		}
	})
}

func TestBufferKeepPolicies(t *testing.T) {
	for _, tc := range []struct {
		keep    Keep
		want    []int
		dropped []int
	}{
		{KeepLast, []int{4, 5, 6}, []int{1, 2, 3}},
		{KeepFirst, []int{1, 2, 3}, []int{4, 5, 6}},
	} {
		t.Run(tc.keep.String(), func(t *testing.T) {
			var dropped []int
			b := NewBuffer(BufferConfig[int]{Size: 3, Consumers: 1, Keep: tc.keep,
				OnDrop: func(d []Message[int]) { dropped = append(dropped, data(d)...) }})
			em := b.NewEmitter()
			for i := 1; i <= 6; i++ {
				if err := em.Emit(context.Background(), Message[int]{Data: i}); err != nil {
					t.Fatal(err)
				}
			}
			b.Ask(0, 10)
			got, _ := b.Take(context.Background(), 0, nil)
			if !equal(data(got), tc.want) || !equal(dropped, tc.dropped) {
				t.Fatalf("kept %v dropped %v; want kept %v dropped %v", data(got), dropped, tc.want, tc.dropped)
			}
			if s := b.Stats(); s.Emitted != 6 || s.Dropped != 3 || s.MaxBuffered != 3 {
				t.Fatalf("stats %+v: want 6 emitted, 3 dropped, max 3 buffered", s)
			}
		})
	}
}

func TestBufferBlockWaitsForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBuffer(BufferConfig[int]{Size: 2, Consumers: 1, Keep: Block})
		done := make(chan error, 1)
		go func() {
			_, err := b.NewEmitter().EmitAll(context.Background(), msgs(1, 2, 3, 4))
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("EmitAll returned %v with a full buffer", err)
		default:
		}
		b.Ask(0, 2)
		got, _ := b.Take(context.Background(), 0, nil)
		synctest.Wait()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		b.Ask(0, 2)
		got, _ = b.Take(context.Background(), 0, got)
		if !equal(data(got), []int{1, 2, 3, 4}) || b.Stats().Dropped != 0 {
			t.Fatalf("got %v, dropped %d; want all four in order, none dropped", data(got), b.Stats().Dropped)
		}
	})
}

func TestBufferPartitioned(t *testing.T) {
	b := NewBuffer(BufferConfig[int]{Size: 100, Consumers: 3,
		PartitionBy: func(m *Message[int]) uint64 { return uint64(m.Data) }})
	b.NewEmitter().EmitAll(context.Background(), msgs(0, 1, 2, 3, 4, 5, 6, 7, 8))
	for id, want := range [][]int{{0, 3, 6}, {1, 4, 7}, {2, 5, 8}} {
		b.Ask(id, 10)
		got, err := b.Take(context.Background(), id, nil)
		if err != nil || !equal(data(got), want) {
			t.Fatalf("partition %d got %v (%v), want %v", id, data(got), err, want)
		}
	}
}

func TestBufferCloseDrainsThenEnds(t *testing.T) {
	b := NewBuffer(BufferConfig[int]{Size: 10, Consumers: 1})
	em := b.NewEmitter()
	em.EmitAll(context.Background(), msgs(1, 2))
	b.Close()
	if err := em.Emit(context.Background(), Message[int]{Data: 3}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Emit after Close = %v, want ErrClosed", err)
	}
	if _, err := em.Demand(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Demand after Close = %v, want ErrClosed", err)
	}
	b.Ask(0, 10)
	got, err := b.Take(context.Background(), 0, nil)
	if err != nil || !equal(data(got), []int{1, 2}) {
		t.Fatalf("Take after Close = %v, %v; want what was buffered", data(got), err)
	}
	if _, err := b.Take(context.Background(), 0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Take on a closed, empty buffer = %v, want ErrClosed", err)
	}
}

func TestBufferRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBuffer(BufferConfig[int]{Size: 100, Consumers: 1, RateLimit: RateLimit{Messages: 3, Interval: time.Second}})
		b.NewEmitter().EmitAll(context.Background(), msgs(1, 2, 3, 4, 5, 6, 7, 8))
		b.Ask(0, 100)
		start := time.Now()
		var at []time.Duration
		var got []Message[int]
		for len(got) < 8 {
			n := len(got)
			got, _ = b.Take(context.Background(), 0, got)
			for range len(got) - n {
				at = append(at, time.Since(start))
			}
		}
		want := []time.Duration{0, 0, 0, time.Second, time.Second, time.Second, 2 * time.Second, 2 * time.Second}
		for i := range want {
			if at[i] != want[i] {
				t.Fatalf("message %d left at %v, want %v (3 per second): %v", i, at[i], want[i], at)
			}
		}
		// Changing the limit takes effect at once.
		b.SetRateLimit(RateLimit{Messages: 100, Interval: time.Second})
		b.NewEmitter().EmitAll(context.Background(), msgs(9, 10, 11, 12, 13))
		got, _ = b.Take(context.Background(), 0, got[:0])
		if len(got) != 5 || time.Since(start) != 2*time.Second {
			t.Fatalf("after raising the limit took %d at %v, want 5 at once", len(got), time.Since(start))
		}
	})
}

// Messages a producer was asked for are never dropped, even when they land
// in a full partition: they wait for room.
func TestBufferPromisedMessagesAreNotDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBuffer(BufferConfig[int]{Size: 4, Consumers: 2, Keep: KeepLast,
			PartitionBy: func(m *Message[int]) uint64 { return 0 }}) // all to partition 0, capacity 2
		b.Ask(0, 3)
		b.Ask(1, 3)
		em := b.NewEmitter()
		n, _ := em.Demand(context.Background())
		if n != 4 { // 6 asked, capped by the room left (2 + 2)
			t.Fatalf("demand %d, want 4", n)
		}
		done := make(chan error, 1)
		go func() {
			_, err := em.EmitAll(context.Background(), msgs(1, 2, 3, 4))
			done <- err
		}()
		synctest.Wait()
		got, _ := b.Take(context.Background(), 0, nil)
		synctest.Wait()
		got, _ = b.Take(context.Background(), 0, got)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s := b.Stats(); s.Dropped != 0 {
			t.Fatalf("%d promised messages dropped", s.Dropped)
		}
		b.Ask(0, 3)
		got, _ = b.Take(context.Background(), 0, got)
		if !equal(data(got), []int{1, 2, 3, 4}) {
			t.Fatalf("got %v, want [1 2 3 4]", data(got))
		}
	})
}

// EmitAll reports how many messages it took when the stage closes while it
// waits for room, so an at-least-once producer knows what entered.
func TestBufferEmitAllCountsWhatItTookBeforeClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBuffer(BufferConfig[int]{Size: 2, Consumers: 1, Keep: Block})
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := b.NewEmitter().EmitAll(context.Background(), msgs(1, 2, 3, 4, 5))
			done <- result{n, err}
		}()
		synctest.Wait()
		b.Close()
		if r := <-done; r.n != 2 || !errors.Is(r.err, ErrClosed) {
			t.Fatalf("EmitAll = %d, %v; want 2, ErrClosed", r.n, r.err)
		}
		b.Ask(0, 5)
		got, _ := b.Take(context.Background(), 0, nil)
		if !equal(data(got), []int{1, 2}) {
			t.Fatalf("buffer holds %v, want the 2 taken", data(got))
		}
	})
}

// A few messages spread over the waiting processors instead of going all to
// the first one that asked: slow handlers then work in parallel.
func TestBufferSharesFewMessagesAmongWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBuffer(BufferConfig[int]{Size: 100, Consumers: 3})
		got := make([][]Message[int], 3)
		done := make(chan int, 3)
		for id := range 3 {
			b.Ask(id, 10)
			go func() {
				got[id], _ = b.Take(context.Background(), id, make([]Message[int], 0, 10))
				done <- id
			}()
		}
		synctest.Wait() // all three wait
		b.NewEmitter().EmitAll(context.Background(), msgs(1, 2, 3, 4, 5, 6))
		for range 3 {
			<-done
		}
		for id, g := range got {
			if len(g) != 2 {
				t.Fatalf("consumer %d took %v, want 2 of the 6 (each asked for 10)", id, data(g))
			}
		}
	})
}

// The ring allocates as bursts need it, keeps FIFO order across growth and
// never holds more than its capacity.
func TestRingGrowsOnDemand(t *testing.T) {
	r := newRing[int](5000)
	if len(r.buf) != ringStart {
		t.Fatalf("a new ring of 5000 allocated %d slots, want %d", len(r.buf), ringStart)
	}
	next, want := 0, 0
	push := func(n int) {
		batch := make([]Message[int], n)
		for i := range batch {
			batch[i].Data = next
			next++
		}
		if k := r.pushAll(batch); k != n {
			t.Fatalf("pushAll took %d of %d", k, n)
		}
	}
	pop := func(n int) {
		for _, m := range r.popInto(nil, n) {
			if m.Data != want {
				t.Fatalf("popped %d, want %d", m.Data, want)
			}
			want++
		}
	}
	push(700)
	pop(600) // head moves: the next growth must unwrap the ring
	push(1000)
	if len(r.buf) != 2048 {
		t.Fatalf("storage %d after holding 1100, want 2048", len(r.buf))
	}
	push(3900)
	if !r.full() || len(r.buf) != 5000 {
		t.Fatalf("full %v, storage %d; want full at exactly the capacity", r.full(), len(r.buf))
	}
	if k := r.pushAll(make([]Message[int], 1)); k != 0 {
		t.Fatalf("a full ring took %d more", k)
	}
	pop(5000)
}
