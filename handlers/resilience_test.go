package handlers_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/handlers"
)

func rateLimited(t *testing.T, rateLimit, trusted string) string {
	t.Helper()
	base, _ := rateLimitedGateway(t, rateLimit, trusted)
	return base
}

func rateLimitedGateway(t *testing.T, rateLimit, trusted string) (string, *handlers.Gateway) {
	t.Helper()
	return gatewayWith(t, fmt.Sprintf(`
server:
  trusted_proxies: %s
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    rate_limit: %s
    backends: [{upstream: u, path: /}]
`, trusted, rateLimit), map[string]string{"u": jsonUpstream(t, 0, `{"ok":true}`)}, handlers.Options{})
}

// testClock is a synthetic clock for rate limits (see
// handlers.SetRateLimitClock): it moves only when the test advances it.
type testClock struct{ ns atomic.Int64 }

var clockStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *testClock) Now() time.Time          { return clockStart.Add(time.Duration(c.ns.Load())) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *testClock) Elapsed() time.Duration  { return time.Duration(c.ns.Load()) }

// rateLimitedAt is rateLimited with the limit on clock instead of the wall
// clock.
func rateLimitedAt(t *testing.T, rateLimit string, clock *testClock) string {
	t.Helper()
	base, gw := rateLimitedGateway(t, rateLimit, "[]")
	handlers.SetRateLimitClock(gw, clock.Now)
	return base
}

// The limit runs on a synthetic clock: on the wall clock a slow machine
// could refill a token between the burst and the request meant to be
// refused, and recovery could only be polled for.
func TestRateLimitBurstRefusalRecovery(t *testing.T) {
	clock := &testClock{}
	base := rateLimitedAt(t, "{rps: 5, burst: 2}", clock)
	for i := range 2 {
		a := get(t, base+"/e")
		if a.status != 200 {
			t.Fatalf("request %d within burst: %d", i, a.status)
		}
		if a.header.Get("RateLimit-Limit") != "2" || a.header.Get("RateLimit-Remaining") != strconv.Itoa(1-i) {
			t.Errorf("request %d: RateLimit headers %v", i, a.header)
		}
	}
	a := get(t, base+"/e")
	if a.status != 429 {
		t.Fatalf("over the burst: %d", a.status)
	}
	a.errorOf(t)
	// 5 rps: the next token is 200ms away, so Retry-After rounds up to the
	// minimum of 1 second.
	if ra := a.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	if rem := a.header.Get("RateLimit-Remaining"); rem != "0" {
		t.Errorf("RateLimit-Remaining %q on a refusal, want 0", rem)
	}
	// Recovery: a token comes back after the refill interval (200ms), and
	// not a moment before.
	clock.Advance(199 * time.Millisecond)
	if a := get(t, base+"/e"); a.status != 429 {
		t.Fatalf("%v after the refusal (refill interval 200ms): %d, want 429", clock.Elapsed(), a.status)
	}
	clock.Advance(time.Millisecond)
	if a := get(t, base+"/e"); a.status != 200 || a.header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("%v after the refusal (refill interval 200ms): %d, RateLimit headers %v; want 200 with 0 remaining",
			clock.Elapsed(), a.status, a.header)
	}
	if a := get(t, base+"/e"); a.status != 429 {
		t.Fatalf("the recovered token served twice: %d", a.status)
	}
}

func TestRetryAfterReflectsTheBucket(t *testing.T) {
	clock := &testClock{}
	base := rateLimitedAt(t, "{rps: 0.25, burst: 1}", clock) // one token per 4s
	get(t, base+"/e")
	for _, c := range []struct {
		later time.Duration // since the token was taken
		want  string
	}{
		{0, "4"},
		{1500 * time.Millisecond, "3"}, // 2.5s to go, rounded up
		{3999 * time.Millisecond, "1"},
	} {
		clock.Advance(c.later - clock.Elapsed())
		a := get(t, base+"/e")
		if a.status != 429 {
			t.Fatalf("%v after the token was taken: status %d", c.later, a.status)
		}
		if ra := a.header.Get("Retry-After"); ra != c.want {
			t.Errorf("%v after the token was taken: Retry-After %q, want %s", c.later, ra, c.want)
		}
	}
}

