package limiter_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/manifold-gw/manifold/internal/redistest"
	"github.com/manifold-gw/manifold/limiter"
)

// transitions records a store's hooks.
type transitions struct {
	mu      sync.Mutex
	seq     []bool // down=true, up=false, in call order
	downErr error
	errs    atomic.Int64 // OnError calls
}

func (tr *transitions) onTransition(down bool, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.seq = append(tr.seq, down)
	if down {
		tr.downErr = err
	}
}

func (tr *transitions) counts() (downs, ups int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, d := range tr.seq {
		if d {
			downs++
		} else {
			ups++
		}
	}
	return downs, ups
}

func (tr *transitions) want(t *testing.T, downs, ups int) {
	t.Helper()
	d, u := tr.counts()
	if d != downs || u != ups {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		t.Fatalf("transitions %v: %d down, %d up; want %d down, %d up", tr.seq, d, u, downs, ups)
	}
}

// newStore returns a store on c whose hooks tr records.
func newStore(t testing.TB, c redis.Scripter, timeout time.Duration, tr *transitions) *limiter.RedisStore {
	t.Helper()
	o := limiter.RedisStoreOptions{Client: c, Timeout: timeout}
	if tr != nil {
		o.OnTransition = tr.onTransition
		o.OnError = func(error) { tr.errs.Add(1) }
	}
	s, err := limiter.NewRedisStore(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newLimit(t testing.TB, s *limiter.RedisStore, l limiter.RedisLimit) *limiter.Redis {
	t.Helper()
	r, err := s.NewLimiter(l)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// newMiniredis starts an in-process fake Redis for the fast tests, with
// the same goroutine check at the end as startRedis.
func newMiniredis(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	t.Cleanup(func() { redistest.WaitClientGoroutines(t) })
	mr := miniredis.RunT(t)
	// A generous timeout: these tests are about arithmetic, not time.
	c := closeOnCleanup(t, limiter.NewRedisClient(limiter.RedisClientOptions{Addr: mr.Addr(), Timeout: 5 * time.Second}))
	return mr, c
}

func allow(t testing.TB, r *limiter.Redis, key string) limiter.Decision {
	t.Helper()
	d, err := r.AllowContext(context.Background(), key)
	if err != nil {
		t.Fatalf("AllowContext(%q): %v", key, err)
	}
	return d
}

// within reports whether got is want ± tol.
func within(got, want, tol time.Duration) bool { return got >= want-tol && got <= want+tol }

// parityCases are rate/burst pairs the Redis and local buckets must decide
// alike; interval 1/rps includes values that are not whole microseconds.
var parityCases = []struct {
	rps   float64
	burst int
}{
	{1, 3}, {0.5, 2}, {10, 5}, {2.5, 1}, {3, 4}, {1000, 100}, {7, 1},
}

// parityGaps is a request pattern in units of the interval (1/rps):
// a burst and more at one instant, trickles of a third of an interval,
// a long pause, bursts again.
func parityGaps(burst int) []float64 {
	var g []float64
	for range burst + 2 {
		g = append(g, 0)
	}
	g = append(g, 1.0/3, 1.0/3, 1.0/3, 1.0/3, 0.5, 2, 0, 0, 0)
	g = append(g, float64(burst)+1)
	for range burst + 1 {
		g = append(g, 0)
	}
	g = append(g, 0.25, 0.25, 0.25, 0.25, 0.9, 0.1, 0.01)
	return g
}

// With Redis's clock set (miniredis TIME follows SetTime), the GCRA script
// decides exactly what the local Global bucket decides at the same
// instants: same Allowed, Limit and Remaining, RetryAfter and Reset to the
// microsecond (Redis's clock resolution).
func TestRedisParityWithGlobalSyntheticClock(t *testing.T) {
	mr, c := newMiniredis(t)
	s := newStore(t, c, 5*time.Second, nil)
	for _, pc := range parityCases {
		t.Run(fmt.Sprintf("rps=%v/burst=%d", pc.rps, pc.burst), func(t *testing.T) {
			r := newLimit(t, s, limiter.RedisLimit{Prefix: t.Name() + ":", RPS: pc.rps, Burst: pc.burst})
			g := limiter.NewGlobal(pc.rps, pc.burst)
			interval := time.Duration(float64(time.Second) / pc.rps)
			// Start somewhere in 2025, like Redis's epoch; whole µs only,
			// which is all TIME can say.
			now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
			var allowedN, refusedN int
			for i, gap := range parityGaps(pc.burst) {
				now = now.Add(time.Duration(gap * float64(interval)).Truncate(time.Microsecond))
				mr.SetTime(now)
				got := allow(t, r, "k")
				want := g.AllowAt("", now)
				if got.Allowed != want.Allowed || got.Limit != want.Limit || got.Remaining != want.Remaining ||
					!within(got.RetryAfter, want.RetryAfter, time.Microsecond) || !within(got.Reset, want.Reset, time.Microsecond) ||
					(got.RetryAfter > 0) != !got.Allowed {
					t.Fatalf("step %d (gap %.3g intervals): redis %+v, local %+v", i, gap, got, want)
				}
				if got.Allowed {
					allowedN++
				} else {
					refusedN++
				}
			}
			if allowedN == 0 || refusedN == 0 {
				t.Fatalf("pattern exercised %d allowed, %d refused: want both", allowedN, refusedN)
			}
		})
	}
}

// A key lives exactly as long as its bucket takes to refill: after that it
// would be indistinguishable from a fresh (full) bucket anyway. Refused
// requests leave it alone.
func TestRedisKeyTTL(t *testing.T) {
	mr, c := newMiniredis(t)
	s := newStore(t, c, 5*time.Second, nil)
	r := newLimit(t, s, limiter.RedisLimit{Prefix: "ttl:", RPS: 4, Burst: 3}) // 250ms per token
	mr.SetTime(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC))

	if d := allow(t, r, "k"); d.Reset != 250*time.Millisecond {
		t.Fatalf("first decision %+v: want Reset 250ms", d)
	}
	if ttl := mr.TTL("ttl:k"); ttl != 250*time.Millisecond {
		t.Fatalf("TTL after one request = %v, want 250ms", ttl)
	}
	allow(t, r, "k")
	allow(t, r, "k")
	if ttl := mr.TTL("ttl:k"); ttl != 750*time.Millisecond {
		t.Fatalf("TTL of an empty bucket = %v, want 750ms (burst/rps)", ttl)
	}
	if d := allow(t, r, "k"); d.Allowed {
		t.Fatalf("4th request at one instant allowed: %+v", d)
	}
	if ttl := mr.TTL("ttl:k"); ttl != 750*time.Millisecond {
		t.Fatalf("TTL after a refusal = %v, want it untouched (750ms)", ttl)
	}
	mr.FastForward(750 * time.Millisecond)
	if mr.Exists("ttl:k") {
		t.Fatal("key still there after its bucket refilled")
	}
}

// Keys are namespaced by Prefix, and long client keys are digested as in
// PerKey, so a hostile key cannot make Redis hold megabytes per client.
func TestRedisKeys(t *testing.T) {
	mr, c := newMiniredis(t)
	s := newStore(t, c, 5*time.Second, nil)
	a := newLimit(t, s, limiter.RedisLimit{Prefix: "a:", RPS: 1, Burst: 1})
	b := newLimit(t, s, limiter.RedisLimit{Prefix: "b:", RPS: 1, Burst: 1})
	if !allow(t, a, "k").Allowed || !allow(t, b, "k").Allowed || !allow(t, a, "j").Allowed {
		t.Fatal("distinct prefixes or keys share a bucket")
	}
	if allow(t, a, "k").Allowed {
		t.Fatal("second request on a:k allowed with burst 1")
	}
	long := strings.Repeat("x", limiter.MaxKeyLen+1)
	if !allow(t, a, long).Allowed || allow(t, a, long).Allowed {
		t.Fatal("long key: want allowed then refused")
	}
	for _, k := range mr.Keys() {
		if len(k) > len("a:")+limiter.MaxKeyLen {
			t.Fatalf("Redis key of %d bytes stored for a long client key", len(k))
		}
	}
	if n := len(mr.Keys()); n != 4 {
		t.Fatalf("Redis holds %d keys %q, want 4", n, mr.Keys())
	}
}

// A Redis error (here WRONGTYPE: someone else's hash under our key) is an
// unavailable store: the policy decides, the error is classifiable,
// OnError counts it, and health goes down once and up once.
func TestRedisServerErrorPolicyAndHealth(t *testing.T) {
	mr, c := newMiniredis(t)
	tr := &transitions{}
	s := newStore(t, c, 5*time.Second, tr)
	open := newLimit(t, s, limiter.RedisLimit{Prefix: "p:", RPS: 1, Burst: 5})
	closed := newLimit(t, s, limiter.RedisLimit{Prefix: "p:", RPS: 1, Burst: 5, OnError: limiter.FailClosed, ErrorRetryAfter: 3 * time.Second})
	mr.HSet("p:k", "field", "value")

	for range 3 {
		d, err := open.AllowContext(context.Background(), "k")
		if !errors.Is(err, limiter.ErrStoreUnavailable) || errors.Is(err, limiter.ErrStoreTimeout) || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Fatalf("err = %v, want ErrStoreUnavailable (not a timeout) mentioning WRONGTYPE", err)
		}
		if want := (limiter.Decision{Allowed: true, Limit: 5, Remaining: 4, Reset: time.Second}); d != want {
			t.Fatalf("allow policy: %+v, want %+v", d, want)
		}
		d, err = closed.AllowContext(context.Background(), "k")
		if !errors.Is(err, limiter.ErrStoreUnavailable) {
			t.Fatalf("err = %v, want ErrStoreUnavailable", err)
		}
		if want := (limiter.Decision{Limit: 5, RetryAfter: 3 * time.Second, Reset: 3 * time.Second}); d != want {
			t.Fatalf("deny policy: %+v, want %+v", d, want)
		}
	}
	tr.want(t, 1, 0)
	if !s.Down() || !errors.Is(tr.downErr, limiter.ErrStoreUnavailable) {
		t.Fatalf("Down() = %v, down error %v", s.Down(), tr.downErr)
	}
	if n := tr.errs.Load(); n != 6 {
		t.Fatalf("OnError called %d times, want 6 (once per failed call)", n)
	}

	mr.Del("p:k")
	for range 3 {
		if d := allow(t, open, "k"); !d.Allowed {
			t.Fatalf("after recovery: %+v", d)
		}
	}
	tr.want(t, 1, 1)
	if s.Down() {
		t.Fatal("Down() after recovery")
	}
}

// A caller that gives up is not a Redis failure: no OnError, no
// transition, and the error says why.
func TestRedisCallerContextEnded(t *testing.T) {
	_, c := newMiniredis(t)
	tr := &transitions{}
	s := newStore(t, c, 5*time.Second, tr)
	r := newLimit(t, s, limiter.RedisLimit{Prefix: "c:", RPS: 1, Burst: 1, OnError: limiter.FailClosed})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := r.AllowContext(ctx, "k")
	if !errors.Is(err, context.Canceled) || errors.Is(err, limiter.ErrStoreUnavailable) {
		t.Fatalf("err = %v, want context.Canceled and not ErrStoreUnavailable", err)
	}
	if d.Allowed {
		t.Fatalf("deny policy allowed: %+v", d)
	}
	tr.want(t, 0, 0)
	if tr.errs.Load() != 0 {
		t.Fatal("OnError called for the caller's own cancellation")
	}
}

func TestRedisConstructors(t *testing.T) {
	t.Run("nil client", func(t *testing.T) {
		if _, err := limiter.NewRedisStore(limiter.RedisStoreOptions{}); err == nil {
			t.Fatal("want an error")
		}
	})
	t.Run("client timeouts", func(t *testing.T) {
		cases := []struct {
			name string
			o    redis.Options
			ok   bool
		}{
			{"defaults (5s reads)", redis.Options{}, false},
			{"context deadlines", redis.Options{ContextTimeoutEnabled: true}, true},
			{"short socket timeouts", redis.Options{ReadTimeout: 40 * time.Millisecond, WriteTimeout: 40 * time.Millisecond}, true},
			{"no read timeout", redis.Options{ReadTimeout: -1, WriteTimeout: 40 * time.Millisecond}, false},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				o := tc.o
				o.Addr = "127.0.0.1:1" // never dialled
				c := closeOnCleanup(t, redis.NewClient(&o))
				_, err := limiter.NewRedisStore(limiter.RedisStoreOptions{Client: c, Timeout: 50 * time.Millisecond})
				if tc.ok != (err == nil) || (err != nil && !errors.Is(err, limiter.ErrClientTimeouts)) {
					t.Fatalf("err = %v, want ok=%v", err, tc.ok)
				}
			})
		}
		c := closeOnCleanup(t, limiter.NewRedisClient(limiter.RedisClientOptions{Addr: "127.0.0.1:1", Timeout: 20 * time.Millisecond}))
		if s, err := limiter.NewRedisStore(limiter.RedisStoreOptions{Client: c, Timeout: 20 * time.Millisecond}); err != nil || s.Timeout() != 20*time.Millisecond {
			t.Fatalf("NewRedisClient's client rejected: %v", err)
		}
		if s, _ := limiter.NewRedisStore(limiter.RedisStoreOptions{Client: c}); s.Timeout() != limiter.DefaultRedisTimeout {
			t.Fatalf("default timeout %v, want %v", s.Timeout(), limiter.DefaultRedisTimeout)
		}
	})
	t.Run("limits", func(t *testing.T) {
		c := closeOnCleanup(t, limiter.NewRedisClient(limiter.RedisClientOptions{Addr: "127.0.0.1:1"}))
		s := newStore(t, c, 5*time.Second, nil)
		cases := []struct {
			l    limiter.RedisLimit
			want error
		}{
			{limiter.RedisLimit{RPS: 0, Burst: 1}, limiter.ErrInvalidRate},
			{limiter.RedisLimit{RPS: 1, Burst: 0}, limiter.ErrInvalidBurst},
			{limiter.RedisLimit{RPS: 1, Burst: 1, OnError: 7}, nil},
		}
		for _, tc := range cases {
			_, err := s.NewLimiter(tc.l)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("NewLimiter(%+v) = %v, want %v", tc.l, err, tc.want)
			}
		}
	})
}

