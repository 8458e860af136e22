package handlers_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// countingUpstream answers status (0: 200 with {}) and counts requests and
// the connections they came on.
type countingUpstream struct {
	url    string
	addr   string
	hits   atomic.Int32
	conns  atomic.Int32
	status atomic.Int32
}

func newCounting(t *testing.T) *countingUpstream {
	c := &countingUpstream{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.hits.Add(1)
		if s := c.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		fmt.Fprint(w, `{}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c.url, c.addr = srv.URL, strings.TrimPrefix(srv.URL, "http://")
	return c
}

func poolGatewayYAML(urls ...string) string {
	return fmt.Sprintf(`
upstreams:
  users:
    urls: ["%s"]
    outlier: {consecutive_failures: 1, eject_for: 1m, max_ejected_percent: 50}
    circuit_breaker: {enabled: false}
endpoints:
  - path: /u
    backends: [{upstream: users, path: /u, required: true}]
`, strings.Join(urls, `", "`))
}

// A reload that changes an upstream's instances carries the unchanged ones
// over with their pools and ejection state; a removed one is closed and its
// series go.
func TestReloadKeepsInstanceState(t *testing.T) {
	bad, good, third := newCounting(t), newCounting(t), newCounting(t)
	bad.status.Store(500)
	m := handlers.NewMetrics()
	baseA, a := gatewayWith(t, poolGatewayYAML(bad.url, good.url), nil, handlers.Options{Metrics: m})
	for bad.hits.Load() == 0 || good.hits.Load() == 0 { // bad ejected, good's pool holds a connection
		get(t, baseA+"/u")
	}
	healthyLine := func(addr string, v int) string {
		return fmt.Sprintf(`manifold_upstream_instance_healthy{instance="%s",upstream="users"} %d`, addr, v)
	}
	lines := scrape(t, m, "manifold_upstream_")
	if !hasLine(lines, healthyLine(bad.addr, 0)) || !hasLine(lines, healthyLine(good.addr, 1)) ||
		!hasLine(lines, fmt.Sprintf(`manifold_upstream_ejections_total{instance="%s",upstream="users"} 1`, bad.addr)) {
		t.Fatalf("after the ejection:\n%s", strings.Join(lines, "\n"))
	}

	// Another instance added: the upstream changed, its instances did not.
	baseB, b := gatewayWith(t, poolGatewayYAML(bad.url, good.url, third.url), nil, handlers.Options{Metrics: m, Previous: a})
	a.Retire(b)
	badHits, goodConns := bad.hits.Load(), good.conns.Load()
	for range 30 {
		if got := get(t, baseB+"/u").status; got != 200 {
			t.Fatalf("after reload: %d", got)
		}
	}
	if n := bad.hits.Load() - badHits; n != 0 {
		t.Errorf("the ejected instance got %d calls after the reload: its ejection was not carried over", n)
	}
	if good.hits.Load() == 0 || third.hits.Load() == 0 {
		t.Errorf("calls not spread: good %d, third %d", good.hits.Load(), third.hits.Load())
	}
	if n := good.conns.Load() - goodConns; n != 0 {
		t.Errorf("%d new connections to the unchanged instance: its pool was not carried over", n)
	}

	// The ejected instance removed: its series go, calls never reach it.
	baseC, c := gatewayWith(t, poolGatewayYAML(good.url, third.url), nil, handlers.Options{Metrics: m, Previous: b})
	b.Retire(c)
	for range 10 {
		get(t, baseC+"/u")
	}
	lines = scrape(t, m, "manifold_upstream_")
	for _, l := range lines {
		if strings.Contains(l, bad.addr) {
			t.Errorf("series of the removed instance still exported: %s", l)
		}
	}
	if !hasLine(lines, healthyLine(good.addr, 1)) || !hasLine(lines, healthyLine(third.addr, 1)) {
		t.Errorf("after removal:\n%s", strings.Join(lines, "\n"))
	}
}

// With every instance out of rotation, a required backend answers 503 at
// once, its reason "no healthy instance".
func TestNoHealthyInstanceIs503(t *testing.T) {
	a, b := newCounting(t), newCounting(t)
	yaml := strings.Replace(poolGatewayYAML(a.url, b.url), "outlier: {consecutive_failures: 1, eject_for: 1m, max_ejected_percent: 50}",
		"health_check: {path: /healthz, interval: 20ms, timeout: 10ms, unhealthy_after: 1}", 1)
	yaml = strings.Replace(yaml, "required: true}]", "required: true}]\n    expose_errors: true", 1)
	a.status.Store(503)
	b.status.Store(503)
	base, _ := gatewayWith(t, yaml, nil, handlers.Options{})
	deadline := time.Now().Add(5 * time.Second)
	for {
		ans := get(t, base+"/u")
		if ans.status == 503 {
			status, msg, backends := ans.errorOf(t)
			if backends["users"] == "no healthy instance" {
				if status != 503 || msg != "upstream unavailable" {
					t.Errorf("error %v %q", status, msg)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never failed with no healthy instance: last %d %s", ans.status, ans.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Reloads that add and drop instances while calls, health checks and
// ejections run: no call fails for lack of an instance that exists, and
// nothing races or leaks (-race, goleak).
func TestPoolReloadUnderTraffic(t *testing.T) {
	a, b, c := newCounting(t), newCounting(t), newCounting(t)
	b.status.Store(500) // ejected now and then
	yamls := []string{
		poolGatewayYAML(a.url, b.url),
		poolGatewayYAML(a.url, b.url, c.url),
		poolGatewayYAML(a.url, c.url),
	}
	for i := range yamls {
		yamls[i] = strings.Replace(yamls[i], "circuit_breaker: {enabled: false}",
			"circuit_breaker: {enabled: false}\n    health_check: {path: /healthz, interval: 10ms, timeout: 5ms}\n    retry: {attempts: 2, backoff: 1ms}", 1)
	}
	m := handlers.NewMetrics()
	var cur atomic.Pointer[handlers.Gateway]
	first, err := handlers.New(mustParse(t, yamls[0]), handlers.Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	cur.Store(first)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { cur.Load().ServeHTTP(w, r) }))
	defer srv.Close()
	stop := make(chan struct{})
	var served, failed atomic.Int32
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if get(t, srv.URL+"/u").status == 200 {
					served.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	for i := range 30 {
		next, err := handlers.New(mustParse(t, yamls[(i+1)%len(yamls)]), handlers.Options{Metrics: m, Previous: cur.Load()})
		if err != nil {
			t.Fatal(err)
		}
		old := cur.Swap(next)
		old.Retire(next)
		start := served.Load()
		waitFor(t, "calls served by the new gateway", func() bool { return served.Load() > start+5 })
	}
	close(stop)
	for range 4 {
		<-done
	}
	cur.Load().Close()
	if served.Load() == 0 {
		t.Fatal("nothing served")
	}
	t.Logf("%d served, %d failed (the failing instance, before its ejection or with every retry on it)", served.Load(), failed.Load())
}

func mustParse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

// The hedge and coalescing counters reach /metrics with their labels.
func TestPoolCountersExported(t *testing.T) {
	release := make(chan struct{})
	var arrivals atomic.Int32
	var once atomic.Bool
	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			arrivals.Add(1)
			<-release // calls that coalesce wait on this one
		} else if once.CompareAndSwap(false, true) {
			<-r.Context().Done() // the first hedged try hangs until it loses
		}
		fmt.Fprint(w, `{}`)
	})
	fast := upstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{}`) })
	m := handlers.NewMetrics()
	base, _ := gatewayWith(t, fmt.Sprintf(`
upstreams:
  pool:
    urls: ["%s", "%s"]
    balance: round_robin
  shared: {url: "%s", coalesce: true, timeout: 5s}
endpoints:
  - path: /h
    backends: [{upstream: pool, path: /h, hedge: {after: 10ms, max_percent: 100}}]
  - path: /c
    timeout: 5s
    backends: [{upstream: shared, path: /held}]
`, slow, fast, slow), nil, handlers.Options{Metrics: m})
	// The budget starts empty: ordinary calls fill it first.
	for range 3 {
		get(t, base+"/h")
	}
	// At least the hanging try's hedge won (on a loaded machine a slow
	// answer of the other instance may be hedged too).
	hedges := scrape(t, m, `manifold_backend_hedges_total{result="won",upstream="pool"}`)
	var won int
	if len(hedges) == 1 {
		fmt.Sscanf(hedges[0][strings.LastIndexByte(hedges[0], ' ')+1:], "%d", &won)
	}
	if won < 1 {
		t.Errorf("hedges won: %q, want at least 1", hedges)
	}
	if lost := scrape(t, m, `manifold_backend_hedges_total{result="lost",upstream="pool"}`); len(lost) != 1 {
		t.Errorf("hedges lost series: %q", lost)
	}
	done := make(chan int, 3)
	for range 3 {
		go func() { done <- get(t, base+"/c").status }()
	}
	waitFor(t, "the shared call", func() bool { return arrivals.Load() >= 1 })
	close(release)
	for range 3 {
		if s := <-done; s != 200 {
			t.Errorf("/c: %d", s)
		}
	}
	// Every call that did not reach the upstream joined another.
	want := fmt.Sprintf(`manifold_backend_coalesced_total{upstream="shared"} %d`, 3-arrivals.Load())
	if lines := scrape(t, m, "manifold_backend_coalesced_total"); !hasLine(lines, want) {
		t.Errorf("want %s, got:\n%s", want, strings.Join(lines, "\n"))
	}
}

