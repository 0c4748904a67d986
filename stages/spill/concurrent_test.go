package spill_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/stages/spill"
)

// One goroutine spills while another replays: every record comes out once,
// in order, through segment rolls, deletions and a full log.
func TestConcurrentAppendAndReplay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts spill.Options
		n    int
	}{
		{"SyncNone, small segments, often full", spill.Options{Sync: spill.SyncNone, SegmentBytes: 1 << 10, MaxBytes: 4 << 10}, 5000},
		{"SyncAlways", spill.Options{SegmentBytes: 4 << 10, MaxBytes: 64 << 10}, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			l := open(t, dir, tc.opts)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			acked := make(chan struct{}, 1) // the reader made room

			var wg sync.WaitGroup
			var werr, rerr error
			var full int
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(1, 2))
				for i := 0; i < tc.n; {
					size := min(1+rng.IntN(10), tc.n-i)
					err := l.Append(recs(i, i+size))
					if errors.Is(err, spill.ErrFull) {
						full++
						select {
						case <-acked:
							continue
						case <-ctx.Done():
							werr = ctx.Err()
							return
						}
					}
					if err != nil {
						werr = err
						return
					}
					i += size
				}
			})
			var got [][]byte
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(3, 4))
				for len(got) < tc.n {
					if rerr = l.Wait(ctx); rerr != nil {
						return
					}
					rs, err := l.Peek(1 + rng.IntN(20))
					if err != nil {
						rerr = err
						return
					}
					for _, r := range rs {
						got = append(got, r.Data)
					}
					if rerr = l.Ack(rs[len(rs)-1].End); rerr != nil {
						return
					}
					select {
					case acked <- struct{}{}:
					default:
					}
				}
			})
			wg.Wait()
			if werr != nil || rerr != nil {
				t.Fatalf("writer: %v; reader: %v", werr, rerr)
			}
			wantRecords(t, got, 0, tc.n)
			st := l.Stats()
			t.Logf("%d appends refused as full; %+v", full, st)
			if st.Appended != int64(tc.n) || st.Acked != int64(tc.n) || st.Records != 0 || st.Refused == 0 != (full == 0) {
				t.Fatalf("Stats = %+v after %d records, %d refusals seen", st, tc.n, full)
			}
			if n := len(segments(t, dir)); n > 2 {
				t.Fatalf("%d segment files left after everything was consumed", n)
			}
			if l.Bytes() > tc.opts.MaxBytes {
				t.Fatalf("Bytes() = %d, over MaxBytes %d", l.Bytes(), tc.opts.MaxBytes)
			}
		})
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := open(t, t.TempDir(), spill.Options{})
		wait := func(ctx context.Context) chan error {
			done := make(chan error, 1)
			go func() { done <- l.Wait(ctx) }()
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("Wait returned %v on an empty log", err)
			default:
			}
			return done
		}

		done := wait(t.Context())
		if err := l.Append(recs(0, 2)); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Wait after Append: %v", err)
		}
		// Records held: Wait returns at once, until they are consumed.
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
		rs, _ := l.Peek(2)
		if err := l.Ack(rs[1].End); err != nil {
			t.Fatal(err)
		}

		ctx, cancel := context.WithCancel(t.Context())
		done = wait(ctx)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait after cancel: %v", err)
		}

		done = wait(t.Context())
		l.Close()
		if err := <-done; !errors.Is(err, spill.ErrClosed) {
			t.Fatalf("Wait after Close: %v", err)
		}
	})
}

// A Wait that Append woke reads what was appended.
func TestWaitThenPeek(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := open(t, t.TempDir(), spill.Options{})
		got := make(chan []byte, 1)
		go func() {
			if err := l.Wait(t.Context()); err != nil {
				got <- nil
				return
			}
			rs, _ := l.Peek(1)
			got <- rs[0].Data
		}()
		synctest.Wait()
		l.Append([][]byte{[]byte("hello")})
		if b := <-got; !bytes.Equal(b, []byte("hello")) {
			t.Fatalf("got %q", b)
		}
	})
}
