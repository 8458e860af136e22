package limiter_test

import (
	"errors"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/limiter"
)

// t0 is the origin of the synthetic clock every test uses.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// kinds builds each limiter scope, so behaviour shared by both is tested on
// both.
var kinds = []struct {
	name string
	make func(rps float64, burst int) limiter.Limiter
}{
	{"global", func(rps float64, burst int) limiter.Limiter { return limiter.NewGlobal(rps, burst) }},
	{"perkey", func(rps float64, burst int) limiter.Limiter { return limiter.NewPerKey(rps, burst) }},
}

func check(t *testing.T, step string, got, want limiter.Decision) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %+v, want %+v", step, got, want)
	}
}

func allowed(burst, remaining int, reset time.Duration) limiter.Decision {
	return limiter.Decision{Allowed: true, Limit: burst, Remaining: remaining, Reset: reset}
}

func refused(burst int, retry, reset time.Duration) limiter.Decision {
	return limiter.Decision{Limit: burst, RetryAfter: retry, Reset: reset}
}

func TestBurstRefuseRecover(t *testing.T) {
	cases := []struct {
		name     string
		rps      float64
		burst    int
		interval time.Duration // 1/rps: time to earn one token
	}{
		{"rps=1", 1, 3, time.Second},
		{"rps=0.5", 0.5, 2, 2 * time.Second},
		{"rps=10", 10, 5, 100 * time.Millisecond},
		{"rps=2.5 burst=1", 2.5, 1, 400 * time.Millisecond},
	}
	for _, k := range kinds {
		for _, c := range cases {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				l := k.make(c.rps, c.burst)
				full := time.Duration(c.burst) * c.interval

				// The burst is served at once, Remaining counting down.
				for i := range c.burst {
					check(t, "burst "+strconv.Itoa(i), l.AllowAt("k", t0),
						allowed(c.burst, c.burst-1-i, time.Duration(i+1)*c.interval))
				}
				// Then refused, repeatedly, without consuming anything.
				for i := range 3 {
					check(t, "refused "+strconv.Itoa(i), l.AllowAt("k", t0),
						refused(c.burst, c.interval, full))
				}
				// Just before one token has accrued: still refused.
				check(t, "almost", l.AllowAt("k", at(c.interval-time.Millisecond)),
					refused(c.burst, time.Millisecond, full-c.interval+time.Millisecond))
				// After one refill interval exactly one more request passes.
				check(t, "recovered", l.AllowAt("k", at(c.interval)),
					allowed(c.burst, 0, full))
				check(t, "refused again", l.AllowAt("k", at(c.interval)),
					refused(c.burst, c.interval, full))
				// After a full refill the whole burst is available again.
				check(t, "full again", l.AllowAt("k", at(c.interval+full)),
					allowed(c.burst, c.burst-1, c.interval))
			})
		}
	}
}

func TestRetryAfterPartialRefill(t *testing.T) {
	cases := []struct {
		name    string
		rps     float64
		burst   int
		elapsed time.Duration // after draining the bucket at t0
		want    limiter.Decision
	}{
		{"rps=1 fresh", 1, 1, 0, refused(1, time.Second, time.Second)},
		{"rps=1 +300ms", 1, 1, 300 * time.Millisecond, refused(1, 700*time.Millisecond, 700*time.Millisecond)},
		{"rps=1 +999ms", 1, 1, 999 * time.Millisecond, refused(1, time.Millisecond, time.Millisecond)},
		{"rps=0.5 fresh", 0.5, 1, 0, refused(1, 2*time.Second, 2*time.Second)},
		{"rps=0.5 +500ms", 0.5, 1, 500 * time.Millisecond, refused(1, 1500*time.Millisecond, 1500*time.Millisecond)},
		{"rps=10 fresh", 10, 1, 0, refused(1, 100*time.Millisecond, 100*time.Millisecond)},
		{"rps=10 +40ms", 10, 1, 40 * time.Millisecond, refused(1, 60*time.Millisecond, 60*time.Millisecond)},
		{"rps=1 burst=3 +250ms", 1, 3, 250 * time.Millisecond, refused(3, 750*time.Millisecond, 2750*time.Millisecond)},
		// 1.5 tokens accrued: one is served, half a token is left over.
		{"rps=1 burst=3 +1.5s", 1, 3, 1500 * time.Millisecond, allowed(3, 0, 2500*time.Millisecond)},
		{"rps=1 burst=3 +2.5s", 1, 3, 2500 * time.Millisecond, allowed(3, 1, 1500*time.Millisecond)},
	}
	for _, k := range kinds {
		for _, c := range cases {
			t.Run(k.name+"/"+c.name, func(t *testing.T) {
				l := k.make(c.rps, c.burst)
				for range c.burst {
					if !l.AllowAt("k", t0).Allowed {
						t.Fatal("burst refused")
					}
				}
				check(t, "decision", l.AllowAt("k", at(c.elapsed)), c.want)
			})
		}
	}
}

func TestRefusedCallsDoNotConsume(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			l := k.make(1, 1)
			if !l.AllowAt("k", t0).Allowed {
				t.Fatal("first call refused")
			}
			// A client hammering every millisecond is refused every time,
			// and each refusal reports the true remaining wait.
			for i := range 1000 {
				now := time.Duration(i) * time.Millisecond
				check(t, "hammer "+strconv.Itoa(i), l.AllowAt("k", at(now)),
					refused(1, time.Second-now, time.Second-now))
			}
			// Its refused calls did not push the recovery back.
			check(t, "recovered", l.AllowAt("k", at(time.Second)), allowed(1, 0, time.Second))
		})
	}
}

