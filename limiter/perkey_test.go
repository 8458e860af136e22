package limiter_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/limiter"
)

func keys(prefix string, n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = prefix + strconv.Itoa(i)
	}
	return ks
}

func TestDefaultIdle(t *testing.T) {
	cases := []struct {
		name  string
		rps   float64
		burst int
		opts  []limiter.Option
		want  time.Duration
	}{
		{"fast refill", 10, 5, nil, limiter.MinIdle},
		{"slow refill: full buckets go all the same", 0.01, 10, nil, limiter.MinIdle},
		{"fractional", 0.5, 60, nil, limiter.MinIdle},
		{"WithIdle", 10, 5, []limiter.Option{limiter.WithIdle(5 * time.Second)}, 5 * time.Second},
		{"WithIdle non-positive keeps default", 10, 5, []limiter.Option{limiter.WithIdle(0)}, limiter.MinIdle},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := limiter.NewPerKey(c.rps, c.burst, c.opts...).Idle(); got != c.want {
				t.Fatalf("Idle() = %v, want %v", got, c.want)
			}
		})
	}
}

func TestSweepEvictsIdleFullBuckets(t *testing.T) {
	const n = 100_000
	p := limiter.NewPerKey(10, 5) // refill 500ms, idle 1m
	refill := 500 * time.Millisecond
	idle := p.Idle()
	for _, k := range keys("client-", n) {
		if !p.AllowAt(k, t0).Allowed {
			t.Fatalf("new key %q refused", k)
		}
	}
	steps := []struct {
		name        string
		now         time.Time
		wantEvicted int
		wantLen     int
	}{
		{"right away", t0, 0, n},
		{"full but not idle long enough", at(idle - time.Nanosecond), 0, n},
		{"idle+refill later", at(idle + refill), n, 0},
		{"nothing left", at(2 * idle), 0, 0},
	}
	if got := p.Len(); got != n {
		t.Fatalf("Len() = %d, want %d", got, n)
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if got := p.Sweep(s.now); got != s.wantEvicted {
				t.Errorf("Sweep evicted %d, want %d", got, s.wantEvicted)
			}
			if got := p.Len(); got != s.wantLen {
				t.Errorf("Len() = %d, want %d", got, s.wantLen)
			}
		})
	}
}

func TestSweepKeepsUsedAndUnfilledBuckets(t *testing.T) {
	type use struct {
		key   string
		at    time.Duration
		times int
	}
	type sweep struct {
		at       time.Duration
		survives []string // keys expected to be tracked afterwards
	}
	cases := []struct {
		name   string
		rps    float64
		burst  int
		idle   time.Duration
		uses   []use
		sweeps []sweep
	}{
		{
			name: "recently used bucket stays", rps: 1, burst: 2, idle: time.Minute,
			uses: []use{{"idle", 0, 1}, {"active", 0, 1}, {"active", 50 * time.Second, 1}},
			sweeps: []sweep{
				{70 * time.Second, []string{"active"}},
				{110 * time.Second, nil},
			},
		},
		{
			// Refill takes 200s, longer than the idle period: a drained
			// bucket is idle long before it is full, and must be kept until
			// it is, or its client would get a free burst.
			name: "bucket that is not full stays", rps: 0.01, burst: 2, idle: time.Minute,
			uses: []use{{"drained", 0, 2}, {"half", 0, 1}},
			sweeps: []sweep{
				{61 * time.Second, []string{"drained", "half"}},
				{101 * time.Second, []string{"drained"}},
				{199 * time.Second, []string{"drained"}},
				{200 * time.Second, nil},
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := limiter.NewPerKey(c.rps, c.burst, limiter.WithIdle(c.idle))
			for _, u := range c.uses {
				for range u.times {
					p.AllowAt(u.key, at(u.at))
				}
			}
			for _, s := range c.sweeps {
				before := p.Len()
				evicted := p.Sweep(at(s.at))
				if got := p.Len(); got != len(s.survives) || before-evicted != got {
					t.Fatalf("sweep at %v: Len %d -> %d (evicted %d), want %d left",
						s.at, before, got, evicted, len(s.survives))
				}
			}
		})
	}

	// Surviving a sweep is not just bookkeeping: the drained client is
	// still owed its wait.
	p := limiter.NewPerKey(0.01, 1, limiter.WithIdle(time.Minute))
	p.AllowAt("drained", t0)
	p.Sweep(at(90 * time.Second))
	check(t, "after sweep", p.AllowAt("drained", at(90*time.Second)),
		refused(1, 10*time.Second, 10*time.Second))
}