func TestPerClientLimits(t *testing.T) {
	type req struct {
		hdr  map[string]string
		want int
	}
	tests := []struct {
		name, limit, trusted string
		reqs                 []req
	}{
		{"header keys are separate buckets", "{rps: 0.01, burst: 1, per: client, client_key: 'header:X-Api-Key'}", "[]", []req{
			{map[string]string{"X-Api-Key": "A"}, 200},
			{map[string]string{"X-Api-Key": "A"}, 429},
			{map[string]string{"X-Api-Key": "B"}, 200},
		}},
		{"missing header falls back to the IP", "{rps: 0.01, burst: 1, per: client, client_key: 'header:X-Api-Key'}", "[]", []req{
			{nil, 200},
			{nil, 429},
			{map[string]string{"X-Api-Key": "127.0.0.1"}, 200}, // a header value never names an IP bucket
		}},
		{"untrusted peer cannot pick its key with X-Forwarded-For", "{rps: 0.01, burst: 1, per: client}", "[]", []req{
			{map[string]string{"X-Forwarded-For": "1.1.1.1"}, 200},
			{map[string]string{"X-Forwarded-For": "2.2.2.2"}, 429},
			{nil, 429},
		}},
		{"trusted proxy: right-most untrusted entry is the client", "{rps: 0.01, burst: 1, per: client}", "[127.0.0.1]", []req{
			{map[string]string{"X-Forwarded-For": "1.1.1.1"}, 200},
			{map[string]string{"X-Forwarded-For": "2.2.2.2"}, 200},
			{map[string]string{"X-Forwarded-For": "1.1.1.1"}, 429},
			{map[string]string{"X-Forwarded-For": "9.9.9.9, 2.2.2.2"}, 429}, // spoofed left part changes nothing
		}},
		{"trusted proxy written in IPv4-mapped form", "{rps: 0.01, burst: 1, per: client}", `["::ffff:127.0.0.1"]`, []req{
			{map[string]string{"X-Forwarded-For": "1.1.1.1"}, 200},
			{map[string]string{"X-Forwarded-For": "2.2.2.2"}, 200},
			{map[string]string{"X-Forwarded-For": "1.1.1.1"}, 429},
		}},
		{"global limit ignores clients", "{rps: 0.01, burst: 1}", "[127.0.0.1]", []req{
			{map[string]string{"X-Forwarded-For": "1.1.1.1"}, 200},
			{map[string]string{"X-Forwarded-For": "2.2.2.2"}, 429},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := rateLimited(t, tt.limit, tt.trusted)
			for i, r := range tt.reqs {
				if a := do(t, "GET", base+"/e", nil, r.hdr); a.status != r.want {
					t.Fatalf("request %d (%v): status %d, want %d", i, r.hdr, a.status, r.want)
				}
			}
		})
	}
}

func TestOpenBreakerAnswers503OrPartial(t *testing.T) {
	fail := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	base := gateway(t, `
upstreams:
  ok: {url: "{{ok}}"}
  bad:
    url: "{{bad}}"
    circuit_breaker: {consecutive_failures: 2, open_timeout: 1m}
endpoints:
  - path: /required
    backends:
      - {upstream: ok, path: /, group: ok}
      - {upstream: bad, path: /, group: bad, required: true}
  - path: /optional
    expose_errors: true
    backends:
      - {upstream: ok, path: /, group: ok}
      - {upstream: bad, path: /, group: bad}
`, map[string]string{"ok": jsonUpstream(t, 0, `{"fine":1}`), "bad": fail})
	for range 2 {
		if a := get(t, base+"/required"); a.status != 502 {
			t.Fatalf("5xx from required backend: %d", a.status)
		}
	}
	a := get(t, base+"/required")
	if a.status != 503 {
		t.Fatalf("required backend behind an open breaker: %d %s", a.status, a.body)
	}
	if _, _, backends := a.errorOf(t); backends["bad"] != "circuit open" {
		t.Errorf("backends %v", backends)
	}
	a = get(t, base+"/optional")
	if a.status != 200 || string(a.body) != `{"ok":{"fine":1},"_errors":{"bad":"circuit open"}}` {
		t.Fatalf("optional backend behind an open breaker: %d %s", a.status, a.body)
	}
}
