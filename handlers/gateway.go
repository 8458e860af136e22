// Package handlers turns HTTP requests into backend calls and backend
// results into responses: the Gin routes built from a compiled configuration,
// the status mapping, JSON errors and the operations endpoints.
package handlers

import (
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/cors"
	"go.opentelemetry.io/otel/trace"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

func init() {
	// Gin's debug mode prints every route to stdout at start-up; Manifold
	// logs through slog instead.
	gin.SetMode(gin.ReleaseMode)
}

// Options are what the process supplies to a Gateway beyond its config.
type Options struct {
	// Logger receives access lines and upstream failures (nil = discard).
	Logger *slog.Logger
	// Ready reports readiness for /__ready; nil means always ready. The
	// process flips it to false when draining.
	Ready *atomic.Bool
	// Demo, when the config sets demo: true, is served under /__demo/.
	Demo http.Handler
	// Metrics receives the Prometheus series (nil = not measured).
	Metrics *Metrics
	// Shadow is the process's shadow pool: shadow backends' copies go
	// through it (nil: no copy is sent). It outlives every Gateway.
	Shadow *fetch.ShadowPool
	// Previous is the Gateway this one replaces on a reload. Upstreams whose
	// configuration did not change are carried over whole (connection pool,
	// circuit breaker state, bulkhead), and so are the rate-limit buckets of
	// endpoints whose method, path and rate_limit did not change.
	Previous *Gateway
	// Tracer, when tracing is on, makes every endpoint request a server
	// span and every backend call a client span under it (nil = off, and
	// no span work at all). It is the process's: reloads keep it.
	Tracer trace.Tracer
}

// Gateway is everything built from one configuration: upstream clients,
// compiled endpoints and the router. It is immutable; a reload builds a new
// Gateway and swaps it in, and the old one's in-flight requests finish on it.
type Gateway struct {
	cfg       *config.Config
	engine    *gin.Engine
	upstreams map[string]*fetch.Upstream
	limits    map[string]*rateLimit // by "METHOD path"
	routes    map[string]string     // router path (/a/:id) -> template (/a/{id})
	logger    *slog.Logger
	ready     *atomic.Bool
	metrics   *Metrics
	auth      *verifier      // nil without auth.jwt
	cache     *responseCache // nil when no endpoint caches
	cors      *cors.Cors     // nil without server.cors
	// edges are the endpoints' response_headers, CORS and gzip (edge.go).
	edges map[*config.Endpoint]*edge
	// tracer is Options.Tracer: nil without tracing (tracing.go).
	tracer trace.Tracer
	// redis is the Redis of store: redis limits (nil when none has one),
	// shared with the Gateways before and after it while the redis block
	// is unchanged; redisHeld says g still holds its reference (redis.go).
	redis     *sharedRedis
	redisHeld atomic.Bool
	// With a Redis only: the requests in flight on g, whether g was
	// retired, and its successor. g gives its Redis reference back when it
	// is retired and its last request has left, so that a request that
	// entered g before a reload still has its limit decided by Redis
	// (redis.go: enter, leave).
	inflight atomic.Int64 // requests in flight, | retiredBit once retired
	next     atomic.Pointer[Gateway]
	// failLogs thin each upstream's failure lines (faillog.go); nil when
	// every failure is logged.
	failLogs map[string]*failureLog
}

// New compiles cfg into a Gateway: one upstream runtime per upstream, one
// route per endpoint, plus /__health, /__ready and (demo) /__demo/.
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		cfg:       cfg,
		upstreams: make(map[string]*fetch.Upstream, len(cfg.Upstreams)),
		limits:    map[string]*rateLimit{},
		routes:    map[string]string{},
		logger:    logger,
		ready:     opts.Ready,
		metrics:   opts.Metrics,
		tracer:    opts.Tracer,
		cors:      newCORS(cfg.Server.CORS),
		failLogs:  newFailureLogs(cfg, opts.Previous),
	}
	// A new, empty cache on every build: entries never outlive the
	// configuration that produced them.
	cache, err := newResponseCache(cfg, logger)
	if err != nil {
		return nil, err
	}
	g.cache = cache
	prev := opts.Previous
	for _, name := range cfg.UpstreamNames {
		uc := cfg.Upstreams[name]
		if uc.TLS.InsecureSkipVerify {
			// On every build, reused runtimes included: a reload repeats it.
			logger.Warn("upstream tls: insecure_skip_verify is on: the upstream's certificate is not verified, any server can impersonate it", "upstream", name)
		}
		if prev != nil {
			if old := prev.upstreams[name]; old != nil && sameUpstream(old.Config(), uc) {
				g.upstreams[name] = old
				continue
			}
		}
		var uopts []fetch.Option
		if m := opts.Metrics; m != nil {
			uopts = append(uopts, fetch.WithStateChange(m.BreakerChanged), fetch.WithPoolHooks(m.poolHooks(name)))
		}
		if prev != nil && prev.upstreams[name] != nil {
			// Changed: the instances whose pool would be built the same
			// way carry over with their connections, health and ejection.
			uopts = append(uopts, fetch.WithPrevious(prev.upstreams[name]))
		}
		u := fetch.NewUpstream(uc, logger, uopts...)
		g.upstreams[name] = u
		opts.Metrics.BreakerChanged(name, u.BreakerState())
	}
	if err := g.newAuth(prev); err != nil {
		g.Retire(prev)
		return nil, err
	}
	if err := g.newRedis(prev, opts.Metrics); err != nil {
		g.Retire(prev)
		return nil, err
	}
	g.redisHeld.Store(g.redis != nil)

	e := gin.New()
	e.UseRawPath = true         // match on the escaped path: %2F stays inside its segment
	e.UnescapePathValues = true // ... and hand the handler the decoded value
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	e.ForwardedByClientIP = true
	e.RemoteIPHeaders = []string{"X-Forwarded-For"}
	trusted := make([]string, len(cfg.Server.TrustedPrefixes))
	for i, p := range cfg.Server.TrustedPrefixes {
		trusted[i] = p.String() // normalised: Gin mis-parses IPv4-mapped forms
	}
	if err := e.SetTrustedProxies(trusted); err != nil {
		g.Retire(prev) // stop what this build started (key store, new upstreams)
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	e.Use(g.recoverer, g.requestID, g.observe)
	if g.tracer != nil {
		e.Use(g.traceRequest) // the server span, inside observe
	}
	e.NoRoute(func(c *gin.Context) { writeError(c, http.StatusNotFound, "no route for "+c.Request.URL.Path, nil) })
	e.NoMethod(func(c *gin.Context) {
		if g.preflight(c) { // a CORS preflight to an endpoint's path
			return
		}
		writeError(c, http.StatusMethodNotAllowed, "method "+c.Request.Method+" not allowed", nil)
	})

	for _, path := range []string{"/__health", "/__ready"} {
		h := g.health
		if path == "/__ready" {
			h = g.readiness
		}
		e.GET(path, h)
		e.HEAD(path, h)
	}
	if cfg.Demo && opts.Demo != nil {
		e.Any("/__demo/*rest", gin.WrapH(http.StripPrefix("/__demo", opts.Demo)))
	}

	for _, ec := range cfg.Endpoints {
		ep, err := fetch.NewEndpoint(ec, g.upstreams, fetch.WithShadowPool(opts.Shadow))
		if err != nil {
			g.Retire(prev) // release only what this build made; prev's upstreams serve on
			return nil, err
		}
		ep.Trace(g.tracer) // nil: untraced
		key := ec.Method + " " + ec.Path
		limit, err := newRateLimit(ec, g.redis)
		if err != nil {
			g.Retire(prev)
			return nil, err
		}
		if prev != nil && limit != nil && limit.shared == nil {
			// Local buckets carry over; Redis ones live in Redis.
			if old := prev.limits[key]; old != nil && old.shared == nil && *old.cfg == *limit.cfg {
				limit = old
			}
		}
		if limit != nil {
			g.limits[key] = limit
		}
		g.routes[ec.Route] = ec.Path
		e.Handle(ec.Method, ec.Route, append(g.edgeHandlers(ec), g.endpointHandler(ep, limit, newEndpointAuth(ec)))...)
	}
	g.engine = e
	return g, nil
}

