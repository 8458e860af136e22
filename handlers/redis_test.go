package handlers_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/manifold-gw/manifold/handlers"
	"github.com/manifold-gw/manifold/internal/redistest"
)

// go-redis logs every failed dial through its package logger; these tests
// fail dials on purpose. (The process routes it to slog: see serve.go.)
func init() { redis.SetLogger(discardRedisLog{}) }

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

// The transition lines of a Gateway's Redis (handlers/redis.go).
const (
	redisDownMsg = "redis unavailable; rate limits with store: redis follow on_error"
	redisUpMsg   = "redis available again; rate limits with store: redis share one budget"
)

// startRedis starts a real redis-server for t. Before that it registers
// the wait for go-redis's goroutines, so that it runs last: after the
// test's gateways have closed their clients.
func startRedis(t *testing.T, extra ...string) *redistest.Server {
	t.Helper()
	t.Cleanup(func() { redistest.WaitClientGoroutines(t) })
	return redistest.Start(t, extra...)
}

// redisYAML is a gateway config with a redis block (body without braces)
// and endpoints, {{u}} its upstream.
func redisYAML(redis, endpoints string) string {
	return "redis: {" + redis + "}\nupstreams:\n  u: {url: \"{{u}}\"}\nendpoints:\n" + endpoints
}

// limited is an endpoint at path with the rate_limit body (without braces).
func limited(path, rateLimit string) string {
	return fmt.Sprintf("  - path: %s\n    rate_limit: {%s}\n    backends: [{upstream: u, path: /}]\n", path, rateLimit)
}

// replica is one Gateway serving yaml on its own listener, like one
// replica of a deployment.
func replica(t *testing.T, yaml, up string, opts handlers.Options) (string, *handlers.Gateway) {
	t.Helper()
	return gatewayWith(t, yaml, map[string]string{"u": up}, opts)
}

// rateLimitHeaders are the names of the headers a limit decides.
var rateLimitHeaders = []string{"Ratelimit-Limit", "Ratelimit-Remaining", "Ratelimit-Reset", "Retry-After"}

// limitHeaders returns a's rate-limit headers, name: value.
func (a answer) limitHeaders() map[string]string {
	out := map[string]string{}
	for _, h := range rateLimitHeaders {
		if v, ok := a.header[h]; ok {
			out[h] = strings.Join(v, ",")
		}
	}
	return out
}

