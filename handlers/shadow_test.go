package handlers_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
	"github.com/manifold-gw/manifold/handlers"
)

// shadowGate is an upstream whose calls hang until open (or their end).
type shadowGate struct {
	url     string
	arrived atomic.Int32
	release chan struct{}
	once    sync.Once
}

func newShadowGate(t *testing.T) *shadowGate {
	g := &shadowGate{release: make(chan struct{})}
	g.url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		g.arrived.Add(1)
		select {
		case <-g.release:
			io.WriteString(w, `{"v2":true}`)
		case <-r.Context().Done():
		}
	})
	return g
}

func (g *shadowGate) open() { g.once.Do(func() { close(g.release) }) }

// startShadowPool starts a pool counting into m, stopped when the test
// ends (after the gateway's listener, registered later, has closed).
func startShadowPool(t *testing.T, workers, queue int, m *handlers.Metrics) *fetch.ShadowPool {
	p := fetch.NewShadowPool(config.Shadow{Workers: workers, Queue: queue}, m.ShadowHooks(), nil)
	p.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(ctx)
	})
	return p
}

const shadowGatewayYAML = `
upstreams:
  users: {url: "{{users}}"}
  orders: {url: "{{orders}}"}
  v2: {url: "{{v2}}", timeout: 10s}
endpoints:
  - path: /p/{id}
    expose_errors: true
    response_headers: {X-Frame-Options: DENY}
    backends:
      - {upstream: users, path: "/users/{id}", group: user}
%s      - {upstream: orders, path: "/orders/{id}", group: orders}
`

const shadowBackend = `      - {upstream: v2, path: "/users/{id}", group: user, shadow: true}
`

// The client's answer is the same, byte for byte and header for header,
// with a shadow backend whose upstream hangs, and it takes the real
// backends' time.
func TestShadowNeverChangesTheAnswer(t *testing.T) {
	const delay = 50 * time.Millisecond
	users := jsonUpstream(t, delay, `{"name":"Ada","n":9007199254740993}`)
	orders := jsonUpstream(t, delay, `[{"id":1}]`)
	v2 := newShadowGate(t)
	m := handlers.NewMetrics()
	pool := startShadowPool(t, 2, 16, m)
	defer v2.open() // before the pool's Stop
	urls := map[string]string{"users": users, "orders": orders, "v2": v2.url}
	plain := gateway(t, fmt.Sprintf(shadowGatewayYAML, ""), urls)
	shadowed, _ := gatewayWith(t, fmt.Sprintf(shadowGatewayYAML, shadowBackend), urls, handlers.Options{Metrics: m, Shadow: pool})

	for i := range 3 {
		hdr := map[string]string{"X-Request-ID": fmt.Sprintf("req-%d", i)}
		want := do(t, http.MethodGet, plain+"/p/7", nil, hdr)
		got := do(t, http.MethodGet, shadowed+"/p/7", nil, hdr)
		if got.status != want.status || string(got.body) != string(want.body) {
			t.Errorf("with the shadow: %d %s; without: %d %s", got.status, got.body, want.status, want.body)
		}
		got.header.Del("Date")
		want.header.Del("Date")
		if fmt.Sprint(got.header) != fmt.Sprint(want.header) {
			t.Errorf("headers with the shadow:\n%v\nwithout:\n%v", got.header, want.header)
		}
		// The shadow hangs for its 10s timeout; the answer waits for the
		// real backends only (margin for a loaded machine).
		if got.took > delay+time.Second {
			t.Errorf("answer took %v with the shadow upstream hanging; the backends take %v (without the shadow: %v)", got.took, delay, want.took)
		}
	}
	if n := v2.arrived.Load(); n < 1 {
		t.Errorf("the shadow upstream saw %d calls", n)
	}
	v2.open()
	waitFor(t, "three shadow calls ok", func() bool {
		return hasLine(scrape(t, m, "manifold_shadow_requests_total"), `manifold_shadow_requests_total{outcome="ok",upstream="v2"} 3`)
	})
	// Shadow calls are not backend calls of the request.
	for _, l := range scrape(t, m, "manifold_backend_requests_total") {
		if strings.Contains(l, `upstream="v2"`) {
			t.Errorf("a shadow call counted as a backend call: %s", l)
		}
	}
}

// A failing request still sends its copy, and a failing shadow upstream
// changes nothing of the answer.
func TestShadowFailuresStayOffTheAnswer(t *testing.T) {
	users := jsonUpstream(t, 0, `{"name":"Ada"}`)
	down := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	m := handlers.NewMetrics()
	pool := startShadowPool(t, 1, 16, m)
	base, _ := gatewayWith(t, fmt.Sprintf(shadowGatewayYAML, shadowBackend),
		map[string]string{"users": users, "orders": down, "v2": down}, handlers.Options{Metrics: m, Shadow: pool})
	a := get(t, base+"/p/1")
	if a.status != 200 || a.header.Get("X-Manifold-Completed") != "false" || strings.Contains(string(a.body), "v2") {
		t.Errorf("answer %d completed=%s %s: want the users part, orders failed, nothing of v2", a.status, a.header.Get("X-Manifold-Completed"), a.body)
	}
	waitFor(t, "the shadow error counted", func() bool {
		return hasLine(scrape(t, m, "manifold_shadow_requests_total"), `manifold_shadow_requests_total{outcome="error",upstream="v2"} 1`)
	})
}

// With its one worker busy and a queue of one, N requests give one copy
// sent, one queued and N-2 dropped, counted in
// manifold_shadow_requests_total; none of the requests waits.
func TestShadowFullQueueDropsAndCounts(t *testing.T) {
	users := jsonUpstream(t, 0, `{}`)
	v2 := newShadowGate(t)
	m := handlers.NewMetrics()
	pool := startShadowPool(t, 1, 1, m)
	defer v2.open()
	base, _ := gatewayWith(t, fmt.Sprintf(shadowGatewayYAML, shadowBackend),
		map[string]string{"users": users, "orders": users, "v2": v2.url}, handlers.Options{Metrics: m, Shadow: pool})
	get(t, base+"/p/1")
	waitFor(t, "the first copy at the shadow upstream", func() bool { return v2.arrived.Load() == 1 })
	const n = 25
	for i := 1; i < n; i++ {
		if a := get(t, base+"/p/1"); a.status != 200 || a.took > time.Second {
			t.Fatalf("request %d: %d in %v", i, a.status, a.took)
		}
	}
	lines := scrape(t, m, "manifold_shadow_requests_total")
	if want := fmt.Sprintf(`manifold_shadow_requests_total{outcome="dropped",upstream="v2"} %d`, n-2); !hasLine(lines, want) {
		t.Errorf("want %s, got:\n%s", want, strings.Join(lines, "\n"))
	}
	v2.open()
	waitFor(t, "the two copies sent", func() bool {
		return hasLine(scrape(t, m, "manifold_shadow_requests_total"), `manifold_shadow_requests_total{outcome="ok",upstream="v2"} 2`)
	})
}
