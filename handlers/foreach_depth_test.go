package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A foreach backend's element answers go into an array under its group:
// two levels more in the merged answer, not one. An element nested to the
// limit of a grouped answer made a 200 that encoding/json refuses (10001
// levels); such an element now fails its backend, and one level less is
// still merged.
func TestForeachElementDepthKeepsTheAnswerValid(t *testing.T) {
	t.Parallel()
	arr := func(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }
	for _, tc := range []struct {
		name, element, extra string
		ok                   bool
	}{
		{"group, too deep", arr(9999), "", false},
		{"group, at the limit", arr(9998), "", true},
		{"group and target, too deep", `{"a":` + arr(9999) + `}`, ", target: a", false},
		{"group and target, at the limit", `{"a":` + arr(9998) + `}`, ", target: a", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.URL.Path == "/order" {
					io.WriteString(w, `{"lines":[{"sku":"a"}]}`)
					return
				}
				io.WriteString(w, tc.element)
			})
			base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /o
    backends:
      - {name: order, upstream: u, path: /order, group: order}
      - {upstream: u, foreach: order.lines, path: "/p/{item.sku}", group: products`+tc.extra+`}
`, map[string]string{"u": up})
			a := get(t, base+"/o")
			if a.status != http.StatusOK {
				t.Fatalf("status %d: %.200s", a.status, a.body)
			}
			if !json.Valid(a.body) {
				var v any
				t.Fatalf("200 answer of %d bytes that encoding/json refuses: %v", len(a.body), json.Unmarshal(a.body, &v))
			}
			partial := a.header.Get("X-Manifold-Completed") == "false"
			if partial == tc.ok {
				t.Errorf("X-Manifold-Completed %q, want the foreach merged: %v", a.header.Get("X-Manifold-Completed"), tc.ok)
			}
		})
	}
}

// A target applies to each object element of an array answer and keeps
// the other elements as they are, so an array answer keeps its depth: at
// the limit of an ungrouped answer it is refused, not merged into 10001
// levels under its group.
func TestTargetOnDeepArrayAnswerKeepsTheAnswerValid(t *testing.T) {
	t.Parallel()
	arr := func(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }
	for _, tc := range []struct {
		body string
		ok   bool
	}{{arr(10000), false}, {arr(9999), true}} {
		up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, tc.body)
		})
		base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /l
    backends: [{upstream: u, path: /l, group: items, target: data}]
`, map[string]string{"u": up})
		a := get(t, base+"/l")
		if a.status == http.StatusOK && !json.Valid(a.body) {
			t.Fatalf("200 answer of %d bytes that encoding/json refuses", len(a.body))
		}
		if got := a.status == http.StatusOK; got != tc.ok {
			t.Errorf("array answer of %d levels with a target: status %d, want merged: %v", strings.Count(tc.body, "["), a.status, tc.ok)
		}
	}
}
