package fetch_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// A panic inside a graph's goroutines neither kills the process nor lets a
// dependent start on the panicked backend's zero result: every goroutine
// ends, the dependents are not called, and Fetch panics again on the
// caller's goroutine, where the handler's recoverer answers it. The same
// holds for a foreach element's call.
func TestGraphPanicReachesTheCaller(t *testing.T) {
	cases := []struct {
		name   string
		yaml   string
		break_ int // the backend whose upstream runtime is removed, to make its call panic
	}{
		{"a node", `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends:
      - {name: a, upstream: u, path: /a}
      - {upstream: u, path: "/b/{a.id}", group: b}
`, 0},
		{"a node on its own goroutine", `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends:
      - {upstream: u, path: "/c/{a.id}", group: c}
      - {name: a, upstream: u, path: /a}
`, 1},
		{"a foreach element", `
upstreams:
  u: {url: "{{u}}"}
  v: {url: "{{u}}"}
endpoints:
  - path: /e
    backends:
      - {name: a, upstream: u, path: /list}
      - {upstream: v, path: "/item/{item.id}", foreach: a.items, max_parallel: 3, group: items}
      - {upstream: u, path: "/after/{items.0.id}", group: after}
`, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var dependents atomic.Int64
			url := serve(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case "/a":
					io.WriteString(w, `{"id":1}`)
				case "/list":
					io.WriteString(w, `{"items":[{"id":1},{"id":2},{"id":3},{"id":4}]}`)
				default:
					dependents.Add(1)
					io.WriteString(w, `{}`)
				}
			})
			ep := build(t, tc.yaml, map[string]string{"u": url})
			ep.Backends[tc.break_].Upstream = nil
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("Fetch returned; want the panic on the caller's goroutine")
					}
				}()
				ep.Fetch(context.Background(), inbound())
			}()
			if n := dependents.Load(); n != 0 {
				t.Errorf("%d dependent calls after a panic, want none", n)
			}
		})
	}
}
