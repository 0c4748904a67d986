// Package memnet is an in-memory network for tests: a net.Listener whose
// connections are net.Pipe pairs. An http.Server serving it and an
// http.Client dialling it talk real HTTP/1.1 without sockets, so both can
// run inside a testing/synctest bubble, where a goroutine blocked on a
// pipe is durably blocked and the fake clock can move.
package memnet

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
)

// Listener accepts the connections Dial makes.
type Listener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// Listen returns a new listener.
func Listen() *Listener {
	return &Listener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next Dial.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and Dial.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is a placeholder address.
func (l *Listener) Addr() net.Addr { return addr{} }

// Dial connects to the listener, whatever network and address it is given.
func (l *Listener) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, errors.New("memnet: listener closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Serve serves h on a new listener in a goroutine and returns a client
// whose transport dials it (any URL reaches h), and a function that stops
// the server, closes the client's connections and waits for the server's
// goroutine.
func Serve(h http.Handler) (*http.Client, func()) {
	l := Listen()
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	tr := &http.Transport{DialContext: l.Dial}
	stop := func() {
		srv.Close()
		tr.CloseIdleConnections()
		<-done
	}
	return &http.Client{Transport: tr}, stop
}

type addr struct{}

func (addr) Network() string { return "memnet" }
func (addr) String() string  { return "memnet" }
