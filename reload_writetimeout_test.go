package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// TestReloadKeepsEndpointTimeoutsBelowTheRunningWriteTimeout: a reload
// applies endpoint timeouts at once but a new server.write_timeout only at
// the next restart, so a file that raises both (valid on its own: check
// accepts it) must be refused while the listener still cuts answers at the
// old write_timeout; otherwise a slow answer would reach the client as an
// empty reply.
func TestReloadKeepsEndpointTimeoutsBelowTheRunningWriteTimeout(t *testing.T) {
	t.Parallel()
	conf := func(wt, et string) string {
		return `server: {address: "127.0.0.1:0", write_timeout: ` + wt + `}
admin: {address: ""}
upstreams:
  u: {url: "http://127.0.0.1:1", timeout: ` + et + `}
endpoints:
  - {path: /fast, timeout: 500ms, backends: [{upstream: u, path: /}]}
  - {path: /slow, timeout: ` + et + `, backends: [{upstream: u, path: /}]}
`
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(conf("1s", "900ms")), 0o600); err != nil {
		t.Fatal(err)
	}
	started, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := handlers.New(started, handlers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()

	for _, tc := range []struct {
		wt, et string
		refuse bool
	}{
		{"5s", "3s", true},        // both raised: the running 1s would cut /slow
		{"1s", "1s", true},        // not below the running write_timeout (and the file's)
		{"5s", "800ms", false},    // raised write_timeout, endpoint still below the running one
		{"600ms", "400ms", false}, // lowered: below both
	} {
		if err := os.WriteFile(path, []byte(conf(tc.wt, tc.et)), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs strings.Builder
		logger := slog.New(slog.NewTextHandler(&logs, nil))
		next, err := reloadGateway(path, started, cur, handlers.Options{}, logger)
		if next != nil {
			next.Close()
		}
		if got := err != nil; got != tc.refuse {
			t.Errorf("write_timeout %s, endpoint timeout %s: refused %v, want %v\n%s", tc.wt, tc.et, got, tc.refuse, logs.String())
			continue
		}
		if tc.refuse && !strings.Contains(logs.String(), "endpoints[1].timeout") {
			t.Errorf("write_timeout %s, endpoint timeout %s: the refusal does not name endpoints[1].timeout:\n%s", tc.wt, tc.et, logs.String())
		}
		if tc.refuse && strings.Contains(logs.String(), "endpoints[0].timeout") {
			t.Errorf("the refusal names endpoints[0] (500ms, below 1s):\n%s", logs.String())
		}
	}
}