func TestKeys(t *testing.T) {
	cases := []struct {
		kind         int  // index into kinds
		bSharesWithA bool // whether key B sees A's exhaustion
	}{
		{kind: 0, bSharesWithA: true},
		{kind: 1, bSharesWithA: false},
	}
	for _, c := range cases {
		k := kinds[c.kind]
		t.Run(k.name, func(t *testing.T) {
			l := k.make(1, 2)
			for range 2 {
				l.AllowAt("A", t0)
			}
			if l.AllowAt("A", t0).Allowed {
				t.Fatal("A not exhausted")
			}
			b := l.AllowAt("B", t0)
			if b.Allowed == c.bSharesWithA {
				t.Fatalf("B: %+v, want Allowed=%v", b, !c.bSharesWithA)
			}
			if !c.bSharesWithA {
				check(t, "B second", l.AllowAt("B", t0), allowed(2, 0, 2*time.Second))
				check(t, "A still", l.AllowAt("A", t0), refused(2, time.Second, 2*time.Second))
			}
		})
	}
}

// A bucket's clock never runs backwards: a late-arriving call stamped before
// the bucket's latest one is decided as of that latest time. (Left to
// itself, rate.Limiter would rewind and later refill the same span twice.)
func TestClockNeverRunsBackwards(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			l := k.make(1, 2)
			check(t, "t=10s", l.AllowAt("k", at(10*time.Second)), allowed(2, 1, time.Second))
			check(t, "t=5s", l.AllowAt("k", at(5*time.Second)), allowed(2, 0, 2*time.Second))
			check(t, "t=5s again", l.AllowAt("k", at(5*time.Second)), refused(2, time.Second, 2*time.Second))
			check(t, "t=10s again", l.AllowAt("k", at(10*time.Second)), refused(2, time.Second, 2*time.Second))
			check(t, "t=11s", l.AllowAt("k", at(11*time.Second)), allowed(2, 0, 2*time.Second))
		})
	}
}

func TestAllowUsesWallClock(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			l := k.make(0.001, 1) // one token per ~17 minutes: no refill during the test
			check(t, "first", l.Allow("k"), allowed(1, 0, 1000*time.Second))
			d := l.Allow("k")
			if d.Allowed || d.RetryAfter <= 990*time.Second || d.RetryAfter > 1000*time.Second {
				t.Fatalf("second: %+v", d)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		rps   float64
		burst int
		want  error
	}{
		{"ok", 1, 1, nil},
		{"fractional", 0.5, 10, nil},
		{"tiny", 1e-9, 1, nil},
		{"zero rps", 0, 1, limiter.ErrInvalidRate},
		{"negative rps", -1, 1, limiter.ErrInvalidRate},
		{"NaN rps", math.NaN(), 1, limiter.ErrInvalidRate},
		{"Inf rps", math.Inf(1), 1, limiter.ErrInvalidRate},
		{"zero burst", 1, 0, limiter.ErrInvalidBurst},
		{"negative burst", 1, -3, limiter.ErrInvalidBurst},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := limiter.Validate(c.rps, c.burst)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Validate(%v, %d) = %v, want %v", c.rps, c.burst, err, c.want)
			}
			for _, k := range kinds {
				func() {
					defer func() {
						if r := recover(); (r != nil) != (c.want != nil) {
							t.Errorf("%s: panic = %v, want panic: %v", k.name, r, c.want != nil)
						}
					}()
					k.make(c.rps, c.burst)
				}()
			}
		})
	}
}

// An absurdly slow rate saturates durations instead of overflowing them.
func TestSlowRateSaturates(t *testing.T) {
	l := limiter.NewPerKey(1e-12, 1)
	l.AllowAt("k", t0)
	d := l.AllowAt("k", t0)
	if d.Allowed || d.RetryAfter != math.MaxInt64 || d.Reset != math.MaxInt64 {
		t.Fatalf("got %+v", d)
	}
	if l.Idle() != limiter.MinIdle {
		t.Fatalf("Idle = %v, want MinIdle (only full buckets are evicted)", l.Idle())
	}
}

// Waiting exactly RetryAfter is always enough, whatever float rounding the
// deficit went through.
func TestRetryAfterIsSufficient(t *testing.T) {
	for _, rps := range []float64{0.3, 0.5, 1, 3, 7, 10, 33.3, 1000} {
		t.Run(strconv.FormatFloat(rps, 'g', -1, 64), func(t *testing.T) {
			l := limiter.NewGlobal(rps, 1)
			now := t0
			for i := range 2000 {
				d := l.AllowAt("", now)
				if d.Allowed {
					// Probe at an awkward offset into the refill.
					now = now.Add(time.Duration(i*7919) % time.Second)
					continue
				}
				if d.RetryAfter <= 0 {
					t.Fatalf("step %d: refused with RetryAfter %v", i, d.RetryAfter)
				}
				now = now.Add(d.RetryAfter)
				if r := l.AllowAt("", now); !r.Allowed {
					t.Fatalf("step %d: refused after waiting RetryAfter=%v: %+v", i, d.RetryAfter, r)
				}
			}
		})
	}
}
