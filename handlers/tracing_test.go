package handlers_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
	"github.com/manifold-gw/manifold/internal/otlptest"
	"github.com/manifold-gw/manifold/internal/telemetry"
)

// Tracing (SPEC §10), end to end: a gateway with the real tracer provider
// and OTLP/HTTP exporter, loopback upstreams that record the traceparent
// they were sent, and an in-process OTLP receiver that decodes what the
// exporter posts. Spans are asserted after the provider's Shutdown, which
// exports everything that ended; the access line, which observe writes
// after the server span has ended, says when a request's spans are all
// ended.

// tracedUpstream is a loopback upstream answering by path, which records
// the traceparent of every request, by request-target.
type tracedUpstream struct {
	url  string
	host string // host:port, the instance
	mu   sync.Mutex
	seen map[string]string // request-target -> traceparent ("" = none)
}

func newTracedUpstream(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *tracedUpstream {
	t.Helper()
	u := &tracedUpstream{seen: map[string]string{}}
	u.url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen[r.RequestURI] = r.Header.Get("Traceparent")
		u.mu.Unlock()
		answer(w, r)
	})
	pu, err := url.Parse(u.url)
	if err != nil {
		t.Fatal(err)
	}
	u.host = pu.Host
	return u
}

// traceparent is what the upstream was sent with the request to target;
// it fails the test when no such request came.
func (u *tracedUpstream) traceparent(t *testing.T, target string) string {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	tp, ok := u.seen[target]
	if !ok {
		t.Fatalf("upstream %s saw no request to %s; it saw %v", u.url, target, u.seen)
	}
	return tp
}

// accessLines counts the gateway's access lines ("request"), which observe
// writes once the server span has ended.
type accessLines struct {
	mu      sync.Mutex
	n       int
	changed chan struct{}
}

func newAccessLines() *accessLines { return &accessLines{changed: make(chan struct{})} }

func (l *accessLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *accessLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *accessLines) WithGroup(string) slog.Handler            { return l }
func (l *accessLines) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "request" {
		l.mu.Lock()
		l.n++
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
	return nil
}

// wait waits for n access lines in all, at most patience.
func (l *accessLines) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		got, ch := l.n, l.changed
		l.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%d access lines after %v, want %d", got, patience, n)
		}
	}
}

// tracer starts the real provider exporting to a new receiver; the
// provider is shut down when the test ends, if the test did not.
func tracer(t *testing.T, ratio float64) (*telemetry.Provider, *otlptest.Receiver) {
	t.Helper()
	rcv := otlptest.Start(t)
	p, err := telemetry.New(config.Tracing{OTLPEndpoint: rcv.URL(), SampleRatio: ratio, ServiceName: "manifold-test"},
		telemetry.Options{Version: "v-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p, rcv
}

// flush shuts p down, which exports every span that has ended.
func flush(t *testing.T, p *telemetry.Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

const traceConfig = `
upstreams:
  users: {url: "{{users}}"}
  orders: {url: "{{orders}}"}
  items: {url: "{{items}}"}
endpoints:
  - path: /api/profile/{id}
    backends:
      - {upstream: users, path: "/users/{id}", group: user}
      - {name: orders, upstream: orders, path: "/orders?user={id}", group: orders}
      - {upstream: items, foreach: orders.lines, path: "/items/{item.sku}", group: items}
  - path: /raw/{id}
    backends:
      - {upstream: users, path: "/users/{id}", passthrough: true}
`

// traceUpstreams are the three upstreams of traceConfig.
func traceUpstreams(t *testing.T) (users, orders, items *tracedUpstream) {
	users = newTracedUpstream(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `{"name":"Ada"}`) })
	orders = newTracedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, `{"lines":[{"sku":"s0"},{"sku":"s1"}]}`)
	})
	items = newTracedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, `{"sku":"`+strings.TrimPrefix(r.URL.Path, "/items/")+`"}`)
	})
	return users, orders, items
}

