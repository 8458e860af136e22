package handlers

import (
	"time"

	"github.com/manifold-gw/manifold/limiter"
)

// clockedLimiter decides every request at now() instead of the wall clock.
type clockedLimiter struct {
	limiter.Limiter
	now func() time.Time
}

func (c clockedLimiter) Allow(key string) limiter.Decision { return c.AllowAt(key, c.now()) }

// SetRateLimitClock makes every rate limit of g decide at now() instead of
// the wall clock, so that a test of refill and Retry-After moves a
// synthetic clock rather than waiting for real time to pass (and cannot be
// thrown off by a slow machine refilling a token between two requests).
// Call it before g serves its first request. The gateway's own code is
// untouched: the wrapper stands in for the limiter behind the same
// interface, only in tests.
func SetRateLimitClock(g *Gateway, now func() time.Time) {
	for _, rl := range g.limits {
		rl.lim = clockedLimiter{rl.lim, now}
	}
}

// HoldsRedis reports whether g still holds its reference to its Redis
// client (a retired Gateway gives it back when its last request leaves).
func HoldsRedis(g *Gateway) bool { return g.redisHeld.Load() }
