package handlers

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/gin-gonic/gin"
)

// cacheClock is an otter.Clock read from now(), without ticks (so without
// the periodic clean-up goroutine's work).
type cacheClock struct{ now func() time.Time }

func (c cacheClock) NowNano() int64                      { return c.now().UnixNano() }
func (c cacheClock) Tick(time.Duration) <-chan time.Time { return nil }

// SetCacheClock makes g's cache expire entries by now() instead of the wall
// clock, so that a TTL test moves a synthetic clock. Call it before g serves
// its first request: it starts g with a new, empty cache.
func SetCacheClock(g *Gateway, now func() time.Time) {
	g.cache.entries.StopAllGoroutines()
	e, err := newEntries(g.cache.max, slog.New(slog.DiscardHandler), cacheClock{now})
	if err != nil {
		panic(err)
	}
	g.cache.entries = e
}

// CacheUsage reports g's cache after its pending maintenance: the entries'
// total weight, the maximum and the number of entries.
func CacheUsage(g *Gateway) (weight, max uint64, entries int) {
	g.cache.entries.CleanUp()
	return g.cache.entries.WeightedSize(), g.cache.entries.GetMaximum(), g.cache.entries.EstimatedSize()
}

// CacheEntryWeights lists the weights of g's entries.
func CacheEntryWeights(g *Gateway) []uint32 {
	var w []uint32
	for _, a := range g.cache.entries.All() {
		w = append(w, a.weight)
	}
	return w
}

// CacheWaiters is the number of requests waiting on fan-outs in progress,
// their leaders included.
func CacheWaiters(g *Gateway) int {
	g.cache.mu.Lock()
	defer g.cache.mu.Unlock()
	n := 0
	for _, f := range g.cache.flights {
		n += f.waiters
	}
	return n
}

// CacheKeyForToken is CacheKey for a validated token without a sub claim.
func CacheKeyForToken(g *Gateway, path string, params []string, r *http.Request, token string) [32]byte {
	for _, ec := range g.cfg.Endpoints {
		if ec.Path != path {
			continue
		}
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = r
		c.Set(subjectKey, subjectOf("", token))
		return g.cache.forEndpoint(ec, nil).key(c, g.inbound(c, ec, params, nil))
	}
	panic("no endpoint " + path)
}

// CacheKey is the key of r to the endpoint at path (its template) with the
// path parameters params, for the auth subject sub (nil: no auth).
func CacheKey(g *Gateway, path string, params []string, r *http.Request, sub *string) [32]byte {
	for _, ec := range g.cfg.Endpoints {
		if ec.Path != path {
			continue
		}
		c, _ := gin.CreateTestContext(httptest.NewRecorder())
		c.Request = r
		if sub != nil {
			c.Set(subjectKey, cacheSubject{subjectClaim, *sub})
		}
		return g.cache.forEndpoint(ec, nil).key(c, g.inbound(c, ec, params, nil))
	}
	panic("no endpoint " + path)
}