func TestParseErrorPolicy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want limiter.ErrorPolicy
		ok   bool
	}{
		{"", limiter.FailOpen, true},
		{"allow", limiter.FailOpen, true},
		{"deny", limiter.FailClosed, true},
		{"Deny", 0, false},
		{"block", 0, false},
	} {
		got, err := limiter.ParseErrorPolicy(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseErrorPolicy(%q) = %v, %v", tc.in, got, err)
		}
		if tc.ok && got.String() != map[limiter.ErrorPolicy]string{limiter.FailOpen: "allow", limiter.FailClosed: "deny"}[got] {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

func TestLocalStore(t *testing.T) {
	s := limiter.LocalStore(limiter.NewGlobal(1, 1))
	d1, err1 := s.AllowContext(context.Background(), "k")
	d2, err2 := s.AllowContext(context.Background(), "k")
	if err1 != nil || err2 != nil || !d1.Allowed || d2.Allowed || d2.RetryAfter <= 0 {
		t.Fatalf("got %+v %v, %+v %v", d1, err1, d2, err2)
	}
}

// ---- Against a real redis-server ----

// realTimeout is the store timeout of the outage tests; callMargin is what
// a call may take beyond it (scheduling under -race on a busy machine).
const (
	realTimeout = 300 * time.Millisecond
	callMargin  = 300 * time.Millisecond
)

// Two replicas (two clients, two stores, two limiters with the same
// prefix, rps and burst) hammering one key concurrently get exactly burst
// requests through in total; every allowed decision saw a distinct
// Remaining (the script is atomic), and refusals say to retry in about
// one interval.
func TestRedisReplicasShareOneBudget(t *testing.T) {
	srv := startRedis(t)
	const (
		burst    = 20
		rps      = 0.5 // 2s per token: nothing refills during the test
		interval = 2 * time.Second
		workers  = 4 // per replica
		calls    = 10
	)
	var replicas [2]*limiter.Redis
	for i := range replicas {
		c := srv.client(t, limiter.RedisClientOptions{Timeout: time.Second})
		replicas[i] = newLimit(t, newStore(t, c, time.Second, nil), limiter.RedisLimit{Prefix: "shared:", RPS: rps, Burst: burst})
	}
	results := make([][]limiter.Decision, 2*workers)
	errs := make([]error, 2*workers)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range results {
		wg.Go(func() {
			r := replicas[w%2]
			for range calls {
				d, err := r.AllowContext(context.Background(), "client-1")
				if err != nil {
					errs[w] = err
					return
				}
				results[w] = append(results[w], d)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if elapsed > interval/2 {
		t.Fatalf("%v for %d calls: too slow to tell refill from sharing", elapsed, 2*workers*calls)
	}
	seen := make(map[int]bool)
	var allowedN int
	for _, ds := range results {
		for _, d := range ds {
			if d.Limit != burst {
				t.Fatalf("Limit %d, want %d", d.Limit, burst)
			}
			if d.Allowed {
				allowedN++
				if seen[d.Remaining] {
					t.Fatalf("two allowed decisions with Remaining %d: not atomic", d.Remaining)
				}
				seen[d.Remaining] = true
				continue
			}
			if d.Remaining != 0 || d.RetryAfter > interval || d.RetryAfter < interval-elapsed-time.Millisecond || d.Reset < d.RetryAfter {
				t.Fatalf("refusal %+v: want Remaining 0, RetryAfter in [%v, %v]", d, interval-elapsed, interval)
			}
		}
	}
	if allowedN != burst {
		t.Fatalf("%d requests allowed across both replicas, want exactly burst=%d", allowedN, burst)
	}
}

// The bucket refills on Redis's clock: polled until allowed, a refused
// client gets in no earlier than RetryAfter said; waiting exactly
// RetryAfter is enough; after Reset the bucket is full and its key gone.
func TestRedisRefill(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t, limiter.RedisClientOptions{Timeout: time.Second})
	r := newLimit(t, newStore(t, c, time.Second, nil), limiter.RedisLimit{Prefix: "refill:", RPS: 20, Burst: 2}) // 50ms per token
	const interval = 50 * time.Millisecond

	allow(t, r, "k")
	allow(t, r, "k")
	before := time.Now()
	d := allow(t, r, "k")
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > interval {
		t.Fatalf("3rd request: %+v, want refused with 0 < RetryAfter <= %v", d, interval)
	}
	retry := d.RetryAfter
	deadline := time.Now().Add(5 * time.Second)
	for {
		d = allow(t, r, "k")
		if d.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not allowed again within 5s; last %+v", d)
		}
		time.Sleep(time.Millisecond)
	}
	if waited := time.Since(before); waited < retry {
		t.Fatalf("allowed again after %v, before the RetryAfter of %v", waited, retry)
	}
	if d.Remaining != 0 {
		t.Fatalf("first allowed after refill: %+v, want Remaining 0", d)
	}

	// Empty again: wait exactly RetryAfter (measured from after the reply,
	// so at least that much later on Redis's clock), and it is allowed.
	d = allow(t, r, "k")
	if d.Allowed {
		t.Fatalf("bucket not empty: %+v", d)
	}
	time.Sleep(d.RetryAfter)
	if d = allow(t, r, "k"); !d.Allowed {
		t.Fatalf("refused after waiting RetryAfter: %+v", d)
	}

	// After Reset the bucket is full, and Redis has forgotten the key.
	if pttl := srv.do(t, "PTTL", "refill:k").(int64); pttl <= 0 || pttl > interval.Milliseconds()*2 {
		t.Fatalf("PTTL %dms, want within (0, %d]", pttl, interval.Milliseconds()*2)
	}
	deadline = time.Now().Add(d.Reset + 5*time.Second)
	for srv.do(t, "EXISTS", "refill:k").(int64) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("key not expired long after its Reset")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d = allow(t, r, "k"); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after expiry: %+v, want a full bucket (Remaining 1)", d)
	}
}

// On a real server, where time passes between calls, Redis decides like
// the local Global bucket fed the same instants: same Allowed, Limit and
// Remaining, RetryAfter and Reset within the calls' own duration (the two
// clocks read at slightly different moments).
func TestRedisParityWithGlobalRealServer(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t, limiter.RedisClientOptions{Timeout: time.Second})
	s := newStore(t, c, time.Second, nil)
	for _, pc := range []struct {
		rps   float64
		burst int
	}{{1, 5}, {0.5, 1}, {2.5, 3}, {0.1, 10}} {
		t.Run(fmt.Sprintf("rps=%v/burst=%d", pc.rps, pc.burst), func(t *testing.T) {
			r := newLimit(t, s, limiter.RedisLimit{Prefix: t.Name() + ":", RPS: pc.rps, Burst: pc.burst})
			g := limiter.NewGlobal(pc.rps, pc.burst)
			var first time.Time
			tol := 2 * time.Millisecond
			for i := range 2*pc.burst + 3 {
				before := time.Now()
				if i == 0 {
					first = before
				}
				got := allow(t, r, "k")
				took := time.Since(before)
				tol += took
				want := g.AllowAt("", t0.Add(before.Sub(first)))
				if got.Allowed != want.Allowed || got.Limit != want.Limit || got.Remaining != want.Remaining ||
					!within(got.RetryAfter, want.RetryAfter, tol) || !within(got.Reset, want.Reset, tol) {
					t.Fatalf("call %d: redis %+v, local %+v (tolerance %v)", i, got, want, tol)
				}
			}
			if since := time.Since(first); time.Duration(float64(since)*pc.rps) > 100*time.Millisecond {
				t.Fatalf("sequence took %v, too long for a tenth of a token", since)
			}
		})
	}
}

// After SCRIPT FLUSH (what a restart or failover does to the script
// cache), EVALSHA answers NOSCRIPT and the call falls back to EVAL: no
// error, and the bucket carries on.
func TestRedisScriptFlushed(t *testing.T) {
	srv := startRedis(t)
	c := srv.client(t, limiter.RedisClientOptions{Timeout: time.Second})
	tr := &transitions{}
	r := newLimit(t, newStore(t, c, time.Second, tr), limiter.RedisLimit{Prefix: "flush:", RPS: 0.1, Burst: 3})
	if d := allow(t, r, "k"); d.Remaining != 2 {
		t.Fatalf("%+v", d)
	}
	srv.do(t, "SCRIPT", "FLUSH")
	if d := allow(t, r, "k"); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("after SCRIPT FLUSH: %+v, want allowed with Remaining 1", d)
	}
	tr.want(t, 0, 0)
}

// trafficRecord is one call made by the traffic generator.
type trafficRecord struct {
	phase int32
	open  bool // which limit: FailOpen or FailClosed
	start time.Time
	took  time.Duration
	d     limiter.Decision
	err   error
}

// traffic runs workers goroutines calling the two limits in turn until
// stopped, each recording into its own slice, tagged with the phase in
// effect when the call started.
type traffic struct {
	phase   atomic.Int32
	stop    chan struct{}
	wg      sync.WaitGroup
	records [][]trafficRecord
}

func startTraffic(open, closed *limiter.Redis, workers int) *traffic {
	tf := &traffic{stop: make(chan struct{}), records: make([][]trafficRecord, workers)}
	for w := range workers {
		tf.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-tf.stop:
					return
				default:
				}
				r, isOpen := open, true
				if i%2 == 1 {
					r, isOpen = closed, false
				}
				rec := trafficRecord{phase: tf.phase.Load(), open: isOpen, start: time.Now()}
				rec.d, rec.err = r.AllowContext(context.Background(), fmt.Sprintf("client-%d", w))
				rec.took = time.Since(rec.start)
				tf.records[w] = append(tf.records[w], rec)
				time.Sleep(time.Millisecond)
			}
		})
	}
	return tf
}

