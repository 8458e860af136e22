package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/maypok86/otter/v2"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

// Endpoint caching (SPEC §9): the complete 200 answers to GET of the
// endpoints that set cache.ttl are kept in memory and replayed.
//
//   - One cache per Gateway holds the answers of all its endpoints, bounded
//     by server.cache_bytes: each entry weighs its key, body and stored
//     headers plus a fixed overhead, and otter evicts to stay under the sum.
//     A reload builds a new Gateway, and so a new, empty cache: an answer
//     never outlives the configuration that produced it.
//   - The key is a SHA-256 of a length-prefixed encoding of everything the
//     answer depends on (cacheKeyOf), so an entry costs 32 bytes of key
//     whatever the size of the request.
//   - Concurrent misses of one key make one fan-out (a flight). The first
//     request runs it, detached from its own client's cancellation; every
//     request of the flight (the first one too) keeps its own: a client that
//     leaves gets its 499 at once and stops waiting, and the fan-out is
//     cancelled only when no request waits for it any more. It also ends at
//     the endpoint's deadline, as every fan-out does.

// subjectKey is the gin.Context key under which authentication puts the
// validated token's cacheSubject before the handler runs. It is part of
// every cache key, so that two callers never share an entry; absent (no
// auth, or no token on an endpoint whose auth is not required), the key
// has no subject.
const subjectKey = "manifold.sub"

// cacheSubject is whom a cached answer belongs to: the token's sub claim,
// or, for a token without one (or with an empty one), the SHA-256 of the
// token itself. Without the hash, every such token would share one empty
// subject, and with no claim header or forwarded Authorization in the key
// one caller's answer would be served to the next. The kind is part of the
// key, so a sub can never collide with a token's hash.
type cacheSubject struct {
	kind  byte // subjectClaim or subjectToken; 0: none
	value string
}

const (
	subjectClaim byte = 1 // value is the sub claim
	subjectToken byte = 2 // value is the SHA-256 of the compact token
)

// subjectOf is the cache subject of a validated token whose sub claim is
// sub ("" when absent).
func subjectOf(sub, token string) cacheSubject {
	if sub != "" {
		return cacheSubject{subjectClaim, sub}
	}
	h := sha256.Sum256([]byte(token))
	return cacheSubject{subjectToken, string(h[:])}
}

const (
	headerCache = "X-Manifold-Cache"
	// entryOverhead is what an entry costs beyond its key, body and header
	// bytes: otter's node and hash table, the answer's struct and its header
	// slices (measured: ~280 bytes an entry over 50,000 small entries).
	entryOverhead = 320
	// maxPooledKey bounds the key-encoding buffers kept for reuse.
	maxPooledKey = 16 << 10
)

// The values of X-Manifold-Cache, capped so that an append to a header
// never writes into the shared array.
var (
	cacheHit  = []string{"hit"}[:1:1]
	cacheMiss = []string{"miss"}[:1:1]
)

type cacheKey [sha256.Size]byte

// cachedAnswer is a recorded answer: what the endpoint wrote, less the
// headers that belong to one request. Read-only once recorded.
type cachedAnswer struct {
	status int
	header []headerField
	body   []byte
	ttl    time.Duration
	weight uint32
}

type headerField struct {
	name   string
	values []string
}

// responseCache is a Gateway's cache: the entries and the flights in
// progress.
type responseCache struct {
	entries *otter.Cache[cacheKey, *cachedAnswer]
	max     uint64

	mu      sync.Mutex
	flights map[cacheKey]*flight
}

// flight is one fan-out that the concurrent misses of one key share.
type flight struct {
	done    chan struct{} // closed once ans is set
	ans     *cachedAnswer // nil when the fan-out panicked
	waiters int           // requests still waiting, the leader included; under responseCache.mu
	cancel  context.CancelFunc
}

// endpointCache is one endpoint's use of the Gateway's cache.
type endpointCache struct {
	rc      *responseCache
	id      string // method and path template: the endpoint's part of the key
	ttl     time.Duration
	stored  []string // the answer headers an entry keeps and a hit replays
	metrics *Metrics
	label   string // endpoint label of the metric
}

