package archive_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/stages/archive"
)

// benchBatch is the batch size of the benchmarks: the binary's Kafka batch
// size, and a batch of 500 recorded tweets is about 500 KB.
const benchBatch = 500

// BenchmarkArchive writes the recorded tweets in batches of 500 through the
// Writer (one gzip member and one fsync per batch; 1 and 4 batch processors)
// and, as the baseline in the same run, through one plain gzip.Writer into
// one file, synced once at the end. lines/s and MB/s are of uncompressed
// input; ratio is compressed/uncompressed.
func BenchmarkArchive(b *testing.B) {
	lines := recordedTweets(b)
	var size int64
	for _, l := range lines {
		size += int64(len(l)) + 1
	}
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression} {
		name := map[int]string{gzip.BestSpeed: "BestSpeed", gzip.DefaultCompression: "Default"}[level]
		b.Run("plain-gzip.Writer/level="+name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "plain.jsonl.gz"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			zw, _ := gzip.NewWriterLevel(f, level)
			b.ReportAllocs()
			b.SetBytes(size)
			for b.Loop() {
				for _, l := range lines {
					zw.Write(l)
					zw.Write(nl)
				}
			}
			if err := zw.Close(); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			st, _ := f.Stat()
			report(b, len(lines), size, st.Size()/int64(b.N))
		})
		for _, procs := range []int{1, 4} {
			b.Run(fmt.Sprintf("archive/level=%s/processors=%d", name, procs), func(b *testing.B) {
				w, err := archive.New(archive.Config[[]byte]{Dir: b.TempDir(), Level: level, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close(context.Background())
				batches := splitBatches(lines, benchBatch)
				b.ReportAllocs()
				b.SetBytes(size)
				for b.Loop() {
					work := make(chan *stages.Batch[[]byte], len(batches))
					for _, bt := range batches {
						work <- bt
					}
					close(work)
					var wg sync.WaitGroup
					for range procs {
						wg.Go(func() {
							for bt := range work {
								if err := w.HandleBatch(context.Background(), bt); err != nil {
									b.Error(err)
								}
							}
						})
					}
					wg.Wait()
				}
				s := w.Stats()
				report(b, len(lines), size, s.BytesOut/int64(b.N))
			})
		}
	}
}

var nl = []byte{'\n'}

func splitBatches(lines [][]byte, n int) []*stages.Batch[[]byte] {
	var out []*stages.Batch[[]byte]
	for len(lines) > 0 {
		k := min(n, len(lines))
		msgs := make([]stages.Message[[]byte], k)
		bt := &stages.Batch[[]byte]{Messages: make([]*stages.Message[[]byte], k)}
		for i := range msgs {
			msgs[i].Data = lines[i]
			bt.Messages[i] = &msgs[i]
		}
		out = append(out, bt)
		lines = lines[k:]
	}
	return out
}

// report adds lines/s, MB/s of input and the compression ratio.
func report(b *testing.B, lines int, in, out int64) {
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(lines)*float64(b.N)/sec, "lines/s")
	b.ReportMetric(float64(in)*float64(b.N)/sec/1e6, "MB/s")
	b.ReportMetric(float64(out)/float64(in), "ratio")
}