func (tf *traffic) Stop() []trafficRecord {
	close(tf.stop)
	tf.wg.Wait()
	var all []trafficRecord
	for _, rs := range tf.records {
		all = append(all, rs...)
	}
	return all
}

// checkFailure asserts that a call Redis did not decide was decided by the
// policy of its limit and said so.
func checkFailure(t *testing.T, rec trafficRecord, burst int, interval time.Duration, want error) {
	t.Helper()
	if !errors.Is(rec.err, want) {
		t.Fatalf("phase %d: err = %v, want %v", rec.phase, rec.err, want)
	}
	var wantD limiter.Decision
	if rec.open {
		wantD = limiter.Decision{Allowed: true, Limit: burst, Remaining: burst - 1, Reset: interval}
	} else {
		wantD = limiter.Decision{Limit: burst, RetryAfter: time.Second, Reset: time.Second}
	}
	if rec.d != wantD {
		t.Fatalf("phase %d, open=%v: decision %+v, want %+v", rec.phase, rec.open, rec.d, wantD)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Redis killed under traffic: every call still returns within the timeout
// (plus a scheduling margin), each limit's policy decides, health goes down
// exactly once. Redis started again on the same port: calls succeed again,
// health comes up exactly once, and the pool (smaller than the number of
// concurrent callers) is not wedged.
func TestRedisOutageAndRestart(t *testing.T) {
	srv := startRedis(t)
	const burst = 1_000_000
	c := srv.client(t, limiter.RedisClientOptions{Timeout: realTimeout, PoolSize: 4})
	tr := &transitions{}
	s := newStore(t, c, realTimeout, tr)
	open := newLimit(t, s, limiter.RedisLimit{Prefix: "out:open:", RPS: 1000, Burst: burst})
	closed := newLimit(t, s, limiter.RedisLimit{Prefix: "out:closed:", RPS: 1000, Burst: burst, OnError: limiter.FailClosed})

	const (
		phaseUp = iota
		phaseStopping
		phaseDown
		phaseStarting
		phaseUpAgain
	)
	tf := startTraffic(open, closed, 8)
	var records []trafficRecord
	defer func() {
		if records == nil {
			tf.Stop()
		}
	}()
	time.Sleep(100 * time.Millisecond) // some traffic while up

	stopAt := time.Now()
	tf.phase.Store(phaseStopping)
	srv.Stop()
	tf.phase.Store(phaseDown)
	waitFor(t, "the down transition", 5*time.Second, s.Down)
	time.Sleep(300 * time.Millisecond) // traffic while down

	tf.phase.Store(phaseStarting)
	srv.Start()
	waitFor(t, "the up transition", 10*time.Second, func() bool { return !s.Down() })
	tf.phase.Store(phaseUpAgain)
	time.Sleep(300 * time.Millisecond) // traffic after recovery
	records = tf.Stop()

	perPhase := map[int32]int{}
	var slowest time.Duration
	for _, rec := range records {
		perPhase[rec.phase]++
		slowest = max(slowest, rec.took)
		if rec.took > realTimeout+callMargin {
			t.Fatalf("phase %d: a call took %v, want <= %v + %v (err %v)", rec.phase, rec.took, realTimeout, callMargin, rec.err)
		}
		switch rec.phase {
		case phaseUp, phaseUpAgain:
			if rec.phase == phaseUp && rec.err != nil && !rec.start.Add(rec.took).Before(stopAt) {
				// In flight when Redis was killed: it may fail, by policy.
				checkFailure(t, rec, burst, time.Millisecond, limiter.ErrStoreUnavailable)
				continue
			}
			if rec.err != nil || !rec.d.Allowed || rec.d.Limit != burst {
				t.Fatalf("phase %d (up): %+v, %v", rec.phase, rec.d, rec.err)
			}
		case phaseStopping:
			if rec.err != nil {
				checkFailure(t, rec, burst, time.Millisecond, limiter.ErrStoreUnavailable)
			}
		case phaseDown:
			checkFailure(t, rec, burst, time.Millisecond, limiter.ErrStoreUnavailable)
		}
	}
	for _, p := range []int32{phaseUp, phaseDown, phaseUpAgain} {
		if perPhase[p] < 10 {
			t.Fatalf("only %d calls in phase %d: %v", perPhase[p], p, perPhase)
		}
	}
	tr.want(t, 1, 1)
	if int(tr.errs.Load()) < perPhase[phaseDown] {
		t.Fatalf("OnError called %d times, fewer than the %d failed calls", tr.errs.Load(), perPhase[phaseDown])
	}
	t.Logf("calls per phase %v, slowest %v, OnError %d, down error: %v", perPhase, slowest, tr.errs.Load(), tr.downErr)
}

// A Redis slower than the timeout (DEBUG SLEEP stalls the whole server):
// calls return within the timeout with the policy's decision and
// ErrStoreTimeout; afterwards Redis decides again; one down, one up.
//
// When exactly the server sleeps is known only within bounds: it starts
// after DEBUG is sent (sent) and no later than the first timed-out call
// could have met it (firstFail + timeout), and lasts the full stall. Calls
// started from then until sent + stall - timeout cannot have been answered.
func TestRedisSlowerThanTimeout(t *testing.T) {
	srv := startRedis(t, "--enable-debug-command", "local")
	const (
		burst = 1_000_000
		stall = 1500 * time.Millisecond
	)
	c := srv.client(t, limiter.RedisClientOptions{Timeout: realTimeout, PoolSize: 4})
	tr := &transitions{}
	s := newStore(t, c, realTimeout, tr)
	open := newLimit(t, s, limiter.RedisLimit{Prefix: "slow:open:", RPS: 1000, Burst: burst})
	closed := newLimit(t, s, limiter.RedisLimit{Prefix: "slow:closed:", RPS: 1000, Burst: burst, OnError: limiter.FailClosed})
	allow(t, open, "warm-up")

	const (
		phaseBefore = iota
		phaseStall  // from DEBUG sent until Redis is seen up again
		phaseAfter
	)
	tf := startTraffic(open, closed, 8)
	time.Sleep(50 * time.Millisecond)
	tf.phase.Store(phaseStall)
	sent := time.Now()
	sleepDone := make(chan struct{})
	go func() {
		defer close(sleepDone)
		srv.do(t, "DEBUG", "SLEEP", strconv.FormatFloat(stall.Seconds(), 'f', -1, 64))
	}()
	waitFor(t, "calls to time out", 5*time.Second, s.Down)
	<-sleepDone
	waitFor(t, "the up transition", 5*time.Second, func() bool { return !s.Down() })
	tf.phase.Store(phaseAfter)
	time.Sleep(200 * time.Millisecond)
	records := tf.Stop()

	firstFail := time.Now()
	for _, rec := range records {
		if rec.err != nil && rec.start.Before(firstFail) {
			firstFail = rec.start
		}
	}
	from, until := firstFail.Add(realTimeout), sent.Add(stall-realTimeout)
	perPhase := map[int32]int{}
	var stalled int
	for _, rec := range records {
		perPhase[rec.phase]++
		if rec.took > realTimeout+callMargin {
			t.Fatalf("phase %d: a call took %v, want <= %v + %v (err %v)", rec.phase, rec.took, realTimeout, callMargin, rec.err)
		}
		// A call labelled "before" that was still in flight when DEBUG
		// SLEEP was sent may have reached Redis after it (a goroutine
		// descheduled between its start and its write, on a loaded
		// machine): it is judged like any call near the stall.
		before := rec.phase == phaseBefore && rec.start.Add(rec.took).Before(sent)
		switch {
		case before || rec.phase == phaseAfter:
			if rec.err != nil || !rec.d.Allowed {
				t.Fatalf("phase %d, outside the stall: %+v, %v", rec.phase, rec.d, rec.err)
			}
		case !rec.start.Before(from) && !rec.start.After(until):
			stalled++
			checkFailure(t, rec, burst, time.Millisecond, limiter.ErrStoreTimeout)
		case rec.err != nil:
			checkFailure(t, rec, burst, time.Millisecond, limiter.ErrStoreTimeout)
		}
	}
	if stalled < 10 || perPhase[phaseAfter] < 10 {
		t.Fatalf("%d calls surely inside the stall, %d after: want >= 10 each (per phase %v)", stalled, perPhase[phaseAfter], perPhase)
	}
	tr.want(t, 1, 1)
	if !errors.Is(tr.downErr, limiter.ErrStoreTimeout) {
		t.Fatalf("down error %v, want ErrStoreTimeout", tr.downErr)
	}
	t.Logf("calls per phase %v, %d surely stalled, down error: %v", perPhase, stalled, tr.downErr)
}

// A wrong password is a clear, classifiable error (not a timeout), the
// policy decides, and health goes down once; the right one works.
func TestRedisWrongPassword(t *testing.T) {
	srv := startRedis(t, "--requirepass", "s3cret")
	for _, tc := range []struct {
		name, password, want string
	}{
		{"wrong password", "nope", "WRONGPASS"},
		{"no password", "", "NOAUTH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := srv.client(t, limiter.RedisClientOptions{Password: tc.password, Timeout: realTimeout})
			tr := &transitions{}
			s := newStore(t, c, realTimeout, tr)
			open := newLimit(t, s, limiter.RedisLimit{Prefix: "pw:", RPS: 1, Burst: 5})
			closed := newLimit(t, s, limiter.RedisLimit{Prefix: "pw:", RPS: 1, Burst: 5, OnError: limiter.FailClosed})
			for i := range 6 {
				r, isOpen := open, true
				if i%2 == 1 {
					r, isOpen = closed, false
				}
				start := time.Now()
				d, err := r.AllowContext(context.Background(), "k")
				rec := trafficRecord{open: isOpen, took: time.Since(start), d: d, err: err}
				checkFailure(t, rec, 5, time.Second, limiter.ErrStoreUnavailable)
				if errors.Is(err, limiter.ErrStoreTimeout) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want a non-timeout error mentioning %s", err, tc.want)
				}
				if rec.took > realTimeout+callMargin {
					t.Fatalf("call took %v", rec.took)
				}
			}
			tr.want(t, 1, 0)
			t.Logf("error: %v", tr.downErr)
		})
	}
	c := srv.client(t, limiter.RedisClientOptions{Password: "s3cret", Timeout: time.Second})
	r := newLimit(t, newStore(t, c, time.Second, nil), limiter.RedisLimit{Prefix: "pw:", RPS: 1, Burst: 5})
	if d := allow(t, r, "k"); !d.Allowed || d.Remaining != 4 {
		t.Fatalf("right password: %+v", d)
	}
}
