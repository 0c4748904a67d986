package spill_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/causeway-go/causeway/stages/spill"
)

const benchRecord = 1024 // bytes, about a tweet with its metadata

// benchOptions bound the disk a benchmark uses; it consumes what it
// appended when the log is full, outside the timer.
func benchOptions(sync spill.SyncPolicy) spill.Options {
	return spill.Options{Sync: sync, MaxBytes: 256 << 20, SegmentBytes: 32 << 20}
}

// consumeAll acknowledges every record held, a chunk at a time.
func consumeAll(b *testing.B, l *spill.Log) {
	b.Helper()
	for {
		rs, err := l.Peek(4096)
		if err != nil {
			b.Fatal(err)
		}
		if len(rs) == 0 {
			return
		}
		if err := l.Ack(rs[len(rs)-1].End); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppend spills 1 KiB records in groups of 1 and of 64 (a
// batch), with an fsync per Append (SyncAlways) and without (SyncNone).
func BenchmarkAppend(b *testing.B) {
	rec := bytes.Repeat([]byte("r"), benchRecord)
	for _, sync := range []spill.SyncPolicy{spill.SyncAlways, spill.SyncNone} {
		for _, group := range []int{1, 64} {
			b.Run(fmt.Sprintf("%v/group=%d", sync, group), func(b *testing.B) {
				l := open(b, b.TempDir(), benchOptions(sync))
				g := make([][]byte, group)
				for i := range g {
					g[i] = rec
				}
				b.SetBytes(benchRecord) // an op is a record
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; {
					n := min(group, b.N-i)
					err := l.Append(g[:n])
					if errors.Is(err, spill.ErrFull) {
						b.StopTimer()
						consumeAll(b, l)
						b.StartTimer()
						continue
					}
					if err != nil {
						b.Fatal(err)
					}
					i += n
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkReplay reads 1 KiB records back in batches of 500, with an
// Ack (a checkpoint, fsynced) per batch.
func BenchmarkReplay(b *testing.B) {
	rec := bytes.Repeat([]byte("r"), benchRecord)
	g := make([][]byte, 256)
	for i := range g {
		g[i] = rec
	}
	const batch, fill = 500, 64 << 10 // records
	l := open(b, b.TempDir(), benchOptions(spill.SyncAlways))
	b.SetBytes(benchRecord)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		if l.Len() == 0 {
			b.StopTimer()
			for range fill / len(g) {
				if err := l.Append(g); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
		rs, err := l.Peek(min(batch, b.N-i))
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Ack(rs[len(rs)-1].End); err != nil {
			b.Fatal(err)
		}
		i += len(rs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
