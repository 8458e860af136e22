package handlers_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/handlers"
)

// TestRedisReloadRequestInFlightBeforeItsLimit: a request already inside the
// old Gateway when a reload changes the redis block (say, a rotated
// password), but not yet at its limit (here: waiting for the JWKS, as a
// request does for its key), has its limit decided by Redis, not by
// on_error: the old Gateway keeps its Redis until its last request leaves.
// (It was given back at Retire, so with on_error: deny such a request got
// a 429 "rate limit could not be checked" while Redis was up.)
func TestRedisReloadRequestInFlightBeforeItsLimit(t *testing.T) {
	keys(t)
	defer handlers.SetJWKSTiming(10*time.Second, 10*time.Second, time.Hour, time.Hour)()
	srv := startRedis(t)
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	jwks := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(jwkSet(rsaKey.jwk(true)))
	})
	up := jsonUpstream(t, 0, `{}`)
	yaml := func(timeout string) string {
		return `auth: {jwt: {jwks_url: "` + jwks + `", issuer: https://idp.test/, audience: [api], algorithms: [RS256]}}
redis: {address: "` + srv.Addr() + `", timeout: ` + timeout + `}
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    auth: {}
    rate_limit: {rps: 100, burst: 100, store: redis, on_error: deny}
    backends: [{upstream: u, path: /}]
`
	}
	m := handlers.NewMetrics()
	baseA, a := replica(t, yaml("2s"), up, handlers.Options{Metrics: m})
	tok := bearerHdr(rsaKey.sign(t, nil, claims(nil)))
	done := make(chan answer, 1)
	go func() { done <- do(t, "GET", baseA+"/e", nil, tok) }()
	// The request is in a's handler (waiting for the key set) before the reload.
	waitFor(t, "the request in flight on a", func() bool {
		l := scrape(t, m, "manifold_inflight_requests ")
		return len(l) == 1 && l[0] == "manifold_inflight_requests 1"
	})

	// The reload: the redis block changed (the timeout here; a password rotation alike).
	_, b := replica(t, yaml("3s"), up, handlers.Options{Previous: a, Metrics: m})
	a.Retire(b)
	once.Do(func() { close(release) })

	got := <-done
	if got.status != 200 || got.header.Get("RateLimit-Limit") != "100" {
		t.Errorf("request in flight across the reload: %d %s (RateLimit-Limit %q); want 200 decided by Redis (Redis was up throughout)",
			got.status, got.body, got.header.Get("RateLimit-Limit"))
	}

	// a has given its Redis back now (its last request left). A request
	// that picked a an instant before the swap and enters it only now is
	// served by its successor, whose Redis is open.
	waitFor(t, "a's Redis given back", func() bool { return !handlers.HoldsRedis(a) })
	late := do(t, "GET", baseA+"/e", nil, tok)
	if late.status != 200 || late.header.Get("RateLimit-Limit") != "100" {
		t.Errorf("request entering the retired gateway: %d %s (RateLimit-Limit %q); want 200 decided by Redis through its successor",
			late.status, late.body, late.header.Get("RateLimit-Limit"))
	}
}
