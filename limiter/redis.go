package limiter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultRedisTimeout is the per-call budget of a [RedisStore] (and of the
// client [NewRedisClient] builds) when none is given: the spec's default
// redis.timeout.
const DefaultRedisTimeout = 50 * time.Millisecond

// DefaultErrorRetryAfter is the RetryAfter of a request refused because
// Redis failed and the limit's policy is [FailClosed], when
// [RedisLimit.ErrorRetryAfter] is not set.
const DefaultErrorRetryAfter = time.Second

// ErrStoreUnavailable is returned (wrapped) by [Redis.AllowContext] when
// Redis did not decide: it could not be reached, did not answer within the
// store's timeout, refused the credentials, or answered with an error. The
// Decision returned with it follows the limit's [ErrorPolicy]. Classify with
// errors.Is.
var ErrStoreUnavailable = errors.New("limiter: redis store unavailable")

// ErrStoreTimeout is the ErrStoreUnavailable of a call that got no answer
// within the store's timeout, or waited that long for a pooled connection
// (errors.Is matches both). Such a call may
// still have been counted by Redis, once: the script runs atomically, but
// its reply was not waited for.
var ErrStoreTimeout = fmt.Errorf("%w: no answer in time", ErrStoreUnavailable)

// ErrClientTimeouts is returned (wrapped) by [NewRedisStore] for a
// *redis.Client or *redis.ClusterClient that would let one call wait longer
// than the store's timeout: its socket reads and writes follow its own
// Read/WriteTimeout unless ContextTimeoutEnabled is set. [NewRedisClient]
// builds clients that pass.
var ErrClientTimeouts = errors.New("limiter: redis client timeouts exceed the store timeout")

// ErrorPolicy decides the requests of a Redis limit while Redis is
// unavailable: the spec's rate_limit.on_error.
type ErrorPolicy uint8

const (
	// FailOpen allows requests while Redis is unavailable (on_error: allow,
	// the default): the upstream is unprotected, clients are not punished.
	FailOpen ErrorPolicy = iota
	// FailClosed refuses requests while Redis is unavailable (on_error:
	// deny), with RetryAfter [RedisLimit.ErrorRetryAfter].
	FailClosed
)

// String returns the policy's config spelling, "allow" or "deny".
func (p ErrorPolicy) String() string {
	switch p {
	case FailOpen:
		return "allow"
	case FailClosed:
		return "deny"
	}
	return "ErrorPolicy(" + strconv.Itoa(int(p)) + ")"
}

// ParseErrorPolicy maps the config spelling of on_error to a policy: ""
// and "allow" are [FailOpen], "deny" is [FailClosed].
func ParseErrorPolicy(s string) (ErrorPolicy, error) {
	switch s {
	case "", "allow":
		return FailOpen, nil
	case "deny":
		return FailClosed, nil
	}
	return 0, fmt.Errorf("limiter: on_error must be allow or deny, got %q", s)
}

// RedisClientOptions are the connection settings of the spec's redis
// section, for [NewRedisClient].
type RedisClientOptions struct {
	// Addr is host:port of the Redis server, e.g. "127.0.0.1:6379".
	Addr string
	// Username is the ACL user ("" = the default user).
	Username string
	// Password authenticates the connection ("" = none).
	Password string
	// DB is the database selected after connecting (default 0).
	DB int
	// TLS, when non-nil, makes every connection negotiate TLS with this
	// configuration (set ServerName and MinVersion). nil = plain TCP.
	TLS *tls.Config
	// Timeout bounds every step of one call (waiting for a pooled
	// connection, dialling with the handshake, writing, reading). Give the
	// [RedisStore] the same value. Default [DefaultRedisTimeout].
	Timeout time.Duration
	// PoolSize is the number of pooled connections (default: go-redis's,
	// 10 per GOMAXPROCS). More calls than that in flight wait for a
	// connection, at most Timeout.
	PoolSize int
}

// NewRedisClient returns a client configured for rate limiting, to be
// shared by every [RedisStore] on the same Redis and closed by the caller:
//
//   - No call waits longer than Timeout: dial, read, write and pool waits
//     are all bounded by it, and the call's context deadline bounds the
//     sum (ContextTimeoutEnabled).
//   - One attempt per call: no command retries (the script is not
//     idempotent, and a retry would not fit in the budget anyway) and one
//     dial attempt, so a refused connection fails at once instead of
//     backing off.
//   - A Redis restart or failover does not wedge the pool: connections the
//     server closed are detected and dropped when taken from the pool, a
//     connection that timed out or failed is discarded, and new ones are
//     dialled on demand. After PoolSize failed dials in a row go-redis
//     fails calls at once and probes the address once a second in the
//     background, so recovery can lag a restart by up to a second.
//   - RESP2 and no maintenance notifications: the limiter needs no push
//     messages, and RESP2 works with every server version.
//
// go-redis logs failed dials through its own package-level logger
// (redis.SetLogger); route or silence it where the program is wired.
func NewRedisClient(o RedisClientOptions) *redis.Client {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultRedisTimeout
	}
	return redis.NewClient(&redis.Options{
		Addr:                  o.Addr,
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		TLSConfig:             o.TLS,
		Protocol:              2,
		DialTimeout:           timeout,
		DialerRetries:         1,
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		ContextTimeoutEnabled: true,
		PoolTimeout:           timeout,
		PoolSize:              o.PoolSize,
		MaxRetries:            -1,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}

// RedisStoreOptions configure a [RedisStore].
type RedisStoreOptions struct {
	// Client runs the limiter script; required. Usually a client from
	// [NewRedisClient]; any *redis.Client, *redis.ClusterClient or
	// *redis.Ring works, but one of the first two must either set
	// ContextTimeoutEnabled or keep its Read/WriteTimeout within Timeout
	// ([ErrClientTimeouts]). The caller owns it and closes it.
	Client redis.Scripter
	// Timeout is the most one decision may wait on Redis; past it the
	// limit's [ErrorPolicy] decides. Default [DefaultRedisTimeout].
	Timeout time.Duration
	// OnTransition, if set, is called once each time the store's health
	// changes: down=true with the error of the failed call that noticed,
	// down=false (err nil) on the first success after that. Calls are
	// serialised and in order; a call that started before the previous
	// transition cannot cause the next one, so slow in-flight calls do
	// not make it flap. Keep it quick (it runs on a request's path): log.
	OnTransition func(down bool, err error)
	// OnError, if set, is called with the error of every call Redis failed
	// (the same error AllowContext returns), from the calling goroutine;
	// e.g. to count manifold_redis_errors_total. Calls abandoned because
	// the caller's own context ended are not Redis errors and not reported.
	OnError func(err error)
}

// RedisStore is one Redis shared by the limits of several endpoints: the
// client, the per-call timeout and the health that OnTransition reports,
// once per Redis rather than once per endpoint. It is safe for concurrent
// use and starts no goroutines (the client has its own).
type RedisStore struct {
	client       redis.Scripter
	timeout      time.Duration
	onTransition func(down bool, err error)
	onError      func(err error)

	down atomic.Bool // fast path: does the outcome match the current state?
	mu   sync.Mutex  // serialises transitions and their hook
	// changed is when the last transition was recorded; a call that
	// started before it cannot cause the next one. Guarded by mu.
	changed time.Time
}

// NewRedisStore returns a store on o.Client. It does not contact Redis: a
// Redis that is down at start-up is reported by the first decision, like
// any later outage.
func NewRedisStore(o RedisStoreOptions) (*RedisStore, error) {
	if o.Client == nil {
		return nil, errors.New("limiter: RedisStoreOptions.Client is nil")
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultRedisTimeout
	}
	if err := checkClientTimeouts(o.Client, timeout); err != nil {
		return nil, err
	}
	return &RedisStore{
		client:       o.Client,
		timeout:      timeout,
		onTransition: o.OnTransition,
		onError:      o.OnError,
	}, nil
}

func checkClientTimeouts(c redis.Scripter, timeout time.Duration) error {
	var ctxTimeouts bool
	var read, write time.Duration
	switch c := c.(type) {
	case *redis.Client:
		o := c.Options()
		ctxTimeouts, read, write = o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	case *redis.ClusterClient:
		o := c.Options()
		ctxTimeouts, read, write = o.ContextTimeoutEnabled, o.ReadTimeout, o.WriteTimeout
	default:
		return nil
	}
	// After go-redis's normalisation, a timeout <= 0 means none at all.
	if ctxTimeouts || (read > 0 && read <= timeout && write > 0 && write <= timeout) {
		return nil
	}
	return fmt.Errorf("%w: read %v, write %v, store %v, and ContextTimeoutEnabled is false",
		ErrClientTimeouts, read, write, timeout)
}

// Timeout returns the per-call budget in effect.
func (s *RedisStore) Timeout() time.Duration { return s.timeout }

// Down reports whether the last transition was to down: Redis failed a
// call and none has succeeded since. A store that has not been used yet is
// up.
func (s *RedisStore) Down() bool { return s.down.Load() }

// RedisLimit configures one endpoint's limit on a [RedisStore].
type RedisLimit struct {
	// Prefix is prepended to every client key to make the Redis key, so
	// that endpoints (and other users of the same Redis) do not share
	// buckets, e.g. "manifold:rl:orders:". Every replica must use the same
	// prefix, rps and burst for an endpoint to share one budget.
	Prefix string
	// RPS is the refill rate in tokens per second (may be fractional).
	RPS float64
	// Burst is the bucket size, at least 1.
	Burst int
	// OnError decides requests while Redis is unavailable; the zero value
	// is [FailOpen].
	OnError ErrorPolicy
	// ErrorRetryAfter is the RetryAfter of a request refused by
	// [FailClosed]. Default [DefaultErrorRetryAfter].
	ErrorRetryAfter time.Duration
}

// Redis is a rate limit whose buckets live in Redis, so that every gateway
// replica using the same Redis, prefix, rps and burst shares one budget
// per client key. Each decision is one atomic server-side step: a GCRA
// script (see [Redis.AllowContext]) run with EVALSHA, falling back to EVAL
// when the server does not have it cached (NOSCRIPT, e.g. after a
// restart). It reads Redis's own clock (TIME), so the replicas' clocks do
// not matter, and it gives every key a TTL equal to the time its bucket
// takes to refill, so idle clients cost Redis nothing.
//
// It is safe for concurrent use and starts no goroutines.
type Redis struct {
	store    *RedisStore
	prefix   string
	burst    int
	policy   ErrorPolicy
	errRetry time.Duration
	interval time.Duration // time to earn one token: what a fresh bucket's Reset is
	args     []any         // the script's ARGV, formatted once
}

// Compile-time check that Redis satisfies Store.
var _ Store = (*Redis)(nil)

// NewLimiter returns a Redis limit on s. It returns an error wrapping
// [ErrInvalidRate] or [ErrInvalidBurst] for values [Validate] rejects, or
// for an unknown OnError.
func (s *RedisStore) NewLimiter(l RedisLimit) (*Redis, error) {
	if err := Validate(l.RPS, l.Burst); err != nil {
		return nil, err
	}
	if l.OnError != FailOpen && l.OnError != FailClosed {
		return nil, fmt.Errorf("limiter: unknown OnError %v", l.OnError)
	}
	errRetry := l.ErrorRetryAfter
	if errRetry <= 0 {
		errRetry = DefaultErrorRetryAfter
	}
	return &Redis{
		store:    s,
		prefix:   l.Prefix,
		burst:    l.Burst,
		policy:   l.OnError,
		errRetry: errRetry,
		interval: max(durationFor(1, l.RPS), time.Nanosecond),
		args: []any{
			strconv.FormatFloat(1e6/l.RPS, 'f', -1, 64), // µs per token; no exponent, for every Lua
			strconv.Itoa(l.Burst),
		},
	}, nil
}

// gcraScript is the one server-side step of a decision.
//
// GCRA keeps, per key, a single number: the theoretical arrival time (TAT),
// the instant at which the bucket will be full again. Its "debt" at time
// now is TAT-now, clamped to [0, burst*interval] (an absent or expired key
// is a full bucket, debt 0); the bucket holds burst - debt/interval tokens.
// A request is allowed when one whole token is there (debt+interval <=
// burst*interval), and then the debt grows by one interval; a refused
// request changes nothing, like the local buckets. Times are microseconds
// since 2025-01-01 on Redis's clock (TIME), kept as doubles; slack (50ns,
// far below TIME's 1µs resolution) absorbs their rounding so that, for
// example, the burst-th request of an instant is not refused by 1e-9 of a
// token.
//
// KEYS[1] is the bucket; ARGV[1] the interval (µs per token, 1e6/rps),
// ARGV[2] the burst. It returns {allowed (0|1), remaining whole tokens,
// retry-after ns (0 when allowed), reset ns (time until full)}, durations
// rounded up to the nanosecond. The TAT is stored with 17 significant
// digits (exact for a double) and a PX TTL of the debt, rounded up to the
// millisecond: the key disappears when the bucket is full again.
const gcraScript = `
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = (tonumber(t[1]) - 1735689600) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local full = burst * interval
local slack = math.min(0.05, interval / 1000)
local debt = 0
local tat = tonumber(redis.call('GET', KEYS[1]) or '')
if tat then
  debt = tat - now
  if debt < 0 then debt = 0 elseif debt > full then debt = full end
end
local allowed = 0
if debt + interval <= full + slack then
  allowed = 1
  debt = debt + interval
  redis.call('SET', KEYS[1], string.format('%.17g', now + debt),
    'PX', string.format('%d', math.ceil(debt / 1000)))
end
local function ns(us)
  local v = math.ceil(us * 1000)
  if v < 0 then return 0 end
  if v > 9e18 then return 9e18 end
  return v
end
local retry = 0
if allowed == 0 then retry = math.max(ns(debt + interval - full), 1) end
return {allowed, math.floor((full - debt + slack) / interval), retry, ns(debt)}
`

var gcra = redis.NewScript(gcraScript)

// AllowContext decides one request for key in one Redis round trip, which
// waits at most the store's timeout (less if ctx ends sooner). Keys longer
// than [MaxKeyLen] are digested first, as by [PerKey].
//
// When Redis decides, err is nil and the Decision has exactly the meaning
// of the local buckets': Allowed; Limit = burst; Remaining whole tokens
// left; RetryAfter > 0 when refused (a retry that much later is allowed if
// nobody takes the token first), 0 when allowed; Reset, the time until the
// bucket is full.
//
// When Redis does not decide, err is non-nil and the Decision follows the
// limit's OnError: [FailOpen] allows as a full bucket would (Remaining
// burst-1, Reset one token's time), [FailClosed] refuses with Remaining 0
// and RetryAfter = Reset = ErrorRetryAfter. err wraps [ErrStoreUnavailable]
// (and [ErrStoreTimeout] for a timeout) when Redis failed; such failures
// go to the store's OnError and health. If ctx itself ended, err wraps its
// cause instead and nothing is reported: the caller gave up, not Redis.
func (r *Redis) AllowContext(ctx context.Context, key string) (Decision, error) {
	if len(key) > MaxKeyLen {
		key = digestKey(key)
	}
	allowed, remaining, retry, reset, err := r.store.run(ctx, r.prefix+key, r.args)
	if err != nil {
		return r.onError(), err
	}
	d := Decision{
		Allowed:   allowed,
		Limit:     r.burst,
		Remaining: min(max(int(remaining), 0), r.burst),
		Reset:     time.Duration(reset),
	}
	if !allowed {
		d.RetryAfter = max(time.Duration(retry), time.Nanosecond)
		d.Reset = max(d.Reset, d.RetryAfter)
	}
	return d, nil
}

// onError is the Decision of a call Redis did not decide.
func (r *Redis) onError() Decision {
	if r.policy == FailClosed {
		return Decision{Limit: r.burst, RetryAfter: r.errRetry, Reset: r.errRetry}
	}
	return Decision{Allowed: true, Limit: r.burst, Remaining: r.burst - 1, Reset: r.interval}
}

// run executes the script for key within the store's timeout, reports the
// outcome to the health tracker and hooks, and returns the parsed reply.
func (s *RedisStore) run(parent context.Context, key string, args []any) (allowed bool, remaining, retry, reset int64, err error) {
	if err := parent.Err(); err != nil {
		return false, 0, 0, 0, fmt.Errorf("limiter: redis call abandoned: %w", context.Cause(parent))
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(parent, s.timeout)
	defer cancel()
	vals, err := gcra.Run(ctx, s.client, []string{key}, args...).Slice()
	if err == nil {
		allowed, remaining, retry, reset, err = parseReply(vals)
	}
	if err == nil {
		s.observe(start, nil)
		return allowed, remaining, retry, reset, nil
	}
	if parent.Err() != nil {
		return false, 0, 0, 0, fmt.Errorf("limiter: redis call abandoned: %w (%w)", context.Cause(parent), err)
	}
	if ctx.Err() != nil || isTimeout(err) || errors.Is(err, redis.ErrPoolTimeout) {
		err = fmt.Errorf("%w after %v: %w", ErrStoreTimeout, s.timeout, err)
	} else {
		err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	if s.onError != nil {
		s.onError(err)
	}
	s.observe(start, err)
	return false, 0, 0, 0, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errBadReply reports a script reply of the wrong shape (not our script,
// or a proxy in the way).
var errBadReply = errors.New("unexpected script reply")

func parseReply(vals []any) (allowed bool, remaining, retry, reset int64, err error) {
	if len(vals) != 4 {
		return false, 0, 0, 0, fmt.Errorf("%w: %d values", errBadReply, len(vals))
	}
	var n [4]int64
	for i, v := range vals {
		x, ok := v.(int64)
		if !ok {
			return false, 0, 0, 0, fmt.Errorf("%w: value %d is %T", errBadReply, i, v)
		}
		n[i] = x
	}
	return n[0] == 1, n[1], n[2], n[3], nil
}

// observe records the outcome of a call that started at start: a failure
// while up, or a success while down, is a transition, unless the call
// started before the previous transition (it is old news).
func (s *RedisStore) observe(start time.Time, err error) {
	down := err != nil
	if s.down.Load() == down {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down.Load() == down || start.Before(s.changed) {
		return
	}
	s.changed = time.Now()
	s.down.Store(down)
	if s.onTransition != nil {
		s.onTransition(down, err)
	}
}
