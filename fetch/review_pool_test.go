package fetch_test

import (
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

// A reload that removes an upstream's health_check carries its instances
// over, but no checker is left to bring an instance that was failing its
// checks back: it must be back in rotation at once, not out for good.
func TestReloadWithoutHealthCheckReadmitsUnhealthyInstance(t *testing.T) {
	t.Parallel()
	a, b := newInstance(t), newInstance(t)
	a.health.Store(500)
	_, ups := endpoints(t, poolYAML(urlsOf(a, b), "    health_check: {path: /healthz, interval: 20ms, timeout: 10ms, unhealthy_after: 1, healthy_after: 1}"), nil)
	old := ups["u"]
	waitFor(t, "a out", func() bool { return !old.Instances()[0].InRotation })

	cfg, err := config.Parse("t.yaml", []byte(poolYAML(urlsOf(a, b), "")), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	next := fetch.NewUpstream(cfg.Upstreams["u"], nil, fetch.WithPrevious(old))
	t.Cleanup(next.Close)
	old.Close()
	if !next.Instances()[0].InRotation {
		t.Fatal("a carried over out of rotation with no health_check left to bring it back")
	}
}

// Between a reload's build and the retirement of the upstream it replaces,
// the old health checker still runs: it must not take back an instance the
// new build put in rotation (here: it has no health_check any more).
func TestReviewOldCheckerLeavesSuccessorsInstancesAlone(t *testing.T) {
	t.Parallel()
	a, b := newInstance(t), newInstance(t)
	a.health.Store(500)
	_, ups := endpoints(t, poolYAML(urlsOf(a, b), "    health_check: {path: /healthz, interval: 20ms, timeout: 10ms, unhealthy_after: 1, healthy_after: 1}"), nil)
	old := ups["u"]
	waitFor(t, "a out", func() bool { return !old.Instances()[0].InRotation })

	cfg, err := config.Parse("t.yaml", []byte(poolYAML(urlsOf(a, b), "")), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	next := fetch.NewUpstream(cfg.Upstreams["u"], nil, fetch.WithPrevious(old))
	t.Cleanup(next.Close)
	n := a.checks.Load()
	waitFor(t, "two more rounds of the old checker", func() bool { return a.checks.Load() >= n+2 })
	if !next.Instances()[0].InRotation {
		t.Fatal("the old checker took a out of the new upstream's rotation before it was retired")
	}
}
