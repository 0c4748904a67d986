package twitter

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/http2"
)

// transport returns a fresh HTTP/2-only transport: TLS with ALPN h2 for
// https, cleartext HTTP/2 with prior knowledge for http. Each stream
// connection gets its own, so a reconnect never reuses a dead connection.
// The dialNote it returns says, after a failed round trip, whether the
// failure was one no retry can mend (see PermanentError).
func (s *Stream) transport() (*http2.Transport, *dialNote) {
	h2c := s.base.Scheme == "http"
	var tlsCfg *tls.Config
	if s.cfg.TLSConfig != nil {
		tlsCfg = s.cfg.TLSConfig.Clone()
	}
	timeout := s.cfg.DialTimeout
	note := &dialNote{}
	tr := &http2.Transport{
		AllowHTTP:       h2c,
		TLSClientConfig: tlsCfg,
		// Frames of up to 1 MiB (HTTP/2's default is 16 KiB): a busy
		// stream then takes a quarter of the frames and read calls.
		MaxReadFrameSize: 1 << 20,
		DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			d := &net.Dialer{Timeout: timeout}
			if h2c {
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				sc := &sniffConn{Conn: c}
				note.setSniff(sc)
				return sc, nil
			}
			td := &tls.Dialer{NetDialer: d, Config: cfg}
			c, err := td.DialContext(ctx, network, addr)
			if err != nil {
				note.classifyTLS(err)
				return nil, err
			}
			if p := c.(*tls.Conn).ConnectionState().NegotiatedProtocol; p != http2.NextProtoTLS {
				c.Close()
				err := fmt.Errorf("its TLS handshake negotiated ALPN %q, not %q", p, http2.NextProtoTLS)
				note.set(ErrNotHTTP2, err)
				return nil, err
			}
			return c, nil
		},
	}
	return tr, note
}

// dialNote is what one transport's dials learnt about the server.
type dialNote struct {
	mu    sync.Mutex
	kind  error // ErrNotHTTP2 or ErrCertificate; nil if nothing permanent was seen
	cause error
	sniff *sniffConn
}

func (n *dialNote) set(kind, cause error) {
	n.mu.Lock()
	n.kind, n.cause = kind, cause
	n.mu.Unlock()
}

func (n *dialNote) setSniff(c *sniffConn) {
	n.mu.Lock()
	n.sniff = c
	n.mu.Unlock()
}

// classifyTLS notes a TLS handshake failure that retrying cannot mend: a
// certificate that does not verify, or a server that refuses ALPN h2.
func (n *dialNote) classifyTLS(err error) {
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &cv):
		n.set(ErrCertificate, cv.Err)
	case strings.Contains(err.Error(), "tls: no application protocol"):
		// The server's ALPN list has no h2 (crypto/tls does not export
		// the alert as a type to match).
		n.set(ErrNotHTTP2, errors.New("its TLS handshake refused ALPN h2 (no application protocol)"))
	}
}

// permanent returns the permanent failure the dials saw, if any.
func (n *dialNote) permanent() (kind, cause error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.kind != nil {
		return n.kind, n.cause
	}
	if n.sniff != nil {
		if head, ok := n.sniff.http1(); ok {
			return ErrNotHTTP2, fmt.Errorf("it answered the HTTP/2 preface with %q (HTTP/1)", head)
		}
	}
	return nil, nil
}

// sniffConn keeps the first bytes a cleartext server sends: an HTTP/2
// server starts with a SETTINGS frame, an HTTP/1 server with "HTTP/1.".
type sniffConn struct {
	net.Conn
	done atomic.Bool
	mu   sync.Mutex
	head []byte
}

const sniffLen = 12

func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.done.Load() {
		c.mu.Lock()
		c.head = append(c.head, p[:min(n, sniffLen-len(c.head))]...)
		if len(c.head) == sniffLen {
			c.done.Store(true)
		}
		c.mu.Unlock()
	}
	return n, err
}

// http1 reports whether the server answered like HTTP/1, and with what.
func (c *sniffConn) http1() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.head) >= 5 && bytes.HasPrefix(c.head, []byte("HTTP/")) {
		return strings.TrimSpace(string(c.head)), true
	}
	return "", false
}

// jsonContentType reports whether a stream answer's Content-Type is JSON:
// application/json or a +json type. A missing one is given the benefit of
// the doubt: the decoder will count what is not JSON.
func jsonContentType(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
