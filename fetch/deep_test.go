package fetch_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// deepArrays is depth nested arrays around inner.
func deepArrays(depth int, inner string) string {
	return strings.Repeat("[", depth) + inner + strings.Repeat("]", depth)
}

// A body nested deeper than encoding/json allows (10000) fails its own
// backend as not JSON; the other backends of the request are unaffected.
func TestDeepBodyFailsOnlyItsBackend(t *testing.T) {
	deep := deepArrays(20000, "1")
	ep := build(t, `
upstreams: {deep: {url: "{{deep}}"}, ok: {url: "{{ok}}"}}
endpoints:
  - path: /e
    backends: [{upstream: deep, path: /, group: deep}, {upstream: ok, path: /, group: ok}]
`, map[string]string{
		"deep": serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(deep)) }),
		"ok":   serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"fine":1}`)) }),
	})
	res := ep.Fetch(context.Background(), inbound())
	if !errors.Is(res[0].Err, fetch.ErrNotJSON) {
		t.Fatalf("20000-deep body: got %v, want %v", res[0].Err, fetch.ErrNotJSON)
	}
	if res[1].Err != nil || string(res[1].Body) != `{"fine":1}` {
		t.Fatalf("the other backend: %s %v", res[1].Body, res[1].Err)
	}
}

const deepChildEnv = "MANIFOLD_FETCH_DEEP_STACK_CHILD"

// Validating, reshaping and merging an upstream body costs O(1) stack
// whatever its nesting: a recursive validator needs stack per level, and a
// stack overflow is a fatal error that takes the whole process down. The
// test re-runs itself in a child process whose goroutine stacks are
// limited to 1 MB, so a regression is a failed test, not a dead test run.
func TestDeepBodyCostsConstantStack(t *testing.T) {
	if os.Getenv(deepChildEnv) == "1" {
		deepBodiesUnderSmallStack(t)
		return
	}
	t.Parallel() // the work is the child's; this only waits for it
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeepBodyCostsConstantStack$", "-test.count=1", "-test.v")
	// Under -race the child would sleep a second before exiting
	// (atexit_sleep_ms), for reports that a one-test child does not have
	// in flight; its races are still reported, and fail it, as they happen.
	cmd.Env = append(os.Environ(), deepChildEnv+"=1",
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestDeepBodyCostsConstantStack") {
		if len(out) > 2000 {
			out = out[:2000]
		}
		t.Fatalf("child process with 1 MB stacks: %v\n%s", err, out)
	}
}

func deepBodiesUnderSmallStack(t *testing.T) {
	defer debug.SetMaxStack(debug.SetMaxStack(1 << 20))

	// 4 Mi unclosed arrays (4 MiB) and 2 Mi balanced ones (4 MiB), the
	// latter inside the default max_response_bytes.
	bodies := map[string]string{
		"unclosed": strings.Repeat("[", 4<<20),
		"balanced": deepArrays(2<<20, ""),
	}
	for name, body := range bodies {
		ep := build(t, `
upstreams: {u: {url: "{{u}}", max_response_bytes: 16777216}}
endpoints: [{path: /e, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) })})
		if err := ep.Fetch(context.Background(), inbound())[0].Err; !errors.Is(err, fetch.ErrNotJSON) {
			t.Errorf("%s: got %v, want %v", name, err, fetch.ErrNotJSON)
		}
	}

	// The deepest bodies the merged answer can hold, through reshape and
	// merge: 10000 levels at the top, 9999 under a group.
	mergeDeepest(t)
}

// deepObject is a depth-level body: an object whose "keep" holds arrays
// down to {"x":1}, beside shallower "drop" and "old" fields.
func deepObject(depth int) string {
	return `{"keep":` + deepArrays(depth-2, `{"x":1}`) + `,"drop":` + deepArrays(depth-1, "2") + `,"old":` + deepArrays(depth-1, `"s"`) + `}`
}

// mergeDeepest merges the deepest answers that fit and checks that
// encoding/json accepts the result.
func mergeDeepest(t *testing.T) {
	t.Helper()
	bodies := map[string]string{"/10000": deepObject(10000), "/9999": deepObject(9999)}
	for _, b := range bodies {
		if !json.Valid([]byte(b)) {
			t.Fatal("test body is not valid")
		}
	}
	ep := build(t, `
upstreams: {u: {url: "{{u}}"}}
endpoints:
  - path: /e
    backends:
      - {upstream: u, path: /10000, deny: [drop, keep.x], rename: {old: new}}
      - {upstream: u, path: /9999, group: g, allow: [keep.x, old]}
      - {upstream: u, path: /10000}
`, map[string]string{"u": serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(bodies[r.URL.Path])) })})
	res := ep.Fetch(context.Background(), inbound())
	var parts []fetch.Part
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("backend %d: %v", i, r.Err)
		}
		parts = append(parts, fetch.Part{Group: r.Backend.Config.Group, Body: r.Body})
	}
	out := fetch.Merge(nil, parts)
	// json.Valid, not Unmarshal: the decoder recurses, the scanner does not.
	if !json.Valid(out) {
		t.Fatalf("merged answer refused by encoding/json: %.200s", out)
	}
	for _, key := range []string{`{"keep":`, `"drop":`, `"new":`, `"g":{"keep":`} {
		if !strings.Contains(string(out), key) {
			t.Fatalf("merged answer lacks %s: %.200s", key, out)
		}
	}
}

// A body goes one level deeper into the merged answer under its group, or
// under "collection" when it is not an object (unless a target takes a
// level off first), so there it may nest one level less than encoding/json
// allows: otherwise the gateway would answer JSON its clients refuse.
func TestDeepBodyFitsTheMergedAnswer(t *testing.T) {
	bodies := map[string]string{
		"/obj10000": deepObject(10000),
		"/obj9999":  deepObject(9999),
		"/arr10000": deepArrays(10000, "1"),
		"/arr9999":  deepArrays(9999, "1"),
	}
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(bodies[r.URL.Path])) })
	tests := []struct {
		backend string
		ok      bool
	}{
		{"{upstream: u, path: /obj10000}", true},
		{"{upstream: u, path: /obj10000, group: g}", false},
		{"{upstream: u, path: /obj9999, group: g}", true},
		{"{upstream: u, path: /obj10000, group: g, target: keep}", true},
		{"{upstream: u, path: /arr10000}", false},
		{"{upstream: u, path: /arr9999}", true},
		{"{upstream: u, path: /arr9999, group: g}", true},
	}
	for _, tt := range tests {
		t.Run(tt.backend, func(t *testing.T) {
			ep := build(t, `
upstreams: {u: {url: "{{u}}"}}
endpoints: [{path: /e, backends: [`+tt.backend+`]}]
`, map[string]string{"u": url})
			r := ep.Fetch(context.Background(), inbound())[0]
			if !tt.ok {
				if !errors.Is(r.Err, fetch.ErrNotJSON) {
					t.Fatalf("got %v, want %v", r.Err, fetch.ErrNotJSON)
				}
				return
			}
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			out := fetch.Merge(nil, []fetch.Part{{Group: r.Backend.Config.Group, Body: r.Body}})
			if !json.Valid(out) {
				t.Fatalf("merged answer refused by encoding/json (%d bytes)", len(out))
			}
		})
	}
}
