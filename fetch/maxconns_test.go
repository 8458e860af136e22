package fetch_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// TestMaxConnectionsQueuesCalls: with max_connections, a burst of calls to
// one upstream opens no more connections than the limit, whichever client
// makes them; the calls beyond it wait for a connection and all succeed.
func TestMaxConnectionsQueuesCalls(t *testing.T) {
	t.Parallel()
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			var inFlight, opened atomic.Int32
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inFlight.Add(1)
				defer inFlight.Add(-1)
				select {
				case <-release:
				case <-r.Context().Done():
				}
				io.WriteString(w, `{"ok":true}`)
			}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			eps, _ := endpoints(t, `
upstreams: {u: {url: "{{u}}", timeout: 5s, client: `+client+`, max_connections: 2}}
endpoints: [{path: /e, timeout: 5s, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": srv.URL})

			const calls = 6
			var wg sync.WaitGroup
			errs := make([]error, calls)
			for i := range calls {
				wg.Go(func() { errs[i] = eps[0].Fetch(context.Background(), inbound())[0].Err })
			}
			waitFor(t, "two calls at the upstream", func() bool { return inFlight.Load() == 2 })
			if n := opened.Load(); n != 2 {
				t.Fatalf("%d connections opened with max_connections 2", n)
			}
			close(release)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("call %d: %v", i, err)
				}
			}
			if n := opened.Load(); n > 2 {
				t.Errorf("%d connections opened for %d calls with max_connections 2", n, calls)
			}
		})
	}
}

// TestMaxConnectionsWaitIsATimeout: a call that waits at the limit for
// longer than its timeout fails as a timeout, and opens no connection.
func TestMaxConnectionsWaitIsATimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var inFlight, opened atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	eps, _ := endpoints(t, `
upstreams:
  u: {url: "{{u}}", timeout: 5s, max_connections: 1}
endpoints:
  - {path: /hold, timeout: 5s, backends: [{upstream: u, path: /}]}
  - {path: /wait, timeout: 150ms, backends: [{upstream: u, path: /}]}
`, map[string]string{"u": srv.URL})
	// A call of /hold takes the only connection and keeps it; a call of
	// /wait, whose deadline is short, waits for it.
	var wg sync.WaitGroup
	wg.Go(func() { eps[0].Fetch(context.Background(), inbound()) })
	waitFor(t, "the holding call at the upstream", func() bool { return inFlight.Load() == 1 })
	res := eps[1].Fetch(context.Background(), inbound())[0]
	if !errors.Is(res.Err, fetch.ErrTimeout) || fetch.Reason(res.Err) != "timeout" {
		t.Errorf("call waiting at the limit: %v (reason %q), want a timeout", res.Err, fetch.Reason(res.Err))
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
	close(release)
	wg.Wait()
}

// TestMaxConnectionsWaitCountsForNeitherBreakerNorEjection: a call that
// times out waiting for a connection at the gateway's own limit says
// nothing about the instance, so, like a bulkhead refusal, it counts
// neither for the circuit breaker nor for outlier ejection; otherwise a
// burst beyond the limit would eject busy, healthy instances, and the load
// moved to the others would eject them in turn.
func TestMaxConnectionsWaitCountsForNeitherBreakerNorEjection(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var inFlight atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, `{"ok":true}`)
	})
	a, b := httptest.NewServer(h), httptest.NewServer(h)
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	eps, ups := endpoints(t, `
upstreams:
  u:
    urls: ["{{a}}", "{{b}}"]
    timeout: 5s
    max_connections: 1
    circuit_breaker: {consecutive_failures: 2, open_timeout: 30s}
    outlier: {consecutive_failures: 2, eject_for: 30s, max_ejected_percent: 100}
endpoints:
  - {path: /hold, timeout: 5s, backends: [{upstream: u, path: /}]}
  - {path: /wait, timeout: 100ms, backends: [{upstream: u, path: /}]}
`, map[string]string{"a": a.URL, "b": b.URL})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(release)
	for range 2 { // one call holds each instance's only connection
		wg.Go(func() { eps[0].Fetch(context.Background(), inbound()) })
	}
	waitFor(t, "both connections held", func() bool { return inFlight.Load() == 2 })
	for i := range 4 {
		res := eps[1].Fetch(context.Background(), inbound())[0]
		if !errors.Is(res.Err, fetch.ErrTimeout) {
			t.Fatalf("wait %d at the limit: %v, want a timeout", i, res.Err)
		}
	}
	u := ups["u"]
	if s := u.BreakerState(); s != fetch.BreakerClosed {
		t.Errorf("breaker %v after waits at the connection limit, want closed", s)
	}
	for _, in := range u.Instances() {
		if !in.InRotation {
			t.Errorf("instance %s ejected for waits at the connection limit", in.Addr)
		}
	}
}