// ServeHTTP serves one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.redis != nil {
		if !g.enter() {
			// g was retired and gave its Redis back before this request
			// entered (it picked g an instant before the reload swapped
			// it): its successor serves it, with a Redis that is open.
			g.next.Load().ServeHTTP(w, r)
			return
		}
		defer g.leave()
	}
	// The routes are in the canonical escaped form (config.CanonicalPath):
	// the request's path is brought to it when it holds anything else.
	if p, ok := config.CanonicalPath(r.URL); ok {
		r.URL.RawPath = p
	}
	g.engine.ServeHTTP(w, r)
}

// Config returns the configuration the Gateway was built from.
func (g *Gateway) Config() *config.Config { return g.cfg }

// Close releases the idle connections of every upstream, stops the
// fetching of auth.jwt.jwks_url and closes the Redis client (once the
// decisions in flight on it are done). Requests in flight finish normally.
func (g *Gateway) Close() { g.Retire(nil) }

// Retire releases what this Gateway holds that next did not carry over:
// the idle connections of upstreams that were removed or changed (and their
// circuit-state series). Requests in flight on g finish normally.
func (g *Gateway) Retire(next *Gateway) {
	g.retireAuth(next)  // the key store's goroutine, unless next carried it over
	g.cache.close()     // never carried over; in-flight requests can still use it
	g.retireRedis(next) // given back when g's last request has left
	for name, u := range g.upstreams {
		if next != nil && next.upstreams[name] == u {
			continue
		}
		u.Close()
		var kept *fetch.Upstream
		if next != nil {
			kept = next.upstreams[name]
		}
		if kept == nil {
			g.metrics.forgetUpstream(name)
		}
		for _, in := range u.Instances() {
			if kept == nil || !hasInstance(kept, in.Addr) {
				g.metrics.forgetInstance(name, in.Addr)
			}
		}
		if kept != nil && g.engine == nil {
			// g's build failed (New sets engine last): it reported its own
			// instances at kept's addresses and its own fresh breaker's
			// state, so kept's states go back.
			kept.ReportInstances()
			g.metrics.BreakerChanged(name, kept.BreakerState())
		}
	}
}

