package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
	"github.com/manifold-gw/manifold/internal/telemetry"
)

// BenchmarkGatewayTracing is BenchmarkGateway's /agg (three backends, the
// load benchmark's S2) with tracing off, and on at sample_ratio 0 (every
// span made, none recorded or exported) and 1 (every span recorded and
// exported over OTLP/HTTP to a loopback collector that discards them).
// Run the three interleaved (-count 1, several times) and compare.
func BenchmarkGatewayTracing(b *testing.B) {
	bodies := map[string]string{"/a": benchBody("a"), "/b": benchBody("b"), "/c": benchBody("c")}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, bodies[r.URL.Path])
	}))
	defer up.Close()
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	yaml := strings.ReplaceAll(`
upstreams:
  stub: {url: "{{stub}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /agg
    backends: [{upstream: stub, path: /a}, {upstream: stub, path: /b}, {upstream: stub, path: /c}]
`, "{{stub}}", up.URL)

	for _, tc := range []struct {
		name  string
		on    bool
		ratio float64
	}{
		{"off", false, 0},
		{"ratio0", true, 0},
		{"ratio1", true, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var tracer *telemetry.Provider
			if tc.on {
				var err error
				tracer, err = telemetry.New(config.Tracing{OTLPEndpoint: collector.URL, SampleRatio: tc.ratio, ServiceName: "bench"}, telemetry.Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer func() { _ = tracer.Shutdown(context.Background()) }()
			}
			srv, client := benchGatewayWith(b, yaml, handlers.Options{Metrics: handlers.NewMetrics(), Tracer: tracer.Tracer()})
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(srv.URL + "/agg")
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		})
	}
}

// benchGatewayWith is benchGateway with the Gateway's options given.
func benchGatewayWith(b *testing.B, yaml string, opts handlers.Options) (*httptest.Server, *http.Client) {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	gw, err := handlers.New(cfg, opts)
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	b.Cleanup(func() {
		client.CloseIdleConnections()
		srv.Close()
		gw.Close()
	})
	return srv, client
}