// newResponseCache builds the cache of cfg, or nil when no endpoint caches.
func newResponseCache(cfg *config.Config, logger *slog.Logger) (*responseCache, error) {
	if !slices.ContainsFunc(cfg.Endpoints, func(ec *config.Endpoint) bool { return ec.Cache != nil }) {
		return nil, nil
	}
	rc := &responseCache{max: uint64(cfg.Server.CacheBytes), flights: map[cacheKey]*flight{}}
	var err error
	if rc.entries, err = newEntries(rc.max, logger, nil); err != nil {
		return nil, err
	}
	return rc, nil
}

// newEntries is an otter cache of at most max bytes of answers, each
// expiring its endpoint's ttl after it was stored; clock nil is the wall
// clock.
func newEntries(max uint64, logger *slog.Logger, clock otter.Clock) (*otter.Cache[cacheKey, *cachedAnswer], error) {
	c, err := otter.New(&otter.Options[cacheKey, *cachedAnswer]{
		MaximumWeight: max,
		Weigher:       func(_ cacheKey, a *cachedAnswer) uint32 { return a.weight },
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[cacheKey, *cachedAnswer]) time.Duration {
			return e.Value.ttl
		}),
		Clock:  clock,
		Logger: otterLogger{logger},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return c, nil
}

// close stops the cache's clean-up goroutine. Requests in flight on the
// Gateway can still use the cache.
func (rc *responseCache) close() {
	if rc != nil {
		rc.entries.StopAllGoroutines()
	}
}

// forEndpoint is ec's use of the cache, or nil when ec does not cache.
func (rc *responseCache) forEndpoint(ec *config.Endpoint, m *Metrics) *endpointCache {
	if rc == nil || ec.Cache == nil {
		return nil
	}
	stored := []string{"Content-Type", headerCompleted, "Cache-Control"}
	for name := range ec.ResponseHeaders { // canonical since config load
		if !slices.Contains(stored, name) {
			stored = append(stored, name)
		}
	}
	slices.Sort(stored[3:])
	return &endpointCache{rc: rc, id: ec.Method + " " + ec.Path, ttl: ec.Cache.TTL, stored: stored, metrics: m, label: ec.Path}
}

// serve answers c from the cache, or from fanout (which writes the answer
// to c.Writer, fanning out under the context it is given) on a miss.
func (ca *endpointCache) serve(c *gin.Context, in *fetch.Inbound, fanout func(context.Context)) {
	key := ca.key(c, in)
	rc := ca.rc
	if noCache(c.Request.Header) {
		// The client wants a fresh answer: its own fan-out, under its own
		// cancellation, whose complete answer replaces the entry.
		ca.metrics.cacheRequested(ca.label, "bypass")
		a := ca.record(c, func() { fanout(c.Request.Context()) })
		ca.store(key, a)
		ca.replay(c, a, cacheMiss)
		return
	}
	if a, ok := rc.entries.GetIfPresent(key); ok {
		ca.metrics.cacheRequested(ca.label, "hit")
		ca.replay(c, a, cacheHit)
		return
	}
	ca.metrics.cacheRequested(ca.label, "miss")

	rc.mu.Lock()
	if f := rc.flights[key]; f != nil {
		f.waiters++
		rc.mu.Unlock()
		ca.wait(c, key, f)
		return
	}
	if a, ok := rc.entries.GetIfPresent(key); ok {
		// Stored by a flight that ended since the first look.
		rc.mu.Unlock()
		ca.replay(c, a, cacheMiss)
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.Request.Context()))
	f := &flight{done: make(chan struct{}), waiters: 1, cancel: cancel}
	rc.flights[key] = f
	rc.mu.Unlock()
	ca.lead(c, key, f, ctx, fanout)
}

