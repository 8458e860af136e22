package e2e_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/otlptest"
)

// tracingConfig is a gateway that traces every request to an in-process
// OTLP receiver ({{OTLP}}) and calls an in-process upstream ({{UP}}).
// The batch processor's timer (5s) is far longer than the test takes
// between the request and SIGTERM, so the spans can only reach the
// receiver through the flush on shutdown.
const tracingConfig = `
server:
  address: "{{ADDR}}"
  drain_delay: 0s
  shutdown_timeout: 10s
admin: {address: "{{ADMIN}}"}
tracing:
  otlp_endpoint: "{{OTLP}}"
  sample_ratio: 1
  service_name: manifold-e2e
upstreams:
  up: {url: "{{UP}}"}
endpoints:
  - path: /t/{id}
    backends:
      - {upstream: up, path: "/things/{id}"}
`

// traceparentUpstream answers {} and records the traceparent it is sent.
func traceparentUpstream(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Traceparent"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// The spans of a request made just before SIGTERM are at the receiver by
// the time the process has exited: the drain flushes the exporter within
// shutdown_timeout.
func TestTracingFlushedOnShutdown(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	up, seen := traceparentUpstream(t)
	cfg := strings.NewReplacer("{{OTLP}}", rcv.URL(), "{{UP}}", up.URL).Replace(tracingConfig)
	p := startManifold(t, cfg)

	code, body := mustGet(t, p, "/t/1")
	if code != http.StatusOK {
		t.Fatalf("GET /t/1 = %d %s", code, body)
	}
	if n := len(rcv.Spans()); n != 0 {
		t.Fatalf("%d spans exported before SIGTERM; the batch timer is too short for this test to prove the flush", n)
	}
	p.Signal(syscall.SIGTERM)
	exit, ok := p.Wait(15 * time.Second)
	if !ok {
		t.Fatal("manifold did not exit within 15s of SIGTERM")
	}
	if exit != 0 {
		t.Fatalf("exit code %d", exit)
	}

	spans := rcv.Spans()
	server := otlptest.Named(spans, "GET /t/{id}")
	call := otlptest.Named(spans, "GET /things/{id}")
	if len(spans) != 2 || len(server) != 1 || len(call) != 1 {
		t.Fatalf("at exit the receiver had %d spans, want the request's server span and its call's:\n%s", len(spans), otlptest.List(spans))
	}
	if call[0].ParentID != server[0].SpanID || server[0].Resource["service.name"] != "manifold-e2e" {
		t.Errorf("call under %s (server span %s), service %q", call[0].ParentID, server[0].SpanID, server[0].Resource["service.name"])
	}
	if v := server[0].Resource["service.version"]; v != "e2e" {
		t.Errorf("service.version %q, want the binary's version e2e", v)
	}
	tps := seen()
	want := "00-" + call[0].TraceID + "-" + call[0].SpanID + "-01"
	if len(tps) != 1 || tps[0] != want {
		t.Errorf("the upstream was sent traceparent %q, want %q", tps, want)
	}
	if rcv.Requests() != 1 {
		t.Errorf("%d export requests, want the one flush", rcv.Requests())
	}
	if !strings.Contains(p.Logs(), `"msg":"tracing on"`) {
		t.Errorf("no start-up line saying tracing is on:\n%s", p.Logs())
	}
}

// The tracing keys apply at restart: a reload that changes them says so
// and keeps tracing as it was.
func TestTracingKeysAreRestartOnly(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	up, seen := traceparentUpstream(t)
	cfg := strings.NewReplacer("{{OTLP}}", rcv.URL(), "{{UP}}", up.URL).Replace(tracingConfig)
	p := startManifold(t, cfg)
	writeAtomic(t, p.cfgPath, p.Render(strings.Replace(cfg, "sample_ratio: 1", "sample_ratio: 0", 1)))
	p.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, 20*time.Millisecond, "the reload", func() (bool, string) {
		return strings.Contains(p.Logs(), "config reloaded"), tail(p.Logs(), 5)
	})
	if !strings.Contains(p.Logs(), "tracing settings changed in the file; they apply at the next restart") {
		t.Errorf("no restart warning for the changed tracing keys:\n%s", tail(p.Logs(), 10))
	}
	if code, body := mustGet(t, p, "/t/2"); code != http.StatusOK {
		t.Fatalf("GET /t/2 = %d %s", code, body)
	}
	// Still sampled at 1: the upstream is sent a sampled traceparent.
	if tps := seen(); len(tps) != 1 || !regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`).MatchString(tps[0]) {
		t.Errorf("after the reload the upstream was sent %q, want a sampled traceparent", tps)
	}
}
