package fetch_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// allocated runs f and returns the bytes it allocated (the whole process:
// the test runs alone in its package's goroutines that allocate).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestForeachRefusesAHugeArrayCheaply: max_items is the guard against a
// dependency answering with a huge array, so it must refuse it before
// building a value per element: a 4 MiB answer of two million elements
// cost about 1 GB of allocations to refuse with max_items 100.
func TestForeachRefusesAHugeArrayCheaply(t *testing.T) {
	const n = (4<<20 - 16) / 2 // one-digit elements, just under the default max_response_bytes
	body := `{"lines":[` + strings.Repeat("0,", n-1) + `0]}`
	orders := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	var called atomic.Int32
	products := serve(t, func(w http.ResponseWriter, r *http.Request) {
		called.Add(1)
		io.WriteString(w, `{}`)
	})
	ep := build(t, `
upstreams:
  orders: {url: "{{orders}}", timeout: 10s}
  products: {url: "{{products}}", timeout: 10s}
endpoints:
  - path: /o
    timeout: 20s
    backends:
      - {name: order, upstream: orders, path: "/orders", group: order, allow: [id]}
      - {upstream: products, foreach: order.lines, path: "/products/{item}", group: products, max_items: 100}
`, map[string]string{"orders": orders, "products": products})
	ep.Fetch(context.Background(), inbound()) // warm the pools
	var res []fetch.Result
	alloc := allocated(func() { res = ep.Fetch(context.Background(), inbound()) })
	if !errors.Is(res[1].Err, fetch.ErrTooManyItems) {
		t.Fatalf("foreach over %d elements with max_items 100: %v", n, res[1].Err)
	}
	if called.Load() != 0 {
		t.Errorf("%d calls made for a refused foreach", called.Load())
	}
	// The answer itself is read (4 MiB) and kept for the reference; a
	// value per element would be hundreds of MiB.
	if alloc > 64<<20 {
		t.Errorf("refusing a foreach of %d elements over max_items 100 allocated %d MiB", n, alloc>>20)
	}
}

// TestArrayReferenceIsBoundedByMaxItems: a reference to an array expands
// into one query parameter per element; max_items bounds that list too, so
// a dependency's huge array fails the backend instead of building (and
// sending) a request-target of megabytes.
func TestArrayReferenceIsBoundedByMaxItems(t *testing.T) {
	body := `{"ids":[` + strings.Repeat("7,", 100) + `7],"few":[1,2,3]}` // 101 ids
	orders := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	var manyCalled atomic.Int32
	many := serve(t, func(w http.ResponseWriter, r *http.Request) {
		manyCalled.Add(1)
		io.WriteString(w, `{}`)
	})
	var fewURI atomic.Value
	few := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fewURI.Store(r.RequestURI)
		io.WriteString(w, `{}`)
	})
	ep := build(t, `
upstreams:
  orders: {url: "{{orders}}", timeout: 10s}
  many: {url: "{{many}}", timeout: 10s}
  few: {url: "{{few}}", timeout: 10s}
endpoints:
  - path: /o
    timeout: 20s
    backends:
      - {name: order, upstream: orders, path: "/orders", group: order, allow: [x]}
      - {upstream: many, path: "/p?id={order.ids}", group: many}
      - {upstream: few, path: "/q?id={order.few}", group: few}
`, map[string]string{"orders": orders, "many": many, "few": few})
	res := ep.Fetch(context.Background(), inbound())
	if !errors.Is(res[1].Err, fetch.ErrTooManyItems) {
		t.Errorf("a reference to 101 elements with max_items 100: %v, want too many items", res[1].Err)
	}
	if res[2].Err != nil {
		t.Fatalf("a reference to 3 elements: %v", res[2].Err)
	}
	if n := manyCalled.Load(); n != 0 {
		t.Errorf("the backend whose reference was refused was called %d times", n)
	}
	if got := fewURI.Load(); got != "/q?id=1&id=2&id=3" {
		t.Errorf("request-target %v, want /q?id=1&id=2&id=3", got)
	}
}
