package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// While draining every answer says Connection: close, passthrough answers
// included (their hop-by-hop headers are dropped, not the gateway's own).
func TestDrainingAnswersCloseTheConnection(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "keep-alive")
		io.WriteString(w, `{"ok":true}`)
	}))
	defer up.Close()
	yaml := strings.ReplaceAll(`
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - {path: /merged, backends: [{upstream: u, path: /}]}
  - {path: /raw, backends: [{upstream: u, path: /, passthrough: true}]}
`, "{{u}}", up.URL)
	cfg, err := config.Parse("t.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ready := &atomic.Bool{}
	gw, err := handlers.New(cfg, handlers.Options{Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	live := &liveGateway{ready: ready}
	live.p.Store(gw)
	srv := httptest.NewServer(live)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	for _, draining := range []bool{false, true} {
		ready.Store(!draining)
		for _, path := range []string{"/merged", "/raw"} {
			resp, err := client.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close != draining {
				t.Errorf("draining=%v %s: status %d, Connection: close=%v", draining, path, resp.StatusCode, resp.Close)
			}
		}
	}
}
