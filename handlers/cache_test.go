package handlers_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// countedUpstream is a real loopback upstream that counts its calls.
type countedUpstream struct {
	url   string
	calls atomic.Int64
}

func counted(t *testing.T, h http.HandlerFunc) *countedUpstream {
	t.Helper()
	u := &countedUpstream{}
	u.url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		h(w, r)
	})
	return u
}

// echoing answers {"path":..., "query":..., "tenant":..., "n":call}.
func echoing(t *testing.T) *countedUpstream {
	var u *countedUpstream
	u = counted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"query":%q,"tenant":%q,"n":%d}`, r.URL.Path, r.URL.RawQuery, r.Header.Get("X-Tenant"), u.calls.Load())
	})
	return u
}

func cacheGateway(t *testing.T, yaml string, urls map[string]string) (string, *handlers.Gateway, *handlers.Metrics) {
	t.Helper()
	m := handlers.NewMetrics()
	base, gw := gatewayWith(t, yaml, urls, handlers.Options{Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	return base, gw, m
}

// cacheCount is the value of manifold_cache_requests_total for endpoint
// and result.
func cacheCount(t *testing.T, m *handlers.Metrics, endpoint, result string) string {
	t.Helper()
	prefix := fmt.Sprintf(`manifold_cache_requests_total{endpoint=%q,result=%q} `, endpoint, result)
	for _, l := range scrape(t, m, prefix) {
		return strings.TrimPrefix(l, prefix)
	}
	return "0"
}

func wantCache(t *testing.T, a answer, state string) {
	t.Helper()
	if a.status != 200 && state == "hit" {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if got := a.header.Get("X-Manifold-Cache"); got != state {
		t.Fatalf("X-Manifold-Cache %q, want %q (status %d: %s)", got, state, a.status, a.body)
	}
}

const cachedEndpoint = `
upstreams:
  a: {url: "{{a}}"}
endpoints:
  - path: /c/{id}
    cache: {ttl: 30s}
    forward_query: [q, r]
    forward_headers: [X-Tenant]
    backends: [{upstream: a, path: "/a/{id}"}]
  - path: /plain
    backends: [{upstream: a, path: /a/plain}]
