// Package core is Causeway's runtime: the producer stage's buffer and its
// demand accounts, processors, batchers with their hand-over queues, batch
// processors, the settler that acknowledges, the outage policies and the
// spill replay. Package topology builds an Engine from a validated Spec;
// package stages re-exports the contracts a program uses, as aliases.
package core
