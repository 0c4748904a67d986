package topology_test

// Regressions the property test found, each cut down to a small,
// deterministic program. Scenarios that can hang run in a child process
// with a real-time limit, so a regression fails instead of hanging the
// test binary.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

const isolatedEnv = "CAUSEWAY_ISOLATED_TEST"

// isolated runs body in a child process (this test binary, running only
// this test) and fails if it does not finish within limit of real time.
func isolated(t *testing.T, limit time.Duration, body func(t *testing.T)) {
	t.Helper()
	if os.Getenv(isolatedEnv) == t.Name() {
		body(t)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), isolatedEnv+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("hung: no result after %v of real time\n%s", limit, tail(out, 4000))
	}
	if err != nil {
		t.Fatalf("%v\n%s\n...\n%s", err, head(out, 1500), tail(out, 3000))
	}
}

func head(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// A batch handler that waits on time (a slow sink, a retry back-off) while
// several processors hand batches to its batcher: under testing/synctest
// the clock never moves and Run never returns. flushLocked
// (internal/core/batcher.go) holds sendMu[i] while it waits for a batch processor,
// and the next flusher waits for sendMu[i] while holding b.mu, so the other
// processors and the timer goroutine block on sync.Mutex, which synctest
// does not count as durably blocked. The same lock order makes one slow
// partition block adds to every partition of the batcher.
func TestRegressBatchHandoffUnderSynctest(t *testing.T) {
	isolated(t, 10*time.Second, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			top := mustNew(t, topology.Spec[int]{
				Producer:   topology.ProducerSpec[int]{Producer: stages.FromSlice(ints(20)...)},
				Processors: topology.ProcessorSpec[int]{Concurrency: 3, MaxDemand: 1},
				Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 1,
					Handle: func(ctx context.Context, b *stages.Batch[int]) error {
						time.Sleep(time.Millisecond)
						return nil
					}}},
			})
			if err := top.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s := top.Stats(); s.Acked != 20 {
				t.Fatalf("acked %d of 20", s.Acked)
			}
		})
	})
}

// A push producer that has emitted all it had and returned: what it left in
// the buffer still goes out at the rate limit. When the last producer
// returns, Run closes the buffer (internal/core/engine.go, case <-prodOut:
// e.buf.Close()), and Close sets stopping, which rateActive
// (internal/core/buffer.go) reads as "no limit": the whole buffer bursts out at
// once, 400 messages at t=0 under a limit of 40 per 10ms. Lifting the limit
// is meant for a drain that ctx started (it runs against ShutdownTimeout); a
// finite push source (a replay, -max-tweets) must not overrun the limit at
// its end.
func TestRegressRateLimitHoldsWhenProducersFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		first := 0
		push := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
			_, err := out.EmitAll(ctx, make([]stages.Message[int], 400))
			return err
		})
		top := mustNew(t, topology.Spec[int]{
			Producer: topology.ProducerSpec[int]{Producer: push, BufferSize: 1000,
				RateLimit: stages.RateLimit{Messages: 40, Interval: 10 * time.Millisecond}},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1, MaxDemand: 2, MinDemand: 1,
				Handle: func(ctx context.Context, m *stages.Message[int]) error {
					if time.Since(start) < 10*time.Millisecond {
						first++
					}
					return nil
				}},
		})
		if err := top.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); first > 40 || took < 90*time.Millisecond {
			t.Fatalf("%d messages handled in the first 10ms (limit 40 per 10ms); all 400 in %v, want at least 90ms", first, took)
		}
	})
}

