package fetch_test

import (
	"context"
	"errors"
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
)

// switchable is an upstream whose answer the test changes between calls,
// counting the requests it saw.
type switchable struct {
	status atomic.Int32
	hits   atomic.Int32
}

func (s *switchable) handler(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	code := int(s.status.Load())
	if code == -1 { // hang until the caller gives up
		<-r.Context().Done()
		return
	}
	w.WriteHeader(code)
	io.WriteString(w, `{}`)
}

// endpoints compiles every endpoint of yaml; upstream runtimes are shared
// between endpoints as in a Gateway.
func endpoints(t testing.TB, yaml string, urls map[string]string) ([]*fetch.Endpoint, map[string]*fetch.Upstream) {
	t.Helper()
	for k, v := range urls {
		yaml = strings.ReplaceAll(yaml, "{{"+k+"}}", v)
	}
	cfg, err := config.Parse("t.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ups := map[string]*fetch.Upstream{}
	for name, uc := range cfg.Upstreams {
		ups[name] = fetch.NewUpstream(uc, nil)
		t.Cleanup(ups[name].Close)
	}
	var eps []*fetch.Endpoint
	for _, ec := range cfg.Endpoints {
		ep, err := fetch.NewEndpoint(ec, ups)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	return eps, ups
}

// waitFor polls cond every 5ms until it holds or 5s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const breakerYAML = `
upstreams:
  u:
    url: "{{u}}"
    timeout: 100ms
    circuit_breaker: {consecutive_failures: 3, open_timeout: 150ms, half_open_requests: 2}
endpoints:
  - {path: /one, timeout: 1s, backends: [{upstream: u, path: /a}]}
  - {path: /two, timeout: 1s, backends: [{upstream: u, path: /b}]}
`

func TestBreakerLifecycle(t *testing.T) {
	t.Parallel() // waits out open_timeout twice
	up := &switchable{}
	eps, ups := endpoints(t, breakerYAML, map[string]string{"u": serve(t, up.handler)})
	u := ups["u"]
	call := func(ep *fetch.Endpoint) error { return ep.Fetch(context.Background(), inbound())[0].Err }

	// Closed: 4xx answers are not failures, however many.
	up.status.Store(404)
	for range 5 {
		call(eps[0])
	}
	if u.BreakerState() != fetch.BreakerClosed {
		t.Fatalf("4xx answers opened the breaker")
	}
	// Three consecutive 5xx open it; the endpoints share it.
	up.status.Store(500)
	call(eps[0])
	call(eps[1])
	call(eps[0])
	if u.BreakerState() != fetch.BreakerOpen {
		t.Fatalf("state %v after 3 failures, want open", u.BreakerState())
	}
	// Open: fails fast without touching the network, on both endpoints.
	before := up.hits.Load()
	for _, ep := range eps {
		start := time.Now()
		err := call(ep)
		if !errors.Is(err, fetch.ErrCircuitOpen) {
			t.Fatalf("open breaker: %v", err)
		}
		if took := time.Since(start); took > 50*time.Millisecond {
			t.Errorf("open breaker took %v to refuse", took)
		}
	}
	if up.hits.Load() != before {
		t.Fatal("open breaker let a request reach the upstream")
	}
	// Half-open after open_timeout: half_open_requests probes go through; a
	// failed probe reopens.
	waitFor(t, "half-open", func() bool { return u.BreakerState() == fetch.BreakerHalfOpen })
	if err := call(eps[0]); !errors.As(err, new(*fetch.StatusError)) {
		t.Fatalf("probe: %v", err)
	}
	if u.BreakerState() != fetch.BreakerOpen {
		t.Fatalf("failed probe left state %v, want open", u.BreakerState())
	}
	// Next half-open: two successful probes close it.
	waitFor(t, "half-open again", func() bool { return u.BreakerState() == fetch.BreakerHalfOpen })
	up.status.Store(200)
	for i := range 2 {
		if err := call(eps[i]); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
	}
	if u.BreakerState() != fetch.BreakerClosed {
		t.Fatalf("state %v after successful probes, want closed", u.BreakerState())
	}
}

func TestBreakerHalfOpenAdmitsOnlyTheProbes(t *testing.T) {
	t.Parallel() // waits out open_timeout and the probes' timeouts
	up := &switchable{}
	up.status.Store(500)
	eps, ups := endpoints(t, breakerYAML, map[string]string{"u": serve(t, up.handler)})
	for range 3 {
		eps[0].Fetch(context.Background(), inbound())
	}
	waitFor(t, "half-open", func() bool { return ups["u"].BreakerState() == fetch.BreakerHalfOpen })
	up.status.Store(-1) // probes hang until their 100ms timeout
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = eps[0].Fetch(context.Background(), inbound())[0].Err })
	}
	wg.Wait()
	var timeouts, refused int
	for _, err := range errs {
		switch {
		case errors.Is(err, fetch.ErrTimeout):
			timeouts++
		case errors.Is(err, fetch.ErrCircuitOpen):
			refused++
		}
	}
	if timeouts != 2 || refused != 2 {
		t.Fatalf("half-open with 2 probes: %d went through, %d refused (%v)", timeouts, refused, errs)
	}
}

func TestBreakerIgnoresClientCancellation(t *testing.T) {
	up := &switchable{}
	up.status.Store(-1)
	eps, ups := endpoints(t, `
upstreams:
  u: {url: "{{u}}", timeout: 5s, circuit_breaker: {consecutive_failures: 1}}
endpoints: [{path: /e, timeout: 5s, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": serve(t, up.handler)})
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			for up.hits.Load() <= int32(i) {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		err := eps[0].Fetch(ctx, inbound())[0].Err
		cancel()
		if !errors.Is(err, fetch.ErrCanceled) {
			t.Fatalf("got %v", err)
		}
	}
	if s := ups["u"].BreakerState(); s != fetch.BreakerClosed {
		t.Fatalf("client cancellations moved the breaker to %v", s)
	}
}

// hanging is an upstream that never answers: each call waits until the
// caller gives up or the test ends, and is counted.
func hanging(t *testing.T) (hits *atomic.Int32, url string) {
	hits = new(atomic.Int32)
	release := make(chan struct{})
	url = serve(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server closes
	return hits, url
}

func TestBreakerCountsTimeoutsClippedByTheEndpoint(t *testing.T) {
	t.Parallel() // five 150ms timeouts in a row
	// The upstream's timeout is the default 1s but the endpoint allows
	// 150ms, so every call is cut by the endpoint's deadline. SPEC §4.6
	// excludes only 4xx answers and client cancellations from the
	// breaker's count: a hanging upstream must still open it.
	hits, url := hanging(t)
	eps, ups := endpoints(t, `
upstreams:
  u: {url: "{{u}}", circuit_breaker: {consecutive_failures: 5}}
endpoints: [{path: /e, timeout: 150ms, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": url})
	for i := range 5 {
		if err := eps[0].Fetch(context.Background(), inbound())[0].Err; !errors.Is(err, fetch.ErrTimeout) {
			t.Fatalf("call %d: got %v, want a timeout", i+1, err)
		}
	}
	if err := eps[0].Fetch(context.Background(), inbound())[0].Err; !errors.Is(err, fetch.ErrCircuitOpen) {
		t.Fatalf("after 5 clipped timeouts: got %v (breaker %v), want circuit open", err, ups["u"].BreakerState())
	}
	if n := hits.Load(); n != 5 {
		t.Fatalf("upstream saw %d calls, want 5 (none once the breaker opened)", n)
	}
}

func TestBreakerCountsItsOwnTimeouts(t *testing.T) {
	t.Parallel() // a 50ms timeout
	// The upstream's own timeout, fully spent, counts as well.
	_, url := hanging(t)
	eps, ups := endpoints(t, `
upstreams:
  u: {url: "{{u}}", timeout: 50ms, circuit_breaker: {consecutive_failures: 1}}
endpoints: [{path: /e, timeout: 1s, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": url})
	eps[0].Fetch(context.Background(), inbound())
	if s := ups["u"].BreakerState(); s != fetch.BreakerOpen {
		t.Fatalf("an upstream timeout left the breaker %v, want open", s)
	}
}

func TestBreakerFailureRatio(t *testing.T) {
	up := &switchable{}
	eps, ups := endpoints(t, `
upstreams:
  u:
    url: "{{u}}"
    circuit_breaker: {consecutive_failures: 100, failure_ratio: 0.5, min_requests: 10}
endpoints: [{path: /e, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": serve(t, up.handler)})
	// Alternate success and failure: never 100 in a row, but 50% failures.
	for i := range 9 {
		up.status.Store(int32([]int{200, 500}[i%2]))
		eps[0].Fetch(context.Background(), inbound())
		if s := ups["u"].BreakerState(); s != fetch.BreakerClosed {
			t.Fatalf("opened after %d requests, before min_requests", i+1)
		}
	}
	up.status.Store(500)
	eps[0].Fetch(context.Background(), inbound()) // 10th: 5 failures of 10
	if s := ups["u"].BreakerState(); s != fetch.BreakerOpen {
		t.Fatalf("5/10 failures with ratio 0.5: state %v, want open", s)
	}
}

func TestBulkheadRejectsBeyondMaxConcurrent(t *testing.T) {
	release := make(chan struct{})
	var inFlight atomic.Int32
	up := serve(t, func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{}`)
	})
	eps, _ := endpoints(t, `
upstreams: {u: {url: "{{u}}", timeout: 5s, max_concurrent: 2}}
endpoints: [{path: /e, timeout: 5s, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": up})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { errs[i] = eps[0].Fetch(context.Background(), inbound())[0].Err })
	}
	waitFor(t, "two calls in flight", func() bool { return inFlight.Load() == 2 })

	start := time.Now()
	res := eps[0].Fetch(context.Background(), inbound())[0]
	if !errors.Is(res.Err, fetch.ErrRejected) || fetch.Reason(res.Err) != "too many concurrent calls" {
		t.Fatalf("third call: %v", res.Err)
	}
	if took := time.Since(start); took > 50*time.Millisecond {
		t.Errorf("rejection took %v; it must not queue", took)
	}
	close(release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("admitted call failed: %v", err)
		}
	}
	if err := eps[0].Fetch(context.Background(), inbound())[0].Err; err != nil {
		t.Fatalf("slot not freed: %v", err)
	}
}

func TestRetries(t *testing.T) {
	t.Parallel() // cases wait out upstream timeouts
	flaky := func(t *testing.T, failures int32, code int) (*atomic.Int32, string) {
		var n atomic.Int32
		return &n, serve(t, func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) <= failures {
				if code == -1 {
					<-r.Context().Done()
					return
				}
				w.WriteHeader(code)
				return
			}
			io.WriteString(w, `{"ok":true}`)
		})
	}
	tests := []struct {
		name      string
		failures  int32
		code      int
		method    string
		upTimeout string
		epTimeout string
		attempts  int
		wantErr   bool
		wantHits  int32
	}{
		{"flaky GET succeeds on retry", 1, 500, "GET", "1s", "3s", 1, false, 2},
		{"two retries", 2, 502, "GET", "1s", "3s", 2, false, 3},
		{"out of attempts", 3, 500, "GET", "1s", "3s", 2, true, 3},
		{"POST never retried", 1, 500, "POST", "1s", "3s", 3, true, 1},
		{"4xx not retried", 1, 404, "GET", "1s", "3s", 3, true, 1},
		{"timeout retried when the deadline allows", 1, -1, "GET", "100ms", "1s", 1, false, 2},
		{"no retry that cannot finish before the deadline", 5, -1, "GET", "200ms", "300ms", 3, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hits, url := flaky(t, tt.failures, tt.code)
			eps, _ := endpoints(t, fmt.Sprintf(`
upstreams:
  u: {url: "{{u}}", timeout: %s, retry: {attempts: %d, backoff: 5ms}}
endpoints:
  - {path: /e, method: %s, timeout: %s, backends: [{upstream: u, path: /, method: %s}]}
`, tt.upTimeout, tt.attempts, tt.method, tt.epTimeout, tt.method), map[string]string{"u": url})
			res := eps[0].Fetch(context.Background(), inbound())[0]
			if (res.Err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", res.Err, tt.wantErr)
			}
			if hits.Load() != tt.wantHits {
				t.Fatalf("upstream saw %d tries, want %d", hits.Load(), tt.wantHits)
			}
		})
	}
}

func TestRelayRetriesOrRelays5xx(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		upTimeout  string
		wantStatus int
		wantHits   int32
	}{
		// Room for a retry: the 503 is retried and the second answer relayed.
		{"retry fits", "100ms", 200, 2},
		// The upstream's timeout does not fit again before the deadline: the
		// 503 is relayed as it is, not turned into a 502.
		{"retry does not fit", "1s", 503, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			up := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if hits.Add(1) == 1 {
					w.WriteHeader(503)
					return
				}
				io.WriteString(w, "ok")
			})
			eps, _ := endpoints(t, fmt.Sprintf(`
upstreams: {u: {url: "{{u}}", timeout: %s, retry: {attempts: 1, backoff: 5ms}}}
endpoints: [{path: /e, timeout: 1s, backends: [{upstream: u, path: /, passthrough: true}]}]
`, tt.upTimeout), map[string]string{"u": up})
			rel, err := eps[0].Relay(context.Background(), inbound())
			if err != nil {
				t.Fatal(err)
			}
			defer rel.Close()
			if rel.Response.StatusCode != tt.wantStatus || hits.Load() != tt.wantHits {
				t.Fatalf("status %d after %d tries, want %d after %d", rel.Response.StatusCode, hits.Load(), tt.wantStatus, tt.wantHits)
			}
		})
	}
}

func TestBreakerIgnoresTriesNeverSent(t *testing.T) {
	// A request whose deadline has already passed fails at once as a
	// timeout without calling the upstream; that is not held against it.
	hits, url := hanging(t)
	eps, ups := endpoints(t, `
upstreams:
  u: {url: "{{u}}", circuit_breaker: {consecutive_failures: 1}}
endpoints: [{path: /e, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": url})
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if err := eps[0].Fetch(ctx, inbound())[0].Err; !errors.Is(err, fetch.ErrTimeout) {
		t.Fatalf("got %v, want a timeout", err)
	}
	if s := ups["u"].BreakerState(); s != fetch.BreakerClosed || hits.Load() != 0 {
		t.Fatalf("a try never sent: breaker %v, upstream saw %d calls", s, hits.Load())
	}
}
