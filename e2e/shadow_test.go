package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const shadowConfig = `
server:
  address: "{{ADDR}}"
  shutdown_timeout: 1500ms
  shadow: {workers: 1, queue: 32}
admin:
  address: "{{ADMIN}}"
log: {level: info, format: json}
demo: true
upstreams:
  users: {url: "{{DEMO}}", timeout: 5s}
  users-v2: {url: "{{V2}}", timeout: 30s}
endpoints:
  - path: /u/{id}
    timeout: 5s
    backends:
      - {upstream: users, path: "/users/{id}"}
      - {upstream: users-v2, path: "/users/{id}", shadow: true}
`

// On SIGTERM the queued shadow calls get what is left of shutdown_timeout:
// those the shadow upstream answers in that time complete, the one it holds
// and those still queued at the deadline are dropped and counted, and the
// process exits within shutdown_timeout (plus a margin), exit code 0.
func TestShadowDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	const (
		n               = 10
		released        = 3
		shutdownTimeout = 1500 * time.Millisecond
	)
	// The shadow upstream answers one call per token and holds the others
	// until the gateway gives up on them.
	var arrived, answered atomic.Int32
	tokens := make(chan struct{}, n)
	v2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		select {
		case <-tokens:
			io.WriteString(w, `{"id":"v2"}`)
			answered.Add(1)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(v2.Close)
	p := startManifold(t, strings.ReplaceAll(shadowConfig, "{{V2}}", v2.URL))

	for i := range n {
		start := time.Now()
		code, body := mustGet(t, p, fmt.Sprintf("/u/%d", i+1))
		if took := time.Since(start); code != http.StatusOK || !strings.Contains(string(body), `"id"`) || took > 2*time.Second {
			t.Fatalf("GET /u/%d = %d in %v: %s", i+1, code, took, body)
		}
	}
	// One copy is at the upstream, held; the other n-1 wait in the queue.
	waitFor(t, 5*time.Second, 10*time.Millisecond, "the first shadow call at the upstream", func() (bool, string) {
		return arrived.Load() == 1, fmt.Sprintf("%d arrived", arrived.Load())
	})
	if v, ok, err := p.Metric("manifold_shadow_requests_total", `outcome="dropped"`); err != nil || ok {
		t.Fatalf("dropped before the drain: %v (present %v, %v)", v, ok, err)
	}

	sent := time.Now()
	p.Signal(syscall.SIGTERM)
	for range released {
		tokens <- struct{}{}
	}
	code, ok := p.Wait(shutdownTimeout + 5*time.Second)
	if !ok {
		t.Fatalf("still running %v after SIGTERM (shutdown_timeout %v)", time.Since(sent), shutdownTimeout)
	}
	took := p.exitAt.Sub(sent)
	t.Logf("exited %v after SIGTERM, code %d; the shadow upstream saw %d calls and answered %d", took, code, arrived.Load(), answered.Load())
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	// It waited for the held call until the deadline (the queue was not
	// simply thrown away), and no longer than the deadline plus a margin
	// for a loaded machine.
	if took < shutdownTimeout-100*time.Millisecond || took > shutdownTimeout+2*time.Second {
		t.Errorf("exited %v after SIGTERM; shutdown_timeout is %v", took, shutdownTimeout)
	}
	if a := answered.Load(); a != released {
		t.Errorf("the shadow upstream answered %d calls during the drain, want %d", a, released)
	}
	if a := arrived.Load(); a != released+1 {
		t.Errorf("%d calls reached the shadow upstream, want %d (the released ones and the one held at the deadline)", a, released+1)
	}

	// The drain's line: every call not answered was dropped and counted
	// (the one held, and those never sent).
	var line map[string]any
	for _, l := range p.JSONLogs() {
		if l["msg"] == "shadow calls drained" {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no \"shadow calls drained\" line in the logs:\n%s", tail(p.Logs(), 20))
	}
	if d, _ := line["dropped"].(float64); int(d) != n-released {
		t.Errorf("drain line %v: dropped %v, want %d", line, line["dropped"], n-released)
	}
	if e, _ := line["error"].(float64); e != 0 {
		t.Errorf("drain line %v: error %v, want 0", line, line["error"])
	}
}
