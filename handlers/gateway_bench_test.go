package handlers_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// benchBody is a ~694-byte object whose top-level keys start with prefix,
// like the load benchmark's stub (bench/stub).
func benchBody(prefix string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"%s_id":"%s-1029384756","%s_name":"Benchmark object","%s_updated":"2026-11-27T10:00:00Z","%s_items":[`, prefix, prefix, prefix, prefix, prefix)
	for i := range 6 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"Item %s%d","sku":"SKU-%s-%04d","qty":%d,"price":%d.%02d,"tags":["x","y"]}`, i+1, prefix, i+1, prefix, 1000+i*7, i%3+1, 10+i*3, i*11%100)
	}
	fmt.Fprintf(&b, `],"%s_total":9007199254740993,"%s_active":true}`, prefix, prefix)
	return b.String()
}

// BenchmarkGateway measures the whole handler path (routing, fan-out over
// real loopback connections to an in-process upstream, merge, write) as a
// client sees it, per scenario of the load benchmark.
func BenchmarkGateway(b *testing.B) {
	bodies := map[string]string{"/a": benchBody("a"), "/b": benchBody("b"), "/c": benchBody("c")}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, bodies[r.URL.Path])
	}))
	defer up.Close()
	yaml := strings.ReplaceAll(`
upstreams:
  stub: {url: "{{stub}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /agg
    backends: [{upstream: stub, path: /a}, {upstream: stub, path: /b}, {upstream: stub, path: /c}]
  - path: /agg-shaped
    backends:
      - {upstream: stub, path: /a, group: a, allow: [a_id, a_name, a_items]}
      - {upstream: stub, path: /b, group: b, rename: {b_id: id}}
      - {upstream: stub, path: /c, group: c}
  - path: /single
    backends: [{upstream: stub, path: /a}]
  - path: /raw
    backends: [{upstream: stub, path: /a, passthrough: true}]
`, "{{stub}}", up.URL)
	srv, client := benchGateway(b, yaml)

	for _, path := range []string{"/agg", "/agg-shaped", "/single", "/raw"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(srv.URL + path)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || resp.Header.Get("X-Manifold-Completed") == "false" {
						b.Fatalf("%s: status %d", path, resp.StatusCode)
					}
				}
			})
		})
	}
}

// benchGateway serves yaml (already filled with its upstreams' URLs) on a
// loopback listener for a benchmark, with metrics on as in production. The
// client sends no Accept-Encoding, like wrk in the load benchmark, so the
// gateway benchmarks measure the uncompressed path (compression has its
// own, BenchmarkEdge). Everything is closed when the benchmark ends.
func benchGateway(b *testing.B, yaml string) (srv *httptest.Server, client *http.Client) {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	gw, err := handlers.New(cfg, handlers.Options{Metrics: handlers.NewMetrics()})
	if err != nil {
		b.Fatal(err)
	}
	srv = httptest.NewServer(gw)
	client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	b.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
		gw.Close()
	})
	return srv, client
}