func tracedGateway(t *testing.T, p *telemetry.Provider, users, orders, items *tracedUpstream) (string, *accessLines) {
	t.Helper()
	lines := newAccessLines()
	base, _ := gatewayWith(t, traceConfig, map[string]string{"users": users.url, "orders": orders.url, "items": items.url},
		handlers.Options{Tracer: p.Tracer(), Logger: slog.New(lines)})
	return base, lines
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[0-3])$`)

// parseTraceparent splits a version-00 traceparent, failing the test on
// anything else.
func parseTraceparent(t *testing.T, tp string) (traceID, spanID, flags string) {
	t.Helper()
	m := traceparentRE.FindStringSubmatch(tp)
	if m == nil {
		t.Fatalf("traceparent %q is not 00-<trace>-<span>-<flags>", tp)
	}
	return m[1], m[2], m[3]
}

// one returns the only span of spans called name.
func one(t *testing.T, spans []otlptest.Span, name string) otlptest.Span {
	t.Helper()
	found := otlptest.Named(spans, name)
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1; spans:\n%s", len(found), name, otlptest.List(spans))
	}
	return found[0]
}

// wantAttrs checks the attributes of s that want lists.
func wantAttrs(t *testing.T, s otlptest.Span, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got, ok := s.Attrs[k]; !ok || got != v {
			t.Errorf("span %q: %s = %#v, want %#v", s.Name, k, s.Attrs[k], v)
		}
	}
}

// The span tree of one request: the server span is the root, one client
// span per backend under it with the endpoint, upstream, instance and
// outcome, the element calls of the foreach backend under that backend's
// span, and each upstream was sent a traceparent naming its own call's
// span as the parent.
func TestTracingSpanTree(t *testing.T) {
	t.Parallel()
	p, rcv := tracer(t, 1)
	users, orders, items := traceUpstreams(t)
	base, lines := tracedGateway(t, p, users, orders, items)

	if a := get(t, base+"/api/profile/42"); a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	lines.wait(t, 1)
	flush(t, p)
	spans := rcv.Spans()
	if len(spans) != 6 {
		t.Errorf("%d spans, want 6 (server, users, orders, items, 2 elements):\n%s", len(spans), otlptest.List(spans))
	}
	if wrong := rcv.WrongPaths(); wrong != nil {
		t.Errorf("the exporter posted elsewhere than /v1/traces: %v", wrong)
	}

	server := one(t, spans, "GET /api/profile/{id}")
	if server.Kind != tracepb.Span_SPAN_KIND_SERVER || server.ParentID != "" {
		t.Errorf("server span: kind %v parent %q; want a server span at the root", server.Kind, server.ParentID)
	}
	wantAttrs(t, server, map[string]any{
		"http.request.method": "GET", "http.route": "/api/profile/{id}",
		"http.response.status_code": int64(200), "manifold.endpoint": "/api/profile/{id}",
	})
	if id, _ := server.Attrs["manifold.request_id"].(string); len(id) != 32 {
		t.Errorf("server span: manifold.request_id %q", id)
	}
	if server.Resource["service.name"] != "manifold-test" || server.Resource["service.version"] != "v-test" {
		t.Errorf("resource %v, want service.name manifold-test, service.version v-test", server.Resource)
	}
	if server.Scope != telemetry.ScopeName {
		t.Errorf("scope %q, want %q", server.Scope, telemetry.ScopeName)
	}
	for _, s := range spans {
		if s.TraceID != server.TraceID {
			t.Errorf("span %q in trace %s, want the request's %s", s.Name, s.TraceID, server.TraceID)
		}
	}

	children := otlptest.ChildrenOf(spans, server.SpanID)
	if len(children) != 3 {
		t.Fatalf("%d spans under the server span, want 3 (one per backend):\n%s", len(children), otlptest.List(spans))
	}
	for _, tc := range []struct {
		name, upstream string
		up             *tracedUpstream
		target         string
	}{
		{"GET /users/{id}", "users", users, "/users/42"},
		{"GET /orders?user={id}", "orders", orders, "/orders?user=42"},
	} {
		s := one(t, children, tc.name)
		if s.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("span %q: kind %v, want client", s.Name, s.Kind)
		}
		wantAttrs(t, s, map[string]any{
			"manifold.endpoint": "/api/profile/{id}", "manifold.upstream": tc.upstream,
			"manifold.instance": tc.up.host, "manifold.outcome": "ok",
			"http.request.method": "GET", "http.response.status_code": int64(200),
		})
		if s.Status == tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("span %q: status error for a call that succeeded", s.Name)
		}
		trace, parent, flags := parseTraceparent(t, tc.up.traceparent(t, tc.target))
		if trace != server.TraceID || parent != s.SpanID || flags != "01" {
			t.Errorf("%s was sent trace %s parent %s flags %s; want the request's trace, its call's span %s, sampled", tc.target, trace, parent, flags, s.SpanID)
		}
	}

	each := one(t, children, "GET /items/{item.sku}")
	if each.Kind != tracepb.Span_SPAN_KIND_INTERNAL {
		t.Errorf("foreach backend's span: kind %v, want internal (its elements are the client spans)", each.Kind)
	}
	wantAttrs(t, each, map[string]any{"manifold.upstream": "items", "manifold.outcome": "ok", "manifold.foreach.items": int64(2)})
	elements := otlptest.ChildrenOf(spans, each.SpanID)
	if len(elements) != 2 {
		t.Fatalf("%d spans under the foreach backend's, want 2:\n%s", len(elements), otlptest.List(spans))
	}
	for _, s := range elements {
		k, _ := s.Attrs["manifold.foreach.index"].(int64)
		target := fmt.Sprintf("/items/s%d", k)
		if s.Kind != tracepb.Span_SPAN_KIND_CLIENT {
			t.Errorf("element %d: kind %v, want client", k, s.Kind)
		}
		wantAttrs(t, s, map[string]any{"manifold.upstream": "items", "manifold.instance": items.host, "manifold.outcome": "ok",
			"manifold.endpoint": "/api/profile/{id}"})
		if _, parent, _ := parseTraceparent(t, items.traceparent(t, target)); parent != s.SpanID {
			t.Errorf("%s was sent parent %s, want its element span %s", target, parent, s.SpanID)
		}
	}
}

// An incoming sampled traceparent is the server span's parent and keeps
// its trace ID, even when sample_ratio would sample no new trace.
func TestTracingIncomingSampledParent(t *testing.T) {
	t.Parallel()
	p, rcv := tracer(t, 0)
	users, orders, items := traceUpstreams(t)
	base, lines := tracedGateway(t, p, users, orders, items)

	const trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	a := do(t, http.MethodGet, base+"/api/profile/7", nil, map[string]string{"traceparent": "00-" + trace + "-" + parent + "-01"})
	if a.status != http.StatusOK {
		t.Fatalf("status %d", a.status)
	}
	lines.wait(t, 1)
	flush(t, p)
	spans := rcv.Spans()
	server := one(t, spans, "GET /api/profile/{id}")
	if server.TraceID != trace || server.ParentID != parent {
		t.Errorf("server span in trace %s under %s; want the incoming %s under %s", server.TraceID, server.ParentID, trace, parent)
	}
	if len(spans) != 6 {
		t.Errorf("%d spans, want 6:\n%s", len(spans), otlptest.List(spans))
	}
	s := one(t, spans, "GET /users/{id}")
	gotTrace, gotParent, flags := parseTraceparent(t, users.traceparent(t, "/users/7"))
	if gotTrace != trace || gotParent != s.SpanID || flags != "01" || s.ParentID != server.SpanID {
		t.Errorf("users was sent %s/%s/%s (its span %s under %s); want the incoming trace, its call's span, sampled",
			gotTrace, gotParent, flags, s.SpanID, s.ParentID)
	}
}

// Unsampled traces export nothing, and the upstreams are still sent a
// traceparent, of the same trace, marked not sampled, so that they do not
// start traces of their own: sample_ratio 0 with no incoming traceparent,
// and an incoming unsampled one at sample_ratio 1.
func TestTracingUnsampled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		ratio    float64
		incoming string
	}{
		{"ratio 0, no traceparent", 0, ""},
		{"incoming not sampled", 1, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, rcv := tracer(t, tc.ratio)
			users, orders, items := traceUpstreams(t)
			base, lines := tracedGateway(t, p, users, orders, items)
			hdr := map[string]string{}
			if tc.incoming != "" {
				hdr["traceparent"] = tc.incoming
			}
			if a := do(t, http.MethodGet, base+"/api/profile/9", nil, hdr); a.status != http.StatusOK {
				t.Fatalf("status %d", a.status)
			}
			lines.wait(t, 1)
			flush(t, p)
			if spans := rcv.Spans(); len(spans) != 0 {
				t.Errorf("%d spans exported for an unsampled trace:\n%s", len(spans), otlptest.List(spans))
			}
			trace, parent, flags := parseTraceparent(t, users.traceparent(t, "/users/9"))
			_, elemParent, _ := parseTraceparent(t, items.traceparent(t, "/items/s0"))
			if flags != "00" {
				t.Errorf("users was sent flags %s, want 00 (not sampled)", flags)
			}
			if parent == elemParent {
				t.Errorf("two calls were sent the same parent span %s", parent)
			}
			if tc.incoming != "" {
				inTrace, inParent, _ := parseTraceparent(t, tc.incoming)
				if trace != inTrace || parent == inParent {
					t.Errorf("users was sent trace %s parent %s; want the incoming trace %s under a span of the gateway's", trace, parent, inTrace)
				}
			}
		})
	}
}

// Failed calls: the span says the outcome (the words of
// manifold_backend_requests_total) and the reason, with status error; a
// backend that was not called still has its span, outcome skipped.
func TestTracingFailedCalls(t *testing.T) {
	t.Parallel()
	p, rcv := tracer(t, 1)
	broken := newTracedUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	slow := newTracedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // answers only when the gateway gives up
	})
	yaml := `
