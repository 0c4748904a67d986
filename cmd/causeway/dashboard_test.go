package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/causeway-go/causeway/dashboard"
	"github.com/causeway-go/causeway/producers/twitter"
	"github.com/causeway-go/causeway/stages"
	"github.com/causeway-go/causeway/topology"
	"github.com/causeway-go/causeway/topology/topologytest"
)

func TestHTTPAddrFlags(t *testing.T) {
	const db = "postgres://u@127.0.0.1:5432/db"
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     func(string) (string, bool)
		want    string
		wantErr string
	}{
		{"http-addr", []string{"-http-addr", "127.0.0.1:1"}, nil, "127.0.0.1:1", ""},
		{"metrics-addr alias", []string{"-metrics-addr", "127.0.0.1:2"}, nil, "127.0.0.1:2", ""},
		{"both the same", []string{"-metrics-addr", "127.0.0.1:3", "-http-addr", "127.0.0.1:3"}, nil, "127.0.0.1:3", ""},
		{"both differ", []string{"-metrics-addr", "127.0.0.1:3", "-http-addr", "127.0.0.1:4"}, nil, "", `-http-addr "127.0.0.1:4" and -metrics-addr "127.0.0.1:3" differ`},
		{"env", nil, env("HTTP_ADDR", "127.0.0.1:5"), "127.0.0.1:5", ""},
		{"load mode", []string{"load", "-http-addr", "127.0.0.1:6"}, nil, "127.0.0.1:6", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseConfig(append(tc.args, "-database-url", db), tc.env, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.metricsAddr != tc.want {
				t.Errorf("address %q, want %q", cfg.metricsAddr, tc.want)
			}
		})
	}
}

// serveMetrics serves the page at the URL it logs, beside /metrics,
// /healthz and /readyz, with the stream's panel and the mode's own; close
// returns even while a page holds its event stream open.
func TestServeMetricsServesTheDashboard(t *testing.T) {
	prod := topologytest.NewProducer[int]()
	top, err := topology.New(topology.Spec[int]{Name: "numbers", Producer: topology.ProducerSpec[int]{Producer: prod},
		Processors: topology.ProcessorSpec[int]{Handle: func(context.Context, *stages.Message[int]) error { return nil }}})
	if err != nil {
		t.Fatal(err)
	}
	topologytest.Start(t, top)
	prod.Push(1, 2, 3).Await(t, 10*time.Second)

	var logs bytes.Buffer
	stream := twitter.NewStream(twitter.Config{URL: "http://127.0.0.1:1", Token: "t"}) // never run: idle
	srv, err := serveMetrics("127.0.0.1:0", top, stream, slog.New(slog.NewTextHandler(&logs, nil)),
		dashboard.Panel{Name: "mode", Data: func() any { return []map[string]int{{"rank": 1}} }})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			srv.close()
		}
	}()
	page := regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+/`).FindString(logs.String())
	if page == "" || !strings.Contains(logs.String(), "causeway: dashboard at "+page) {
		t.Fatalf("no page URL logged: %s", logs.String())
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(page + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(""); code != 200 || !strings.Contains(body, `href="/api/topologies"`) {
		t.Errorf("page: %d %.300s", code, body)
	}
	for _, p := range []string{"metrics", "healthz", "app.js"} {
		if code, body := get(p); code != 200 {
			t.Errorf("/%s: %d %.200s", p, code, body)
		}
	}
	code, body := get("api/topologies")
	var api struct {
		Topologies []struct {
			Name  string
			Stats stages.Stats
		}
		Panels []struct {
			Name string
			Data json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(body), &api); code != 200 || err != nil {
		t.Fatalf("api: %d %v", code, err)
	}
	if len(api.Topologies) != 1 || api.Topologies[0].Name != "numbers" || api.Topologies[0].Stats.Acked != 3 {
		t.Errorf("api topologies %+v", api.Topologies)
	}
	var streamPanel struct {
		State      string
		Reconnects map[string]int64
	}
	if len(api.Panels) == 2 {
		json.Unmarshal(api.Panels[0].Data, &streamPanel)
	}
	if len(api.Panels) != 2 || api.Panels[0].Name != "stream" || streamPanel.State != "idle" || len(streamPanel.Reconnects) != len(twitter.Reasons) ||
		api.Panels[1].Name != "mode" {
		t.Errorf("panels %+v", api.Panels)
	}

	resp, err := http.Get(page + "events") // a page left open
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if line, _ := bufio.NewReader(resp.Body).ReadString('\n'); line != "retry: 2000\n" {
		t.Fatalf("events start with %q", line)
	}
	done := make(chan struct{})
	go func() { srv.close(); close(done) }()
	select {
	case <-done:
		closed = true
	case <-time.After(10 * time.Second):
		t.Fatal("close waits for an open event stream")
	}
}
