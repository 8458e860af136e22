package handlers_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/manifold-gw/manifold/handlers"
)

// scrape returns the metric lines (no comments) that start with prefix.
func scrape(t *testing.T, m *handlers.Metrics, prefix string) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var out []string
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return out
}

func hasLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestMetricsSeries(t *testing.T) {
	fail := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	m := handlers.NewMetrics()
	base, _ := gatewayWith(t, `
upstreams:
  ok: {url: "{{ok}}"}
  bad:
    url: "{{bad}}"
    circuit_breaker: {consecutive_failures: 1, open_timeout: 1m}
endpoints:
  - path: /p/{id}
    backends:
      - {upstream: ok, path: /, group: a}
      - {upstream: bad, path: /, group: b}
  - path: /limited
    rate_limit: {rps: 0.01, burst: 1}
    backends: [{upstream: ok, path: /}]
`, map[string]string{"ok": jsonUpstream(t, 0, `{"x":1}`), "bad": fail}, handlers.Options{Metrics: m, Logger: slog.New(slog.DiscardHandler)})

	get(t, base+"/p/1")      // partial: bad answers 500 and opens its breaker
	get(t, base+"/p/2")      // partial: bad refused by its open breaker
	get(t, base+"/limited")  // ok
	get(t, base+"/limited")  // 429
	get(t, base+"/__health") // ops

	want := map[string][]string{
		"manifold_requests_total": {
			`manifold_requests_total{code="200",endpoint="/p/{id}",method="GET"} 2`,
			`manifold_requests_total{code="200",endpoint="/limited",method="GET"} 1`,
			`manifold_requests_total{code="429",endpoint="/limited",method="GET"} 1`,
			`manifold_requests_total{code="200",endpoint="/__health",method="GET"} 1`,
		},
		"manifold_backend_requests_total": {
			`manifold_backend_requests_total{outcome="ok",upstream="ok"} 3`,
			`manifold_backend_requests_total{outcome="error",upstream="bad"} 1`,
			`manifold_backend_requests_total{outcome="circuit_open",upstream="bad"} 1`,
		},
		"manifold_circuit_state": {
			`manifold_circuit_state{upstream="bad"} 2`,
			`manifold_circuit_state{upstream="ok"} 0`,
		},
		"manifold_ratelimit_rejected_total": {`manifold_ratelimit_rejected_total{endpoint="/limited"} 1`},
		"manifold_inflight_requests":        {`manifold_inflight_requests 0`},
		"manifold_request_duration_seconds_count": {
			`manifold_request_duration_seconds_count{endpoint="/p/{id}"} 2`,
		},
		"manifold_backend_duration_seconds_count": {
			`manifold_backend_duration_seconds_count{upstream="bad"} 2`,
		},
		"go_goroutines":                 nil,
		"process_resident_memory_bytes": nil,
	}
	for prefix, lines := range want {
		got := scrape(t, m, prefix)
		if len(got) == 0 {
			t.Errorf("no %s series", prefix)
		}
		for _, l := range lines {
			if !hasLine(got, l) {
				t.Errorf("missing %s\n have: %s", l, strings.Join(got, "\n       "))
			}
		}
	}

	// A flood of random URLs and methods adds one series (the unmatched
	// route's 404), not one per URL.
	before := len(scrape(t, m, "manifold_requests_total"))
	for i := range 200 {
		do(t, []string{"GET", "BREW", "POST"}[i%3], fmt.Sprintf("%s/random/%d?q=%d", base, i, i), nil, nil)
	}
	after := scrape(t, m, "manifold_requests_total")
	if len(after)-before > 3 {
		t.Errorf("200 random requests added %d series:\n%s", len(after)-before, strings.Join(after, "\n"))
	}
	if !hasLine(after, `manifold_requests_total{code="404",endpoint="",method="OTHER"} 67`) {
		t.Errorf("unknown methods not folded into OTHER:\n%s", strings.Join(after, "\n"))
	}
}

func TestReloadCarriesOverUnchangedUpstreamsAndLimits(t *testing.T) {
	var hits atomic.Int32
	bad := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(500)
	})
	urls := map[string]string{"bad": bad, "ok": jsonUpstream(t, 0, `{}`)}
	yaml := `
upstreams:
  bad: {url: "{{bad}}", circuit_breaker: {consecutive_failures: 1, open_timeout: 1m}}
  ok: {url: "{{ok}}"}
endpoints:
  - path: /e
    backends: [{upstream: bad, path: /}]
  - path: /l
    rate_limit: {rps: 0.01, burst: 1}
    backends: [{upstream: ok, path: /}]
`
	baseA, a := gatewayWith(t, yaml, urls, handlers.Options{})
	if got := get(t, baseA+"/e").status; got != 502 {
		t.Fatalf("first call: %d", got)
	}
	if got := get(t, baseA+"/l").status; got != 200 {
		t.Fatalf("first limited call: %d", got)
	}

	// The same file reloaded: the open breaker and the spent bucket carry over.
	baseB, b := gatewayWith(t, yaml, urls, handlers.Options{Previous: a})
	a.Retire(b)
	if got := get(t, baseB+"/e").status; got != 503 || hits.Load() != 1 {
		t.Errorf("after reload: status %d, upstream hits %d; want 503 from the still-open breaker and 1 hit", got, hits.Load())
	}
	if got := get(t, baseB+"/l").status; got != 429 {
		t.Errorf("after reload: limited endpoint %d, want 429 (bucket carried over)", got)
	}

	// Changed upstream and changed limit: fresh breaker, fresh bucket.
	changed := strings.NewReplacer("consecutive_failures: 1", "consecutive_failures: 2", "burst: 1", "burst: 2").Replace(yaml)
	baseC, c := gatewayWith(t, changed, urls, handlers.Options{Previous: b})
	b.Retire(c)
	if got := get(t, baseC+"/e").status; got != 502 || hits.Load() != 2 {
		t.Errorf("changed upstream: status %d, hits %d; want 502 and a call reaching it", got, hits.Load())
	}
	if got := get(t, baseC+"/l").status; got != 200 {
		t.Errorf("changed limit: status %d, want 200", got)
	}
}
