package handlers

import "time"

// SetJWKSTiming makes the jwks_url key stores started from now on fetch
// with a timeout of fetch, let requests wait at most wait for a fetch,
// space request-triggered fetches by cooldown, and retry a failed fetch
// after retry (doubling up to 4×retry), so that tests of the schedule take
// milliseconds rather than the production seconds. The returned function
// restores the defaults. A store copies the schedule when it starts, so
// only gateways built in between see it: call it from a test that does not
// run in parallel (parallel tests start only after every serial one ended).
func SetJWKSTiming(fetch, wait, cooldown, retry time.Duration) (restore func()) {
	jwksTimings = jwksTiming{fetch: fetch, wait: wait, cooldown: cooldown, retryMin: retry, retryMax: 4 * retry}
	return func() { jwksTimings = defaultJWKSTiming }
}

// JWKSTiming is the production schedule: fetch timeout, request wait and
// cooldown.
func JWKSTiming() (fetch, wait, cooldown time.Duration) {
	return defaultJWKSTiming.fetch, defaultJWKSTiming.wait, defaultJWKSTiming.cooldown
}

// SameKeyStore reports whether a and b use one key store (a reload carried
// it over).
func SameKeyStore(a, b *Gateway) bool {
	return a.auth != nil && b.auth != nil && a.auth.keys == b.auth.keys
}

// KeyStoreRunning reports whether g's jwks_url key store still fetches.
func KeyStoreRunning(g *Gateway) bool {
	if g.auth == nil || g.auth.keys.done == nil {
		return false
	}
	select {
	case <-g.auth.keys.done:
		return false
	default:
		return true
	}
}
