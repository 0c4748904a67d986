package core

// notifier wakes every goroutine waiting for some state to change: waiters
// take the current channel under their lock and select on it; broadcast
// closes it, and the next waiter gets a fresh one. The zero value is ready.
// It is not safe for concurrent use: guard it with the lock that guards the
// state it announces.
type notifier struct{ ch chan struct{} }

// wait returns the channel that the next broadcast closes.
func (n *notifier) wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// broadcast wakes everyone waiting.
func (n *notifier) broadcast() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
