package fetch_test

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

	"go.uber.org/goleak"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

// outcomes counts a shadow pool's outcomes through its hooks.
type outcomes struct {
	mu sync.Mutex
	n  map[string]int // "upstream outcome"
}

func (o *outcomes) hooks() fetch.ShadowHooks {
	return fetch.ShadowHooks{Done: func(upstream string, outcome fetch.ShadowOutcome) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if o.n == nil {
			o.n = map[string]int{}
		}
		o.n[upstream+" "+string(outcome)]++
	}}
}

func (o *outcomes) get(upstream string, outcome fetch.ShadowOutcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[upstream+" "+string(outcome)]
}

func (o *outcomes) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, v := range o.n {
		n += v
	}
	return n
}

// shadowPool starts a pool that the test stops (with a generous deadline)
// when it ends, if the test has not.
func shadowPool(t *testing.T, workers, queue int) (*fetch.ShadowPool, *outcomes) {
	t.Helper()
	o := &outcomes{}
	p := fetch.NewShadowPool(config.Shadow{Workers: workers, Queue: queue}, o.hooks(), nil)
	p.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Stop(ctx)
	})
	return p, o
}

// buildWith is build with endpoint options.
func buildWith(t *testing.T, yaml string, urls map[string]string, opts ...fetch.EndpointOption) *fetch.Endpoint {
	t.Helper()
	_, ups := endpoints(t, yaml, urls)
	for k, v := range urls {
		yaml = strings.ReplaceAll(yaml, "{{"+k+"}}", v)
	}
	cfg, err := config.Parse("t.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ep, err := fetch.NewEndpoint(cfg.Endpoints[0], ups, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// gate is an upstream whose calls wait for release (or their own end),
// reporting each arrival.
type gate struct {
	url      string
	arrived  chan arrival
	release  chan struct{}
	once     sync.Once
	finished atomic.Int32
}

// arrival is what a call brought to the gate.
type arrival struct {
	method, uri string
	header      http.Header
	body        string
}

func newGate(t *testing.T) *gate {
	g := &gate{arrived: make(chan arrival, 100), release: make(chan struct{})}
	g.url = serve(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		g.arrived <- arrival{r.Method, r.URL.RequestURI(), r.Header.Clone(), string(body)}
		select {
		case <-g.release:
			io.WriteString(w, `{"v":2}`)
			g.finished.Add(1)
		case <-r.Context().Done():
		}
	})
	t.Cleanup(g.open) // before the server closes: no handler left waiting
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// waitArrival waits for the next call to reach the gate.
func (g *gate) waitArrival(t *testing.T) arrival {
	t.Helper()
	select {
	case r := <-g.arrived:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no call reached the shadow upstream within 5s")
		return arrival{}
	}
}

const shadowYAML = `
upstreams:
  users: {url: "{{users}}"}
  v2: {url: "{{v2}}", timeout: 10s}
  orders: {url: "{{orders}}"}
endpoints:
  - path: /e/{id}
    method: POST
    forward_headers: [X-Tenant]
    backends:
      - {upstream: users, path: "/users/{id}", group: user}
      - {upstream: v2, path: "/v2/users/{id}?x=1", method: POST, group: user, shadow: true}
      - {upstream: orders, path: "/orders/{id}", group: orders}
`

// Fetch returns the answering backends only, in config order; the copy
// reaches the shadow upstream with the call's method, target, headers and
// body, even when it waited in the queue while the request's headers
// changed and its client left.
func TestShadowIsSentAndNotInResults(t *testing.T) {
	users := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"id":"u"}`) })
	orders := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `[1]`) })
	v2 := newGate(t)
	pool, got := shadowPool(t, 1, 8)
	ep := buildWith(t, shadowYAML, map[string]string{"users": users, "v2": v2.url, "orders": orders}, fetch.WithShadowPool(pool))
	if len(ep.Backends) != 2 || ep.Backends[0].Upstream.Name != "users" || ep.Backends[1].Upstream.Name != "orders" {
		t.Fatalf("Backends = %v, want users, orders", ep.Backends)
	}
	// A first copy keeps the only worker busy, so the second waits in
	// the queue.
	ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"0"}, Header: http.Header{}})
	v2.waitArrival(t)
	in := &fetch.Inbound{Params: []string{"7"}, Header: http.Header{"X-Tenant": {"acme"}, "X-Request-Id": {"rid-1"}},
		Body: []byte(`{"q":1}`), ContentType: "application/json"}
	ctx, cancel := context.WithCancel(context.Background())
	res := ep.Fetch(ctx, in)
	cancel()                             // the client is gone: the copy goes on regardless
	in.Header["X-Tenant"][0] = "changed" // the request's header values are not the copy's
	if len(res) != 2 || res[0].Backend != ep.Backends[0] || res[1].Backend != ep.Backends[1] ||
		string(res[0].Body) != `{"id":"u"}` || string(res[1].Body) != `[1]` {
		t.Fatalf("results: %+v", res)
	}
	if pool.Queued() != 1 {
		t.Fatalf("queued %d, want the copy waiting", pool.Queued())
	}
	v2.open()
	r := v2.waitArrival(t)
	if r.method != http.MethodPost || r.uri != "/v2/users/7?x=1" || r.body != `{"q":1}` ||
		r.header.Get("X-Tenant") != "acme" || r.header.Get("X-Request-Id") != "rid-1" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("shadow call: %+v", r)
	}
	waitFor(t, "the shadow calls' outcomes", func() bool { return got.total() == 2 })
	if n := got.get("v2", fetch.ShadowOK); n != 2 {
		t.Errorf("v2 ok = %d, want 2 (outcomes %v)", n, got.n)
	}
}

// A shadow upstream that never answers does not delay the answer: Fetch
// takes the real backends' time, and returns while the copy still hangs.
func TestShadowHangingUpstreamNeverDelays(t *testing.T) {
	const real = 50 * time.Millisecond
	slow := serve(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(real)
		io.WriteString(w, `{}`)
	})
	v2 := newGate(t)
	defer v2.open() // before the pool's Stop
	pool, _ := shadowPool(t, 1, 4)
	ep := buildWith(t, shadowYAML, map[string]string{"users": slow, "v2": v2.url, "orders": slow}, fetch.WithShadowPool(pool))
	for i := range 3 {
		start := time.Now()
		res := ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}})
		took := time.Since(start)
		if res[0].Err != nil || res[1].Err != nil {
			t.Fatalf("results: %v, %v", res[0].Err, res[1].Err)
		}
		// Honest margin on a loaded 2-core machine; the shadow hangs for
		// 10s (its timeout) and the gate stays closed.
		if took > real+time.Second {
			t.Errorf("call %d took %v with the shadow upstream hanging; the real backends take %v", i, took, real)
		}
		if v2.finished.Load() != 0 {
			t.Fatal("the gate opened")
		}
	}
	v2.waitArrival(t) // the first copy is hanging at the upstream
}

// With one worker busy and a queue of one, every further call is dropped
// and counted, at once: N calls give 1 sent, 1 queued, N-2 dropped.
func TestShadowFullQueueDrops(t *testing.T) {
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	v2 := newGate(t)
	pool, got := shadowPool(t, 1, 1)
	ep := buildWith(t, shadowYAML, map[string]string{"users": fast, "v2": v2.url, "orders": fast}, fetch.WithShadowPool(pool))
	in := &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}}
	ep.Fetch(context.Background(), in)
	v2.waitArrival(t) // the worker is busy with the first copy
	const n = 20
	for range n - 1 {
		ep.Fetch(context.Background(), in)
	}
	if d := got.get("v2", fetch.ShadowDropped); d != n-2 || pool.Queued() != 1 {
		t.Fatalf("dropped %d, queued %d; want %d and 1", d, pool.Queued(), n-2)
	}
	v2.open()
	waitFor(t, "the two copies sent", func() bool { return got.get("v2", fetch.ShadowOK) == 2 })
	if d := got.get("v2", fetch.ShadowDropped); d != n-2 {
		t.Errorf("dropped %d, want %d", d, n-2)
	}
}

// A queue of 0 hands a call to an idle worker or drops it.
func TestShadowQueueZero(t *testing.T) {
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	v2 := newGate(t)
	pool, got := shadowPool(t, 1, 0)
	ep := buildWith(t, shadowYAML, map[string]string{"users": fast, "v2": v2.url, "orders": fast}, fetch.WithShadowPool(pool))
	in := &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}}
	// The worker may not be waiting yet when the first call comes: send
	// until one reaches the upstream.
	deadline := time.Now().Add(5 * time.Second)
	for len(v2.arrived) == 0 && got.get("v2", fetch.ShadowDropped) < 1000 && time.Now().Before(deadline) {
		ep.Fetch(context.Background(), in)
		time.Sleep(time.Millisecond)
	}
	v2.waitArrival(t)
	before := got.get("v2", fetch.ShadowDropped)
	for range 5 {
		ep.Fetch(context.Background(), in)
	}
	if d := got.get("v2", fetch.ShadowDropped) - before; d != 5 {
		t.Errorf("with the only worker busy and no queue, %d of 5 dropped", d)
	}
	v2.open()
	waitFor(t, "the copy sent", func() bool { return got.get("v2", fetch.ShadowOK) == 1 })
}

// The answer is read up to max_response_bytes, then the call fails (and
// the connection is dropped, not read to its end).
func TestShadowAnswerCappedAtMaxResponseBytes(t *testing.T) {
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	var wrote atomic.Int64
	writeErr := make(chan error, 4)
	big := serve(t, func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 4096))
		if r.URL.Query().Get("len") == "1" {
			w.Header().Set("Content-Length", "104857600")
		}
		w.WriteHeader(200)
		for range 100 << 20 / len(chunk) { // 100 MiB unless the reader leaves
			n, err := w.Write(chunk)
			wrote.Add(int64(n))
			if err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	})
	small := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat(" ", 1000)) })
	pool, got := shadowPool(t, 2, 8)
	yaml := `
upstreams:
  users: {url: "{{fast}}"}
  big: {url: "{{big}}", max_response_bytes: 1024, timeout: 10s}
  small: {url: "{{small}}", max_response_bytes: 1024}
endpoints:
  - path: /e
    backends:
      - {upstream: users, path: /}
      - {upstream: big, path: "/stream", shadow: true}
      - {upstream: big, path: "/declared?len=1", shadow: true}
      - {upstream: small, path: /, shadow: true}
`
	ep := buildWith(t, yaml, map[string]string{"fast": fast, "big": big, "small": small}, fetch.WithShadowPool(pool))
	ep.Fetch(context.Background(), &fetch.Inbound{Header: http.Header{}})
	waitFor(t, "three outcomes", func() bool { return got.total() == 3 })
	if e, ok := got.get("big", fetch.ShadowError), got.get("small", fetch.ShadowOK); e != 2 || ok != 1 {
		t.Errorf("big error %d (want 2), small ok %d (want 1)", e, ok)
	}
	for range 2 {
		select {
		case err := <-writeErr:
			if err == nil {
				t.Error("the whole 100 MiB was read")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the upstream is still writing 10s on: the oversized answer was not abandoned")
		}
	}
	t.Logf("the upstream wrote %d bytes before the gateway hung up (buffers included)", wrote.Load())
}

// Stop lets queued calls finish while its deadline allows.
func TestShadowStopDrainsQueue(t *testing.T) {
	var served atomic.Int32
	v2 := serve(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		served.Add(1)
		io.WriteString(w, `{}`)
	})
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	o := &outcomes{}
	pool := fetch.NewShadowPool(config.Shadow{Workers: 1, Queue: 16}, o.hooks(), nil)
	ep := buildWith(t, shadowYAML, map[string]string{"users": fast, "v2": v2, "orders": fast}, fetch.WithShadowPool(pool))
	for range 10 {
		ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}})
	}
	pool.Start() // the queue holds them until then
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool.Stop(ctx)
	if n := o.get("v2", fetch.ShadowOK); n != 10 || served.Load() != 10 {
		t.Errorf("ok %d, served %d; want every queued call sent (outcomes %v)", n, served.Load(), o.n)
	}
	// After Stop, calls are dropped and counted; Stop again is a no-op.
	ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}})
	pool.Stop(ctx)
	if d := o.get("v2", fetch.ShadowDropped); d != 1 {
		t.Errorf("after Stop: dropped %d, want 1", d)
	}
}

// When Stop's deadline passes, the call in flight is cancelled and what
// is still queued is dropped, all counted: Stop returns near its deadline
// however long the upstream would have taken.
func TestShadowStopDeadlineDropsTheRest(t *testing.T) {
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	v2 := newGate(t)
	o := &outcomes{}
	pool := fetch.NewShadowPool(config.Shadow{Workers: 1, Queue: 16}, o.hooks(), nil)
	pool.Start()
	ep := buildWith(t, shadowYAML, map[string]string{"users": fast, "v2": v2.url, "orders": fast}, fetch.WithShadowPool(pool))
	for range 6 {
		ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}})
	}
	v2.waitArrival(t)
	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	pool.Stop(ctx)
	took := time.Since(start)
	if d := o.get("v2", fetch.ShadowDropped); d != 6 || o.total() != 6 {
		t.Errorf("dropped %d of 6 (outcomes %v)", d, o.n)
	}
	if took < deadline-10*time.Millisecond || took > deadline+2*time.Second {
		t.Errorf("Stop took %v with a %v deadline", took, deadline)
	}
}

// Without Start, Stop counts what was queued as dropped.
func TestShadowStopWithoutStart(t *testing.T) {
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	o := &outcomes{}
	pool := fetch.NewShadowPool(config.Shadow{Workers: 1, Queue: 2}, o.hooks(), nil)
	ep := buildWith(t, shadowYAML, map[string]string{"users": fast, "v2": fast, "orders": fast}, fetch.WithShadowPool(pool))
	for range 3 {
		ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}})
	}
	pool.Stop(context.Background())
	if d := o.get("v2", fetch.ShadowDropped); d != 3 {
		t.Errorf("dropped %d, want 3 (2 queued, 1 over the queue)", d)
	}
}

// A shadow backend among a call graph's keeps its results and references
// in config order: the dependent reads the real backend's answer.
func TestShadowInCallGraph(t *testing.T) {
	order := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"customer":"c9"}`) })
	users := serve(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, `{"path":%q}`, r.URL.Path) })
	v2 := newGate(t)
	v2.open()
	pool, got := shadowPool(t, 1, 4)
	ep := buildWith(t, `
upstreams:
  orders: {url: "{{orders}}"}
  v2: {url: "{{v2}}"}
  users: {url: "{{users}}"}
endpoints:
  - path: /o/{id}
    backends:
      - {upstream: v2, path: "/orders/{id}", group: order, shadow: true}
      - {upstream: orders, path: "/orders/{id}", group: order}
      - {upstream: v2, path: "/x", shadow: true}
      - {upstream: users, path: "/users/{order.customer}", group: customer}
`, map[string]string{"orders": order, "v2": v2.url, "users": users}, fetch.WithShadowPool(pool))
	res := ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"5"}, Header: http.Header{}})
	if len(res) != 2 || res[0].Backend != ep.Backends[0] || res[1].Backend != ep.Backends[1] {
		t.Fatalf("results: %+v", res)
	}
	if res[0].Err != nil || res[1].Err != nil || string(res[1].Body) != `{"path":"/users/c9"}` {
		t.Errorf("order %v, customer %v %s", res[0].Err, res[1].Err, res[1].Body)
	}
	waitFor(t, "two copies", func() bool { return got.get("v2", fetch.ShadowOK) == 2 })
}

