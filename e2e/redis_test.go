package e2e_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/redistest"
)

// redisReplicaConfig is one replica of a deployment whose /api/users/{id}
// limit lives in Redis ({{REDIS}}): one token per 100s, a burst of 5, so
// nothing refills while the test runs.
const redisReplicaConfig = `
server:
  address: "{{ADDR}}"
admin:
  address: "{{ADMIN}}"
log: {level: info, format: json}
demo: true
redis:
  address: "{{REDIS}}"
  timeout: 1s
upstreams:
  users: {url: "{{DEMO}}"}
endpoints:
  - path: /api/users/{id}
    rate_limit: {rps: 0.01, burst: 5, store: redis, on_error: allow}
    backends:
      - {upstream: users, path: "/users/{id}"}
`

const (
	redisDownLine = "redis unavailable; rate limits with store: redis follow on_error"
	redisUpLine   = "redis available again; rate limits with store: redis share one budget"
)

// Two manifold processes on one redis-server share one budget: the burst
// of 5 is served once in total, whichever process gets the request, with
// the same rate-limit headers from both. With Redis stopped, on_error
// allow serves and each process logs the outage once (go-redis's own
// per-dial lines go to the process log at debug, so not one reaches an
// info log); restarted on the same port, the budget is shared again.
func TestRedisOneBudgetAcrossProcesses(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	tmpl := strings.ReplaceAll(redisReplicaConfig, "{{REDIS}}", srv.Addr())
	p1, p2 := startManifold(t, tmpl), startManifold(t, tmpl)
	procs := []*proc{p1, p2}

	type seen struct {
		status                     int
		limit, remaining, retry    string
		hasRateLimitReset, decided bool
	}
	request := func(i int, path string) seen {
		t.Helper()
		code, _, resp, err := doGet(procs[i%2].client, procs[i%2].URL()+path, nil)
		if err != nil {
			t.Fatalf("request %d to process %d: %v", i, i%2+1, err)
		}
		h := resp.Header
		return seen{code, h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"), h.Get("Retry-After"),
			h.Get("RateLimit-Reset") != "", h.Get("RateLimit-Limit") != ""}
	}
	var statuses []int
	for i := range 12 {
		s := request(i, "/api/users/1")
		statuses = append(statuses, s.status)
		if !s.decided || s.limit != "5" || !s.hasRateLimitReset {
			t.Errorf("request %d (process %d): %+v, want RateLimit-Limit 5 and RateLimit-Reset", i, i%2+1, s)
		}
		switch {
		case i < 5 && s.remaining != strconv.Itoa(4-i):
			t.Errorf("request %d (process %d): RateLimit-Remaining %q, want %d: one budget for both", i, i%2+1, s.remaining, 4-i)
		case i >= 5 && (s.remaining != "0" || s.retry != "100"):
			t.Errorf("request %d (process %d): Remaining %q, Retry-After %q; want 0 and 100 (one token per 100s)", i, i%2+1, s.remaining, s.retry)
		}
	}
	if want := []int{200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 429, 429}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses across two processes %v, want %v: a burst of 5 in total", statuses, want)
	}
	var rejected float64
	for _, p := range procs {
		p.waitMetric(5*time.Second, "429s counted", func(v float64, ok bool) bool { return ok && v > 0 },
			"manifold_ratelimit_rejected_total", `endpoint="/api/users/{id}"`)
		v, _, _ := p.Metric("manifold_ratelimit_rejected_total", `endpoint="/api/users/{id}"`)
		rejected += v
	}
	if rejected != 7 {
		t.Errorf("manifold_ratelimit_rejected_total over both processes = %v, want 7", rejected)
	}

	// Redis down: on_error allow serves, without RateLimit-* headers.
	srv.Stop()
	for i := range 6 {
		if s := request(i, "/api/users/1"); s.status != http.StatusOK || s.decided {
			t.Errorf("Redis down, request %d (process %d): %+v, want 200 without RateLimit-* headers", i, i%2+1, s)
		}
	}
	for i, p := range procs {
		p.waitMetric(5*time.Second, "Redis errors counted", func(v float64, ok bool) bool { return ok && v == 3 },
			"manifold_redis_errors_total")
		waitLog(t, p, redisDownLine, "warn")
		if strings.Contains(p.Logs(), "connection pool") {
			t.Errorf("process %d: go-redis's own lines reached the info log:\n%s", i+1, p.Logs())
		}
	}

	// Restarted on the same port (empty: no persistence): one budget
	// again, of which each process's first decided request below takes one
	// token.
	srv.Start()
	for _, p := range procs {
		// go-redis probes a failed address about once a second.
		waitFor(t, 10*time.Second, 50*time.Millisecond, "Redis deciding again", func() (bool, string) {
			_, _, resp, err := doGet(p.client, p.URL()+"/api/users/1", nil)
			if err != nil {
				return false, err.Error()
			}
			return resp.Header.Get("RateLimit-Limit") != "", resp.Status
		})
		waitLog(t, p, redisUpLine, "info")
	}
	statuses = statuses[:0]
	for i := range 8 {
		statuses = append(statuses, request(i, "/api/users/1").status)
	}
	if want := []int{200, 200, 200, 429, 429, 429, 429, 429}; !slices.Equal(statuses, want) {
		t.Errorf("after the restart, statuses across two processes %v, want %v", statuses, want)
	}
	// Once per transition: the lines above were the only ones.
	for i, p := range procs {
		if down, up := countLogs(p, redisDownLine, "warn"), countLogs(p, redisUpLine, "info"); down != 1 || up != 1 {
			t.Errorf("process %d logged %d down and %d up lines, want one each:\n%s", i+1, down, up, p.Logs())
		}
	}
}

// waitLog waits until p has logged msg at level (its output reaches the
// test through a pipe, a moment after the answer that caused it).
func waitLog(t *testing.T, p *proc, msg, level string) {
	t.Helper()
	waitFor(t, 5*time.Second, 10*time.Millisecond, "the log line "+strconv.Quote(msg), func() (bool, string) {
		n := countLogs(p, msg, level)
		return n > 0, strconv.Itoa(n) + " lines"
	})
}

// countLogs counts p's JSON log lines with msg at level.
func countLogs(p *proc, msg, level string) int {
	n := 0
	for _, l := range p.JSONLogs() {
		if l["msg"] == msg && strings.EqualFold(l["level"].(string), level) {
			n++
		}
	}
	return n
}
