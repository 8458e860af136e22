package fetch_test

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// TestHealthChecksBypassMaxConnections: a health check asks whether the
// instance answers, not whether the pool has a free connection, so it must
// not queue behind ordinary calls at max_connections. Queued, it timed out
// without reaching the instance, and busy but healthy instances left
// rotation: with all of them busy, every call failed with "no healthy
// instance".
func TestHealthChecksBypassMaxConnections(t *testing.T) {
	t.Parallel()
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			a, b := newInstance(t), newInstance(t)
			a.gated.Store(true)
			b.gated.Store(true)
			yaml := strings.Replace(poolYAML(urlsOf(a, b), `    client: `+client+`
    max_connections: 1
    balance: round_robin
    outlier: {consecutive_failures: 0}
    health_check: {path: /healthz, interval: 50ms, timeout: 40ms, unhealthy_after: 2, healthy_after: 1}`), "timeout: 300ms", "timeout: 5s", 1)
			yaml = strings.Replace(yaml, "timeout: 2s", "timeout: 6s", 1)
			eps, ups := endpoints(t, yaml, nil)
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() { eps[0].Fetch(context.Background(), inbound()) })
			}
			defer wg.Wait()
			defer a.release()
			defer b.release()
			waitFor(t, "one call holding each instance's only connection", func() bool { return a.held.Load() == 1 && b.held.Load() == 1 })
			// Three check rounds reach each busy instance: twice
			// unhealthy_after, had they failed.
			n0a, n0b := a.checks.Load(), b.checks.Load()
			waitFor(t, "health checks reaching the busy instances", func() bool {
				return a.checks.Load() >= n0a+4 && b.checks.Load() >= n0b+4
			})
			for _, in := range ups["u"].Instances() {
				if !in.InRotation {
					t.Errorf("instance %s out of rotation while busy and healthy", in.Addr)
				}
			}
		})
	}
}