// An endpoint built without a pool sends no copy and counts nothing.
func TestShadowWithoutPool(t *testing.T) {
	var hits atomic.Int32
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, `{}`) })
	ep := buildWith(t, shadowYAML, map[string]string{"users": fast, "v2": fast, "orders": fast})
	res := ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}})
	if len(res) != 2 || hits.Load() != 2 {
		t.Errorf("%d results, %d calls; want 2 and 2", len(res), hits.Load())
	}
}

// Stop ends every goroutine the pool started: its workers, and with the
// upstream closed, the connections its calls used.
func TestShadowStopLeavesNoGoroutines(t *testing.T) {
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{}`) })
	yaml := strings.ReplaceAll(shadowYAML, "{{users}}", fast)
	yaml = strings.ReplaceAll(strings.ReplaceAll(yaml, "{{v2}}", fast), "{{orders}}", fast)
	cfg, err := config.Parse("t.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent() // the test's servers, not what follows
	ups := map[string]*fetch.Upstream{}
	for name, uc := range cfg.Upstreams {
		ups[name] = fetch.NewUpstream(uc, nil)
	}
	o := &outcomes{}
	pool := fetch.NewShadowPool(config.Shadow{Workers: 4, Queue: 64}, o.hooks(), nil)
	pool.Start()
	ep, err := fetch.NewEndpoint(cfg.Endpoints[0], ups, fetch.WithShadowPool(pool))
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		ep.Fetch(context.Background(), &fetch.Inbound{Params: []string{"1"}, Header: http.Header{}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool.Stop(ctx)
	if o.total() != 50 {
		t.Errorf("%d outcomes for 50 copies: %v", o.total(), o.n)
	}
	for _, u := range ups {
		u.Close()
	}
	goleak.VerifyNone(t, before)
}
