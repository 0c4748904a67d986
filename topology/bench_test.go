package topology_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	streams "github.com/reugn/go-streams"
	"github.com/reugn/go-streams/extension"
	"github.com/reugn/go-streams/flow"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
)

// benchMsg is the message every implementation moves: an id and a 200-byte
// payload (shared, as a network buffer would be).
type benchMsg struct {
	ID      int64
	Payload [200]byte
}

var payload [200]byte

const benchBatch = 100

// impl runs n messages through producer -> procs workers -> batcher of 100
// -> ack count, calling work on each message, and returns how many were
// acknowledged.
type impl func(n, procs int, work func(*benchMsg)) int64

var impls = []struct {
	name string
	run  impl
}{
	{"causeway", runCauseway},
	{"channels", runChannels},
	{"channels-chunked", runChunked},
	{"gostreams", runGoStreams},
}

// BenchmarkThroughput compares no-op pipelines side by side.
func BenchmarkThroughput(b *testing.B) {
	for _, im := range impls {
		for _, procs := range []int{1, 2, 8, 64} {
			b.Run(fmt.Sprintf("%s/procs=%d", im.name, procs), func(b *testing.B) {
				measure(b, im.run, procs, func(*benchMsg) {})
			})
		}
	}
}

// BenchmarkScaling compares pipelines whose handler waits 1ms per message
// (simulated I/O): efficiency = msgs/s ÷ (procs × 1000).
func BenchmarkScaling(b *testing.B) {
	for _, im := range impls {
		if im.name == "channels-chunked" {
			continue
		}
		for _, procs := range []int{1, 10, 100, 1000} {
			b.Run(fmt.Sprintf("%s/procs=%d", im.name, procs), func(b *testing.B) {
				rate := measure(b, im.run, procs, func(*benchMsg) { time.Sleep(time.Millisecond) })
				b.ReportMetric(rate/float64(procs*1000), "efficiency")
			})
		}
	}
}

func measure(b *testing.B, run impl, procs int, work func(*benchMsg)) float64 {
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	got := run(b.N, procs, work)
	elapsed := time.Since(start)
	b.StopTimer()
	if got != int64(b.N) {
		b.Fatalf("acknowledged %d of %d messages", got, b.N)
	}
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "msgs/s")
	return rate
}

// BenchmarkProducers runs the no-op causeway pipeline with P producer
// goroutines, each emitting its share on demand (as one Kafka partition
// each would), into 8 processors.
func BenchmarkProducers(b *testing.B) {
	for _, p := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("producers=%d", p), func(b *testing.B) {
			measure(b, func(n, procs int, work func(*benchMsg)) int64 { return runCausewayP(n, procs, p, work) }, 8, func(*benchMsg) {})
		})
	}
}

func runCauseway(n, procs int, work func(*benchMsg)) int64 { return runCausewayP(n, procs, 1, work) }

// runCausewayP runs n messages through the topology, from producers
// goroutines that each emit their share.
func runCausewayP(n, procs, producers int, work func(*benchMsg)) int64 {
	var acked atomic.Int64
	acker := stages.AckFunc[benchMsg](func(ok, failed []*stages.Message[benchMsg]) {
		acked.Add(int64(len(ok) + len(failed)))
	})
	var next atomic.Int64
	producer := stages.ProducerFunc[benchMsg](func(ctx context.Context, out *stages.Emitter[benchMsg]) error {
		var scratch []stages.Message[benchMsg]
		share := n / producers
		if next.Add(1) == 1 {
			share += n % producers
		}
		for sent := 0; sent < share; {
			d, err := out.Demand(ctx)
			if err != nil {
				return err
			}
			d = min(d, share-sent)
			// Reuse the scratch messages: only the id changes.
			for len(scratch) < d {
				scratch = append(scratch, stages.Message[benchMsg]{Data: benchMsg{Payload: payload}, Acker: &acker})
			}
			scratch = scratch[:d]
			for i := range scratch {
				scratch[i].Data.ID = int64(sent + i)
			}
			if _, err := out.EmitAll(ctx, scratch); err != nil {
				return err
			}
			sent += d
		}
		return nil
	})
	top, err := topology.New(topology.Spec[benchMsg]{
		Name:     "bench",
		Producer: topology.ProducerSpec[benchMsg]{Producer: producer, Concurrency: producers},
		Processors: topology.ProcessorSpec[benchMsg]{
			Concurrency: procs,
			Handle: func(_ context.Context, m *stages.Message[benchMsg]) error {
				work(&m.Data)
				return nil
			},
		},
		Batchers: map[string]topology.BatcherSpec[benchMsg]{
			"ack": {BatchSize: benchBatch, BatchTimeout: time.Second, Handle: func(context.Context, *stages.Batch[benchMsg]) error { return nil }},
		},
	})
	if err != nil {
		panic(err)
	}
	if err := top.Run(context.Background()); err != nil {
		panic(err)
	}
	return acked.Load()
}

