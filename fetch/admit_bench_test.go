package fetch

import (
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// BenchmarkAdmit measures what the breaker and bulkhead add to one call,
// against calling the work directly.
func BenchmarkAdmit(b *testing.B) {
	work := func() error { return nil }
	cb := config.CircuitBreaker{Enabled: true, ConsecutiveFailures: 5, OpenTimeout: 30e9, HalfOpenRequests: 1, Interval: 60e9}
	cases := []struct {
		name          string
		breaker       bool
		maxConcurrent int
	}{
		{"direct", false, 0},
		{"bulkhead", false, 64},
		{"breaker", true, 0},
		{"breaker+bulkhead", true, 64},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cfg := &config.Upstream{Name: "u", CircuitBreaker: cb, MaxConcurrent: c.maxConcurrent}
			cfg.CircuitBreaker.Enabled = c.breaker
			u := &Upstream{Name: "u", cfg: cfg, single: true}
			in := &instance{}
			if c.maxConcurrent > 0 {
				u.slots = make(chan struct{}, c.maxConcurrent)
			}
			u.breaker = u.newBreaker(cfg.CircuitBreaker)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if c.name == "direct" {
						_ = work()
						continue
					}
					t, err := u.admit(in)
					if err != nil {
						b.Fatal(err)
					}
					t.done(work())
				}
			})
		})
	}
}
