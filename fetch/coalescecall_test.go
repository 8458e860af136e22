package fetch_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

const coalesceYAML = `
upstreams:
  u:
    url: "{{u}}"
    timeout: 5s
    coalesce: true
endpoints:
  - {path: /x, timeout: 5s, backends: [{upstream: u, path: /x}]}
  - {path: /p, method: POST, timeout: 5s, backends: [{upstream: u, path: /x, method: POST}]}
`

// 50 concurrent identical GETs make one upstream call; the waiter whose
// client leaves returns at once as canceled while the 49 others get the
// answer, and the shared call was not cancelled for them.
func TestCoalesceFiftyIdenticalCalls(t *testing.T) {
	t.Parallel()
	s := newInstance(t)
	s.gated.Store(true)
	var joined atomic.Int32
	eps, ups := endpointsWith(t, fillURLs(coalesceYAML, map[string]string{"u": s.url}), fetch.PoolHooks{Coalesced: func() { joined.Add(1) }})
	u := ups["u"]
	call := func(ctx context.Context, id string) fetch.Result {
		in := inbound()
		in.Header.Set("X-Request-ID", id) // never part of the key
		return eps[0].Fetch(ctx, in)[0]
	}
	results := make([]fetch.Result, 49)
	var wg sync.WaitGroup
	for i := range 49 {
		wg.Go(func() { results[i] = call(context.Background(), string(rune('a'+i%26))) })
	}
	waitFor(t, "one call sent, 49 waiting", func() bool { return s.held.Load() == 1 && fetch.CoalesceWaiters(u) == 49 })
	leaving, leave := context.WithCancel(context.Background())
	left := make(chan fetch.Result, 1)
	wg.Go(func() { left <- call(leaving, "leaver") })
	waitFor(t, "the 50th joined", func() bool { return fetch.CoalesceWaiters(u) == 50 })
	leave()
	if r := <-left; !errors.Is(r.Err, fetch.ErrCanceled) {
		t.Errorf("the leaver got %v, want canceled", r.Err)
	}
	if n := fetch.CoalesceWaiters(u); n != 49 || s.held.Load() != 1 {
		t.Fatalf("%d waiting and %d held after one left, want 49 and the shared call", n, s.held.Load())
	}
	s.release() // only now does the upstream answer
	wg.Wait()
	if n := s.hits.Load(); n != 1 {
		t.Errorf("%d upstream calls for 50 identical ones, want 1", n)
	}
	if n := joined.Load(); n != 49 {
		t.Errorf("%d calls counted as coalesced, want 49", n)
	}
	for i, r := range results {
		if r.Err != nil || string(r.Body) == "" {
			t.Errorf("waiter %d: %v %q", i, r.Err, r.Body)
		}
	}
	// They share the bytes: one answer, not 49 copies.
	for i := range results[1:] {
		if &results[i+1].Body[0] != &results[0].Body[0] {
			t.Fatalf("waiter %d got a copy of the answer", i+1)
		}
	}
}

// Calls differing in a header other than X-Request-ID and traceparent are
// not identical; calls with a body are never coalesced.
func TestCoalesceKey(t *testing.T) {
	t.Parallel()
	s := newInstance(t)
	s.gated.Store(true)
	var joined atomic.Int32
	eps, ups := endpointsWith(t, fillURLs(coalesceYAML, map[string]string{"u": s.url}), fetch.PoolHooks{Coalesced: func() { joined.Add(1) }})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			in := inbound()
			in.Header.Set("Accept-Language", []string{"en", "fr", "en", "fr"}[i])
			in.Header.Set("Traceparent", "00-"+string(rune('a'+i))+"-x-01")
			eps[0].Fetch(context.Background(), in)
		})
	}
	for range 3 {
		wg.Go(func() {
			in := inbound()
			in.Body, in.ContentType = []byte(`{}`), "application/json"
			eps[1].Fetch(context.Background(), in)
		})
	}
	waitFor(t, "4 GETs waiting and 2+3 calls sent", func() bool { return fetch.CoalesceWaiters(ups["u"]) == 4 && s.held.Load() == 5 })
	s.release()
	wg.Wait()
	if n := joined.Load(); n != 2 {
		t.Errorf("%d coalesced, want 2", n)
	}
	if n := s.hits.Load(); n != 5 {
		t.Errorf("%d upstream calls, want 5 (en, fr, and 3 POSTs)", n)
	}
}

func fillURLs(yaml string, urls map[string]string) string {
	for k, v := range urls {
		yaml = strings.ReplaceAll(yaml, "{{"+k+"}}", v)
	}
	return yaml
}
