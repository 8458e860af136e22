package fetch_test

import (
	"errors"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// TestEjectionCapCountsInstancesOutForHealthChecks: max_ejected_percent
// bounds the instances out of rotation at once, whatever took them out: an
// instance out for failing its health checks counts, so the other is not
// ejected too (which left no instance in rotation, every call failing with
// no healthy instance for eject_for).
func TestEjectionCapCountsInstancesOutForHealthChecks(t *testing.T) {
	t.Parallel()
	a, b := newInstance(t), newInstance(t)
	a.health.Store(500)
	eps, ups := endpoints(t, poolYAML(urlsOf(a, b), `    outlier: {consecutive_failures: 2, eject_for: 10s, max_ejected_percent: 50}
    health_check: {path: /healthz, interval: 20ms, timeout: 10ms, unhealthy_after: 1, healthy_after: 1}`), nil)
	u := ups["u"]
	waitFor(t, "a out by its health checks", func() bool { return !u.Instances()[0].InRotation })
	b.status.Store(500)
	for range 3 {
		fetchOnce(t, eps[0])
	}
	st := u.Instances()
	if !st[0].InRotation && !st[1].InRotation {
		r := fetchOnce(t, eps[0])
		t.Fatalf("2 of 2 instances out of rotation with max_ejected_percent 50; next call: %v (no healthy instance: %v)", r.Err, errors.Is(r.Err, fetch.ErrNoHealthyInstance))
	}
}
