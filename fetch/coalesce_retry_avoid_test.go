package fetch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// TestCoalescedRetryAvoidsTheFailedInstance: a retry goes to another
// instance than the try it repeats, coalesced or not: it must not join an
// identical flight in progress on the instance that just failed it (the
// flight key did not say which instance a try avoids, and a joining
// caller's was ignored).
func TestCoalescedRetryAvoidsTheFailedInstance(t *testing.T) {
	t.Parallel()
	s0, s1 := newInstance(t), newInstance(t)
	yaml := fmt.Sprintf(`
upstreams:
  u:
    urls: ["%s", "%s"]
    timeout: 2s
    balance: round_robin
    coalesce: true
    retry: {attempts: 1, backoff: 400ms}
    circuit_breaker: {enabled: false}
    outlier: {consecutive_failures: 0}
endpoints:
  - {path: /x, timeout: 5s, backends: [{upstream: u, path: /x}]}
  - {path: /y, timeout: 5s, backends: [{upstream: u, path: /y}]}
`, s0.url, s1.url)
	eps, ups := endpointsWith(t, yaml, fetch.PoolHooks{})
	s1.status.Store(500)
	a := make(chan fetch.Result, 1)
	go func() { a <- eps[0].Fetch(context.Background(), inbound())[0] }() // round robin: s1, 500
	waitFor(t, "A's first try on s1", func() bool { return s1.hits.Load() == 1 })
	s1.status.Store(0)
	s1.gated.Store(true)
	if r := eps[1].Fetch(context.Background(), inbound())[0]; r.Err != nil { // round robin: s0
		t.Fatal(r.Err)
	}
	b := make(chan fetch.Result, 1)
	go func() { b <- eps[0].Fetch(context.Background(), inbound())[0] }() // round robin: s1, held
	waitFor(t, "B held on s1", func() bool { return s1.held.Load() == 1 })
	waitFor(t, "A's retry in flight", func() bool { return fetch.CoalesceWaiters(ups["u"]) == 2 || s0.hits.Load() == 2 })
	s1.release()
	ra, rb := <-a, <-b
	if ra.Err != nil || rb.Err != nil {
		t.Fatalf("A %v, B %v", ra.Err, rb.Err)
	}
	if want := strings.TrimPrefix(s1.url, "http://"); ra.Instance == want {
		t.Fatalf("A's retry was answered by %s, the instance its first try failed on (s0 calls: %d)", ra.Instance, s0.hits.Load())
	}
}