// One slow partition of a partitioned batcher holds up every partition: a
// processor waiting to hand partition 0 a batch holds sendMu[0], the next
// one to flush partition 0 waits for sendMu[0] while holding the batcher's
// mu (internal/core/batcher.go, flushLocked called from add), and then no
// processor can add a message for partition 1 either. Real time, no
// synctest: under synctest the same lock order stops the clock (see
// TestRegressBatchHandoffUnderSynctest).
func TestRegressSlowPartitionBlocksOtherPartitions(t *testing.T) {
	gate := make(chan struct{})
	entered := make(chan struct{}, 10)
	p := topologytest.NewProducer[int]()
	top := mustNew(t, topology.Spec[int]{
		Producer:   topology.ProducerSpec[int]{Producer: p},
		Processors: topology.ProcessorSpec[int]{Concurrency: 4, MaxDemand: 1},
		Batchers: map[string]topology.BatcherSpec[int]{"b": {BatchSize: 1, Concurrency: 2,
			PartitionBy: func(m *stages.Message[int]) uint64 { return uint64(m.Data % 2) },
			Handle: func(ctx context.Context, b *stages.Batch[int]) error {
				if b.Partition == 0 {
					entered <- struct{}{}
					select {
					case <-gate:
					case <-ctx.Done():
					}
				}
				return nil
			}}},
	})
	stop := run(t, top)
	defer func() {
		close(gate)
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	deadline := time.After(wait)
	p.Push(0)
	select {
	case <-entered:
	case <-deadline:
		t.Fatal("partition 0's first batch never reached its handler")
	}
	// Two more for partition 0: one waits to be handed over, the other
	// waits behind it.
	p.Push(2, 4)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for top.Stats().Batchers[0].Received < 3 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("partition 0's messages never reached the batcher")
		}
	}
	select {
	case <-p.Push(1).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a message for partition 1 waited 5s behind partition 0's slow batch processor")
	}
}

// A pull producer waiting in Demand spins while the rate limit's window has
// passed and the buffer already holds a window's worth that busy
// processors have not taken: rateReopens (internal/core/buffer.go) sees
// rateLeft(now) (a full window, since the old one expired) <= buffered, and
// returns max(windowStart+Interval-now, 1ns) = 1ns, so Demand re-checks every
// nanosecond until a processor takes. In real time that burns a core; under
// synctest the clock creeps a nanosecond per turn and the bubble never gets
// to the handler's wake-up. Demand should wait for Take (which announces
// demand) instead, with no timer once the window has passed.
func TestRegressDemandSpinsBehindExpiredRateWindow(t *testing.T) {
	isolated(t, 10*time.Second, func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			top := mustNew(t, topology.Spec[int]{
				Producer: topology.ProducerSpec[int]{Producer: stages.FromSlice(ints(10)...),
					RateLimit: stages.RateLimit{Messages: 2, Interval: time.Millisecond}},
				Processors: topology.ProcessorSpec[int]{Concurrency: 1, MaxDemand: 4, MinDemand: 1,
					Handle: func(ctx context.Context, m *stages.Message[int]) error {
						time.Sleep(100 * time.Millisecond)
						return nil
					}},
			})
			if err := top.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if s := top.Stats(); s.Acked != 10 {
				t.Fatalf("acked %d of 10", s.Acked)
			}
		})
	})
}

// A producer that fails while the drain runs past ShutdownTimeout: Run
// reads the producers' error (internal/core/engine.go, before
// e.hardStop) before hardStop waits for them to return, so an error a
// producer returns during the grace is lost: Run reports only the timeout.
func TestRegressProducerErrorDuringHardStopIsKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		prod := stages.ProducerFunc[int](func(ctx context.Context, out *stages.Emitter[int]) error {
			if _, err := out.EmitAll(ctx, make([]stages.Message[int], 2)); err != nil {
				return err
			}
			<-ctx.Done()
			// Already read: hand it over even though the drain began. The
			// buffer is full; the hard stop refuses it.
			if err := out.Emit(context.WithoutCancel(ctx), stages.Message[int]{}); err != nil {
				return fmt.Errorf("%w: %v", boom, err)
			}
			return nil
		})
		top := mustNew(t, topology.Spec[int]{
			Producer: topology.ProducerSpec[int]{Producer: prod, BufferSize: 1, Keep: stages.Block},
			Processors: topology.ProcessorSpec[int]{Concurrency: 1, MaxDemand: 1,
				Handle: func(ctx context.Context, m *stages.Message[int]) error {
					<-ctx.Done() // until the hard stop
					return ctx.Err()
				}},
			ShutdownTimeout: 10 * time.Millisecond,
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- top.Run(ctx) }()
		synctest.Wait()
		cancel()
		err := <-done
		if !errors.Is(err, stages.ErrShutdownTimeout) || !errors.Is(err, boom) {
			t.Fatalf("Run = %v; want the shutdown timeout and the producer's error", err)
		}
	})
}
