//go:build linux

package handlers_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/redistest"
)

// BenchmarkRateLimitStore measures what a rate limit costs on S2 (/agg:
// three backends merged, as in the load benchmark): no limit, a local limit
// and a store: redis limit on a real redis-server over loopback, each high
// enough never to refuse. go test runs the three one after the other, so
// -count=N interleaves them N times and drift on a busy machine hits all
// three alike.
//
// Each runs twice: in parallel (both cores busy, as under load) and
// serially (one request at a time, for the latency of the path itself).
// Besides ns/op it reports cpu-µs/op, this process's user+system CPU per
// request (gateway, client and stub upstream together: the limit's own
// cost is the difference between two rows), redis-cpu-µs/op, the
// redis-server's (from /proc, 10ms ticks), and the p50 and p99 latency a
// client saw.
func BenchmarkRateLimitStore(b *testing.B) {
	bodies := map[string]string{"/a": benchBody("a"), "/b": benchBody("b"), "/c": benchBody("c")}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, bodies[r.URL.Path])
	}))
	defer up.Close()
	b.Cleanup(func() { redistest.WaitClientGoroutines(b) }) // after the gateway's Close
	rs := redistest.Start(b)
	const backends = "    backends: [{upstream: stub, path: /a}, {upstream: stub, path: /b}, {upstream: stub, path: /c}]\n"
	// Never refusing; and redis.timeout is 1s, not the default 50ms, so
	// that a machine busy with other work does not time a call out (which
	// on_error would decide, and the benchmark would fail on).
	const limit = "rps: 1000000000, burst: 1000000000"
	yaml := strings.NewReplacer("{{stub}}", up.URL, "{{redis}}", rs.Addr(), "{{backends}}", backends).Replace(`
redis: {address: "{{redis}}", timeout: 1s}
upstreams:
  stub: {url: "{{stub}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /none
{{backends}}  - path: /local
    rate_limit: {` + limit + `}
{{backends}}  - path: /redis
    rate_limit: {` + limit + `, store: redis}
{{backends}}`)
	srv, client := benchGateway(b, yaml)

	// get makes one request to the endpoint of name and returns its latency.
	get := func(b *testing.B, name string) time.Duration {
		start := time.Now()
		resp, err := client.Get(srv.URL + "/" + name)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != 200 || resp.Header.Get("X-Manifold-Completed") != "true" {
			b.Fatalf("/%s: status %d", name, resp.StatusCode)
		}
		if name == "redis" && resp.Header.Get("RateLimit-Limit") == "" {
			b.Fatalf("/%s: not decided by Redis (on_error allowed it)", name)
		}
		return took
	}
	// report adds the CPU and latency metrics of a run that started at
	// cpu (this process) and redisCPU (the redis-server).
	report := func(b *testing.B, cpu, redisCPU time.Duration, took []time.Duration) {
		n := float64(b.N)
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/n, "cpu-µs/op")
		b.ReportMetric(float64((procCPU(b, rs.PID())-redisCPU).Microseconds())/n, "redis-cpu-µs/op")
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(took[min(len(took)-1, len(took)*99/100)].Microseconds()), "p99-µs")
	}
	// Parallel: both cores busy, as under load; CPU per request.
	for _, name := range []string{"none", "local", "redis"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var mu sync.Mutex
			var took []time.Duration
			cpu, redisCPU := cpuTime(), procCPU(b, rs.PID())
			b.RunParallel(func(pb *testing.PB) {
				mine := make([]time.Duration, 0, 1024)
				for pb.Next() {
					mine = append(mine, get(b, name))
				}
				mu.Lock()
				took = append(took, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			report(b, cpu, redisCPU, took)
		})
	}
	// Serial: one request at a time, so the latency is the path's own
	// rather than the queueing of a saturated machine.
	for _, name := range []string{"none", "local", "redis"} {
		b.Run("serial-"+name, func(b *testing.B) {
			took := make([]time.Duration, 0, b.N)
			cpu, redisCPU := cpuTime(), procCPU(b, rs.PID())
			for b.Loop() {
				took = append(took, get(b, name))
			}
			report(b, cpu, redisCPU, took)
		})
	}
}

// procCPU is process pid's user+system CPU time so far, from
// /proc/PID/stat (in clock ticks of 10ms, USER_HZ on Linux).
func procCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14 and stime 15.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