// runChannels is the hand-written pipeline with one channel operation per
// message.
func runChannels(n, procs int, work func(*benchMsg)) int64 {
	in := make(chan benchMsg, 64)
	mid := make(chan benchMsg, 64)
	go func() {
		for i := range n {
			in <- benchMsg{ID: int64(i), Payload: payload}
		}
		close(in)
	}()
	var wg sync.WaitGroup
	for range procs {
		wg.Go(func() {
			var m benchMsg // one per worker: &m escapes to work
			for m = range in {
				work(&m)
				mid <- m
			}
		})
	}
	go func() { wg.Wait(); close(mid) }()
	var acked int64
	batch := make([]benchMsg, 0, benchBatch)
	for m := range mid {
		batch = append(batch, m)
		if len(batch) == benchBatch {
			acked += int64(len(batch))
			batch = batch[:0]
		}
	}
	return acked + int64(len(batch))
}

// runChunked is the hand-written pipeline passing slices of up to 64
// messages per channel operation: the practical ceiling.
func runChunked(n, procs int, work func(*benchMsg)) int64 {
	const chunk = 64
	pool := sync.Pool{New: func() any { s := make([]benchMsg, 0, chunk); return &s }}
	in := make(chan *[]benchMsg, procs)
	mid := make(chan *[]benchMsg, procs)
	go func() {
		for i := 0; i < n; {
			c := pool.Get().(*[]benchMsg)
			for ; len(*c) < chunk && i < n; i++ {
				*c = append(*c, benchMsg{ID: int64(i), Payload: payload})
			}
			in <- c
		}
		close(in)
	}()
	var wg sync.WaitGroup
	for range procs {
		wg.Go(func() {
			for c := range in {
				for i := range *c {
					work(&(*c)[i])
				}
				mid <- c
			}
		})
	}
	go func() { wg.Wait(); close(mid) }()
	var acked int64
	batch := make([]benchMsg, 0, benchBatch)
	for c := range mid {
		for _, m := range *c {
			batch = append(batch, m)
			if len(batch) == benchBatch {
				acked += int64(len(batch))
				batch = batch[:0]
			}
		}
		*c = (*c)[:0]
		pool.Put(c)
	}
	return acked + int64(len(batch))
}

// runGoStreams is ChanSource -> Map(parallelism procs) -> Batch(100) -> sink.
func runGoStreams(n, procs int, work func(*benchMsg)) int64 {
	src := make(chan any, 64)
	go func() {
		for i := range n {
			src <- benchMsg{ID: int64(i), Payload: payload}
		}
		close(src)
	}()
	out := make(chan any, 64)
	var acked int64
	done := make(chan struct{})
	go func() {
		for b := range out {
			acked += int64(len(b.([]benchMsg)))
		}
		close(done)
	}()
	mapper := flow.NewMap(func(m benchMsg) benchMsg { work(&m); return m }, procs)
	var sink streams.Sink = extension.NewChanSink(out)
	// To blocks until the sink's input is closed; ChanSink's input is out.
	extension.NewChanSource(src).Via(mapper).Via(flow.NewBatch[benchMsg](benchBatch, time.Second)).To(sink)
	<-done
	return acked
}
