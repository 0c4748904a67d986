package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway-go/causeway/gbfs"
)

func TestHelpDocumentsFlags(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parse([]string{"-h"}, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parse(-h) = %v", err)
	}
	for _, want := range []string{"-addr", "-stations", "-version", "-ttl", "-seed", "-tls", "-fault-5xx", "-fault-429",
		"-fault-retry-after", "-fault-malformed", "-fault-truncated", "-fault-backwards", "-fault-delay", "-fault-every", "-fault-feed"} {
		if !strings.Contains(stderr.String(), want+" ") && !strings.Contains(stderr.String(), want+"\n") {
			t.Errorf("-h does not document %s", want)
		}
	}
}

func TestBadFlagsNamed(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"-version", "2.2"}, []string{"-version"}},
		{[]string{"-stations", "0", "-ttl", "1500ms"}, []string{"-stations", "-ttl"}},
		{[]string{"-fault-5xx", "-1", "-fault-feed", "nope"}, []string{"-fault-5xx", "-fault-feed"}},
		{[]string{"-cert-out", "x.pem"}, []string{"-cert-out"}},
	} {
		_, err := parse(c.args, io.Discard)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("parse(%q) = %v, want an error naming %s", c.args, err, w)
			}
		}
	}
}

// The binary's server, as flags configure it: v3.0 over TLS and HTTP/2
// with the certificate written out, and a fault armed at start.
func TestServes(t *testing.T) {
	cert := filepath.Join(t.TempDir(), "cert.pem")
	f, err := parse([]string{"-addr", "127.0.0.1:0", "-version", "3.0", "-stations", "40", "-tls", "-cert-out", cert,
		"-fault-5xx", "1", "-seed", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := f.start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("-cert-out wrote no certificate")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	get := func(url string) (*http.Response, []byte) {
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, _ := get(srv.FeedURL(gbfs.FeedStationStatus)); resp.StatusCode != 503 {
		t.Errorf("first station_status: %s, want the armed 503", resp.Status)
	}
	resp, body := get(srv.DiscoveryURL())
	d, err := gbfs.ParseDiscovery(body, "")
	if err != nil || resp.ProtoMajor != 2 || d.Version != "3.0" {
		t.Fatalf("discovery over %s: %+v, %v", resp.Proto, d, err)
	}
	_, body = get(d.URL(gbfs.FeedStationStatus))
	st, err := gbfs.ParseStationStatus(body)
	if err != nil || len(st.Stations) != 40 {
		t.Errorf("station_status: %d stations, %v", len(st.Stations), err)
	}
}
