package core

// Acknowledger is told how messages left the topology.
//
// The topology calls Ack once per acknowledger per batch (or per processor
// chunk, for messages that go to no batcher), with the successful and the
// failed messages of that group. The slices and the messages they point to
// are valid only during the call: copy what must outlive it. Ack should not
// block for long: it runs on the batch processor that finished the batch.
type Acknowledger[T any] interface {
	Ack(successful, failed []*Message[T])
}

// AckFunc adapts a function to the Acknowledger interface. Only pointers to
// an AckFunc are comparable, so group messages under one *AckFunc.
type AckFunc[T any] func(successful, failed []*Message[T])

// Ack calls f(successful, failed).
func (f *AckFunc[T]) Ack(successful, failed []*Message[T]) { (*f)(successful, failed) }
