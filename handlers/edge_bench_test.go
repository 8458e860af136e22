package handlers_test

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

// BenchmarkEdge measures the load benchmark's S2 (/agg: three backends
// merged into a ~2.2 KB answer) with each edge feature against none:
//
//   - off: compression disabled, no server.cors (BenchmarkGateway's /agg
//     with nothing added to the request path)
//   - gzip-no-accept: compression on (the default), a client that sends no
//     Accept-Encoding: the common path that must cost ~nothing
//   - gzip: compression on, Accept-Encoding: gzip (the answer is gzipped;
//     the client reads it without decoding, so only the gateway's work is
//     measured)
//   - cors: server.cors, an allowed Origin on every request, compression
//     off
//   - preflight: the gateway answering a preflight to /agg (no upstream)
func BenchmarkEdge(b *testing.B) {
	bodies := map[string]string{"/a": benchBody("a"), "/b": benchBody("b"), "/c": benchBody("c")}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, bodies[r.URL.Path])
	}))
	defer up.Close()
	const endpoints = `
upstreams:
  stub: {url: "{{stub}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /agg
    backends: [{upstream: stub, path: /a}, {upstream: stub, path: /b}, {upstream: stub, path: /c}]
`
	serve := func(server string) string {
		yaml := strings.ReplaceAll(server+endpoints, "{{stub}}", up.URL)
		cfg, err := config.Parse("bench.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			b.Fatal(err)
		}
		gw, err := handlers.New(cfg, handlers.Options{Metrics: handlers.NewMetrics()})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(gw)
		b.Cleanup(func() { srv.Close(); gw.Close() })
		return srv.URL
	}
	off := serve("server: {compression: {enabled: false}}\n")
	gz := serve("")
	cors := serve("server: {compression: {enabled: false}, cors: {allow_origins: [https://app.example.com]}}\n")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	defer client.CloseIdleConnections()

	origin := map[string]string{"Origin": "https://app.example.com"}
	for _, bc := range []struct {
		name, base, method string
		hdr                map[string]string
		check              func(*http.Response) bool
	}{
		{"off", off, "GET", nil, func(r *http.Response) bool { return r.StatusCode == 200 }},
		{"gzip-no-accept", gz, "GET", nil, func(r *http.Response) bool {
			return r.StatusCode == 200 && r.Header.Get("Content-Encoding") == ""
		}},
		{"gzip", gz, "GET", map[string]string{"Accept-Encoding": "gzip"}, func(r *http.Response) bool {
			return r.StatusCode == 200 && r.Header.Get("Content-Encoding") == "gzip"
		}},
		{"cors", cors, "GET", origin, func(r *http.Response) bool {
			return r.StatusCode == 200 && r.Header.Get("Access-Control-Allow-Origin") != ""
		}},
		{"preflight", cors, "OPTIONS", map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
			func(r *http.Response) bool {
				return r.StatusCode == 204 && r.Header.Get("Access-Control-Allow-Origin") != ""
			}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var size atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(bc.method, bc.base+"/agg", nil)
					for k, v := range bc.hdr {
						req.Header.Set(k, v)
					}
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if !bc.check(resp) {
						b.Fatalf("%s: status %d, headers %v", bc.name, resp.StatusCode, resp.Header)
					}
					size.Store(n)
				}
			})
			b.ReportMetric(float64(size.Load()), "body-bytes")
		})
	}
}
