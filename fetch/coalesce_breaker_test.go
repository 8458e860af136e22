package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// TestCoalescedHangOpensBreaker: a try that hangs past an endpoint deadline
// shorter than the upstream's timeout counts for the breaker, coalesced or
// not: a coalesced try ends when its last waiter leaves, and must end with
// that waiter's reason (its deadline), not as a cancellation, which the
// breaker does not count.
func TestCoalescedHangOpensBreaker(t *testing.T) {
	for _, coalesce := range []bool{false, true} {
		t.Run(fmt.Sprintf("coalesce=%v", coalesce), func(t *testing.T) {
			hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
			a, b := serve(t, hang), serve(t, hang)
			eps, ups := endpoints(t, fmt.Sprintf(`
upstreams:
  u:
    urls: ["%s", "%s"]
    timeout: 2s
    coalesce: %v
    outlier: {consecutive_failures: 0}
    circuit_breaker: {consecutive_failures: 3, open_timeout: 30s}
endpoints:
  - {path: /x, timeout: 100ms, backends: [{upstream: u, path: /x}]}
`, a, b, coalesce), nil)
			u := ups["u"]
			idle := func() bool {
				for _, in := range u.Instances() {
					if in.InFlight != 0 {
						return false
					}
				}
				return true
			}
			for i := range 3 {
				r := eps[0].Fetch(context.Background(), inbound())[0]
				if !errors.Is(r.Err, fetch.ErrTimeout) {
					t.Fatalf("call %d: %v, want a timeout", i, r.Err)
				}
				waitFor(t, "the try settled", idle) // t.done has reported to the breaker
			}
			if s := u.BreakerState(); s != fetch.BreakerOpen {
				t.Fatalf("breaker %v after three tries that hung past the endpoint deadline, want open", s)
			}
		})
	}
}
