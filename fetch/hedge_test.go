package fetch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/fetch"
)

func hedgeYAML(urls []string, hedge string) string {
	return fmt.Sprintf(`
upstreams:
  u:
    urls: ["%s"]
    timeout: 2s
    balance: round_robin
    circuit_breaker: {enabled: false}
    outlier: {consecutive_failures: 0}
endpoints:
  - {path: /x, timeout: 5s, backends: [{upstream: u, path: /x, hedge: %s}]}
`, strings.Join(urls, `", "`), hedge)
}

type hedgeCounts struct{ won, lost atomic.Int32 }

func (h *hedgeCounts) hooks() fetch.PoolHooks {
	return fetch.PoolHooks{HedgeWon: func() { h.won.Add(1) }, HedgeLost: func() { h.lost.Add(1) }}
}

// With one instance hanging, a hedge after 20ms answers every call from the
// other one, long before the hanging one would; the hanging try is
// cancelled (its server sees the request's context end).
func TestHedgeBeatsAHangingInstance(t *testing.T) {
	t.Parallel()
	hang, fast := newInstance(t), newInstance(t)
	hang.gated.Store(true) // held until the caller leaves
	var counts hedgeCounts
	eps, _ := endpointsWith(t, hedgeYAML(urlsOf(hang, fast), "{after: 20ms, max_percent: 100}"), counts.hooks())
	for i := range 20 {
		r := fetchOnce(t, eps[0])
		if r.Err != nil {
			t.Fatalf("call %d: %v", i, r.Err)
		}
		if r.Duration > time.Second {
			t.Fatalf("call %d took %v: the hedge did not answer", i, r.Duration)
		}
	}
	// round_robin sends every other first try to the hanging instance.
	if counts.won.Load() < 5 {
		t.Errorf("%d hedges won, want about 10", counts.won.Load())
	}
	waitFor(t, "the losing tries to be cancelled", func() bool { return hang.held.Load() == 0 })
}

// The budget: with every first try slow, hedges stay within max_percent of
// the calls (5 % of 200 = 10).
func TestHedgeBudget(t *testing.T) {
	t.Parallel()
	slow, other := newInstance(t), newInstance(t)
	slow.gated.Store(true)
	other.gated.Store(true)
	var counts hedgeCounts
	eps, _ := endpointsWith(t, hedgeYAML(urlsOf(slow, other), "{after: 1ms, max_percent: 5}"), counts.hooks())
	// Every try is held until its caller leaves, 30ms in: long after the
	// hedge decision. 20 rounds of 10 calls at once.
	for range 20 {
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
				defer cancel()
				eps[0].Fetch(ctx, inbound())
			})
		}
		wg.Wait()
	}
	hedges := counts.won.Load() + counts.lost.Load()
	if hedges > 10 {
		t.Errorf("%d hedges over 200 calls, want at most 10 (5%%)", hedges)
	}
	if hedges < 8 {
		t.Errorf("%d hedges over 200 slow calls: the budget should allow about 10", hedges)
	}
}

// A hedge whose two tries both fail gives the first failure's reason.
func TestHedgeBothFail(t *testing.T) {
	t.Parallel()
	first := serve(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(40 * time.Millisecond) // past the hedge, before the other fails
		w.WriteHeader(503)
	})
	second := serve(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		w.WriteHeader(502)
	})
	var counts hedgeCounts
	eps, _ := endpointsWith(t, hedgeYAML([]string{first, second}, "{after: 10ms, max_percent: 100}"), counts.hooks())
	for range 4 {
		r := fetchOnce(t, eps[0])
		var se *fetch.StatusError
		if !errors.As(r.Err, &se) {
			t.Fatalf("err %v, want a status error", r.Err)
		}
		// Whichever instance the first try goes to (round_robin
		// alternates), the 503 comes first: at 40ms, or at 10+40ms
		// against the 502's 150ms.
		if se.Code != 503 {
			t.Fatalf("status %d, want the first failure's, 503", se.Code)
		}
	}
	if counts.lost.Load() != 4 {
		t.Errorf("%d hedges lost, want 4", counts.lost.Load())
	}
}

// A hedge is never sent for a try that answers before hedge.after.
func TestHedgeNotSentForFastAnswers(t *testing.T) {
	t.Parallel()
	a, b := newInstance(t), newInstance(t)
	var counts hedgeCounts
	eps, _ := endpointsWith(t, hedgeYAML(urlsOf(a, b), "{after: 1s, max_percent: 100}"), counts.hooks())
	for range 50 {
		if r := fetchOnce(t, eps[0]); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if n := counts.won.Load() + counts.lost.Load(); n != 0 {
		t.Errorf("%d hedges for fast answers", n)
	}
	if n := a.hits.Load() + b.hits.Load(); n != 50 {
		t.Errorf("%d upstream calls for 50 fast calls", n)
	}
}

// A passthrough endpoint hedges to the answer's head: the relayed answer
// comes from the fast instance, the hanging try is cancelled.
func TestHedgeRelay(t *testing.T) {
	t.Parallel()
	hang, fast := newInstance(t), newInstance(t)
	hang.gated.Store(true)
	var counts hedgeCounts
	yaml := strings.Replace(hedgeYAML(urlsOf(hang, fast), "{after: 20ms, max_percent: 100}"), "path: /x, hedge:", "path: /x, passthrough: true, hedge:", 1)
	eps, _ := endpointsWith(t, yaml, counts.hooks())
	for i := range 10 {
		start := time.Now()
		rel, err := eps[0].Relay(context.Background(), inbound())
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		body, err := io.ReadAll(rel.Body)
		rel.Close()
		if err != nil || rel.Response.StatusCode != 200 || !strings.Contains(string(body), strings.TrimPrefix(fast.url, "http://")) {
			t.Fatalf("call %d: %d %q %v", i, rel.Response.StatusCode, body, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("call %d took %v", i, d)
		}
	}
	if counts.won.Load() < 3 {
		t.Errorf("%d hedges won, want about 5", counts.won.Load())
	}
	waitFor(t, "the losing tries to be cancelled", func() bool { return hang.held.Load() == 0 })
}