// lead runs the flight f: the fan-out under ctx (which only the flight's
// last waiter leaving cancels), then the answer is stored if complete and
// handed to every waiter.
func (ca *endpointCache) lead(c *gin.Context, key cacheKey, f *flight, ctx context.Context, fanout func(context.Context)) {
	rc := ca.rc
	stop := context.AfterFunc(c.Request.Context(), func() { rc.leave(key, f) })
	var a *cachedAnswer
	defer func() {
		// Also on a panic: the waiters must not wait for an answer that
		// will never come.
		rc.mu.Lock()
		if rc.flights[key] == f {
			delete(rc.flights, key)
		}
		f.ans = a
		close(f.done)
		rc.mu.Unlock()
		f.cancel()
	}()
	a = ca.record(c, func() { fanout(ctx) })
	ca.store(key, a)
	if !stop() {
		// Our client left while the fan-out went on for the others.
		writeError(c, statusClientClosed, messageFor(statusClientClosed), nil)
		return
	}
	ca.replay(c, a, cacheMiss)
}

// wait is a request of flight f that it did not start: it takes the
// flight's answer, or leaves when its own client does.
func (ca *endpointCache) wait(c *gin.Context, key cacheKey, f *flight) {
	select {
	case <-f.done:
		if f.ans == nil {
			writeError(c, http.StatusInternalServerError, "internal error", nil)
			return
		}
		ca.replay(c, f.ans, cacheMiss)
	case <-c.Request.Context().Done():
		ca.rc.leave(key, f)
		writeError(c, statusClientClosed, messageFor(statusClientClosed), nil)
	}
}

// leave takes one waiter off f; the last one cancels the fan-out, and a
// request that comes after starts a flight of its own.
func (rc *responseCache) leave(key cacheKey, f *flight) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	f.waiters--
	if f.waiters > 0 {
		return
	}
	if rc.flights[key] == f {
		delete(rc.flights, key)
	}
	f.cancel()
}

// store keeps a when it is a complete 200 answer that fits.
func (ca *endpointCache) store(key cacheKey, a *cachedAnswer) {
	if a.status != http.StatusOK || a.weight == 0 || uint64(a.weight) > ca.rc.max {
		return
	}
	for _, f := range a.header {
		if f.name == headerCompleted {
			if len(f.values) == 1 && f.values[0] == "true" {
				ca.rc.entries.Set(key, a)
			}
			return
		}
	}
}

// record runs write with c.Writer recording the answer instead of sending
// it, and returns it. The headers go to c's own, as usual; the answer keeps
// those of ca.stored.
func (ca *endpointCache) record(c *gin.Context, write func()) *cachedAnswer {
	w := c.Writer
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	c.Writer = rec
	defer func() { c.Writer = w }()
	write()

	h := w.Header()
	a := &cachedAnswer{status: rec.status, body: rec.body, ttl: ca.ttl}
	n := 0
	for _, name := range ca.stored {
		n += len(h[name])
	}
	vals := make([]string, 0, n)                          // one array for every value
	size := entryOverhead + len(cacheKey{}) + cap(a.body) // what the body holds, not just its length
	for _, name := range ca.stored {
		vs, ok := h[name]
		if !ok {
			continue
		}
		start := len(vals)
		vals = append(vals, vs...)
		a.header = append(a.header, headerField{name: name, values: vals[start:len(vals):len(vals)]})
		size += len(name)
		for _, v := range vs {
			size += len(v)
		}
	}
	a.weight = uint32(min(size, math.MaxUint32))
	return a
}

// replay writes a to c, with X-Manifold-Cache: state. The request's own
// headers (X-Request-Id...) stay as they are.
func (ca *endpointCache) replay(c *gin.Context, a *cachedAnswer, state []string) {
	h := c.Writer.Header()
	for _, f := range a.header {
		h[f.name] = f.values
	}
	h[headerCache] = state
	c.Writer.WriteHeader(a.status)
	_, _ = c.Writer.Write(a.body)
}

// recorder is the gin.ResponseWriter of a fan-out that is recorded: the
// answer's status and body are kept rather than written, so that the
// flight's waiters never wait on one client's connection.
type recorder struct {
	gin.ResponseWriter
	status  int
	body    []byte
	written bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.written {
		r.status = code
	}
}