`

func TestCacheMissThenHit(t *testing.T) {
	t.Parallel()
	up := echoing(t)
	base, _, m := cacheGateway(t, cachedEndpoint, map[string]string{"a": up.url})

	first := do(t, "GET", base+"/c/1", nil, map[string]string{"X-Request-Id": "req-1"})
	wantCache(t, first, "miss")
	second := do(t, "GET", base+"/c/1", nil, map[string]string{"X-Request-Id": "req-2"})
	wantCache(t, second, "hit")
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("upstream called %d times, want 1", n)
	}
	if string(second.body) != string(first.body) || string(first.body) != `{"path":"/a/1","query":"","tenant":"","n":1}` {
		t.Errorf("bodies %s then %s", first.body, second.body)
	}
	for _, a := range []answer{first, second} {
		if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if c := a.header.Get("X-Manifold-Completed"); c != "true" {
			t.Errorf("X-Manifold-Completed %q", c)
		}
		if cc := a.header.Values("Cache-Control"); len(cc) != 0 {
			t.Errorf("Cache-Control %q on a complete answer", cc)
		}
	}
	if first.header.Get("X-Request-Id") != "req-1" || second.header.Get("X-Request-Id") != "req-2" {
		t.Errorf("X-Request-Id %q then %q: must stay per request", first.header.Get("X-Request-Id"), second.header.Get("X-Request-Id"))
	}
	if got := len(second.header.Values("X-Manifold-Cache")); got != 1 {
		t.Errorf("%d X-Manifold-Cache headers on a hit", got)
	}

	wantCache(t, get(t, base+"/c/2"), "miss") // another path parameter
	if a := get(t, base+"/plain"); a.header.Get("X-Manifold-Cache") != "" {
		t.Errorf("an endpoint without cache says X-Manifold-Cache: %q", a.header.Get("X-Manifold-Cache"))
	}
	if h, mi := cacheCount(t, m, "/c/{id}", "hit"), cacheCount(t, m, "/c/{id}", "miss"); h != "1" || mi != "2" {
		t.Errorf("metric hit %s miss %s, want 1 and 2", h, mi)
	}
	if lines := scrape(t, m, `manifold_cache_requests_total{endpoint="/plain"`); len(lines) != 0 {
		t.Errorf("uncached endpoint counted: %q", lines)
	}
}

func TestCacheKeyParts(t *testing.T) {
	t.Parallel()
	up := echoing(t)
	base, _, _ := cacheGateway(t, cachedEndpoint, map[string]string{"a": up.url})

	steps := []struct {
		path   string
		hdr    map[string]string
		want   string
		reason string
	}{
		{"/c/1?q=1", nil, "miss", "first"},
		{"/c/1?q=1&other=x", nil, "hit", "a query parameter that is not forwarded is not in the key"},
		{"/c/1?other=y&q=1", nil, "hit", "nor its place"},
		{"/c/1?q=2", nil, "miss", "a forwarded query parameter is"},
		{"/c/1?q=1&r=2", nil, "miss", "so is a second one"},
		{"/c/1?r=2&q=1", nil, "hit", "in canonical order"},
		{"/c/1?q=1", map[string]string{"X-Tenant": "t1"}, "miss", "a forwarded header is in the key"},
		{"/c/1?q=1", map[string]string{"X-Tenant": "t1", "X-Other": "z"}, "hit", "a header that is not forwarded is not"},
		{"/c/1?q=1", map[string]string{"X-Tenant": "t2"}, "miss", "another forwarded value"},
		{"/c/1?q=1", map[string]string{"X-Request-Id": "other-id", "Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, "hit", "per-request headers are not in the key"},
	}
	misses := int64(0)
	for _, s := range steps {
		a := do(t, "GET", base+s.path, nil, s.hdr)
		if got := a.header.Get("X-Manifold-Cache"); got != s.want {
			t.Errorf("%s %v: %s, want %s (%s)", s.path, s.hdr, got, s.want, s.reason)
		}
		if s.want == "miss" {
			misses++
		}
	}
	if n := up.calls.Load(); n != misses {
		t.Errorf("upstream called %d times for %d misses", n, misses)
	}
}

func TestCacheKeySubject(t *testing.T) {
	t.Parallel()
	_, gw, _ := cacheGateway(t, cachedEndpoint, map[string]string{"a": "http://127.0.0.1:1"})
	req := func() *http.Request { return httptest.NewRequest("GET", "/c/1?q=1", nil) }
	alice, bob, empty := "alice", "bob", ""
	key := func(sub *string) [32]byte { return handlers.CacheKey(gw, "/c/{id}", []string{"1"}, req(), sub) }
	if key(&alice) != key(&alice) {
		t.Fatal("one subject, two keys")
	}
	keys := map[[32]byte]string{}
	for name, sub := range map[string]*string{"alice": &alice, "bob": &bob, "empty subject": &empty, "no auth": nil} {
		k := key(sub)
		if other, dup := keys[k]; dup {
			t.Errorf("%s and %s share a key", name, other)
		}
		keys[k] = name
	}
	// A subject cannot be forged from the other parts: length prefixes.
	a := handlers.CacheKey(gw, "/c/{id}", []string{"1"}, httptest.NewRequest("GET", "/c/1?q=1", nil), &alice)
	b := handlers.CacheKey(gw, "/c/{id}", []string{"1alice"}, httptest.NewRequest("GET", "/c/1alice?q=1", nil), &empty)
	if a == b {
		t.Error("parameter 1 + subject alice and parameter 1alice + empty subject share a key")
	}
	// A token without sub is keyed by its hash, which no sub can forge.
	const tok = "eyJhbGciOiJSUzI1NiJ9.eyJ0ZW5hbnQiOiJhIn0.c2ln"
	hash := sha256.Sum256([]byte(tok))
	asSub := string(hash[:])
	byToken := handlers.CacheKeyForToken(gw, "/c/{id}", []string{"1"}, req(), tok)
	if byToken != handlers.CacheKeyForToken(gw, "/c/{id}", []string{"1"}, req(), tok) {
		t.Error("one token, two keys")
	}
	if byToken == key(&asSub) || byToken == key(&empty) || byToken == key(nil) ||
		byToken == handlers.CacheKeyForToken(gw, "/c/{id}", []string{"1"}, req(), tok+"x") {
		t.Error("a token without sub shares a key with a sub, no auth or another token")
	}
}

// TestCacheKeyIsHashed: an entry's key costs the same 32 bytes whatever the
// size of the query it was made from.
func TestCacheKeyIsHashed(t *testing.T) {
	t.Parallel()
	up := counted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	base, gw, _ := cacheGateway(t, `
upstreams:
  a: {url: "{{a}}"}
endpoints:
  - path: /all
    cache: {ttl: 1m}
    forward_query: ["*"]
    backends: [{upstream: a, path: /a}]
`, map[string]string{"a": up.url})
	wantCache(t, get(t, base+"/all?p=1"), "miss")
	var q strings.Builder
	for i := range 10_000 {
		fmt.Fprintf(&q, "&p%05d=v", i)
	}
	big := base + "/all?" + q.String()[1:]
	if len(big) < 80_000 {
		t.Fatalf("query of %d bytes", len(big))
	}
	wantCache(t, get(t, big), "miss")
	wantCache(t, get(t, big), "hit")
	w := handlers.CacheEntryWeights(gw)
	if len(w) != 2 || w[0] != w[1] {
		t.Fatalf("entry weights %v: want two equal weights, the 10k-parameter key hashed like the short one", w)
	}
	if w[0] > 512 {
		t.Errorf("an 11-byte answer weighs %d bytes", w[0])
	}
}

func TestCachePartialAndErrorsNotCached(t *testing.T) {
	t.Parallel()
	ok := echoing(t)
	fail := counted(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	missing := counted(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) })
	base, gw, _ := cacheGateway(t, `
upstreams:
  ok: {url: "{{ok}}"}
  fail: {url: "{{fail}}", circuit_breaker: {enabled: false}}
  missing: {url: "{{missing}}", circuit_breaker: {enabled: false}}
endpoints:
  - path: /partial
    cache: {ttl: 1m}
    backends: [{upstream: ok, path: /a, group: a}, {upstream: fail, path: /b, group: b}]
  - path: /error
    cache: {ttl: 1m}
    backends: [{upstream: fail, path: /b}]
  - path: /notfound
    cache: {ttl: 1m}
    backends: [{upstream: missing, path: /c}]
  - path: /fallback
    cache: {ttl: 1m}
    backends: [{upstream: ok, path: /a, group: a}, {upstream: fail, path: /b, group: b, fallback: {b: 0}}]
`, map[string]string{"ok": ok.url, "fail": fail.url, "missing": missing.url})

	for _, c := range []struct {
		path   string
		status int
		up     *countedUpstream
	}{{"/partial", 200, ok}, {"/error", 502, fail}, {"/notfound", 404, missing}, {"/fallback", 200, ok}} {
		before := c.up.calls.Load()
		for range 2 {
			a := get(t, base+c.path)
			if a.status != c.status {
				t.Fatalf("%s: status %d, want %d: %s", c.path, a.status, c.status, a.body)
			}
			wantCache(t, a, "miss")
			if a.status == 200 && a.header.Get("X-Manifold-Completed") != "false" {
				t.Fatalf("%s: X-Manifold-Completed %q", c.path, a.header.Get("X-Manifold-Completed"))
			}
			if cc := a.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("%s: Cache-Control %q", c.path, cc)
			}
		}
		if n := c.up.calls.Load() - before; n != 2 {
			t.Errorf("%s: upstream called %d times for two requests: the answer was cached", c.path, n)
		}
	}
	if _, _, n := handlers.CacheUsage(gw); n != 0 {
		t.Errorf("%d entries after partial and error answers only", n)
	}
}

func TestCacheNoCacheBypassRefreshes(t *testing.T) {
	t.Parallel()
	up := echoing(t)
	base, _, m := cacheGateway(t, cachedEndpoint, map[string]string{"a": up.url})
	n := func(a answer) float64 { return a.json(t)["n"].(float64) }

	if a := get(t, base+"/c/1"); n(a) != 1 {
		t.Fatalf("first answer %s", a.body)
	}
	for _, h := range []map[string]string{
		{"Cache-Control": "no-cache"},
		{"Cache-Control": "max-age=0"},
		{"Cache-Control": "public, NO-CACHE"},
		{"Pragma": "no-cache"},
	} {
		before := up.calls.Load()
		a := do(t, "GET", base+"/c/1", nil, h)
		wantCache(t, a, "miss")
		if up.calls.Load() != before+1 || n(a) != float64(before+1) {
			t.Fatalf("%v: answer %s after %d calls: not fetched anew", h, a.body, before)
		}
		b := get(t, base+"/c/1")
		wantCache(t, b, "hit")
		if string(b.body) != string(a.body) {
			t.Fatalf("%v: the next hit answers %s, not the refreshed %s", h, b.body, a.body)
		}
	}
	a := do(t, "GET", base+"/c/1", nil, map[string]string{"Pragma": "no-cache", "Cache-Control": "max-age=60"})
	wantCache(t, a, "hit") // Pragma counts only without Cache-Control (RFC 9111 §5.4)
	if got := cacheCount(t, m, "/c/{id}", "bypass"); got != "4" {
		t.Errorf("bypass counted %s times, want 4", got)
	}
}

func TestCacheTTL(t *testing.T) {
	t.Parallel()
	up := echoing(t)
	cfg := strings.ReplaceAll(cachedEndpoint, "{{a}}", up.url)
	c, err := config.Parse("test.yaml", []byte(cfg), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	gw, err := handlers.New(c, handlers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	handlers.SetCacheClock(gw, func() time.Time { return time.Unix(0, now.Load()) })
	srv := httptest.NewServer(gw)
	t.Cleanup(func() { srv.Close(); gw.Close() })

	wantCache(t, get(t, srv.URL+"/c/1"), "miss")
	now.Add(int64(29 * time.Second))
	wantCache(t, get(t, srv.URL+"/c/1"), "hit")
	now.Add(int64(2 * time.Second)) // 31s after the answer was stored
	wantCache(t, get(t, srv.URL+"/c/1"), "miss")
	wantCache(t, get(t, srv.URL+"/c/1"), "hit")
	if n := up.calls.Load(); n != 2 {
		t.Errorf("upstream called %d times, want 2", n)
	}
}

func TestCacheEvictionBounded(t *testing.T) {
	t.Parallel()
	body := `{"pad":"` + strings.Repeat("x", 1000) + `"}`
	huge := `{"pad":"` + strings.Repeat("x", 80<<10) + `"}`
	up := counted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/huge" {
			io.WriteString(w, huge)
			return
		}
		io.WriteString(w, body)
	})
	base, gw, _ := cacheGateway(t, `
server: {cache_bytes: 65536}
upstreams:
  a: {url: "{{a}}"}
endpoints:
  - path: /e/{id}
    cache: {ttl: 1m}
    backends: [{upstream: a, path: "/a/{id}"}]
  - path: /huge
    cache: {ttl: 1m}
    backends: [{upstream: a, path: /huge}]
`, map[string]string{"a": up.url})
	const n = 300 // ~300 KiB of answers for 64 KiB
	for i := range n {
		if a := get(t, fmt.Sprintf("%s/e/%d", base, i)); a.status != 200 {
			t.Fatalf("status %d", a.status)
		}
		if weight, max, _ := handlers.CacheUsage(gw); weight > max {
			t.Fatalf("after %d answers the entries weigh %d bytes, over the %d of cache_bytes", i+1, weight, max)
		}
	}
	weight, max, entries := handlers.CacheUsage(gw)
	if max != 65536 || entries == 0 || entries >= n || weight < uint64(entries)*1000 {
		t.Fatalf("%d entries of %d answers weigh %d of %d bytes", entries, n, weight, max)
	}
	t.Logf("%d of %d answers kept, %d of %d bytes", entries, n, weight, max)

	// An answer larger than the whole cache is served, never stored.
	wantCache(t, get(t, base+"/huge"), "miss")
	wantCache(t, get(t, base+"/huge"), "miss")
}

// blockingUpstream holds every call until release is closed (or the call
// is cancelled); arrived receives each call as it comes.
type blockingUpstream struct {
	*countedUpstream
	release   chan struct{}
	arrived   chan struct{}
	cancelled chan struct{}
}

func blocking(t *testing.T) *blockingUpstream {
	b := &blockingUpstream{release: make(chan struct{}), arrived: make(chan struct{}, 16), cancelled: make(chan struct{}, 16)}
	b.countedUpstream = counted(t, func(w http.ResponseWriter, r *http.Request) {
		b.arrived <- struct{}{}
		select {
		case <-b.release:
		case <-r.Context().Done():
			b.cancelled <- struct{}{}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"call":%d}`, b.calls.Load())
	})
	return b
}

