//go:build unix

package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGraph measures what a call graph costs over the calls it makes:
// a three-stage chain (a, then b with a's id, then c with b's id) against
// the same three calls made in parallel without a graph, and against three
// single-backend requests to the same upstream, in CPU per request
// of the whole process (gateway, client and stub: the chain's share of the
// graph machinery is chain/singles-x3 − 1); and a foreach over 20 items
// with max_parallel 4 against 10 ms upstreams, whose latency should be
// about ⌈20/4⌉ × 10 ms, with the goroutine peak sampled while it runs.
func BenchmarkGraph(b *testing.B) {
	bodies := map[string]string{"a": benchBody("a"), "b": benchBody("b"), "c": benchBody("c")}
	items := `{"items":[` + strings.Repeat(`{"sku":"S"},`, 19) + `{"sku":"S"}]}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch seg {
		case "items":
			io.WriteString(w, items)
		case "slow":
			t := time.NewTimer(10 * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
			io.WriteString(w, `{"ok":true}`)
		default:
			io.WriteString(w, bodies[seg])
		}
	}))
	defer up.Close()
	yaml := strings.ReplaceAll(`
upstreams:
  stub: {url: "{{stub}}", timeout: 2s, circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /chain
    backends:
      - {upstream: stub, path: /a, group: a}
      - {upstream: stub, path: "/b/{a.a_id}", group: b}
      - {upstream: stub, path: "/c/{b.b_id}", group: c}
  - path: /parallel
    backends:
      - {upstream: stub, path: /a, group: a}
      - {upstream: stub, path: "/b/x", group: b}
      - {upstream: stub, path: "/c/x", group: c}
  - path: /single
    backends: [{upstream: stub, path: /a, group: a}]
  - path: /foreach
    timeout: 2s
    backends:
      - {name: list, upstream: stub, path: /items}
      - {upstream: stub, path: "/slow/{item.sku}", foreach: list.items, max_parallel: 4, group: results}
`, "{{stub}}", up.URL)
	srv, client := benchGateway(b, yaml)
	get := func(b *testing.B, path string) {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Manifold-Completed") != "true" {
			b.Fatalf("%s: status %d", path, resp.StatusCode)
		}
	}
	cpu := func(b *testing.B, paths ...string) {
		b.ReportAllocs()
		start := cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for _, p := range paths {
					get(b, p)
				}
			}
		})
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
	}
	b.Run("chain", func(b *testing.B) { cpu(b, "/chain") })
	b.Run("parallel-x3", func(b *testing.B) { cpu(b, "/parallel") }) // the same calls, no graph
	b.Run("singles-x3", func(b *testing.B) { cpu(b, "/single", "/single", "/single") })
	b.Run("foreach-20x10ms-p4", func(b *testing.B) {
		base := runtime.NumGoroutine()
		var peak atomic.Int64
		ctx, stop := context.WithCancel(context.Background())
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if n := int64(runtime.NumGoroutine()); n > peak.Load() {
						peak.Store(n)
					}
				}
			}
		}()
		b.ResetTimer()
		for b.Loop() {
			get(b, "/foreach")
		}
		b.StopTimer()
		stop()
		<-sampled
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		b.ReportMetric(float64(peak.Load()-int64(base)), "goroutines-peak-over-base")
	})
}