upstreams:
  broken: {url: "{{broken}}"}
  slow: {url: "{{slow}}", timeout: 50ms}
endpoints:
  - path: /f
    backends:
      - {name: dep, upstream: broken, path: /dep, group: dep}
      - {upstream: broken, path: "/after/{dep.id}", group: after}
      - {upstream: slow, path: /slow, group: slow}
`
	lines := newAccessLines()
	base, _ := gatewayWith(t, yaml, map[string]string{"broken": broken.url, "slow": slow.url},
		handlers.Options{Tracer: p.Tracer(), Logger: slog.New(lines)})
	if a := get(t, base+"/f"); a.status < 500 {
		t.Fatalf("status %d, want a failure", a.status)
	}
	lines.wait(t, 1)
	flush(t, p)
	spans := rcv.Spans()
	server := one(t, spans, "GET /f")
	if server.Status != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("server span of a %v answer: status %v, want error", server.Attrs["http.response.status_code"], server.Status)
	}
	for _, tc := range []struct {
		name, outcome, reason string
		status                tracepb.Status_StatusCode
		instance              string
	}{
		{"GET /dep", "error", "status 500", tracepb.Status_STATUS_CODE_ERROR, broken.host},
		{"GET /after/{dep.id}", "skipped", "dependency dep failed", tracepb.Status_STATUS_CODE_UNSET, ""},
		{"GET /slow", "timeout", "timeout", tracepb.Status_STATUS_CODE_ERROR, slow.host},
	} {
		s := one(t, spans, tc.name)
		if s.ParentID != server.SpanID {
			t.Errorf("span %q not under the server span", s.Name)
		}
		wantAttrs(t, s, map[string]any{"manifold.outcome": tc.outcome, "manifold.reason": tc.reason})
		if s.Status != tc.status {
			t.Errorf("span %q: status %v, want %v", s.Name, s.Status, tc.status)
		}
		if got, _ := s.Attrs["manifold.instance"].(string); got != tc.instance {
			t.Errorf("span %q: instance %q, want %q", s.Name, got, tc.instance)
		}
	}
}

// A passthrough call's span covers the relayed answer, and the upstream
// is sent its span as the parent. The operations routes have no span.
func TestTracingPassthroughAndOpsRoutes(t *testing.T) {
	t.Parallel()
	p, rcv := tracer(t, 1)
	users, orders, items := traceUpstreams(t)
	base, lines := tracedGateway(t, p, users, orders, items)
	if a := get(t, base+"/raw/5"); a.status != http.StatusOK || string(a.body) != `{"name":"Ada"}` {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if a := get(t, base+"/__health"); a.status != http.StatusOK {
		t.Fatalf("/__health: %d", a.status)
	}
	if a := get(t, base+"/nowhere"); a.status != http.StatusNotFound {
		t.Fatalf("/nowhere: %d", a.status)
	}
	lines.wait(t, 3)
	flush(t, p)
	spans := rcv.Spans()
	if len(spans) != 2 {
		t.Errorf("%d spans, want 2 (the passthrough request and its call):\n%s", len(spans), otlptest.List(spans))
	}
	server := one(t, spans, "GET /raw/{id}")
	call := one(t, spans, "GET /users/{id}")
	if call.ParentID != server.SpanID || call.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("passthrough call span: parent %s kind %v; want a client span under %s", call.ParentID, call.Kind, server.SpanID)
	}
	wantAttrs(t, call, map[string]any{"manifold.outcome": "ok", "manifold.instance": users.host, "http.response.status_code": int64(200)})
	if _, parent, _ := parseTraceparent(t, users.traceparent(t, "/users/5")); parent != call.SpanID {
		t.Errorf("users was sent parent %s, want the call's span %s", parent, call.SpanID)
	}
	if call.End.Before(call.Start) || server.End.Before(call.End) {
		t.Errorf("call span %v–%v not inside the server span's %v", call.Start, call.End, server.End)
	}
}

// With tracing off (no Tracer), the upstreams see exactly what they saw
// before tracing existed: the client's traceparent, forwarded as it came,
// and none when the client sent none.
func TestTracingOffForwardsTraceparent(t *testing.T) {
	t.Parallel()
	users, orders, items := traceUpstreams(t)
	base, _ := gatewayWith(t, traceConfig, map[string]string{"users": users.url, "orders": orders.url, "items": items.url}, handlers.Options{})
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	do(t, http.MethodGet, base+"/api/profile/1", nil, map[string]string{"traceparent": incoming})
	if got := users.traceparent(t, "/users/1"); got != incoming {
		t.Errorf("users was sent %q, want the client's %q", got, incoming)
	}
	if got := items.traceparent(t, "/items/s1"); got != incoming {
		t.Errorf("an element call was sent %q, want the client's %q", got, incoming)
	}
	get(t, base+"/api/profile/2")
	if got := users.traceparent(t, "/users/2"); got != "" {
		t.Errorf("users was sent %q without a client traceparent, want none", got)
	}
}