// headerNames are a's header names, less those that differ per answer
// whatever the limit (Date, X-Request-Id, Content-Length).
func (a answer) headerNames() []string {
	var out []string
	for k := range a.header {
		if k != "Date" && k != "X-Request-Id" && k != "Content-Length" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Two Gateways on one Redis (two replicas) share one budget: the burst is
// served exactly once in total, whichever replica gets the request, and
// the answers (statuses, RateLimit-* headers, Retry-After, the 429 body)
// are those of a local limit taking the same requests.
func TestRedisLimitOneBudgetForTwoReplicas(t *testing.T) {
	srv := startRedis(t)
	up := jsonUpstream(t, 0, `{"ok":true}`)
	const limit = "rps: 0.01, burst: 4" // one token per 100s: nothing refills during the test
	endpoints := limited("/e", limit+", store: redis") + limited("/f", limit+", store: redis") +
		limited("/c", "rps: 0.01, burst: 2, per: client, client_key: 'header:X-Api-Key', store: redis")
	yaml := redisYAML(`address: "`+srv.Addr()+`", timeout: 2s`, endpoints) // no timeouts on a loaded machine
	a, _ := replica(t, yaml, up, handlers.Options{})
	b, _ := replica(t, yaml, up, handlers.Options{})
	local, _ := replica(t, "upstreams:\n  u: {url: \"{{u}}\"}\nendpoints:\n"+limited("/e", limit), up, handlers.Options{})

	const n = 9
	var statuses []int
	for i := range n {
		base := a
		if i%2 == 1 {
			base = b
		}
		got := get(t, base+"/e")
		want := get(t, local+"/e")
		statuses = append(statuses, got.status)
		if got.status != want.status {
			t.Fatalf("request %d: status %d across the replicas, %d from a local limit", i, got.status, want.status)
		}
		if g, w := got.limitHeaders(), want.limitHeaders(); !maps2Equal(g, w) {
			t.Errorf("request %d (%d): rate-limit headers %v across the replicas, %v from a local limit", i, got.status, g, w)
		}
		if g, w := got.headerNames(), want.headerNames(); !slices.Equal(g, w) {
			t.Errorf("request %d (%d): header names %q across the replicas, %q from a local limit", i, got.status, g, w)
		}
		if got.status == http.StatusTooManyRequests {
			_, msg, _ := got.errorOf(t)
			_, wantMsg, _ := want.errorOf(t)
			if msg != wantMsg {
				t.Errorf("429 message %q, local %q", msg, wantMsg)
			}
		}
	}
	if want := []int{200, 200, 200, 200, 429, 429, 429, 429, 429}; !slices.Equal(statuses, want) {
		t.Fatalf("statuses across two replicas %v, want %v: one burst of 4 in total", statuses, want)
	}

	// Another endpoint with the same limit has its own budget.
	if got := get(t, b+"/f"); got.status != 200 || got.header.Get("RateLimit-Remaining") != "3" {
		t.Errorf("/f after /e's budget is spent: %d, RateLimit-Remaining %q; want 200 and 3", got.status, got.header.Get("RateLimit-Remaining"))
	}
	// The keys are the endpoint's method and path: the same on every
	// replica and after every reload.
	if got := srv.Do("EXISTS", "manifold:rl:GET:/e:"); got != ":1" {
		t.Errorf("EXISTS manifold:rl:GET:/e: = %s, want :1", got)
	}

	// per: client keys work as with local limits, one budget per key
	// across the replicas.
	key := func(k string) map[string]string { return map[string]string{"X-Api-Key": k} }
	for i, c := range []struct {
		base, key string
		want      int
	}{{a, "A", 200}, {b, "A", 200}, {a, "A", 429}, {b, "B", 200}, {a, "B", 200}, {b, "B", 429}} {
		if got := do(t, "GET", c.base+"/c", nil, key(c.key)); got.status != c.want {
			t.Errorf("per client, request %d (key %s): %d, want %d", i, c.key, got.status, c.want)
		}
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// outcome is what the test saw of one answer under traffic.
type outcome struct {
	status  int
	decided bool // Redis decided: the RateLimit-* headers are there
	took    time.Duration
	at      time.Time
}

// load is traffic to one URL from two goroutines, until stopped, at most
// max requests or 60 seconds.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []outcome
}

func startLoad(t *testing.T, url string, max int) *load {
	l := &load{stop: make(chan struct{})}
	deadline := time.Now().Add(60 * time.Second)
	for range 2 {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				if l.len() >= max || time.Now().After(deadline) {
					return
				}
				start := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					t.Errorf("GET %s: %v", url, err)
					return
				}
				resp.Body.Close()
				o := outcome{status: resp.StatusCode, decided: resp.Header.Get("RateLimit-Limit") != "", took: time.Since(start), at: start}
				l.mu.Lock()
				l.seen = append(l.seen, o)
				l.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() { l.end() }) // also when the test fails half-way
	return l
}

func (l *load) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// count returns how many answers from the from-th on satisfy f.
func (l *load) count(from int, f func(outcome) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.seen[min(from, len(l.seen)):] {
		if f(o) {
			n++
		}
	}
	return n
}

// end stops the senders, waits for them and returns every answer seen.
func (l *load) end() []outcome {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen)
}

func decided(o outcome) bool    { return o.decided }
func notDecided(o outcome) bool { return !o.decided }

// redisErrors reads manifold_redis_errors_total.
func redisErrors(t *testing.T, m *handlers.Metrics) int {
	t.Helper()
	lines := scrape(t, m, "manifold_redis_errors_total ")
	if len(lines) != 1 {
		t.Fatalf("manifold_redis_errors_total: %q", lines)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(lines[0], "manifold_redis_errors_total "))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Redis stopped in the middle of traffic: every answer still comes within
// redis.timeout plus a margin, on_error decides (allow: 200; deny: 429
// with the error body), each failed call is counted in
// manifold_redis_errors_total, the outage is logged once when it begins
// and once when it ends, and after a restart on the same port the
// replicas share one budget again.
func TestRedisOutageMidTraffic(t *testing.T) {
	for _, policy := range []string{"allow", "deny"} {
		t.Run(policy, func(t *testing.T) {
			srv := startRedis(t)
			up := jsonUpstream(t, 0, `{"ok":true}`)
			// Calls to a stopped Redis fail at once, whatever the timeout;
			// a long one keeps a loaded machine from timing out calls
			// while Redis is up, which would add transitions.
			const timeout = time.Second
			yaml := redisYAML(`address: "`+srv.Addr()+`", timeout: `+timeout.String(),
				limited("/e", "rps: 10000, burst: 10000, store: redis, on_error: "+policy)+
					limited("/g", "rps: 0.01, burst: 3, store: redis, on_error: "+policy))
			logs := &logLines{}
			m := handlers.NewMetrics()
			a, _ := replica(t, yaml, up, handlers.Options{Logger: slog.New(logs), Metrics: m})
			b, _ := replica(t, yaml, up, handlers.Options{})

			l := startLoad(t, a+"/e", 20000)
			waitFor(t, "answers decided by Redis", func() bool { return l.count(0, decided) >= 5 })
			stoppedAt := time.Now()
			srv.Stop()
			waitFor(t, "answers while Redis is down", func() bool { return l.count(0, notDecided) >= 20 })
			// One answer while down, looked at whole.
			extra := 0
			if o := get(t, a+"/e"); o.limitHeaders()["Ratelimit-Limit"] == "" {
				extra = 1
				checkFallback(t, o, policy)
			}
			startedAt := time.Now()
			srv.Start()
			restarted := l.len()
			waitFor(t, "Redis deciding again", func() bool { return l.count(restarted, decided) >= 5 })
			got := l.end()

			fallback := 0
			for _, o := range got {
				if !o.decided {
					fallback++
				}
			}
			wantStatus := map[string]int{"allow": 200, "deny": 429}[policy]
			for i, o := range got {
				if o.took > timeout+2*time.Second {
					t.Errorf("answer %d (restart at %d of %d) took %v, want under redis.timeout %v plus 2s; started %v after the stop, %v after the start", i, restarted, len(got), o.took, timeout, o.at.Sub(stoppedAt), o.at.Sub(startedAt))
				}
				if !o.decided && o.status != wantStatus {
					t.Errorf("answer %d while Redis was down: %d, want %d (on_error: %s)", i, o.status, wantStatus, policy)
				}
				if o.decided && o.status != 200 {
					t.Errorf("answer %d decided by Redis: %d, want 200 (the budget is far from spent)", i, o.status)
				}
			}
			if n := redisErrors(t, m); n != fallback+extra {
				t.Errorf("manifold_redis_errors_total %d, want %d: one per answer that Redis did not decide", n, fallback+extra)
			}
			down, upLines := logs.with(redisDownMsg), logs.with(redisUpMsg)
			if len(down) != 1 || len(upLines) != 1 {
				t.Fatalf("%d down and %d up lines, want one each", len(down), len(upLines))
			}
			if down[0].level != slog.LevelWarn || down[0].attrs["error"] == "" || down[0].attrs["address"] != srv.Addr() {
				t.Errorf("down line: level %v, attrs %v; want warn with the error and the address", down[0].level, down[0].attrs)
			}
			if upLines[0].level != slog.LevelInfo {
				t.Errorf("up line at %v, want info", upLines[0].level)
			}

			// Restarted on the same port: one budget for both replicas again.
			var statuses []int
			var headers []map[string]string
			for i := range 6 {
				base := a
				if i%2 == 1 {
					base = b
				}
				o := get(t, base+"/g")
				statuses, headers = append(statuses, o.status), append(headers, o.limitHeaders())
			}
			if want := []int{200, 200, 200, 429, 429, 429}; !slices.Equal(statuses, want) {
				t.Errorf("after the restart, statuses across two replicas %v, want %v; rate-limit headers %v", statuses, want, headers)
			}
		})
	}
}

// checkFallback checks an answer that on_error (policy) decided: allow
// serves it, deny answers 429 with the error body and Retry-After: 1;
// neither carries RateLimit-* headers, since no bucket was read.
func checkFallback(t *testing.T, a answer, policy string) {
	t.Helper()
	h := a.limitHeaders()
	switch policy {
	case "allow":
		if a.status != 200 || len(h) != 0 {
			t.Errorf("on_error allow, Redis down: %d, rate-limit headers %v; want 200 and none", a.status, h)
		}
	case "deny":
		if a.status != 429 || !maps2Equal(h, map[string]string{"Retry-After": "1"}) {
			t.Errorf("on_error deny, Redis down: %d, rate-limit headers %v; want 429 with Retry-After: 1 only", a.status, h)
		}
		if _, msg, _ := a.errorOf(t); msg != "rate limit could not be checked; retry later" {
			t.Errorf("on_error deny, Redis down: message %q", msg)
		}
	}
}

// A Redis slower than redis.timeout (its writes paused, so the limiter's
// script waits): the request is decided by on_error once the timeout has
// passed, not when Redis answers, and the outage is logged and counted
// like an unreachable Redis.
func TestRedisSlowerThanTimeout(t *testing.T) {
	for _, policy := range []string{"allow", "deny"} {
		t.Run(policy, func(t *testing.T) {
			srv := startRedis(t)
			const timeout = 200 * time.Millisecond
			logs := &logLines{}
			m := handlers.NewMetrics()
			base, _ := replica(t, redisYAML(`address: "`+srv.Addr()+`", timeout: `+timeout.String(),
				limited("/e", "rps: 100, burst: 100, store: redis, on_error: "+policy)),
				jsonUpstream(t, 0, `{}`), handlers.Options{Logger: slog.New(logs), Metrics: m})
			if a := get(t, base+"/e"); a.status != 200 || a.limitHeaders()["Ratelimit-Limit"] != "100" {
				t.Fatalf("Redis up: %d %v", a.status, a.limitHeaders())
			}

			// Paused for far longer than the timeout; unpaused below.
			if r := srv.Do("CLIENT", "PAUSE", "20000", "WRITE"); r != "+OK" {
				t.Fatalf("CLIENT PAUSE: %s", r)
			}
			a := get(t, base+"/e")
			srv.Do("CLIENT", "UNPAUSE")
			checkFallback(t, a, policy)
			// At least the timeout (the call waited for Redis), and much less
			// than the pause: the margin is for a loaded machine.
			if a.took < timeout || a.took > timeout+2*time.Second {
				t.Errorf("answer took %v, want redis.timeout %v plus at most 2s", a.took, timeout)
			}
			if n := redisErrors(t, m); n != 1 {
				t.Errorf("manifold_redis_errors_total %d, want 1", n)
			}
			down := logs.with(redisDownMsg)
			if len(down) != 1 || !strings.Contains(down[0].attrs["error"], "no answer in time") {
				t.Fatalf("down lines %v, want one naming the timeout", down)
			}

			// Unpaused: Redis decides again, and says so once.
			waitFor(t, "Redis deciding again", func() bool {
				return get(t, base+"/e").limitHeaders()["Ratelimit-Limit"] == "100"
			})
			if up := logs.with(redisUpMsg); len(up) != 1 {
				t.Errorf("%d up lines, want 1", len(up))
			}
		})
	}
}

// A wrong password is an outage like any other: on_error decides, and the
// down line carries Redis's refusal; the right one (from ${REDIS_PASSWORD},
// as in the docs) works.
func TestRedisWrongPassword(t *testing.T) {
	srv := startRedis(t, "--requirepass", "right")
	up := jsonUpstream(t, 0, `{}`)
	for _, c := range []struct {
		password string
		decided  bool
	}{{"wrong", false}, {"right", true}} {
		logs := &logLines{}
		base, _ := replica(t, redisYAML(`address: "`+srv.Addr()+`", timeout: 2s, password: "`+c.password+`"`,
			limited("/e", "rps: 100, burst: 100, store: redis, on_error: deny")),
			up, handlers.Options{Logger: slog.New(logs)})
		a := get(t, base+"/e")
		if !c.decided {
			checkFallback(t, a, "deny")
			if down := logs.with(redisDownMsg); len(down) != 1 || !strings.Contains(down[0].attrs["error"], "WRONGPASS") {
				t.Errorf("password %q: down lines %v, want one with Redis's WRONGPASS", c.password, down)
			}
			continue
		}
		if a.status != 200 || a.limitHeaders()["Ratelimit-Limit"] != "100" {
			t.Errorf("password %q: %d %v, want 200 decided by Redis", c.password, a.status, a.limitHeaders())
		}
	}
}

// On reload, an unchanged redis block keeps the client (and its pool); a
// changed one gets a new client, and the old one is closed once the old
// Gateway is retired; a config without store: redis limits has none, even
// with a redis block.
func TestRedisClientAcrossReloads(t *testing.T) {
	srv := startRedis(t)
	up := jsonUpstream(t, 0, `{}`)
	ep := limited("/e", "rps: 100, burst: 100, store: redis")
	yaml := redisYAML(`address: "`+srv.Addr()+`", timeout: 2s`, ep)
	decidedBy := func(base string) {
		t.Helper()
		if a := get(t, base+"/e"); a.status != 200 || a.limitHeaders()["Ratelimit-Limit"] != "100" {
			t.Errorf("%d %v, want 200 decided by Redis", a.status, a.limitHeaders())
		}
	}
	baseA, a := replica(t, yaml, up, handlers.Options{})
	decidedBy(baseA)

	baseB, b := replica(t, yaml, up, handlers.Options{Previous: a})
	a.Retire(b)
	if !handlers.SameRedis(a, b) || handlers.RedisRefs(b) != 1 {
		t.Fatalf("unchanged redis block: same client %v, holders %d; want the same, held by b only", handlers.SameRedis(a, b), handlers.RedisRefs(b))
	}
	decidedBy(baseB)

	changed := redisYAML(`address: "`+srv.Addr()+`", timeout: 3s`, ep)
	baseC, c := replica(t, changed, up, handlers.Options{Previous: b})
	if handlers.SameRedis(b, c) {
		t.Fatal("changed redis block: the client was carried over")
	}
	if handlers.RedisRefs(b) != 1 {
		t.Errorf("b's client closed before b was retired")
	}
	b.Retire(c)
	if handlers.RedisRefs(b) != 0 {
		t.Errorf("b retired: its client has %d holders, want 0 (closed)", handlers.RedisRefs(b))
	}
	decidedBy(baseC)

	baseD, d := replica(t, redisYAML(`address: "`+srv.Addr()+`"`, limited("/e", "rps: 100, burst: 100")), up, handlers.Options{Previous: c})
	c.Retire(d)
	if handlers.HasRedis(d) || handlers.RedisRefs(c) != 0 {
		t.Errorf("no store: redis limit: has a client %v; the previous one has %d holders, want none and 0", handlers.HasRedis(d), handlers.RedisRefs(c))
	}
	if a := get(t, baseD+"/e"); a.status != 200 || a.limitHeaders()["Ratelimit-Limit"] != "100" {
		t.Errorf("local limit: %d %v", a.status, a.limitHeaders())
	}
}

// A decision in flight on the old Gateway when a reload swaps the Redis
// client finishes on the old client, which closes only after it: the
// request is decided by Redis, not failed by a client closed under it
// (which would also log an outage and count an error that never was).
func TestRedisReloadWaitsForDecisionsInFlight(t *testing.T) {
	srv := startRedis(t)
	up := jsonUpstream(t, 0, `{}`)
	ep := limited("/e", "rps: 100, burst: 100, store: redis")
	logs := &logLines{}
	m := handlers.NewMetrics()
	opts := handlers.Options{Logger: slog.New(logs), Metrics: m}
	baseA, a := replica(t, redisYAML(`address: "`+srv.Addr()+`", timeout: 10s`, ep), up, opts)

	if r := srv.Do("CLIENT", "PAUSE", "20000", "WRITE"); r != "+OK" {
		t.Fatalf("CLIENT PAUSE: %s", r)
	}
	unpaused := false
	defer func() {
		if !unpaused {
			srv.Do("CLIENT", "UNPAUSE")
		}
	}()
	done := make(chan answer, 1)
	go func() {
		resp, err := client.Get(baseA + "/e")
		if err != nil {
			t.Errorf("GET: %v", err)
			done <- answer{}
			return
		}
		resp.Body.Close()
		done <- answer{status: resp.StatusCode, header: resp.Header}
	}()
	waitFor(t, "the decision in flight", func() bool { return handlers.RedisRefs(a) == 2 })

	opts.Previous = a
	_, b := replica(t, redisYAML(`address: "`+srv.Addr()+`", timeout: 9s`, ep), up, opts)
	a.Retire(b)
	if n := handlers.RedisRefs(a); n != 2 {
		t.Fatalf("retired with a request in flight: %d holders, want 2 (a's own, kept until its request leaves, and the decision)", n)
	}
	srv.Do("CLIENT", "UNPAUSE")
	unpaused = true
	got := <-done
	if got.status != 200 || got.header.Get("RateLimit-Limit") != "100" {
		t.Errorf("the decision in flight: %d, RateLimit-Limit %q; want 200 decided by Redis", got.status, got.header.Get("RateLimit-Limit"))
	}
	waitFor(t, "the old client closed", func() bool { return handlers.RedisRefs(a) == 0 })
	if n, down := redisErrors(t, m), logs.with(redisDownMsg); n != 0 || len(down) != 0 {
		t.Errorf("%d Redis errors, down lines %v; want none", n, down)
	}
}
