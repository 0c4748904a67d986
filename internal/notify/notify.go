// Package notify is the close-and-replace broadcast channel Causeway's
// stages use to wake goroutines waiting for state to change.
package notify

// Notifier wakes every goroutine waiting for some state to change: waiters
// take the current channel under their lock and select on it; Broadcast
// closes it, and the next waiter gets a fresh one. The zero value is ready.
// It is not safe for concurrent use: guard it with the lock that guards the
// state it announces.
type Notifier struct{ ch chan struct{} }

// Wait returns the channel that the next Broadcast closes.
func (n *Notifier) Wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Waiting reports whether anyone took the channel since the last Broadcast.
func (n *Notifier) Waiting() bool { return n.ch != nil }

// Broadcast wakes everyone waiting.
func (n *Notifier) Broadcast() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