func (b *blockingUpstream) awaitArrival(t *testing.T) {
	t.Helper()
	select {
	case <-b.arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream was never called")
	}
}

const blockedEndpoint = `
upstreams:
  a: {url: "{{a}}", timeout: 5s}
endpoints:
  - path: /c/{id}
    timeout: %s
    cache: {ttl: 1m}
    backends: [{upstream: a, path: "/a/{id}"}]
`

// async sends GET url under ctx and delivers its answer (status -1 when
// the request failed, as a cancelled one does).
func async(ctx context.Context, url string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := client.Do(req)
		if err != nil {
			ch <- answer{status: -1}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- answer{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
		return answer{}
	}
}

func TestCacheConcurrentMissesMakeOneFanOut(t *testing.T) {
	t.Parallel()
	up := blocking(t)
	base, gw, m := cacheGateway(t, fmt.Sprintf(blockedEndpoint, "5s"), map[string]string{"a": up.url})
	t.Cleanup(client.CloseIdleConnections)

	const n = 8
	answers := make([]<-chan answer, n)
	for i := range answers {
		answers[i] = async(t.Context(), base+"/c/1")
	}
	waitFor(t, "8 requests on one fan-out", func() bool { return handlers.CacheWaiters(gw) == n })
	up.awaitArrival(t)
	close(up.release)
	for i := range answers {
		a := receive(t, answers[i])
		if a.status != 200 || string(a.body) != `{"call":1}` {
			t.Fatalf("answer %d: %d %s", i, a.status, a.body)
		}
		wantCache(t, a, "miss")
	}
	if c := up.calls.Load(); c != 1 {
		t.Fatalf("%d concurrent misses made %d upstream calls, want 1", n, c)
	}
	wantCache(t, get(t, base+"/c/1"), "hit")
	if got := cacheCount(t, m, "/c/{id}", "miss"); got != "8" {
		t.Errorf("miss counted %s times, want 8", got)
	}
}

// TestCacheWaitersLeaving: the request that started a fan-out and another
// one leave; the fan-out goes on for the one still waiting, whose answer is
// cached as usual.
func TestCacheWaitersLeaving(t *testing.T) {
	t.Parallel()
	up := blocking(t)
	base, gw, _ := cacheGateway(t, fmt.Sprintf(blockedEndpoint, "5s"), map[string]string{"a": up.url})
	t.Cleanup(client.CloseIdleConnections)

	leaderCtx, leaderLeaves := context.WithCancel(t.Context())
	leader := async(leaderCtx, base+"/c/1")
	up.awaitArrival(t)
	otherCtx, otherLeaves := context.WithCancel(t.Context())
	other := async(otherCtx, base+"/c/1")
	stays := async(t.Context(), base+"/c/1")
	waitFor(t, "3 requests on one fan-out", func() bool { return handlers.CacheWaiters(gw) == 3 })

	leaderLeaves()
	otherLeaves()
	receive(t, leader)
	receive(t, other)
	waitFor(t, "the two to leave", func() bool { return handlers.CacheWaiters(gw) == 1 })
	select {
	case <-up.cancelled:
		t.Fatal("the fan-out was cancelled while a request still waited for it")
	case <-time.After(50 * time.Millisecond):
	}
	close(up.release)
	if a := receive(t, stays); a.status != 200 || string(a.body) != `{"call":1}` {
		t.Fatalf("the request that stayed got %d %s", a.status, a.body)
	}
	wantCache(t, get(t, base+"/c/1"), "hit")
	if c := up.calls.Load(); c != 1 {
		t.Errorf("%d upstream calls, want 1", c)
	}
}

// TestCacheLastWaiterLeavingCancels: when every request of a fan-out has
// left, the fan-out is cancelled as an uncached one would be, and the
// next request starts one of its own.
func TestCacheLastWaiterLeavingCancels(t *testing.T) {
	t.Parallel()
	up := blocking(t)
	base, gw, _ := cacheGateway(t, fmt.Sprintf(blockedEndpoint, "5s"), map[string]string{"a": up.url})
	t.Cleanup(client.CloseIdleConnections)

	ctx, leave := context.WithCancel(t.Context())
	first := async(ctx, base+"/c/1")
	up.awaitArrival(t)
	second := async(ctx, base+"/c/1")
	waitFor(t, "2 requests on one fan-out", func() bool { return handlers.CacheWaiters(gw) == 2 })
	leave()
	receive(t, first)
	receive(t, second)
	select {
	case <-up.cancelled:
	case <-time.After(2 * time.Second): // well before the 5s timeouts
		t.Fatal("the upstream call went on after every request had left")
	}
	next := async(t.Context(), base+"/c/1")
	up.awaitArrival(t)
	close(up.release)
	if a := receive(t, next); a.status != 200 || string(a.body) != `{"call":2}` {
		t.Fatalf("the next request got %d %s", a.status, a.body)
	}
}

// TestCacheFanOutEndsAtDeadline: a fan-out that its first request left
// still ends at the endpoint's deadline, for the request that waits.
func TestCacheFanOutEndsAtDeadline(t *testing.T) {
	t.Parallel()
	up := blocking(t)
	const timeout = 300 * time.Millisecond
	base, gw, _ := cacheGateway(t, fmt.Sprintf(blockedEndpoint, timeout), map[string]string{"a": up.url})
	t.Cleanup(client.CloseIdleConnections)

	ctx, leave := context.WithCancel(t.Context())
	start := time.Now()
	first := async(ctx, base+"/c/1")
	up.awaitArrival(t)
	waiting := async(t.Context(), base+"/c/1")
	waitFor(t, "2 requests on one fan-out", func() bool { return handlers.CacheWaiters(gw) == 2 })
	leave()
	receive(t, first)
	a := receive(t, waiting)
	took := time.Since(start)
	if a.status != 504 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	wantCache(t, a, "miss")
	if took < timeout-50*time.Millisecond || took > timeout+time.Second {
		t.Errorf("answered after %v; endpoint timeout is %v", took, timeout)
	}
	select {
	case <-up.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream call outlived the endpoint's deadline")
	}
}

// TestCacheReload: a reload starts with an empty cache; the Gateway it
// replaces still serves its in-flight requests from its own; Close stops
// the cache's goroutine.
func TestCacheReload(t *testing.T) {
	up := echoing(t)
	yaml := strings.ReplaceAll(cachedEndpoint, "{{a}}", up.url)
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	before := otterGoroutines()
	old, err := handlers.New(cfg, handlers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the cache's goroutine", func() bool { return otterGoroutines() == before+1 })
	oldSrv := httptest.NewServer(old)
	defer oldSrv.Close()
	wantCache(t, get(t, oldSrv.URL+"/c/1"), "miss")
	wantCache(t, get(t, oldSrv.URL+"/c/1"), "hit")

	next, err := handlers.New(cfg, handlers.Options{Previous: old})
	if err != nil {
		t.Fatal(err)
	}
	old.Retire(next)
	nextSrv := httptest.NewServer(next)
	defer nextSrv.Close()
	wantCache(t, get(t, nextSrv.URL+"/c/1"), "miss")
	wantCache(t, get(t, oldSrv.URL+"/c/1"), "hit") // retired, still serving
	next.Close()
	waitFor(t, "the caches' goroutines to stop", func() bool { return otterGoroutines() == before })

	// A config without cache starts none.
	plain, err := config.Parse("test.yaml", []byte(strings.ReplaceAll(yaml, "cache: {ttl: 30s}", "")), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	gw, err := handlers.New(plain, handlers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	if n := otterGoroutines(); n != before {
		t.Errorf("a Gateway without cache runs %d cache goroutines", n-before)
	}
}

// otterGoroutines counts the goroutines running otter's periodic clean-up.
func otterGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if lines := strings.SplitN(g, "\n", 3); len(lines) > 1 && strings.Contains(lines[1], "otter/v2.periodicCleanUp") {
			count++
		}
	}
	return count
}

// BenchmarkCache compares a cache hit on an S2-like aggregation (three
// ~725-byte objects merged) with the same aggregation uncached, and with
// the S1 floor: one plain upstream exchange through the gateway.
func BenchmarkCache(b *testing.B) {
	bodies := map[string]string{"/a": benchBody("a"), "/b": benchBody("b"), "/c": benchBody("c")}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, bodies[r.URL.Path])
	}))
	defer up.Close()
	yaml := strings.ReplaceAll(`
upstreams:
  stub: {url: "{{stub}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /agg
    backends: [{upstream: stub, path: /a}, {upstream: stub, path: /b}, {upstream: stub, path: /c}]
  - path: /agg-cached
    cache: {ttl: 1h}
    backends: [{upstream: stub, path: /a}, {upstream: stub, path: /b}, {upstream: stub, path: /c}]
  - path: /single
    backends: [{upstream: stub, path: /a}]
`, "{{stub}}", up.URL)
	srv, client := benchGateway(b, yaml)

	// stub-floor is one exchange with the stub itself, the in-process
	// counterpart of the load benchmark's S1 floor.
	b.Run("stub-floor", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Get(up.URL + "/a")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	})
	var warm sync.Once
	for _, path := range []string{"/agg", "/agg-cached", "/single"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			warm.Do(func() {
				resp, err := client.Get(srv.URL + "/agg-cached")
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Get(srv.URL + path)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || resp.Header.Get("X-Manifold-Completed") != "true" {
						b.Fatalf("%s: status %d", path, resp.StatusCode)
					}
					if path == "/agg-cached" && resp.Header.Get("X-Manifold-Cache") != "hit" {
						b.Fatalf("%s: %s", path, resp.Header.Get("X-Manifold-Cache"))
					}
				}
			})
		})
	}
}
