// Package limiter implements Manifold's per-endpoint rate limits as token
// buckets built on golang.org/x/time/rate.
//
// An endpoint is configured with a refill rate (rps, tokens per second, may
// be fractional such as 0.5), a bucket size (burst, at least 1) and a scope:
// one bucket for the whole endpoint ([Global]) or one bucket per client key
// ([PerKey]). The package is transport-agnostic: it never looks at requests;
// the caller decides what the client key is (an IP, an API key, ...) and turns
// the returned [Decision] into a 429 response and RateLimit headers.
//
// Design constraints, and how they are met:
//
//   - Refusals are free: a refused call never consumes a token, so a client
//     that keeps retrying too early is not pushed further into debt, and
//     RetryAfter is computed from the bucket's real token deficit.
//   - Bounded memory with millions of clients: a [PerKey] limiter forgets a
//     bucket once it has refilled to full and has been unused for an idle
//     period. A full bucket is indistinguishable from a freshly created one
//     (new keys start full), so eviction never changes any decision; it only
//     trades memory for an allocation when the client comes back.
//   - Low contention: per-client buckets live in 64 shards chosen by a seeded
//     maphash of the key, each with its own mutex.
//   - No goroutines: eviction is lazy. Each shard sweeps itself, during an
//     Allow call that lands on it, at most once per sweep interval. There is
//     nothing to start, stop or leak. [PerKey.Sweep] forces a sweep.
//   - Deterministic tests: every Allow has an AllowAt twin that takes the
//     current time, so tests drive a synthetic clock instead of sleeping.
package limiter

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Decision is the outcome of one Allow call: whether to serve the request,
// plus the numbers a transport needs for a 429 response and for RateLimit /
// Retry-After headers, so that it never has to query the bucket a second
// time (which would be racy).
type Decision struct {
	// Allowed reports whether the request may be served. When it is true,
	// one token has been taken from the bucket; when false, none was.
	Allowed bool
	// Limit is the bucket size (burst): the most requests a client can make
	// back to back. It is the "limit" of RateLimit headers.
	Limit int
	// Remaining is the number of whole tokens left in the bucket after this
	// decision (never negative): how many more requests would be allowed
	// right now.
	Remaining int
	// RetryAfter is, for a refused request, how long until one whole token
	// is available, computed from the bucket's real token deficit
	// ((1-tokens)/rps) to the nanosecond, such that a retry exactly that
	// much later is allowed if nobody else takes the token first. It is
	// always > 0 when Allowed is false and 0 when Allowed is true.
	// Transports emitting a Retry-After header in whole seconds should
	// round it up, not down.
	RetryAfter time.Duration
	// Reset is how long until the bucket is full again (0 when it is full),
	// i.e. until the client could burst Limit requests again.
	Reset time.Duration
}

// Limiter is what the gateway's middleware holds for one endpoint, so that it
// can treat global and per-client limits alike. Implementations are safe for
// concurrent use.
type Limiter interface {
	// Allow decides one request for key at the current wall-clock time.
	Allow(key string) Decision
	// AllowAt decides one request for key at time now. It exists so that
	// tests can use a synthetic clock. A now earlier than a time already
	// seen by the same bucket is treated as that later time: a bucket's
	// clock never runs backwards.
	AllowAt(key string, now time.Time) Decision
}

// Compile-time checks that both scopes satisfy Limiter.
var (
	_ Limiter = (*Global)(nil)
	_ Limiter = (*PerKey)(nil)
)

// ErrInvalidRate is returned (wrapped) by [Validate] for an rps that is not
// a finite number greater than zero. It is exported so that the config layer
// can tell this mistake apart with errors.Is.
var ErrInvalidRate = errors.New("limiter: rps must be a finite number > 0")

// ErrInvalidBurst is returned (wrapped) by [Validate] for a burst below 1:
// such a bucket could never allow anything.
var ErrInvalidBurst = errors.New("limiter: burst must be >= 1")

// Validate reports whether rps and burst can build a limiter. The
// constructors panic on values it rejects (a programming error once config
// has been validated), so config loading should call Validate first to turn
// bad endpoint settings into a readable error.
func Validate(rps float64, burst int) error {
	if !(rps > 0) || math.IsInf(rps, 0) { // !(rps > 0) also catches NaN
		return fmt.Errorf("%w: got %v", ErrInvalidRate, rps)
	}
	if burst < 1 {
		return fmt.Errorf("%w: got %d", ErrInvalidBurst, burst)
	}
	return nil
}