func (r *recorder) WriteHeaderNow() { r.written = true }

func (r *recorder) Write(b []byte) (int, error) {
	r.written = true
	r.body = append(r.body, b...)
	return len(b), nil
}

func (r *recorder) WriteString(s string) (int, error) {
	r.written = true
	r.body = append(r.body, s...)
	return len(s), nil
}

func (r *recorder) Status() int   { return r.status }
func (r *recorder) Size() int     { return len(r.body) }
func (r *recorder) Written() bool { return r.written }
func (r *recorder) Flush()        {}

// noCache reports whether the client asked for a fresh answer:
// Cache-Control: no-cache (or max-age=0), or, without Cache-Control, the
// HTTP/1.0 Pragma: no-cache.
func noCache(h http.Header) bool {
	cc, ok := h["Cache-Control"]
	if !ok {
		return hasToken(h["Pragma"], "no-cache")
	}
	return hasToken(cc, "no-cache") || hasToken(cc, "max-age=0")
}

// hasToken reports whether one of the comma-separated elements of vs is
// token, case-insensitively. A no-cache="field" form counts as no-cache.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for e := range strings.SplitSeq(v, ",") {
			e = strings.TrimSpace(e)
			if i := strings.IndexByte(e, '='); i >= 0 && token == "no-cache" {
				e = strings.TrimSpace(e[:i])
			}
			if strings.EqualFold(e, token) {
				return true
			}
		}
	}
	return false
}

// unkeyed are the headers of every backend call that belong to one request
// and are left out of the key: the answer does not depend on them.
func unkeyed(name string) bool {
	switch name {
	case headerRequestID, "X-Forwarded-For", "Traceparent":
		return true
	}
	return false
}

// keyBuffers recycles the encodings that keys are hashed from.
var keyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// key is the cache key of the request c whose backend calls are in: the
// endpoint, the path parameters, the forwarded query (canonical: encoded
// in key order), the headers sent to every backend but the per-request
// ones (forward_headers, X-Forwarded-Host and -Proto, and any that auth
// adds) and the auth subject (cacheSubject). Every part is length-prefixed,
// so no two requests share an encoding, and the encoding is hashed.
func (ca *endpointCache) key(c *gin.Context, in *fetch.Inbound) cacheKey {
	v, _ := c.Get(subjectKey)
	subject, _ := v.(cacheSubject)
	return cacheKeyOf(ca.id, in, subject)
}

func cacheKeyOf(endpoint string, in *fetch.Inbound, subject cacheSubject) cacheKey {
	bp := keyBuffers.Get().(*[]byte)
	b := appendField((*bp)[:0], endpoint)
	b = binary.AppendUvarint(b, uint64(len(in.Params)))
	for _, p := range in.Params {
		b = appendField(b, p)
	}
	b = appendField(b, in.Query)

	var names [16]string
	keyed := names[:0]
	for name := range in.Header {
		if !unkeyed(name) {
			keyed = append(keyed, name)
		}
	}
	slices.Sort(keyed)
	b = binary.AppendUvarint(b, uint64(len(keyed)))
	for _, name := range keyed {
		vs := in.Header[name]
		b = appendField(b, name)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendField(b, v)
		}
	}
	b = append(b, subject.kind)
	if subject.kind != 0 {
		b = appendField(b, subject.value)
	}
	k := cacheKey(sha256.Sum256(b))
	if cap(b) <= maxPooledKey {
		*bp = b
		keyBuffers.Put(bp)
	}
	return k
}

func appendField(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// otterLogger sends the cache library's warnings to the Gateway's log.
type otterLogger struct{ l *slog.Logger }

func (o otterLogger) Warn(ctx context.Context, msg string, err error) {
	o.l.WarnContext(ctx, "cache: "+msg, "error", err)
}

func (o otterLogger) Error(ctx context.Context, msg string, err error) {
	o.l.ErrorContext(ctx, "cache: "+msg, "error", err)
}
