package fetch_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// graphYAML is an order and a foreach over its lines at max_parallel.
const graphYAML = `
upstreams:
  orders: {url: "{{orders}}", timeout: 10s}
  products: {url: "{{products}}", timeout: 10s}
endpoints:
  - path: /o/{n}
    timeout: 20s
    backends:
      - {name: order, upstream: orders, path: "/orders/{n}", group: order}
      - {upstream: products, foreach: order.lines, path: "/products/{item.sku}", group: products, max_parallel: %d, max_items: 200}
`

// linesUpstream answers /orders/{n} with n lines {"sku": "s<k>"}.
func linesUpstream(t *testing.T) string {
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/orders/"))
		lines := make([]string, n)
		for k := range lines {
			lines[k] = fmt.Sprintf(`{"sku":"s%d"}`, k)
		}
		io.WriteString(w, `{"lines":[`+strings.Join(lines, ",")+`]}`)
	})
}

// A foreach is a worker pool of max_parallel goroutines, not a goroutine per
// element: while a 60-element foreach at max_parallel 2 runs, the process
// has at most a handful of goroutines more than before it (the graph's, the
// pool's, the upstream connections'), far fewer than 60. The count is
// sampled by the upstream during every element call. Not parallel: other
// tests' goroutines would blur the count.
func TestForeachGoroutinesStayBounded(t *testing.T) {
	const items, parallel, bound = 60, 2, 20
	var peak atomic.Int64
	var sampling atomic.Bool
	products := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if sampling.Load() {
			n := int64(runtime.NumGoroutine())
			for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
			}
		}
		fmt.Fprintf(w, `{"sku":%q}`, strings.TrimPrefix(r.URL.Path, "/products/"))
	})
	ep := build(t, fmt.Sprintf(graphYAML, parallel), map[string]string{"orders": linesUpstream(t), "products": products})
	in := func() *fetch.Inbound { i := inbound(); i.Params = []string{strconv.Itoa(items)}; return i }

	ep.Fetch(context.Background(), in()) // warm: the connections exist before the baseline
	base := int64(runtime.NumGoroutine())
	sampling.Store(true)
	res := ep.Fetch(context.Background(), in())
	sampling.Store(false)

	f := res[1]
	if f.Err != nil || len(f.Items) != items {
		t.Fatalf("foreach: err %v, %d items", f.Err, len(f.Items))
	}
	for k, it := range f.Items {
		if it.Err != nil || string(it.Body) != fmt.Sprintf(`{"sku":"s%d"}`, k) {
			t.Fatalf("item %d: %v %s", k, it.Err, it.Body)
		}
	}
	extra := peak.Load() - base
	t.Logf("%d goroutines before, at most %d more during a %d-element foreach at max_parallel %d", base, extra, items, parallel)
	if extra > bound {
		t.Errorf("%d goroutines more than before during the foreach, want at most %d: not a bounded pool", extra, bound)
	}
}

// A foreach Result carries one Item per element call, in element order,
// each with its own status and duration (metrics count each), and its Body
// is their answers as one array. Other backends have no Items.
func TestForeachResultItems(t *testing.T) {
	t.Parallel()
	products := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/products/s1" {
			w.WriteHeader(http.StatusCreated)
		}
		fmt.Fprintf(w, `{"sku":%q}`, strings.TrimPrefix(r.URL.Path, "/products/"))
	})
	ep := build(t, fmt.Sprintf(graphYAML, 4), map[string]string{"orders": linesUpstream(t), "products": products})
	in := inbound()
	in.Params = []string{"3"}
	res := ep.Fetch(context.Background(), in)
	if res[0].Err != nil || res[0].Items != nil {
		t.Errorf("order: err %v, items %v", res[0].Err, res[0].Items)
	}
	f := res[1]
	if f.Err != nil || f.Status != 200 || string(f.Body) != `[{"sku":"s0"},{"sku":"s1"},{"sku":"s2"}]` {
		t.Fatalf("foreach: %v %d %s", f.Err, f.Status, f.Body)
	}
	if len(f.Items) != 3 {
		t.Fatalf("%d items", len(f.Items))
	}
	for k, it := range f.Items {
		want := 200
		if k == 1 {
			want = 201
		}
		if it.Backend != ep.Backends[1] || it.Status != want || it.Duration <= 0 || it.Items != nil {
			t.Errorf("item %d: %+v", k, it)
		}
	}

	// An empty array: [] with no Items to count, but not nil.
	in.Params = []string{"0"}
	res = ep.Fetch(context.Background(), in)
	if f := res[1]; f.Err != nil || string(f.Body) != `[]` || f.Items == nil || len(f.Items) != 0 {
		t.Errorf("empty foreach: %v %s %#v", f.Err, f.Body, f.Items)
	}
}
