package handlers

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/manifold-gw/manifold/fetch"
)

// Metrics are Manifold's Prometheus series. They outlive any one Gateway
// (a reload builds a new Gateway but keeps counting into the same series),
// so the process creates them once and hands them to every Gateway.
//
// Every label value comes from configuration (route templates, upstream
// names) or a small fixed set (methods, status codes, outcomes), never from
// client input, so the number of series is bounded whatever clients send.
type Metrics struct {
	registry        *prometheus.Registry
	shadowRequests  *prometheus.CounterVec // shadow.go
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	backendRequests *prometheus.CounterVec
	backendDuration *prometheus.HistogramVec
	circuitState    *prometheus.GaugeVec
	rateLimited     *prometheus.CounterVec
	authRejections  *prometheus.CounterVec
	cacheRequests   *prometheus.CounterVec
	inflight        prometheus.Gauge
	reloads         *prometheus.CounterVec
	hedges          *prometheus.CounterVec
	coalesced       *prometheus.CounterVec
	instanceHealthy *prometheus.GaugeVec
	ejections       *prometheus.CounterVec
	// upstreams caches each upstream's backend series (upstreamSeries).
	upstreams   sync.Map
	redisErrors prometheus.Counter
}

// NewMetrics creates the series in a registry of their own, with the
// standard Go and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		registry: r,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_requests_total",
			Help: "Requests served, by endpoint (route template), method and status code.",
		}, []string{"endpoint", "method", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "manifold_request_duration_seconds",
			Help:    "Time to answer a request, by endpoint (route template).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"}),
		backendRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_backend_requests_total",
			Help: "Backend calls by upstream and outcome (ok, error, timeout, circuit_open, rejected, skipped: a dependent not called, because its dependency failed or its call could not be built from the dependency's answer).",
		}, []string{"upstream", "outcome"}),
		backendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "manifold_backend_duration_seconds",
			Help:    "Duration of backend calls (retries included), by upstream.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"upstream"}),
		circuitState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "manifold_circuit_state",
			Help: "Circuit breaker state by upstream: 0 closed, 1 half-open, 2 open.",
		}, []string{"upstream"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_ratelimit_rejected_total",
			Help: "Requests refused with 429 by an endpoint's rate limit.",
		}, []string{"endpoint"}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_cache_requests_total",
			Help: "Requests to cached endpoints by result: hit (answered from the cache), miss (fanned out, or shared a concurrent miss's fan-out), bypass (the client's no-cache: fanned out and refreshed).",
		}, []string{"endpoint", "result"}),
		authRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_auth_rejected_total",
			Help: "Requests refused by an endpoint's auth, by reason: missing, malformed, expired, not_yet_valid, signature, issuer, audience, algorithm, unknown_key (401), scope (403), keys_unavailable (503).",
		}, []string{"endpoint", "reason"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "manifold_inflight_requests",
			Help: "Requests being served right now.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_config_reloads_total",
			Help: "Configuration reloads by result (success, failure).",
		}, []string{"result"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_backend_hedges_total",
			Help: "Hedged calls by upstream and result: won (the hedge answered first), lost (the first try did, or both failed).",
		}, []string{"upstream", "result"}),
		coalesced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_backend_coalesced_total",
			Help: "Calls that joined an identical call in flight instead of being sent, by upstream (coalesce: true).",
		}, []string{"upstream"}),
		instanceHealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "manifold_upstream_instance_healthy",
			Help: "1 while an upstream instance (host:port) is in rotation, 0 while it is ejected or failing its health checks.",
		}, []string{"upstream", "instance"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_upstream_ejections_total",
			Help: "Passive ejections of an upstream instance (host:port) after consecutive failures.",
		}, []string{"upstream", "instance"}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "manifold_redis_errors_total",
			Help: "Redis calls of rate limits with store: redis that failed (unreachable, slower than redis.timeout, credentials refused, error reply); on_error decided those requests.",
		}),
	}
	r.MustRegister(m.redisErrors)
	r.MustRegister(m.requests, m.requestDuration, m.backendRequests, m.backendDuration,
		m.circuitState, m.rateLimited, m.cacheRequests, m.authRejections, m.inflight, m.reloads,
		m.hedges, m.coalesced, m.instanceHealthy, m.ejections,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.shadowRequests = registerShadowRequests(r)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Reloaded counts a configuration reload attempt.
func (m *Metrics) Reloaded(ok bool) {
	if m == nil {
		return
	}
	result := "success"
	if !ok {
		result = "failure"
	}
	m.reloads.WithLabelValues(result).Inc()
}

// BreakerChanged records an upstream breaker's new state; it fits
// fetch.WithStateChange.
func (m *Metrics) BreakerChanged(upstream string, to fetch.BreakerState) {
	if m == nil {
		return
	}
	m.circuitState.WithLabelValues(upstream).Set(float64(to))
}

// poolHooks are the pool metrics of upstream, their label values bound
// once here: the hooks run on events, never per ordinary call.
func (m *Metrics) poolHooks(upstream string) fetch.PoolHooks {
	if m == nil {
		return fetch.PoolHooks{}
	}
	won := m.hedges.WithLabelValues(upstream, "won")
	lost := m.hedges.WithLabelValues(upstream, "lost")
	coalesced := m.coalesced.WithLabelValues(upstream)
	return fetch.PoolHooks{
		HedgeWon:  won.Inc,
		HedgeLost: lost.Inc,
		Coalesced: coalesced.Inc,
		Ejected:   func(instance string) { m.ejections.WithLabelValues(upstream, instance).Inc() },
		InstanceState: func(instance string, healthy bool) {
			v := 0.0
			if healthy {
				v = 1
			}
			m.instanceHealthy.WithLabelValues(upstream, instance).Set(v)
		},
	}
}

// forgetInstance drops the series of an instance that is gone.
func (m *Metrics) forgetInstance(upstream, instance string) {
	if m == nil {
		return
	}
	m.instanceHealthy.DeleteLabelValues(upstream, instance)
	m.ejections.DeleteLabelValues(upstream, instance)
}

// forgetUpstream drops the pool series of an upstream that is gone.
func (m *Metrics) forgetUpstream(upstream string) {
	if m == nil {
		return
	}
	m.circuitState.DeleteLabelValues(upstream)
	m.hedges.DeleteLabelValues(upstream, "won")
	m.hedges.DeleteLabelValues(upstream, "lost")
	m.coalesced.DeleteLabelValues(upstream)
}

// knownMethods bounds the method label: anything else is "OTHER".
var knownMethods = map[string]string{
	"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "PATCH": "PATCH",
	"DELETE": "DELETE", "OPTIONS": "OPTIONS", "CONNECT": "CONNECT", "TRACE": "TRACE",
}

var codeLabels = func() [600]string {
	var l [600]string
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func (m *Metrics) observeRequest(endpoint, method string, status int, seconds float64) {
	if m == nil {
		return
	}
	ml, ok := knownMethods[method]
	if !ok {
		ml = "OTHER"
	}
	code := "other"
	if status >= 0 && status < len(codeLabels) {
		code = codeLabels[status]
	}
	m.requests.WithLabelValues(endpoint, ml, code).Inc()
	m.requestDuration.WithLabelValues(endpoint).Observe(seconds)
}

func (m *Metrics) observeBackend(r *fetch.Result) {
	if m == nil {
		return
	}
	up := r.Backend.Upstream.Name
	if r.Items != nil {
		// A foreach backend: every element call is a request of its own.
		for i := range r.Items {
			m.observeBackend(&r.Items[i])
		}
		return
	}
	if notCalled(r.Err) {
		m.backendRequests.WithLabelValues(up, "skipped").Inc() // never called: no duration
		return
	}
	u := m.upstream(up)
	u.outcome(outcome(r.Err)).Inc()
	u.duration.Observe(r.Duration.Seconds())
}

// backendOutcomes are the outcome labels upstreamSeries caches, in order.
var backendOutcomes = [...]string{"ok", "error", "timeout", "circuit_open", "rejected"}

// upstreamSeries are one upstream's backend series, looked up once: a
// label lookup hashes the values and takes the vector's lock on every
// call, which the per-call path need not repeat. An outcome's series is
// made when it first happens, as WithLabelValues would.
type upstreamSeries struct {
	name     string
	vec      *prometheus.CounterVec
	outcomes [len(backendOutcomes)]atomic.Pointer[prometheus.Counter]
	duration prometheus.Observer
}

// outcome is the counter of outcome o of manifold_backend_requests_total.
func (u *upstreamSeries) outcome(o string) prometheus.Counter {
	i := 1 // error
	for j, name := range backendOutcomes {
		if name == o {
			i = j
			break
		}
	}
	if c := u.outcomes[i].Load(); c != nil {
		return *c
	}
	c := u.vec.WithLabelValues(u.name, backendOutcomes[i])
	u.outcomes[i].Store(&c)
	return c
}

// upstream returns name's series, made on first use. The set is bounded
// by the configured upstream names (never by traffic), and these series
// are never deleted, so a cached one is always the exported one.
func (m *Metrics) upstream(name string) *upstreamSeries {
	if u, ok := m.upstreams.Load(name); ok {
		return u.(*upstreamSeries)
	}
	u := &upstreamSeries{name: name, vec: m.backendRequests, duration: m.backendDuration.WithLabelValues(name)}
	got, _ := m.upstreams.LoadOrStore(name, u)
	return got.(*upstreamSeries)
}

// redisError counts one failed Redis call of a store: redis limit.
func (m *Metrics) redisError() {
	if m == nil {
		return
	}
	m.redisErrors.Inc()
}

func (m *Metrics) rateLimitRejected(endpoint string) {
	if m == nil {
		return
	}
	m.rateLimited.WithLabelValues(endpoint).Inc()
}

// notCalled reports whether a graph backend failed without calling its
// upstream (SPEC §7's outcome skipped: "a dependent that was not called"):
// a dependency failed, the call could not be built from a dependency's
// answer (a missing reference, a foreach array that is not one), or a
// foreach had more elements than max_items. Counting these as errors would
// charge the upstream with a failure it never saw.
func notCalled(err error) bool {
	return errors.Is(err, fetch.ErrSkipped) || errors.Is(err, fetch.ErrReference) || errors.Is(err, fetch.ErrTooManyItems)
}

func (m *Metrics) cacheRequested(endpoint, result string) {
	if m == nil {
		return
	}
	m.cacheRequests.WithLabelValues(endpoint, result).Inc()
}

func (m *Metrics) authRejected(endpoint, reason string) {
	if m == nil {
		return
	}
	m.authRejections.WithLabelValues(endpoint, reason).Inc()
}

// outcome classifies a backend call for manifold_backend_requests_total.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, fetch.ErrTimeout):
		return "timeout"
	case errors.Is(err, fetch.ErrCircuitOpen):
		return "circuit_open"
	case errors.Is(err, fetch.ErrRejected):
		return "rejected"
	}
	return "error" // no healthy instance included: the gauge says which are out
}
