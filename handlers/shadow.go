package handlers

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/manifold-gw/manifold/fetch"
)

// registerShadowRequests creates and registers
// manifold_shadow_requests_total.
func registerShadowRequests(r *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "manifold_shadow_requests_total",
		Help: "Shadow calls (copies sent to shadow: true backends, answers discarded) by upstream and outcome: ok (2xx within max_response_bytes), error (failed as a backend would), dropped (queue full, pool stopping, or cut by shutdown_timeout).",
	}, []string{"upstream", "outcome"})
	r.MustRegister(c)
	return c
}

// ShadowHooks are the shadow pool's metrics, for fetch.NewShadowPool: the
// process builds its one pool with them.
func (m *Metrics) ShadowHooks() fetch.ShadowHooks {
	if m == nil {
		return fetch.ShadowHooks{}
	}
	return fetch.ShadowHooks{Done: func(upstream string, outcome fetch.ShadowOutcome) {
		m.shadowRequests.WithLabelValues(upstream, string(outcome)).Inc()
	}}
}