// hasInstance reports whether u has an instance at addr.
func hasInstance(u *fetch.Upstream, addr string) bool {
	for _, in := range u.Instances() {
		if in.Addr == addr {
			return true
		}
	}
	return false
}

// sameUpstream reports whether two upstream configurations are identical,
// so that the runtime of the old one (and its breaker state) can serve on.
func sameUpstream(a, b *config.Upstream) bool {
	return reflect.DeepEqual(a, b)
}

// Health answers /__health: 200 while the process serves. It is exported
// for the admin listener.
func Health(w http.ResponseWriter, _ *http.Request) {
	writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ok"}`))
}

// Readiness answers /__ready from ready: 200 ready, or 503 draining. It is
// exported for the admin listener.
func Readiness(ready *atomic.Bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil && !ready.Load() {
			w.Header().Set("Cache-Control", "no-store")
			writeJSONBytes(w, http.StatusServiceUnavailable, []byte(`{"status":"draining"}`))
			return
		}
		writeJSONBytes(w, http.StatusOK, []byte(`{"status":"ready"}`))
	}
}

func (g *Gateway) health(c *gin.Context) { Health(c.Writer, c.Request) }

func (g *Gateway) readiness(c *gin.Context) { Readiness(g.ready)(c.Writer, c.Request) }

// recoverer turns a panic in a handler into a 500 JSON error and a log line,
// so one bad request never takes the process down. http.ErrAbortHandler is
// re-raised: it is how a handler deliberately cuts a response short. A
// panic after the answer had begun is turned into one: ending it normally
// would let the client take a truncated body (e.g. chunked) for a whole one.
func (g *Gateway) recoverer(c *gin.Context) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if r == http.ErrAbortHandler {
			panic(r)
		}
		g.logger.Error("handler panic", "panic", fmt.Sprint(r), "request_id", requestIDOf(c))
		if c.Writer.Written() {
			panic(http.ErrAbortHandler)
		}
		writeError(c, http.StatusInternalServerError, "internal error", nil)
	}()
	c.Next()
}

// observe writes one access line per request with the fields operators
// filter on, and the request metrics. The route is the template, never the
// raw path, so neither log fields nor metric labels carry client input. It
// does so from a deferred call, so that a request that panics is counted
// too, with completed=false: a response cut short on purpose
// (http.ErrAbortHandler, e.g. a passthrough body that broke off) with the
// status that went out, any other panic with the 500 recoverer answers when
// nothing had been written yet. The panic then goes on to recoverer.
func (g *Gateway) observe(c *gin.Context) {
	start := time.Now()
	if g.metrics != nil {
		g.metrics.inflight.Inc()
	}
	defer func() {
		p := recover()
		if g.metrics != nil {
			g.metrics.inflight.Dec()
		}
		status := c.Writer.Status()
		if p != nil && p != http.ErrAbortHandler && !c.Writer.Written() {
			status = http.StatusInternalServerError // what recoverer will answer
		}
		g.access(c, start, status, p != nil)
		if p != nil {
			panic(p)
		}
	}()
	c.Next()
}

// access writes the access line and the request sample of c, answered with
// status.
func (g *Gateway) access(c *gin.Context, start time.Time, status int, aborted bool) {
	took := time.Since(start)
	route, ok := g.routes[c.FullPath()]
	if !ok {
		route = c.FullPath() // ops routes; "" when nothing matched
	}
	completed := !aborted && status < 400 && c.Writer.Header().Get(headerCompleted) != "false"
	g.logger.LogAttrs(c.Request.Context(), slog.LevelInfo, "request",
		slog.String("request_id", requestIDOf(c)),
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration", took.Seconds()),
		slog.Bool("completed", completed),
		slog.String("client_ip", c.ClientIP()),
	)
	g.metrics.observeRequest(route, c.Request.Method, status, took.Seconds())
}