// Without any Sweep call, shards evict idle buckets on their own during
// AllowAt, once per sweep interval.
func TestLazyEviction(t *testing.T) {
	const old, recent, late = 100_000, 10_000, 10_000
	p := limiter.NewPerKey(10, 5) // refill 500ms, idle 1m, sweep interval 30s
	idle := p.Idle()
	for _, k := range keys("old-", old) {
		p.AllowAt(k, t0)
	}
	// Within the sweep interval nothing is scanned, even though the old
	// buckets are already full.
	for _, k := range keys("recent-", recent) {
		p.AllowAt(k, at(idle/4))
	}
	if got := p.Len(); got != old+recent {
		t.Fatalf("Len() = %d, want %d", got, old+recent)
	}
	// Later traffic (10k new clients reach every one of the 64 shards)
	// makes each shard sweep once: the old buckets go, the recent ones
	// (unused for less than idle) and the late ones stay.
	for _, k := range keys("late-", late) {
		p.AllowAt(k, at(idle+500*time.Millisecond))
	}
	if got := p.Len(); got != recent+late {
		t.Fatalf("Len() = %d, want %d", got, recent+late)
	}
	// And the old clients come back to full buckets, as if never seen.
	check(t, "old client back", p.AllowAt("old-7", at(idle+time.Second)), allowed(5, 4, 100*time.Millisecond))
}

// Churn through several waves of clients: the tracked set follows the live
// clients instead of growing with everyone ever seen.
func TestMemoryBoundedUnderChurn(t *testing.T) {
	p := limiter.NewPerKey(100, 10, limiter.WithIdle(time.Minute))
	const perWave = 20_000
	for wave := range 10 {
		now := at(time.Duration(wave) * 2 * time.Minute)
		for _, k := range keys("w"+strconv.Itoa(wave)+"-", perWave) {
			p.AllowAt(k, now)
		}
		if got := p.Len(); got > perWave {
			t.Fatalf("wave %d: Len() = %d, want at most %d", wave, got, perWave)
		}
	}
}

func TestLongKeys(t *testing.T) {
	long := strings.Repeat("x", 10_000)
	cases := []struct {
		name     string
		a, b     string
		distinct bool
	}{
		{"at the cap", strings.Repeat("a", limiter.MaxKeyLen), strings.Repeat("a", limiter.MaxKeyLen-1) + "b", true},
		{"over the cap, differing at the end", long + "1", long + "2", true},
		{"over the cap, same", long + "1", strings.Clone(long + "1"), false},
		{"just over vs at the cap", strings.Repeat("c", limiter.MaxKeyLen+1), strings.Repeat("c", limiter.MaxKeyLen), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := limiter.NewPerKey(1, 1)
			if !p.AllowAt(c.a, t0).Allowed {
				t.Fatal("a refused")
			}
			if got := p.AllowAt(c.b, t0).Allowed; got != c.distinct {
				t.Fatalf("b allowed = %v, want %v", got, c.distinct)
			}
			want := 1
			if c.distinct {
				want = 2
			}
			if got := p.Len(); got != want {
				t.Fatalf("Len() = %d, want %d", got, want)
			}
		})
	}
}

