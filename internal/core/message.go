package core

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
)

// Message is one unit of data flowing through a topology.
//
// Stages keep messages by value in slices they own and hand handlers
// pointers into those slices, so moving a message costs no allocation. A
// handler may change Data and the message's status, routing and batch key;
// it must not keep the pointer after it returns.
type Message[T any] struct {
	// Data is the payload.
	Data T

	// Metadata carries facts about the message's origin that handlers or the
	// acknowledger need, such as a Kafka record's topic, partition and
	// offset. It is nil when the source has none.
	Metadata any

	// Acker is told when the message leaves the topology. A nil Acker means
	// nobody needs to hear; the acknowledgement is still counted.
	Acker Acknowledger[T]

	err      error
	batchKey string
	routes   uint64 // bit i set: routed to batcher i of the routing table
	table    *RouteTable
	fan      *fanout
	slot     int32 // index within the batch being handled
	routed   bool  // Route was called
	flush    bool  // FlushBatch was called
}

// ErrFailed is the error a message carries when it was failed with a nil
// error.
var ErrFailed = errors.New("stages: message failed")

// Fail marks the message as failed with err (ErrFailed if err is nil). A
// failed message is not sent to any batcher; it is passed to the topology's
// HandleFailed hook and acknowledged as failed.
func (m *Message[T]) Fail(err error) {
	if err == nil {
		err = ErrFailed
	}
	m.err = err
}

// Failed reports whether the message has been failed.
func (m *Message[T]) Failed() bool { return m.err != nil }

// Err returns the error the message was failed with, or nil.
func (m *Message[T]) Err() error { return m.err }

// FlushBatch makes the batch the message joins go to a batch processor as
// soon as the message is in it, as if the batch were full (its trigger is
// TriggerFlush): the message does not wait for BatchSize or BatchTimeout.
// A producer, a processor handler or a test helper may call it; it is the
// counterpart of Broadway's batch_mode: :flush.
func (m *Message[T]) FlushBatch() { m.flush = true }

// BatchKey returns the key that separates the message's batches; the zero
// key is "".
func (m *Message[T]) BatchKey() string { return m.batchKey }

// SetBatchKey makes the message's batcher put it only in batches of messages
// with the same key.
func (m *Message[T]) SetBatchKey(key string) { m.batchKey = key }

// Route sends the message to the named batchers. With several names the
// message fans out: each batcher gets it, and it is acknowledged once, after
// all of its batches are done. Route with no names sends it to no batcher:
// it is acknowledged right after processing. A name the topology does not
// declare fails the message with an error that lists the known batchers.
//
// Route is meant for processor handlers; the routing table it resolves names
// against is attached when the message enters a processor.
func (m *Message[T]) Route(names ...string) {
	m.routed = true
	m.routes = 0
	if len(names) == 0 {
		return
	}
	if m.table == nil {
		m.Fail(fmt.Errorf("stages: Route(%s) called outside a processor: no batchers to route to", strings.Join(names, ", ")))
		return
	}
	for _, name := range names {
		i := m.table.index(name)
		if i < 0 {
			m.Fail(&UnknownBatcherError{Name: name, Known: m.table.names})
			return
		}
		m.routes |= 1 << uint(i)
	}
}

// Routes returns the names of the batchers the message is routed to, in the
// order the topology declares them. Before any call to Route, that is the
// topology's default batcher, if it has one.
func (m *Message[T]) Routes() []string {
	if m.table == nil {
		return nil
	}
	var out []string
	for i, name := range m.table.names {
		if m.effectiveRoutes()&(1<<uint(i)) != 0 {
			out = append(out, name)
		}
	}
	return out
}

func (m *Message[T]) effectiveRoutes() uint64 {
	if !m.routed && m.table != nil {
		return m.table.def
	}
	return m.routes
}

// reset clears what the framework keeps about a message's trip, so a message
// value a producer reuses starts clean; processors call it as a message
// enters. A producer may emit a message that is already failed (or has a
// batch key): those survive.
func (m *Message[T]) reset() {
	m.routes = 0
	m.routed = false
	m.table = nil
	m.fan = nil
	m.slot = 0
}

// UnknownBatcherError is the error of a message routed to a batcher the
// topology does not declare.
type UnknownBatcherError struct {
	Name  string
	Known []string
}

func (e *UnknownBatcherError) Error() string {
	if len(e.Known) == 0 {
		return fmt.Sprintf("stages: no batcher named %q: the topology declares no batchers", e.Name)
	}
	return fmt.Sprintf("stages: no batcher named %q (known: %s)", e.Name, strings.Join(e.Known, ", "))
}

// MaxBatchers is the most batchers one topology can declare.
const MaxBatchers = 64

// RouteTable maps batcher names to their positions. It is built once per
// topology.
type RouteTable struct {
	names []string
	def   uint64
}

// NewRouteTable returns the table for batchers declared in names order.
// Messages that are never routed go to def; def == "" means they go to no
// batcher.
func NewRouteTable(names []string, def string) (*RouteTable, error) {
	if len(names) > MaxBatchers {
		return nil, fmt.Errorf("stages: %d batchers declared, at most %d allowed", len(names), MaxBatchers)
	}
	t := &RouteTable{names: append([]string(nil), names...)}
	if def != "" {
		i := t.index(def)
		if i < 0 {
			return nil, &UnknownBatcherError{Name: def, Known: t.names}
		}
		t.def = 1 << uint(i)
	}
	return t, nil
}

// Names returns the batcher names in declaration order.
func (t *RouteTable) Names() []string { return append([]string(nil), t.names...) }

func (t *RouteTable) index(name string) int {
	for i, n := range t.names {
		if n == name {
			return i
		}
	}
	return -1
}

// fanout tracks one message routed to several batchers: it is acknowledged
// when the last of its copies is done, failed if any copy failed.
type fanout struct {
	remaining atomic.Int32
	err       atomic.Pointer[error]
}

var fanoutPool = sync.Pool{New: func() any { return new(fanout) }}

func newFanout(n int) *fanout {
	f := fanoutPool.Get().(*fanout)
	f.remaining.Store(int32(n))
	f.err.Store(nil)
	return f
}

// done records one copy's outcome. It reports whether that copy was the
// last, and if so the error the message as a whole ends with.
func (f *fanout) done(err error) (last bool, final error) {
	if err != nil {
		f.err.CompareAndSwap(nil, &err)
	}
	if f.remaining.Add(-1) != 0 {
		return false, nil
	}
	if p := f.err.Load(); p != nil {
		final = *p
	}
	fanoutPool.Put(f)
	return true, final
}

// DeadLetteredError is the error of a failed message that a dead-letter
// destination holds: a HandleFailed hook that stored the message (in a
// dead-letter topic or table) fails it again with this error. Sources that
// must not skip what is neither stored nor dead-lettered (the Kafka source
// commits an offset only past messages that succeeded or are dead-lettered)
// test for it with IsDeadLettered.
type DeadLetteredError struct {
	// Err is why the message failed.
	Err error
	// Destination names where it was stored, e.g. "kafka:tweets.dlq".
	Destination string
}

func (e *DeadLetteredError) Error() string {
	return fmt.Sprintf("%v (dead-lettered to %s)", e.Err, e.Destination)
}

// Unwrap returns why the message failed.
func (e *DeadLetteredError) Unwrap() error { return e.Err }

// IsDeadLettered reports whether err says a dead-letter destination holds
// the message.
func IsDeadLettered(err error) bool {
	var d *DeadLetteredError
	return errors.As(err, &d)
}
