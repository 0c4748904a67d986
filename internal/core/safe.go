package core

import (
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
)

// PanicError is the error of a message (or batch) whose user callback
// panicked: a processor or batch handler, a size or partition function.
type PanicError struct {
	// Value is what the callback panicked with.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

func newPanicError(v any) *PanicError {
	return &PanicError{Value: v, Stack: debug.Stack()}
}

// safely runs a user callback that has no message to fail (a hook, an
// acknowledger, OnDrop, HandleFailed): a panic is logged with its stack as
// "stages: <what> panicked" plus attrs, and the stage goes on. It reports
// whether fn returned normally.
func safely(log *slog.Logger, what string, fn func(), attrs ...any) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if log != nil {
				log.Error("stages: "+what+" panicked", append(attrs, "panic", v, "stack", string(debug.Stack()))...)
			}
		}
	}()
	fn()
	return true
}

// atomicState is what a worker is doing (workerIdle, workerHandling,
// workerAcking), read by the report of a drain that timed out.
type atomicState atomic.Int32

func (s *atomicState) set(v int32) { (*atomic.Int32)(s).Store(v) }
