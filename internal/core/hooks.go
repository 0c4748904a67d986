package core

import "time"

// Hooks are optional callbacks on stage events, the role Broadway's
// telemetry plays. They run on the stage's goroutine: keep them fast and
// never block. A nil hook costs a nil check.
type Hooks struct {
	ProcessorStart func(ProcessorEvent)
	ProcessorStop  func(ProcessorEvent)
	BatchStart     func(BatchEvent)
	BatchStop      func(BatchEvent)
	Drop           func(DropEvent)
}

// ProcessorEvent describes a processor goroutine starting or stopping.
type ProcessorEvent struct {
	Topology string
	ID       int
}

// BatchEvent describes a batch handler call. Failed, Duration and Err are
// set on BatchStop only.
type BatchEvent struct {
	Topology string
	BatchInfo
	Failed   int
	Duration time.Duration
	Err      error
}

// DropEvent reports messages a full producer-stage buffer dropped.
type DropEvent struct {
	Topology string
	Count    int
	Keep     Keep
}
