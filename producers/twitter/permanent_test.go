package twitter

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/causeway-go/causeway/internal/core"
	"github.com/causeway-go/causeway/producers/twitter/twittertest"
)

// runUntilStopped runs s into a plain buffer and returns Run's error; it
// fails the test if Run does not return on its own within 10 s.
func runUntilStopped(t *testing.T, s *Stream) error {
	t.Helper()
	buf := core.NewBuffer(core.BufferConfig[Tweet]{Size: 16, Consumers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, buf.NewEmitter()) }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		cancel()
		<-done
		t.Fatalf("Run kept going (%d attempts, reconnects %v); want a stop", s.Stats().Attempts, s.Stats().Reconnects)
		return nil
	}
}

var quietLog = log.New(io.Discard, "", 0)

func certPool(t *testing.T, srv *httptest.Server) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

// TestPermanentErrorsStop checks that a server that is not an X API stream
// over HTTP/2 (HTTP/1.1 only, an untrusted certificate, HTML instead of
// JSON) stops Run at the first attempt with a one-line typed error naming
// the endpoint and the cause, and is never retried.
func TestPermanentErrorsStop(t *testing.T) {
	const token = "sekrit-token-789"
	html := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<html><body>Please log in to the Wi-Fi</body></html>\n"))
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"data":[]}` + "\r\n"))
	})

	tests := []struct {
		name   string
		start  func(t *testing.T) (url string, tlsCfg *tls.Config)
		rules  bool // filtered stream: the rules sync meets the fault first
		kind   error
		path   string
		detail string
	}{
		{
			name: "HTTP/1.1-only TLS server",
			start: func(t *testing.T) (string, *tls.Config) {
				srv := httptest.NewUnstartedServer(ok)
				srv.Config.ErrorLog = quietLog
				srv.StartTLS() // ALPN http/1.1 only
				t.Cleanup(srv.Close)
				return srv.URL, &tls.Config{RootCAs: certPool(t, srv)}
			},
			kind: ErrNotHTTP2, path: "/2/tweets/sample/stream", detail: "refused ALPN h2",
		},
		{
			name: "TLS server without ALPN",
			start: func(t *testing.T) (string, *tls.Config) {
				srv := httptest.NewUnstartedServer(ok)
				srv.TLS = &tls.Config{NextProtos: []string{}} // non-nil: StartTLS keeps it empty
				srv.Config.ErrorLog = quietLog
				srv.StartTLS()
				t.Cleanup(srv.Close)
				return srv.URL, &tls.Config{RootCAs: certPool(t, srv)}
			},
			kind: ErrNotHTTP2, path: "/2/tweets/sample/stream", detail: `negotiated ALPN "", not "h2"`,
		},
		{
			name: "HTTP/1.1-only cleartext server",
			start: func(t *testing.T) (string, *tls.Config) {
				srv := httptest.NewServer(ok)
				t.Cleanup(srv.Close)
				return srv.URL, nil
			},
			kind: ErrNotHTTP2, path: "/2/tweets/sample/stream", detail: `"HTTP/1.1 200`,
		},
		{
			name: "HTTP/1.1-only server, rules sync",
			start: func(t *testing.T) (string, *tls.Config) {
				srv := httptest.NewServer(ok)
				t.Cleanup(srv.Close)
				return srv.URL, nil
			},
			rules: true, kind: ErrNotHTTP2, path: "/2/tweets/search/stream/rules", detail: "HTTP/1",
		},
		{
			name: "untrusted certificate",
			start: func(t *testing.T) (string, *tls.Config) {
				srv, err := twittertest.NewServer(twittertest.Config{Token: token})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { srv.Close() })
				return srv.URL(), &tls.Config{RootCAs: x509.NewCertPool()} // trusts nothing
			},
			kind: ErrCertificate, path: "/2/tweets/sample/stream", detail: "x509: certificate signed by unknown authority",
		},
		{
			name: "certificate for another host",
			start: func(t *testing.T) (string, *tls.Config) {
				srv, err := twittertest.NewServer(twittertest.Config{Token: token})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { srv.Close() })
				cfg := srv.TLSConfig()
				cfg.ServerName = "api.example.com"
				return srv.URL(), cfg
			},
			kind: ErrCertificate, path: "/2/tweets/sample/stream", detail: "api.example.com",
		},
		{
			name: "200 text/html",
			start: func(t *testing.T) (string, *tls.Config) {
				srv := httptest.NewUnstartedServer(html)
				srv.EnableHTTP2 = true
				srv.StartTLS()
				t.Cleanup(srv.Close)
				return srv.URL, &tls.Config{RootCAs: certPool(t, srv)}
			},
			kind: ErrNotJSON, path: "/2/tweets/sample/stream", detail: `answered 200 with Content-Type "text/html; charset=utf-8"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, tlsCfg := tt.start(t)
			p := newProbe()
			cfg := Config{URL: url, Token: token, TLSConfig: tlsCfg, Sample: !tt.rules, Logger: quiet,
				OnReconnect: func(ev ReconnectEvent) {
					p.mu.Lock()
					p.reconnects = append(p.reconnects, ev)
					p.mu.Unlock()
				}}
			if tt.rules {
				cfg.Rules = []Rule{{Value: "cat"}}
			}
			s := NewStream(cfg)
			err := runUntilStopped(t, s)
			if !errors.Is(err, tt.kind) {
				t.Fatalf("Run: %v, want %v", err, tt.kind)
			}
			var pe *PermanentError
			if !errors.As(err, &pe) || pe.URL != url+tt.path {
				t.Fatalf("Run: %#v, want a *PermanentError for %s", err, url+tt.path)
			}
			msg := err.Error()
			t.Log(msg)
			if !strings.HasPrefix(msg, "twitter: "+url+tt.path+": ") || !strings.Contains(msg, tt.detail) ||
				strings.Contains(msg, "\n") || strings.Contains(msg, token) {
				t.Errorf("error %q: want one line naming %s and %q, without the token", msg, url+tt.path, tt.detail)
			}
			if rs, _ := p.events(); len(rs) != 0 {
				t.Errorf("retried a permanent error: %+v", rs)
			}
			if st := s.Stats(); st.Attempts > 1 || st.State != StateStopped {
				t.Errorf("%d attempts, state %v: want at most one, stopped", st.Attempts, st.State)
			}
		})
	}
}

// TestJSONContentTypes checks which stream Content-Types are taken as
// JSON.
func TestJSONContentTypes(t *testing.T) {
	for ct, want := range map[string]bool{
		"": true, "application/json": true, "application/json; charset=utf-8": true, "Application/JSON": true,
		"application/problem+json": true, "text/html": false, "text/plain; charset=utf-8": false,
		"application/octet-stream": false, "json": false, "application/jsonx": false,
	} {
		if got := jsonContentType(ct); got != want {
			t.Errorf("jsonContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}
