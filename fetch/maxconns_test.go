package fetch_test

import (
	"context"
	"errors"
	"sync"
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
			a := newInstance(t)
			a.gated.Store(true)
			eps, _ := endpoints(t, `
upstreams: {u: {url: "{{u}}", timeout: 5s, client: `+client+`, max_connections: 2}}
endpoints: [{path: /e, timeout: 5s, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": a.url})

			const calls = 6
			var wg sync.WaitGroup
			errs := make([]error, calls)
			for i := range calls {
				wg.Go(func() { errs[i] = eps[0].Fetch(context.Background(), inbound())[0].Err })
			}
			waitFor(t, "two calls at the upstream", func() bool { return a.held.Load() == 2 })
			if n := a.conns(); n != 2 {
				t.Fatalf("%d connections opened with max_connections 2", n)
			}
			a.release()
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("call %d: %v", i, err)
				}
			}
			if n := a.conns(); n > 2 {
				t.Errorf("%d connections opened for %d calls with max_connections 2", n, calls)
			}
		})
	}
}

// TestMaxConnectionsWaitIsATimeout: a call that waits at the limit for
// longer than its timeout fails as a timeout, and opens no connection.
func TestMaxConnectionsWaitIsATimeout(t *testing.T) {
	t.Parallel()
	a := newInstance(t)
	a.gated.Store(true)
	eps, _ := endpoints(t, `
upstreams:
  u: {url: "{{u}}", timeout: 5s, max_connections: 1}
endpoints:
  - {path: /hold, timeout: 5s, backends: [{upstream: u, path: /}]}
  - {path: /wait, timeout: 150ms, backends: [{upstream: u, path: /}]}
`, map[string]string{"u": a.url})
	// A call of /hold takes the only connection and keeps it; a call of
	// /wait, whose deadline is short, waits for it.
	var wg sync.WaitGroup
	wg.Go(func() { eps[0].Fetch(context.Background(), inbound()) })
	waitFor(t, "the holding call at the upstream", func() bool { return a.held.Load() == 1 })
	res := eps[1].Fetch(context.Background(), inbound())[0]
	if !errors.Is(res.Err, fetch.ErrTimeout) || fetch.Reason(res.Err) != "timeout" {
		t.Errorf("call waiting at the limit: %v (reason %q), want a timeout", res.Err, fetch.Reason(res.Err))
	}
	if n := a.conns(); n != 1 {
		t.Errorf("%d connections opened, want 1", n)
	}
	a.release()
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
	a, b := newInstance(t), newInstance(t)
	a.gated.Store(true)
	b.gated.Store(true)
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
`, map[string]string{"a": a.url, "b": b.url})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer b.release()
	defer a.release()
	for range 2 { // one call holds each instance's only connection
		wg.Go(func() { eps[0].Fetch(context.Background(), inbound()) })
	}
	waitFor(t, "both connections held", func() bool { return a.held.Load() == 1 && b.held.Load() == 1 })
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