func mustValidate(rps float64, burst int) {
	if err := Validate(rps, burst); err != nil {
		panic(err)
	}
}

// Global is an endpoint-wide limiter: one bucket shared by every caller. It
// protects an upstream from total load regardless of who sends it.
type Global struct {
	rps   float64
	burst int

	mu sync.Mutex // guards b, so that a Decision is one consistent snapshot
	b  bucket
}

// NewGlobal returns a limiter with a single bucket of size burst refilled at
// rps tokens per second, starting full. It panics if [Validate] rejects rps
// or burst.
func NewGlobal(rps float64, burst int) *Global {
	mustValidate(rps, burst)
	g := &Global{rps: rps, burst: burst}
	g.b.lim = rate.NewLimiter(rate.Limit(rps), burst)
	return g
}

// Allow decides one request at the current time. The key is ignored: it is
// accepted only so that Global satisfies [Limiter].
func (g *Global) Allow(key string) Decision {
	return g.AllowAt(key, time.Now())
}

// AllowAt decides one request at time now; the key is ignored. See
// [Limiter.AllowAt].
func (g *Global) AllowAt(_ string, now time.Time) Decision {
	g.mu.Lock()
	d := g.b.take(now, g.rps, g.burst)
	g.mu.Unlock()
	return d
}

// bucket is one token bucket plus the bookkeeping the limiter needs around
// rate.Limiter. Callers serialise access to a bucket (shard or Global mutex).
type bucket struct {
	lim *rate.Limiter
	// last is the latest time the bucket was used. It keeps the time handed
	// to lim monotonic (rate.Limiter rewinds its own clock when an event is
	// allowed at an earlier time, which would later be refilled twice), and
	// it tells the sweeper how long the bucket has been unused.
	last time.Time
}

func newBucket(rps float64, burst int) *bucket {
	return &bucket{lim: rate.NewLimiter(rate.Limit(rps), burst)}
}

// take decides one request at now. The caller must hold the lock that
// guards b. It never consumes a token for a refused request.
func (b *bucket) take(now time.Time, rps float64, burst int) Decision {
	if now.Before(b.last) {
		now = b.last
	} else {
		b.last = now
	}
	tokens := b.lim.TokensAt(now)
	// With exclusive access, AllowN at the same instant sees the same token
	// count; it is still asked so that rate.Limiter's state is what decides.
	allowed := tokens >= 1 && b.lim.AllowN(now, 1)
	if allowed {
		tokens--
	}
	d := Decision{
		Allowed:   allowed,
		Limit:     burst,
		Remaining: wholeTokens(tokens, burst),
		Reset:     durationFor(float64(burst)-tokens, rps),
	}
	if !allowed {
		d.RetryAfter = b.retryAfter(now, tokens, rps)
		d.Reset = max(d.Reset, d.RetryAfter) // not full before one token is back
	}
	return d
}

// retryAfter returns how long after now the bucket, holding tokens < 1 at
// now, will hold one whole token. The float estimate can be a hair short of
// what rate.Limiter's own arithmetic will need, so it is checked against the
// limiter and nudged up by a nanosecond or two if so: a client that waits
// exactly RetryAfter is then served (unless someone else took the token).
func (b *bucket) retryAfter(now time.Time, tokens, rps float64) time.Duration {
	d := max(durationFor(1-tokens, rps), time.Nanosecond)
	for range 3 {
		if d >= maxCheckedWait || b.lim.TokensAt(now.Add(d)) >= 1 {
			break
		}
		d++
	}
	return d
}

// maxCheckedWait is the longest RetryAfter that retryAfter double-checks;
// beyond it (centuries) nanoseconds do not matter and now.Add could
// overflow.
const maxCheckedWait = time.Duration(1) << 62

// wholeTokens converts a token count into the Remaining of a Decision.
func wholeTokens(tokens float64, burst int) int {
	if !(tokens > 0) {
		return 0
	}
	if tokens >= float64(burst) {
		return burst
	}
	return int(tokens)
}

// durationFor returns how long it takes to accumulate tokens at rps, rounded
// to the nearest nanosecond (rounding up would turn float noise such as
// 1.0000000000000009ms into 1.000001ms) and saturated at the largest
// Duration for absurdly slow rates.
func durationFor(tokens, rps float64) time.Duration {
	if !(tokens > 0) {
		return 0
	}
	ns := math.Round(tokens * float64(time.Second) / rps)
	if ns >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}