// A reload whose build fails after it built a changed upstream leaves the
// running upstream's breaker state exported, not the failed build's fresh
// "closed".
func TestFailedReloadKeepsBreakerState(t *testing.T) {
	keys(t)
	bad := newCounting(t)
	bad.status.Store(500)
	m := handlers.NewMetrics()
	y := fmt.Sprintf(`
upstreams:
  users: {url: "%s", circuit_breaker: {consecutive_failures: 1, open_timeout: 1m}}
endpoints:
  - path: /u
    backends: [{upstream: users, path: /u}]
`, bad.url)
	base, a := gatewayWith(t, y, nil, handlers.Options{Metrics: m})
	get(t, base+"/u")
	open := `manifold_circuit_state{upstream="users"} 2`
	if !hasLine(scrape(t, m, "manifold_circuit_state"), open) {
		t.Fatal("breaker not open")
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwkSet(rsaKey.jwk(true)), 0o600); err != nil {
		t.Fatal(err)
	}
	changed := "auth:\n  jwt: {jwks_file: " + file + ", issuer: https://idp.test/, audience: [api], algorithms: [RS256]}\n" +
		strings.Replace(y, "open_timeout: 1m", "open_timeout: 2m", 1)
	cfg := mustParse(t, changed)
	if err := os.WriteFile(file, []byte("not a key set"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := handlers.New(cfg, handlers.Options{Metrics: m, Previous: a}); err == nil {
		t.Fatal("the build did not fail")
	}
	if lines := scrape(t, m, "manifold_circuit_state"); !hasLine(lines, open) {
		t.Errorf("after a failed reload the running breaker is not reported open:\n%s", strings.Join(lines, "\n"))
	}
}
