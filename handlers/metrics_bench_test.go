package handlers

import (
	"testing"
	"time"

	"github.com/manifold-gw/manifold/fetch"
)

// BenchmarkObserveBackend is the metrics cost of one backend call, paid
// for every backend of every request.
func BenchmarkObserveBackend(b *testing.B) {
	m := NewMetrics()
	r := &fetch.Result{Backend: &fetch.Backend{Upstream: &fetch.Upstream{Name: "users"}}, Duration: 3 * time.Millisecond}
	b.ReportAllocs()
	for b.Loop() {
		m.observeBackend(r)
	}
}
