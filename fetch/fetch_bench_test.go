package fetch_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

// benchEndpoint compiles the first endpoint of yaml ({{u}}: a loopback
// upstream answering a small JSON object) for a benchmark.
func benchEndpoint(b *testing.B, yaml string) *fetch.Endpoint {
	b.Helper()
	ec, ups := benchCompile(b, yaml)
	ep, err := fetch.NewEndpoint(ec, ups)
	if err != nil {
		b.Fatal(err)
	}
	return ep
}

// benchCompile loads yaml and builds its upstreams.
func benchCompile(b *testing.B, yaml string) (*config.Endpoint, map[string]*fetch.Upstream) {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"id":"7","name":"Ada","tags":["a","b"]}`)
	}))
	b.Cleanup(srv.Close)
	yaml = strings.ReplaceAll(yaml, "{{u}}", srv.URL)
	cfg, err := config.Parse("b.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	ups := map[string]*fetch.Upstream{}
	for name, uc := range cfg.Upstreams {
		ups[name] = fetch.NewUpstream(uc, nil)
		b.Cleanup(ups[name].Close)
	}
	return cfg.Endpoints[0], ups
}

const benchFlat = `
upstreams: {a: {url: "{{u}}"}, b: {url: "{{u}}"}, c: {url: "{{u}}"}%s}
endpoints:
  - path: /e/{id}
    backends:
      - {upstream: a, path: "/a/{id}", group: a}
      - {upstream: b, path: "/b/{id}", group: b}
      - {upstream: c, path: "/c/{id}", group: c}
%s`

const benchGraph = `
upstreams: {a: {url: "{{u}}"}, b: {url: "{{u}}"}%s}
endpoints:
  - path: /e/{id}
    backends:
      - {upstream: a, path: "/a/{id}", group: a}
      - {upstream: b, path: "/b/{a.id}", group: b}
%s`

func benchFetch(b *testing.B, ep *fetch.Endpoint) {
	in := &fetch.Inbound{Params: []string{"7"}, Header: http.Header{"X-Request-Id": {"bench"}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res := ep.Fetch(ctx, in)
		if res[0].Err != nil {
			b.Fatal(res[0].Err)
		}
	}
}

// BenchmarkFetchNoShadow is a flat fan-out of three backends, none of them
// shadow: run against the build before shadow backends existed, it shows
// they cost an endpoint without them nothing (same allocations).
func BenchmarkFetchNoShadow(b *testing.B) {
	benchFetch(b, benchEndpoint(b, strings.ReplaceAll(benchFlat, "%s", "")))
}

// BenchmarkFetchGraphNoShadow is BenchmarkFetchNoShadow for a call graph.
func BenchmarkFetchGraphNoShadow(b *testing.B) {
	benchFetch(b, benchEndpoint(b, strings.ReplaceAll(benchGraph, "%s", "")))
}
