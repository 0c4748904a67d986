// Package stages holds Causeway's contracts: the Message that flows through
// a topology, what producers, batch handlers and acknowledgers implement,
// and what a program reads back (Stats, hooks, errors). The stage runtimes
// (the producer stage's bounded buffer, processors, batchers, batch
// processors, the acknowledger and the spill) live in an internal package;
// a program declares a topology with package topology, which validates the
// declaration and runs them.
//
// # Flow control
//
// Demand flows upstream and data downstream. Each processor asks the
// producer stage for up to MaxDemand messages and asks again once the
// messages it holds or has asked for fall to MinDemand; the producer stage
// never hands a processor more than it asked for. A producer that can wait
// (a Kafka consumer, a channel) learns the outstanding demand from
// Emitter.Demand and emits exactly that much. A producer that cannot be
// slowed (a network firehose) emits whenever data arrives; what arrives
// without demand waits in a buffer of BufferSize messages, and when the
// buffer is full the Keep policy decides which message is dropped. Every drop
// is counted and offered to an OnDrop hook.
//
// Downstream of the producer stage, memory is bounded by construction: a
// processor holds at most MaxDemand messages; it adds them to its batchers'
// open batches (pointers into the processor's storage, no copy), and when a
// batch fills up the processor hands it to a batch processor, waiting if all
// of them are busy. A batch's storage is recycled once the batch is
// acknowledged.
//
// # Acknowledgement
//
// Every message that enters a topology leaves it exactly once: acknowledged
// as successful, acknowledged as failed, or counted as dropped by the
// producer stage's buffer. A message routed to several batchers is
// acknowledged once, after the last of its batches is done, and is failed if
// any of them failed it. Acknowledgers receive messages grouped: one call per
// acknowledger per batch.
package stages
