package config_test

import (
	"testing"

	"github.com/manifold-gw/manifold/config"
)

func TestShadowPoolDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withTop(""), nil)
	if want := (config.Shadow{Workers: 8, Queue: 1024}); cfg.Server.Shadow != want {
		t.Errorf("server.shadow = %+v, want %+v", cfg.Server.Shadow, want)
	}
	cfg = mustLoad(t, withTop("server: {shadow: {workers: 2, queue: 0}}\n"), nil)
	if want := (config.Shadow{Workers: 2, Queue: 0}); cfg.Server.Shadow != want {
		t.Errorf("server.shadow = %+v, want %+v (queue 0 is allowed)", cfg.Server.Shadow, want)
	}
	cfg = mustLoad(t, withTop(""), map[string]string{"MANIFOLD_SERVER_SHADOW_WORKERS": "3", "MANIFOLD_SERVER_SHADOW_QUEUE": "7"})
	if want := (config.Shadow{Workers: 3, Queue: 7}); cfg.Server.Shadow != want {
		t.Errorf("server.shadow from the environment = %+v, want %+v", cfg.Server.Shadow, want)
	}
}

// A shadow backend copied from a real one keeps its group and reshaping
// keys: they neither clash with the real backend's nor make a reference
// to it ambiguous, and the shadow stays out of the call graph.
func TestShadowBackendsValid(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withBackends(
		`{upstream: users, path: "/users/{id}", group: user, target: data}`,
		`{upstream: orders, path: "/users/{id}", group: user, target: data, shadow: true}`,
		`{upstream: users, path: "/orders/{user.id}", group: orders}`,
	), nil)
	ep := cfg.Endpoints[0]
	if !ep.Backends[1].Shadow || ep.Backends[0].Shadow || ep.Backends[2].Shadow {
		t.Fatalf("shadow flags = %v %v %v, want false true false", ep.Backends[0].Shadow, ep.Backends[1].Shadow, ep.Backends[2].Shadow)
	}
	if !ep.Graph {
		t.Fatal("the endpoint has a reference: want a call graph")
	}
	if d := ep.Backends[2].Deps; len(d) != 1 || d[0] != 0 {
		t.Errorf("orders depends on %v, want [0]: {user...} is the real backend, not the shadow", d)
	}
	if ep.Backends[1].Referenced || len(ep.Backends[1].Deps) != 0 {
		t.Errorf("the shadow is in the graph: referenced %v, deps %v", ep.Backends[1].Referenced, ep.Backends[1].Deps)
	}
	if l := ep.Backends[0].Label; l != "user" {
		t.Errorf("the real backend's label = %q, want user (a shadow never renames it)", l)
	}
	// A shadow listed first does not take the real backend's label either.
	cfg = mustLoad(t, withBackends(
		`{upstream: orders, path: "/users/{id}", group: user, shadow: true}`,
		`{upstream: users, path: "/users/{id}", group: user}`,
	), nil)
	if l := cfg.Endpoints[0].Backends[1].Label; l != "user" {
		t.Errorf("the real backend's label = %q, want user", l)
	}
}

func TestShadowProblems(t *testing.T) {
	t.Parallel()
	real := `{upstream: users, path: "/users/{id}", group: user}`
	shadow := func(keys string) string {
		return `{upstream: orders, path: "/users/{id}", shadow: true` + keys + `}`
	}
	runProblemCases(t, []problemCase{
		{name: "no worker", yaml: withTop("server: {shadow: {workers: 0}}\n"),
			path: "server.shadow.workers", words: []string{"at least 1", "got 0"}},
		{name: "negative queue", yaml: withTop("server: {shadow: {queue: -1}}\n"),
			path: "server.shadow.queue", words: []string{"must not be negative", "0 = only to an idle worker"}},
		// Both are allocated when the process starts (a goroutine per
		// worker, a slot per queued copy): a typo of a few zeros must be
		// refused by check, not found as an out-of-memory kill at start.
		{name: "too many workers", yaml: withTop("server: {shadow: {workers: 100000000}}\n"),
			path: "server.shadow.workers", words: []string{"at most 10000", "got 100000000"}},
		{name: "queue too long", yaml: withTop("server: {shadow: {queue: 1000000000}}\n"),
			path: "server.shadow.queue", words: []string{"at most 1000000", "got 1000000000"}},
		{name: "only shadows", yaml: withBackends(shadow(""), shadow(", group: b")),
			path: "endpoints[0].backends", words: []string{"every backend", "shadow", "add a backend without shadow"}},
		{name: "passthrough", yaml: withBackends(shadow(", passthrough: true")),
			path: "endpoints[0].backends[0].passthrough", words: []string{"discarded", "remove passthrough"},
			also: []string{"endpoints[0].backends"}},
		{name: "required", yaml: withBackends(real, shadow(", required: true")),
			path: "endpoints[0].backends[1].required", words: []string{"discarded", "remove required"}},
		{name: "fallback", yaml: withBackends(real, shadow(`, fallback: {"a": 1}`)),
			path: "endpoints[0].backends[1].fallback", words: []string{"discarded", "remove fallback"}},
		{name: "hedge", yaml: withBackends(real, shadow(", hedge: {after: 10ms}")),
			path: "endpoints[0].backends[1].hedge", words: []string{"double its calls"}},
		{name: "foreach", yaml: withBackends(real, shadow(", group: items, foreach: user.items")),
			path: "endpoints[0].backends[1].foreach", words: []string{"once per element", "remove foreach"}},
		{name: "depends_on", yaml: withBackends(real, shadow(", depends_on: [user]")),
			path: "endpoints[0].backends[1].depends_on[0]", words: []string{"waits for no other backend"}},
		{name: "reference in the path", yaml: withBackends(real, `{upstream: orders, path: "/orders/{user.id}", shadow: true}`),
			path: "endpoints[0].backends[1].path", words: []string{"{user.id}", "before any answer"}},
		{name: "reference in a header", yaml: withBackends(real, shadow(`, headers: {X-User: "{user.id}"}`)),
			path: "endpoints[0].backends[1].headers.X-User", words: []string{"{user.id}"}},
		{name: "referenced", yaml: withBackends(real, shadow(", name: v2"), `{upstream: users, path: "/x/{v2.id}", group: x}`),
			path: "endpoints[0].backends[2].path", words: []string{`"v2"`, "backends[1], a shadow backend", "discarded"}},
		{name: "depended on", yaml: withBackends(real, shadow(", name: v2"), `{upstream: users, path: "/x", group: x, depends_on: [v2]}`),
			path: "endpoints[0].backends[2].depends_on[0]", words: []string{"a shadow backend"}},
		{name: "upstream shared with real calls", yaml: withBackends(real, shadow(""), `{upstream: orders, path: "/o", group: o}`),
			path: "endpoints[0].backends[1].upstream", words: []string{`"orders" also serves real calls (endpoints[0].backends[2])`, "an upstream of its own"}},
		{name: "foreach over a shadow", yaml: withBackends(real, shadow(", name: v2"), `{upstream: users, path: "/x/{item}", group: x, foreach: v2.ids}`),
			path: "endpoints[0].backends[2].foreach", words: []string{"a shadow backend"}},
	})
}
