// Package gostreams connects Causeway topologies and
// github.com/reugn/go-streams pipelines, both ways: any go-streams Source
// or Flow can feed a topology (Source), and a topology's batcher can feed
// any go-streams Flow or Sink (Outlet), so go-streams windows and
// connectors plug in on either side.
package gostreams

import (
	"context"
	"fmt"
	"sync"

	streams "github.com/reugn/go-streams"
	"github.com/reugn/go-streams/flow"

	"github.com/causeway-go/causeway/stages"
)

// Source is a pull producer reading a go-streams outlet (a Source or a
// Flow). It takes elements off the outlet's channel only as the topology
// asks for them, so the go-streams side is backpressured by the topology's
// demand. It finishes when the channel is closed.
type Source[T any] struct {
	outlet  streams.Outlet
	convert func(any) (T, error)
}

// NewSource returns a producer of the elements of outlet, converted to T by
// convert. An element convert rejects becomes a failed message carrying the
// error (HandleFailed sees it); the rest keep flowing. A nil convert expects
// elements of type T.
func NewSource[T any](outlet streams.Outlet, convert func(any) (T, error)) *Source[T] {
	if convert == nil {
		convert = func(v any) (T, error) {
			t, ok := v.(T)
			if !ok {
				return t, fmt.Errorf("element is %T, want %T", v, t)
			}
			return t, nil
		}
	}
	return &Source[T]{outlet: outlet, convert: convert}
}

// Run emits the outlet's elements as demand allows.
func (s *Source[T]) Run(ctx context.Context, out *stages.Emitter[T]) error {
	in := s.outlet.Out()
	var buf []stages.Message[T]
	var seq int64
	for {
		n, err := out.Demand(ctx)
		if err != nil {
			return nil
		}
		buf = buf[:0]
		// Wait for the first element, then take what is ready, up to n.
		select {
		case v, ok := <-in:
			if !ok {
				return nil
			}
			buf = s.appendElement(buf, v, seq)
			seq++
		case <-ctx.Done():
			return nil
		}
		closed := false
	more:
		for len(buf) < n {
			select {
			case v, ok := <-in:
				if !ok {
					closed = true
					break more
				}
				buf = s.appendElement(buf, v, seq)
				seq++
			default:
				break more
			}
		}
		if _, err := out.EmitAll(ctx, buf); err != nil || closed {
			return nil
		}
	}
}

func (s *Source[T]) appendElement(buf []stages.Message[T], v any, seq int64) []stages.Message[T] {
	var m stages.Message[T]
	d, err := s.convert(v)
	if err != nil {
		m.Fail(fmt.Errorf("gostreams: element %d (%.64v): %w", seq, v, err))
	}
	m.Data = d
	return append(buf, m)
}

// Outlet is a go-streams Source fed by a topology: use its HandleBatch as a
// batcher's handler and every message's Data flows, in batch order, to the
// go-streams Flow or Sink attached with Via or To. A message is acknowledged
// once its element has been handed over, so a slow go-streams pipeline
// slows the batcher, and through it the whole topology. Close the Outlet
// after the topology's Run returns to close the go-streams pipeline.
type Outlet[T any] struct {
	ch        chan any
	batches   bool
	closeOnce sync.Once
}

var _ streams.Source = (*Outlet[int])(nil)

// NewOutlet returns an Outlet whose channel buffers buffer elements. With
// asSlices, each batch goes downstream as one []T element instead of one
// element per message.
func NewOutlet[T any](buffer int, asSlices bool) *Outlet[T] {
	return &Outlet[T]{ch: make(chan any, buffer), batches: asSlices}
}

// Out returns the channel the go-streams side reads.
func (o *Outlet[T]) Out() <-chan any { return o.ch }

// Via streams the outlet's elements into f and returns f.
func (o *Outlet[T]) Via(f streams.Flow) streams.Flow {
	flow.DoStream(o, f)
	return f
}

// To streams the outlet's elements into sink and blocks until the sink has
// processed everything, which happens after Close.
func (o *Outlet[T]) To(sink streams.Sink) {
	flow.DoStream(o, sink)
	sink.AwaitCompletion()
}

// HandleBatch hands each message's Data downstream. If ctx ends first, the
// messages not handed over fail with ctx's error.
func (o *Outlet[T]) HandleBatch(ctx context.Context, b *stages.Batch[T]) error {
	if o.batches {
		elems := make([]T, len(b.Messages))
		for i, m := range b.Messages {
			elems[i] = m.Data
		}
		select {
		case o.ch <- elems:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, m := range b.Messages {
		select {
		case o.ch <- m.Data:
		case <-ctx.Done():
			for _, rest := range b.Messages[i:] {
				rest.Fail(ctx.Err())
			}
			return nil
		}
	}
	return nil
}

// Close closes the go-streams side's input. Call it once the topology has
// stopped; HandleBatch must not run after it.
func (o *Outlet[T]) Close() { o.closeOnce.Do(func() { close(o.ch) }) }