func TestConcurrentStress(t *testing.T) {
	const goroutines, calls, nkeys = 8, 20_000, 10_000
	ks := keys("10.0.", nkeys)
	// Goroutine g walks all keys from its own offset, so every key gets
	// exactly goroutines*calls/nkeys = 16 calls, from different goroutines
	// at different moments.
	keyFor := func(g, i int) string { return ks[(i+g*nkeys/goroutines)%nkeys] }
	const perKey = goroutines * calls / nkeys

	// run hammers l from all goroutines while an extra goroutine sweeps and
	// checks Len, and returns how many calls were allowed. The sweeps are
	// paced by the workers' progress: each worker makes a sweep due after
	// every sweepEach of its calls (sweeps that fall due while one runs are
	// merged), so there are at most goroutines*calls/sweepEach of them. A
	// sweeper spinning flat out would do more work the slower the machine,
	// taking CPU from the workers and stretching the test under load. The
	// workers never wait for it, so sweeps still run concurrently with
	// their calls.
	run := func(t *testing.T, l limiter.Limiter, clock func() time.Time, sweepEach int) int64 {
		var allowedN atomic.Int64
		var workers, sweeper sync.WaitGroup
		stop := make(chan struct{})
		due := make(chan struct{}, 1)
		if p, ok := l.(*limiter.PerKey); ok {
			sweeper.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-due:
					}
					p.Sweep(clock())
					if n := p.Len(); n > nkeys {
						t.Errorf("Len() = %d > %d keys", n, nkeys)
						return
					}
				}
			})
		}
		for g := range goroutines {
			workers.Go(func() {
				for i := range calls {
					if l.AllowAt(keyFor(g, i), clock()).Allowed {
						allowedN.Add(1)
					}
					if i%sweepEach == sweepEach-1 {
						select {
						case due <- struct{}{}:
						default:
						}
					}
				}
			})
		}
		workers.Wait()
		close(stop)
		sweeper.Wait()
		return allowedN.Load()
	}

	fixed := func() time.Time { return t0 }
	t.Run("fixed clock allows exactly burst per key", func(t *testing.T) {
		cases := []struct {
			name string
			l    limiter.Limiter
			want int64
		}{
			{"perkey", limiter.NewPerKey(1, 5), nkeys * 5},
			{"global", limiter.NewGlobal(1, 5), 5},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if got := run(t, c.l, fixed, 1000); got != c.want {
					t.Fatalf("allowed %d, want exactly %d", got, c.want)
				}
				if p, ok := c.l.(*limiter.PerKey); ok && p.Len() != nkeys {
					t.Fatalf("Len() = %d, want %d", p.Len(), nkeys)
				}
			})
		}
	})

	// A shared synthetic clock ticking 1µs per call: goroutines present
	// slightly out-of-order times and the sweeper evicts concurrently.
	t.Run("moving clock with concurrent sweeps", func(t *testing.T) {
		cases := []struct {
			name      string
			rps       float64
			burst     int
			idle      time.Duration
			sweepEach int // calls per worker between sweeps
		}{
			{"slow refill", 10, 5, 0, 1000},
			// Every sweep empties the map, so sweeps are cheap: many more.
			{"constant eviction", 1e6, 1, time.Nanosecond, 200},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var ticks atomic.Int64
				clock := func() time.Time { return at(time.Duration(ticks.Add(1)) * time.Microsecond) }
				p := limiter.NewPerKey(c.rps, c.burst, limiter.WithIdle(c.idle))
				got := run(t, p, clock, c.sweepEach)
				// Every key gets at least its burst; at most its burst plus
				// what the elapsed synthetic time refilled (eviction of full
				// buckets must not hand out anything extra).
				span := time.Duration(ticks.Load()) * time.Microsecond
				perKeyMax := min(int64(c.burst)+int64(c.rps*span.Seconds()), perKey)
				if lo, hi := int64(nkeys*c.burst), nkeys*perKeyMax; got < lo || got > hi {
					t.Fatalf("allowed %d, want within [%d, %d]", got, lo, hi)
				}
				if n := p.Len(); n > nkeys {
					t.Fatalf("Len() = %d > %d", n, nkeys)
				}
				p.Sweep(at(span + p.Idle() + time.Hour))
				if n := p.Len(); n != 0 {
					t.Fatalf("Len() after final sweep = %d", n)
				}
			})
		}
	})
}

// TestFullBucketsOfSlowEndpointsGoAfterMinIdle: only full buckets are
// evicted, and a full bucket is a fresh one, so how long a bucket takes to
// refill from empty says nothing about how long to keep it once full: on a
// slow endpoint (burst/rps of days) the buckets of one-shot keys, which
// anyone can mint with a header key or rotating IPv6 addresses, were kept
// for days.
func TestFullBucketsOfSlowEndpointsGoAfterMinIdle(t *testing.T) {
	p := limiter.NewPerKey(0.001, 1000) // refill from empty: 11.6 days
	for i := range 10_000 {
		p.AllowAt(fmt.Sprintf("h\x00key-%d", i), t0)
	}
	// Each took one token: full again 1000 s later.
	later := t0.Add(1000*time.Second + limiter.MinIdle)
	p.Sweep(later)
	if got := p.Len(); got != 0 {
		t.Fatalf("%d buckets held %v after they were full again (idle %v)", got, later.Sub(t0), p.Idle())
	}
	// A bucket still in debt is kept: evicting it would forgive the debt.
	p.AllowAt("spender", later)
	for range 999 {
		p.AllowAt("spender", later)
	}
	p.Sweep(later.Add(time.Hour))
	if got := p.Len(); got != 1 {
		t.Fatalf("the bucket in debt was evicted (%d left)", got)
	}
}
