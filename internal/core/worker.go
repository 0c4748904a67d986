package core

import "context"

// Worker identifies the goroutine running a handler: a processor of the
// processor pool, or a batch processor of a named batcher.
type Worker struct {
	// Batcher is the batcher a batch processor serves; "" for a processor.
	Batcher string
	// Index is the worker's index in its pool, from 0. With PartitionBy, a
	// partition p runs on the worker with Index p % Concurrency.
	Index int
}

type workerKey struct{}

// WorkerFrom returns the worker running the handler that got ctx. It reports
// false for a context that no processor or batch processor handed out. It
// lets tests check partitioning and lets handlers keep per-worker state.
func WorkerFrom(ctx context.Context) (Worker, bool) {
	w, ok := ctx.Value(workerKey{}).(Worker)
	return w, ok
}

func withWorker(ctx context.Context, w Worker) context.Context {
	return context.WithValue(ctx, workerKey{}, w)
}
