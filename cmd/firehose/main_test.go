package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/causeway-go/causeway/producers/twitter/twittertest"
	"golang.org/x/net/http2"
)

// TestHelpDocumentsEveryFlag checks -h lists every flag and that every fault
// of twittertest.Faults has a flag.
func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	srv, err := start([]string{"-h"}, &out, &errOut)
	if srv != nil || err != nil {
		t.Fatalf("-h: %v %v", srv, err)
	}
	help := errOut.String()
	for _, f := range []string{"addr", "token", "data", "rate", "loop", "h2c", "keepalive", "cert-out", "rule", "flush-bytes", "max-rules", "backfill-limit",
		"fault-unauthorized", "fault-forbidden", "fault-rate-limited", "fault-rate-limit-reset", "fault-usage-capped", "fault-unavailable",
		"fault-max-connections", "fault-disconnect-after-tweets", "fault-disconnect-after", "fault-disconnect-mode",
		"fault-operational-disconnect-after", "fault-stall", "fault-stall-after-tweets", "fault-malformed-every",
		"fault-oversized-every", "fault-oversized-size", "fault-split-frames"} {
		if !strings.Contains(help, "  -"+f+" ") && !strings.Contains(help, "  -"+f+"\n") {
			t.Errorf("-h does not document -%s", f)
		}
	}
	if !strings.Contains(help, `(default "127.0.0.1:8443")`) {
		t.Error("-addr default is not 127.0.0.1:8443")
	}
	// One flag per field of Faults: a new fault without a flag fails here.
	if n := reflect.TypeOf(twittertest.Faults{}).NumField(); n != 17 {
		t.Errorf("twittertest.Faults has %d fields; give the new ones a -fault-* flag and update this test", n)
	}
}

func TestServeWithFlags(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	var out bytes.Buffer
	srv, err := start([]string{"-addr", "127.0.0.1:0", "-token", "s3cret", "-data", "../../testdata/edge.jsonl", "-rate", "0",
		"-cert-out", cert, "-rule", "fr=lang:fr", "-fault-unavailable", "1", "-fault-disconnect-mode", "reset",
		"-fault-malformed-every", "2", "-keepalive", "50ms"}, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.Contains(out.String(), "serving 7 tweets") || !strings.HasPrefix(srv.URL(), "https://") {
		t.Errorf("startup: %q, URL %s", out.String(), srv.URL())
	}
	pemBytes, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("-cert-out wrote no certificate")
	}
	client := &http.Client{Transport: &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	get := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := get("/2/tweets/search/stream"); resp.StatusCode != 503 || resp.ProtoMajor != 2 {
		t.Errorf("first connect: %s %d, want HTTP/2 503 (-fault-unavailable 1)", resp.Proto, resp.StatusCode)
	}
	resp := get("/2/tweets/search/stream/rules")
	var rules struct{ Data []struct{ Value, Tag string } }
	json.NewDecoder(resp.Body).Decode(&rules)
	resp.Body.Close()
	if len(rules.Data) != 1 || rules.Data[0].Value != "lang:fr" || rules.Data[0].Tag != "fr" {
		t.Errorf("rules from -rule: %+v", rules.Data)
	}
	resp = get("/2/tweets/search/stream")
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, `"lang":"fr"`) || !strings.Contains(line, `"matching_rules":[{"id":"`) {
		t.Errorf("filtered stream line %.120q: %v", line, err)
	}
	if f := srv.Faults(); f.DisconnectMode != twittertest.DisconnectReset || f.MalformedEvery != 2 {
		t.Errorf("faults %+v", f)
	}

	if _, err := start([]string{"-fault-disconnect-mode", "explode"}, &out, &out); err == nil {
		t.Error("a bad -fault-disconnect-mode was accepted")
	}
	if _, err := start([]string{"-addr", "127.0.0.1:0", "-data", filepath.Join(dir, "none*.jsonl")}, &out, &out); err == nil {
		t.Error("missing -data files were accepted")
	}
}
