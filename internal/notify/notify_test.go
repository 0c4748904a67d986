package notify

import "testing"

func TestBroadcastWakesEveryWaiterOnce(t *testing.T) {
	var n Notifier
	if n.Waiting() {
		t.Fatal("a new Notifier has waiters")
	}
	a, b := n.Wait(), n.Wait()
	if a != b || !n.Waiting() {
		t.Fatal("waiters before a broadcast must share one channel")
	}
	n.Broadcast()
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		default:
			t.Fatal("Broadcast did not wake a waiter")
		}
	}
	c := n.Wait()
	select {
	case <-c:
		t.Fatal("a waiter after the broadcast was woken by it")
	default:
	}
	n.Broadcast()
	n.Broadcast() // nobody waiting: no panic
}
