package config_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// SPEC §7: call graphs. Every validation rule, each pinned to its YAML path
// and its whole message (runProblemCases also checks that no other problem
// is reported).

const (
	// a and b are two backends with explicit names, for references.
	beA = `{name: a, upstream: users, path: "/users/{id}"}`
	beB = `{name: b, upstream: orders, path: "/orders/{id}"}`
	bp0 = "endpoints[0].backends[0]"
	bp1 = "endpoints[0].backends[1]"
	bp2 = "endpoints[0].backends[2]"
)

func TestGraphUnknownNames(t *testing.T) {
	t.Parallel()
	known := `names "nope", which is not a backend of this endpoint (known: a, b)`
	runProblemCases(t, []problemCase{
		{name: "in a path reference", yaml: withBackends(beA, `{name: b, upstream: orders, path: "/o/{nope.id}"}`),
			path: bp1 + ".path", words: []string{"{nope.id} " + known}},
		{name: "in a query reference", yaml: withBackends(beA, `{name: b, upstream: orders, path: "/o?x={nope.id}"}`),
			path: bp1 + ".path", words: []string{"{nope.id} " + known}},
		{name: "in a header reference", yaml: withBackends(beA, `{name: b, upstream: orders, path: /o, headers: {X-User: "u-{nope.id}"}}`),
			path: bp1 + ".headers.X-User", words: []string{"{nope.id} " + known}},
		{name: "in foreach", yaml: withBackends(beA, `{name: b, upstream: orders, path: /o, foreach: nope.lines, group: g}`),
			path: bp1 + ".foreach", words: []string{"foreach " + known}},
		{name: "in depends_on", yaml: withBackends(beA, `{name: b, upstream: orders, path: /o, depends_on: [a, nope]}`),
			path: bp1 + ".depends_on[1]", words: []string{"depends_on " + known}},
		{name: "known names are the defaults too", yaml: withBackends(`{upstream: users, path: "/users/{id}"}`,
			`{upstream: orders, path: /o, group: og}`, `{name: c, upstream: orders, path: "/o/{nope.id}"}`),
			path: bp2 + ".path", words: []string{`{nope.id} names "nope", which is not a backend of this endpoint (known: users, og, c)`}},
		{name: "an upstream name is no backend name once a group is set", yaml: withBackends(`{upstream: users, path: "/users/{id}", group: u}`,
			`{upstream: orders, path: "/o/{users.id}"}`),
			path: bp1 + ".path", words: []string{`{users.id} names "users", which is not a backend of this endpoint (known: u, orders)`}},
		{name: "names are case-sensitive", yaml: withBackends(beA, `{name: b, upstream: orders, path: "/o/{A.id}"}`),
			path: bp1 + ".path", words: []string{`{A.id} names "A", which is not a backend of this endpoint (known: a, b)`}},
	})
}

func TestGraphCycles(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "two backends", yaml: withBackends(`{name: order, upstream: orders, path: "/o/{customer.id}"}`,
			`{name: customer, upstream: users, path: "/u/{order.customer}"}`),
			path: bp0, words: []string{"dependency cycle: order -> customer -> order"}},
		// a feeds b, b feeds c, c feeds a: named in that order, whichever
		// backend comes first in the file.
		{name: "three backends, data flowing forward", yaml: withBackends(`{name: a, upstream: users, path: "/u/{c.x}"}`,
			`{name: b, upstream: users, path: "/u/{a.x}"}`, `{name: c, upstream: orders, path: "/o/{b.x}"}`),
			path: bp0, words: []string{"dependency cycle: a -> b -> c -> a"}},
		{name: "three backends, data flowing backward", yaml: withBackends(`{name: a, upstream: users, path: "/u/{b.x}"}`,
			`{name: b, upstream: users, path: "/u/{c.x}"}`, `{name: c, upstream: orders, path: "/o/{a.x}"}`),
			path: bp0, words: []string{"dependency cycle: a -> c -> b -> a"}},
		{name: "through depends_on and foreach", yaml: withBackends(`{name: a, upstream: users, path: "/u/{id}", depends_on: [b]}`,
			`{name: b, upstream: orders, path: "/o/{item.sku}", foreach: a.lines, group: g}`),
			path: bp0, words: []string{"dependency cycle: a -> b -> a"}},
		{name: "a cycle behind an independent backend", yaml: withBackends(`{name: x, upstream: users, path: "/u/{id}"}`,
			`{name: a, upstream: users, path: "/u/{b.x}"}`, `{name: b, upstream: orders, path: "/o/{a.x}", depends_on: [x]}`),
			path: bp1, words: []string{"dependency cycle: a -> b -> a"}},
		{name: "a reference to itself", yaml: withBackends(beA, `{name: b, upstream: orders, path: "/o/{b.id}"}`),
			path: bp1 + ".path", words: []string{"backends[1] cannot depend on itself"}},
		{name: "itself by default name", yaml: withBackends(`{upstream: users, path: "/u/{users.id}"}`),
			path: bp0 + ".path", words: []string{"backends[0] cannot depend on itself"}},
		{name: "itself in depends_on", yaml: withBackends(beA, `{name: b, upstream: orders, path: /o, depends_on: [b]}`),
			path: bp1 + ".depends_on[0]", words: []string{"backends[1] cannot depend on itself"}},
		{name: "itself in foreach", yaml: withBackends(`{name: b, upstream: orders, path: /o, foreach: b.lines, group: g}`),
			path: bp0 + ".foreach", words: []string{"backends[0] cannot depend on itself"}},
	})
}

func TestGraphNames(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "the same explicit name twice", yaml: withBackends(beA, `{name: a, upstream: orders, path: /o}`),
			path: bp1 + ".name", words: []string{`name "a" is already used by backends[0]; each backend of an endpoint needs its own name`}},
		{name: "the same name a third time", yaml: withBackends(beA, beB, `{name: a, upstream: orders, path: /o2}`),
			path: bp2 + ".name", words: []string{`name "a" is already used by backends[0]; each backend of an endpoint needs its own name`}},
		{name: "the reserved name item", yaml: withBackends(`{name: item, upstream: users, path: "/u/{id}"}`),
			path: bp0 + ".name", words: []string{`"item" is reserved: {item} is the current element of a foreach backend`}},
		{name: "a dot in a name", yaml: withBackends(`{name: a.b, upstream: users, path: "/u/{id}"}`),
			path: bp0 + ".name", words: []string{`"a.b": a name cannot contain '.', '{' or '}': references read {NAME.field}`}},
		{name: "a brace in a name", yaml: withBackends(`{name: "a}", upstream: users, path: "/u/{id}"}`),
			path: bp0 + ".name", words: []string{`"a}": a name cannot contain '.', '{' or '}'`}},
		// Two backends of upstream users without name or group are both
		// called "users": fine until something references that name.
		{name: "ambiguous default names", yaml: withBackends(`{upstream: users, path: "/u/{id}"}`, `{upstream: users, path: "/u2/{id}"}`,
			`{upstream: orders, path: "/o/{users.x}"}`),
			path: bp2 + ".path", words: []string{`{users.x} names "users", but backends[0] and backends[1] are both called "users": give one of them a name`}},
		{name: "ambiguous default names in depends_on", yaml: withBackends(`{upstream: users, path: "/u/{id}"}`, `{upstream: users, path: "/u2/{id}"}`,
			`{upstream: orders, path: /o, depends_on: [users]}`),
			path: bp2 + ".depends_on[0]", words: []string{`depends_on names "users", but backends[0] and backends[1] are both called "users": give one of them a name`}},
		{name: "ambiguous default names in foreach", yaml: withBackends(`{upstream: users, path: "/u/{id}"}`, `{upstream: users, path: "/u2/{id}"}`,
			`{upstream: orders, path: /o, foreach: users.x, group: g}`),
			path: bp2 + ".foreach", words: []string{`foreach names "users", but backends[0] and backends[1] are both called "users": give one of them a name`}},
	})
}

func TestGraphForeachAndItem(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "foreach without group", yaml: withBackends(beA, `{upstream: orders, path: "/o/{item.sku}", foreach: a.lines}`),
			path: bp1 + ".group", words: []string{"is required with foreach: the results, one per element, go under it as an array"}},
		{name: "foreach naming no field", yaml: withBackends(beA, `{upstream: orders, path: /o, foreach: a, group: g}`),
			path: bp1 + ".foreach", words: []string{`"a": name an array in another backend's answer as NAME.path, e.g. order.lines`}},
		{name: "foreach over the item", yaml: withBackends(beA, `{upstream: orders, path: /o, foreach: item.lines, group: g}`),
			path: bp1 + ".foreach", words: []string{`"item.lines": foreach names another backend's array (NAME.path), not the item`}},
		{name: "foreach with an empty segment", yaml: withBackends(beA, `{upstream: orders, path: /o, foreach: a..lines, group: g}`),
			path: bp1 + ".foreach", words: []string{"{a..lines}: empty field name in the reference"}},
		{name: "foreach on a passthrough backend", yaml: withEndpoints("  - path: /u/{id}\n    backends:\n      - {upstream: users, path: /u, passthrough: true, foreach: x.lines}\n"),
			path: bp0 + ".foreach", words: []string{"a passthrough backend relays one answer; it cannot call once per element"},
			also: []string{bp0 + ".group"}},
		{name: "{item.path} outside foreach", yaml: withBackends(beA, `{upstream: orders, path: "/o/{item.sku}"}`),
			path: bp1 + ".path", words: []string{"{item.sku}: {item...} is the current element of a foreach backend, and this backend has no foreach"}},
		{name: "{item.path} in a query outside foreach", yaml: withBackends(beA, `{upstream: orders, path: "/o?sku={item.sku}"}`),
			path: bp1 + ".path", words: []string{"{item.sku}: {item...} is the current element of a foreach backend, and this backend has no foreach"}},
		{name: "{item.path} in a header outside foreach", yaml: withBackends(beA, `{upstream: orders, path: /o, headers: {X-Sku: "{item.sku}"}}`),
			path: bp1 + ".headers.X-Sku", words: []string{"{item.sku}: {item...} is the current element of a foreach backend, and this backend has no foreach"}},
		// A header value keeps a {param} as it is, but {item} is a reference
		// wherever it stands: it must not go out as the text "{item}".
		{name: "{item} in a header outside foreach", yaml: withBackends(beA, `{upstream: orders, path: /o, headers: {X-Sku: "{item}"}}`),
			path: bp1 + ".headers.X-Sku", words: []string{"{item}: {item...} is the current element of a foreach backend, and this backend has no foreach"}},
		{name: "{item} in a path outside foreach", yaml: withBackends(beA, `{upstream: orders, path: "/o/{item}"}`),
			path: bp1 + ".path", words: []string{"{item} is not a parameter of the endpoint path (known: id)"}},
	})
}

func TestGraphLimitsMergeAndFallback(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "max_parallel 0", yaml: withBackends(beA, `{upstream: orders, path: /o, foreach: a.l, group: g, max_parallel: 0}`),
			path: bp1 + ".max_parallel", words: []string{"must be at least 1, got 0"}},
		{name: "max_parallel negative", yaml: withBackends(`{upstream: orders, path: /o, max_parallel: -3}`),
			path: bp0 + ".max_parallel", words: []string{"must be at least 1, got -3"}},
		{name: "max_parallel from the environment", yaml: withBackends(beA),
			env:  map[string]string{"MANIFOLD_ENDPOINTS_0_BACKENDS_0_MAX_PARALLEL": "0"},
			path: bp0 + ".max_parallel", words: []string{"from $MANIFOLD_ENDPOINTS_0_BACKENDS_0_MAX_PARALLEL: must be at least 1, got 0"}},
		{name: "max_items 0", yaml: withBackends(beA, `{upstream: orders, path: /o, foreach: a.l, group: g, max_items: 0}`),
			path: bp1 + ".max_items", words: []string{"must be at least 1, got 0"}},
		{name: "max_items negative", yaml: withBackends(`{upstream: orders, path: /o, max_items: -1}`),
			path: bp0 + ".max_items", words: []string{"must be at least 1, got -1"}},
		{name: "fallback on a passthrough backend", yaml: withBackends(`{upstream: users, path: /u, passthrough: true, fallback: {"a": 1}}`),
			path: bp0 + ".fallback", words: []string{"a passthrough backend relays the upstream's answer as it is; it has no fallback"}},
		{name: "a null fallback on a passthrough backend", yaml: withBackends(`{upstream: users, path: /u, passthrough: true, fallback: null}`),
			path: bp0 + ".fallback", words: []string{"it has no fallback"}},
		{name: "fallback not JSON", yaml: withBackends(`{upstream: users, path: /u, fallback: .inf}`),
			path: bp0 + ".fallback", words: []string{".inf (line 7) is not a number JSON can hold"}},
		{name: "merge outside its values", yaml: withEndpointKeys("    merge: deeper\n"),
			path: "endpoints[0].merge", words: []string{`"deeper": use shallow (later top-level keys replace earlier ones, the default) or deep (objects merge recursively, arrays concatenate)`}},
		{name: "merge is case-sensitive", yaml: withEndpointKeys("    merge: Deep\n"),
			path: "endpoints[0].merge", words: []string{`"Deep": use shallow`}},
		{name: "merge empty", yaml: withEndpointKeys("    merge: \"\"\n"),
			path: "endpoints[0].merge", words: []string{`"": use shallow`}},
		{name: "merge from the environment", yaml: withEndpointKeys(""), env: map[string]string{"MANIFOLD_ENDPOINTS_0_MERGE": "union"},
			path: "endpoints[0].merge", words: []string{`from $MANIFOLD_ENDPOINTS_0_MERGE: "union": use shallow`}},
	})
}

// A backend that is not a map is reported, and the rest of the graph is
// still compiled and checked around it.
func TestGraphWithABackendThatIsNoMap(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "a number", yaml: withBackends(beA, `{upstream: orders, path: "/o/{a.x}"}`, `5`),
			path: bp2, words: []string{"expected a map of settings"}},
		{name: "null, first", yaml: withBackends(`~`, beA, `{upstream: orders, path: "/o/{a.x}"}`),
			path: bp0, words: []string{"expected a map of settings"}},
		{name: "beside a cycle", yaml: withBackends(`{name: a, upstream: users, path: "/u/{b.x}"}`, `[]`, `{name: b, upstream: orders, path: "/o/{a.x}"}`),
			path: bp1, words: []string{"expected a map of settings"}, also: []string{bp0}},
	})
}

func TestGraphBackendHeaders(t *testing.T) {
	t.Parallel()
	hp := bp0 + ".headers."
	be := func(headers string) string {
		return withBackends(`{upstream: users, path: "/u/{id}", headers: {` + headers + `}}`)
	}
	runProblemCases(t, []problemCase{
		{name: "a space in the name", yaml: be(`"X Bad": v`), path: hp + "X Bad", words: []string{`"X Bad" is not a valid header name`}},
		{name: "a colon in the name", yaml: be(`"X:Bad": v`), path: hp + "X:Bad", words: []string{`"X:Bad" is not a valid header name`}},
		{name: "an empty name", yaml: be(`"": v`), path: hp, words: []string{`"" is not a valid header name`}},
		{name: "Host", yaml: be(`host: evil.test`), path: hp + "host", words: []string{"host is set by Manifold for each call and cannot be set here"}},
		{name: "Content-Length", yaml: be(`Content-Length: "5"`), path: hp + "Content-Length", words: []string{"Content-Length is set by Manifold for each call and cannot be set here"}},
		{name: "X-Request-Id", yaml: be(`X-Request-ID: x`), path: hp + "X-Request-ID", words: []string{"set by Manifold"}},
		{name: "traceparent", yaml: be(`traceparent: x`), path: hp + "traceparent", words: []string{"set by Manifold"}},
		{name: "a hop-by-hop header", yaml: be(`Connection: close`), path: hp + "Connection", words: []string{"Connection is set by Manifold"}},
		{name: "Transfer-Encoding", yaml: be(`Transfer-Encoding: chunked`), path: hp + "Transfer-Encoding", words: []string{"set by Manifold"}},
		{name: "CR in the value", yaml: be(`X-A: "a\rb"`), path: hp + "X-A", words: []string{"the value holds a control character (CR, LF, NUL, DEL or another: only tab is allowed)"}},
		{name: "LF in the value", yaml: be(`X-A: "a\nb"`), path: hp + "X-A", words: []string{"the value holds a control character (CR, LF, NUL, DEL or another: only tab is allowed)"}},
		{name: "NUL in the value", yaml: be(`X-A: "a\0b"`), path: hp + "X-A", words: []string{"the value holds a control character (CR, LF, NUL, DEL or another: only tab is allowed)"}},
		// Other control characters are refused as in an upstream's headers:
		// the stdlib client would refuse them at every call.
		{name: "another control character", yaml: be(`X-A: "a\x01b"`), path: hp + "X-A", words: []string{"the value holds a control character (CR, LF, NUL, DEL or another: only tab is allowed)"}},
		{name: "DEL", yaml: be(`X-A: "a\x7Fb"`), path: hp + "X-A", words: []string{"the value holds a control character"}},
		{name: "the same name twice", yaml: be(`X-A: a, x-a: b`), path: hp + "x-a", words: []string{`header "x-a" is also given as "X-A"; header names are case-insensitive`}},
		{name: "not a map", yaml: withBackends(`{upstream: users, path: "/u/{id}", headers: [a]}`), path: bp0 + ".headers", words: []string{"expected a map of name: value, got a list"}},
		{name: "a reference with an empty field", yaml: be(`X-A: "{a..b}"`), path: hp + "X-A", words: []string{"{a..b}: empty field name in the reference"}},
		{name: "a reference without a name", yaml: be(`X-A: "{.b}"`), path: hp + "X-A", words: []string{"{.b}: a reference is {NAME.field}, with NAME a backend's name"}},
	})
}

func TestGraphReferenceSyntax(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "not a whole segment", yaml: withBackends(beA, `{upstream: orders, path: "/o/x{a.id}"}`),
			path: bp1 + ".path", words: []string{`parameter {a.id} in "/o/x{a.id}" must be a whole path segment, like /users/{a.id}`}},
		{name: "an empty field", yaml: withBackends(beA, `{upstream: orders, path: "/o/{a..id}"}`),
			path: bp1 + ".path", words: []string{"{a..id}: empty field name in the reference"}},
		{name: "a trailing dot", yaml: withBackends(beA, `{upstream: orders, path: "/o/{a.}"}`),
			path: bp1 + ".path", words: []string{"{a.}: empty field name in the reference"}},
		{name: "no name", yaml: withBackends(beA, `{upstream: orders, path: "/o/{.id}"}`),
			path: bp1 + ".path", words: []string{"{.id}: a reference is {NAME.field}, with NAME a backend's name"}},
		{name: "a brace inside", yaml: withBackends(beA, `{upstream: orders, path: "/o?q={a.{id}"}`),
			path: bp1 + ".path", words: []string{"{a.{id}: braces cannot appear inside a reference"}},
		{name: "an unclosed brace in the query", yaml: withBackends(beA, `{upstream: orders, path: "/o?q={a.id"}`),
			path: bp1 + ".path", words: []string{`unbalanced '{' in query "q={a.id"`}},
		{name: "a reference in the endpoint path", yaml: withEndpoints("  - path: /u/{a.id}\n    backends:\n      - " + beA + "\n"),
			// Only the endpoint path's problem: its parameters are not
			// known, so beA's {id} is not called unknown.
			path: "endpoints[0].path", words: []string{`parameter {a.id} in "/u/{a.id}": a name is letters, digits and _ and does not start with a digit`}},
	})
}

// ---- compiled graphs ----

// specExample is the endpoint of SPEC §7, on its four upstreams.
const specExample = `upstreams:
  orders: {url: "http://orders.test"}
  users: {url: "http://users.test"}
  products: {url: "http://products.test"}
  recommendations: {url: "http://recs.test"}
endpoints:
  - path: /api/orders/{id}
    merge: shallow
    backends:
      - name: order
        upstream: orders
        path: /orders/{id}
        group: order
      - upstream: users
        path: /users/{order.customer.id}
        group: customer
      - upstream: products
        foreach: order.lines
        path: /products/{item.sku}?lang={order.lang}
        max_parallel: 4
        max_items: 100
        group: products
      - upstream: recommendations
        path: /recommendations/{id}
        group: recommendations
        fallback: {"items": []}
`

type refWant struct {
	Text, Name string
	Source     int
	Path       string
}

func refsOf(rs []*config.Ref) []refWant {
	var out []refWant
	for _, r := range rs {
		out = append(out, refWant{r.Text, r.Name, r.Source, r.Path})
	}
	return out
}

func TestGraphSpecExample(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, specExample, nil)
	ep := cfg.Endpoints[0]
	if !ep.Graph || ep.Deep || ep.Merge != "shallow" {
		t.Errorf("Graph %v Deep %v Merge %q, want true false shallow", ep.Graph, ep.Deep, ep.Merge)
	}
	if want := [][]int{{0, 3}, {1, 2}}; !reflect.DeepEqual(ep.Stages, want) {
		t.Errorf("Stages = %v, want %v", ep.Stages, want)
	}
	wants := []struct {
		id         string
		deps       []int
		referenced bool
		refs       []refWant
		fallback   string
	}{
		{"order", nil, true, nil, ""},
		{"customer", []int{0}, false, []refWant{{"{order.customer.id}", "order", 0, "customer.id"}}, ""},
		{"products", []int{0}, false, []refWant{{"{item.sku}", "item", config.ItemSource, "sku"}, {"{order.lang}", "order", 0, "lang"}}, ""},
		{"recommendations", nil, false, nil, `{"items":[]}`},
	}
	for i, w := range wants {
		be := ep.Backends[i]
		if be.ID != w.id || !slices.Equal(be.Deps, w.deps) || be.Referenced != w.referenced {
			t.Errorf("backends[%d]: ID %q Deps %v Referenced %v, want %q %v %v", i, be.ID, be.Deps, be.Referenced, w.id, w.deps, w.referenced)
		}
		if got := refsOf(be.Refs); !reflect.DeepEqual(got, w.refs) {
			t.Errorf("backends[%d].Refs = %+v, want %+v", i, got, w.refs)
		}
		if string(be.FallbackJSON) != w.fallback {
			t.Errorf("backends[%d].FallbackJSON = %q, want %q", i, be.FallbackJSON, w.fallback)
		}
		if be.MaxParallel != 4 || be.MaxItems != 100 {
			t.Errorf("backends[%d]: max_parallel %d max_items %d", i, be.MaxParallel, be.MaxItems)
		}
	}
	f := ep.Backends[2].ForeachRef
	if f == nil || f.Text != "{order.lines}" || f.Name != "order" || f.Source != 0 || f.Path != "lines" {
		t.Errorf("products ForeachRef = %+v", f)
	}
	if ep.Backends[0].ForeachRef != nil || ep.Backends[1].ForeachRef != nil {
		t.Error("a backend without foreach has a ForeachRef")
	}
}

// The shipped config.yaml's /api/orders/{id} compiles to the same graph.
func TestGraphShippedConfig(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../config.yaml", envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range cfg.Endpoints {
		if ep.Path != "/api/orders/{id}" {
			if ep.Graph || ep.Stages != nil {
				t.Errorf("%s: Graph %v Stages %v, want no graph", ep.Path, ep.Graph, ep.Stages)
			}
			continue
		}
		if !ep.Graph || !reflect.DeepEqual(ep.Stages, [][]int{{0}, {1, 2, 3}}) {
			t.Errorf("%s: Graph %v Stages %v", ep.Path, ep.Graph, ep.Stages)
		}
		if got := string(ep.Backends[3].FallbackJSON); got != "[]" {
			t.Errorf("recommendations fallback = %q, want []", got)
		}
	}
}

func TestGraphCompiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		backends   []string
		stages     [][]int
		deps       [][]int
		referenced []bool
	}{
		{name: "a chain of three", backends: []string{`{name: c, upstream: users, path: "/u/{b.x}"}`, `{name: b, upstream: users, path: "/u/{a.x}"}`, beA},
			stages: [][]int{{2}, {1}, {0}}, deps: [][]int{{1}, {2}, nil}, referenced: []bool{false, true, true}},
		{name: "a diamond", backends: []string{beA, `{name: l, upstream: users, path: "/u/{a.x}"}`, `{name: r, upstream: users, path: "/u?q={a.y}"}`,
			`{name: j, upstream: orders, path: "/o/{l.x}", headers: {X-R: "{r.z}"}}`},
			stages: [][]int{{0}, {1, 2}, {3}}, deps: [][]int{nil, {0}, {0}, {1, 2}}, referenced: []bool{true, true, true, false}},
		// depends_on orders without reading: the dependency's answer need
		// not be kept raw.
		{name: "depends_on only", backends: []string{beA, `{upstream: orders, path: /o, depends_on: [a]}`},
			stages: [][]int{{0}, {1}}, deps: [][]int{nil, {0}}, referenced: []bool{true, false}},
		{name: "a dependency named twice is one", backends: []string{beA, `{upstream: orders, path: "/o/{a.x}?y={a.y}&x={a.x}", headers: {X-A: "{a.x}"}, depends_on: [a, a]}`},
			stages: [][]int{{0}, {1}}, deps: [][]int{nil, {0}}, referenced: []bool{true, false}},
		{name: "deps sorted", backends: []string{`{upstream: orders, path: "/o/{b.x}", depends_on: [a]}`, beA, beB},
			stages: [][]int{{1, 2}, {0}}, deps: [][]int{{1, 2}, nil, nil}, referenced: []bool{false, true, true}},
		{name: "a default name: the group", backends: []string{`{upstream: users, path: "/u/{id}", group: g}`, `{upstream: orders, path: "/o/{g.x}"}`},
			stages: [][]int{{0}, {1}}, deps: [][]int{nil, {0}}, referenced: []bool{true, false}},
		{name: "a default name: the upstream", backends: []string{`{upstream: users, path: "/u/{id}"}`, `{upstream: orders, path: "/o/{users.x}"}`},
			stages: [][]int{{0}, {1}}, deps: [][]int{nil, {0}}, referenced: []bool{true, false}},
		// An explicit name wins over a default one, whichever comes first.
		{name: "explicit name over default, after", backends: []string{`{upstream: users, path: "/u/{id}"}`, `{name: users, upstream: orders, path: /o}`, `{upstream: orders, path: "/o/{users.x}", group: g}`},
			stages: [][]int{{0, 1}, {2}}, deps: [][]int{nil, nil, {1}}, referenced: []bool{false, true, false}},
		{name: "explicit name over default, before", backends: []string{`{name: users, upstream: orders, path: /o}`, `{upstream: users, path: "/u/{id}"}`, `{upstream: orders, path: "/o/{users.x}", group: g}`},
			stages: [][]int{{0, 1}, {2}}, deps: [][]int{nil, nil, {0}}, referenced: []bool{true, false, false}},
		{name: "explicit name settles an ambiguity", backends: []string{`{upstream: users, path: "/u/{id}"}`, `{upstream: users, path: "/u2/{id}"}`, `{name: users, upstream: users, path: "/u3"}`, `{upstream: orders, path: "/o/{users.x}"}`},
			stages: [][]int{{0, 1, 2}, {3}}, deps: [][]int{nil, nil, nil, {2}}, referenced: []bool{false, false, true, false}},
		{name: "foreach over a field of the item", backends: []string{beA, `{upstream: orders, path: "/o/{item}", foreach: a.ids, group: g, headers: {X-N: "{item.n}"}}`},
			stages: [][]int{{0}, {1}}, deps: [][]int{nil, {0}}, referenced: []bool{true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ep := mustLoad(t, withBackends(tc.backends...), nil).Endpoints[0]
			if !ep.Graph || !reflect.DeepEqual(ep.Stages, tc.stages) {
				t.Errorf("Graph %v Stages %v, want true %v", ep.Graph, ep.Stages, tc.stages)
			}
			for i, be := range ep.Backends {
				if !slices.Equal(be.Deps, tc.deps[i]) || be.Referenced != tc.referenced[i] {
					t.Errorf("backends[%d]: Deps %v Referenced %v, want %v %v", i, be.Deps, be.Referenced, tc.deps[i], tc.referenced[i])
				}
			}
		})
	}
}

func TestGraphRefsCompileOncePerText(t *testing.T) {
	t.Parallel()
	be := mustLoad(t, withBackends(beA, `{upstream: orders, path: "/o/{a.x}?y={a.y}&x={a.x}", headers: {X-A: "{a.x}/{a.z}", X-B: "{id}{a.y}"}}`), nil).Endpoints[0].Backends[1]
	want := []refWant{{"{a.x}", "a", 0, "x"}, {"{a.y}", "a", 0, "y"}, {"{a.z}", "a", 0, "z"}}
	if got := refsOf(be.Refs); !reflect.DeepEqual(got, want) {
		t.Errorf("Refs = %+v, want %+v", got, want)
	}
	var names []string
	for _, h := range be.HeaderTemplates {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"X-A", "X-B"}) {
		t.Errorf("HeaderTemplates names = %q, want sorted X-A, X-B", names)
	}
}

// A numeric segment stays a gjson key that also addresses an element; a
// segment with gjson syntax is escaped so that it is a key only.
func TestGraphRefPaths(t *testing.T) {
	t.Parallel()
	be := mustLoad(t, withBackends(beA, `{upstream: orders, path: "/o/{a.lines.0.sku}?q={a.x*y}&r={a.@this}&s={a.b|c}"}`), nil).Endpoints[0].Backends[1]
	want := []refWant{{"{a.lines.0.sku}", "a", 0, "lines.0.sku"}, {"{a.x*y}", "a", 0, `x\*y`}, {"{a.@this}", "a", 0, `\@this`}, {"{a.b|c}", "a", 0, `b\|c`}}
	if got := refsOf(be.Refs); !reflect.DeepEqual(got, want) {
		t.Errorf("Refs = %+v, want %+v", got, want)
	}
}

func TestGraphNoRefsRunsTheOldPath(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withEndpoints(`  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{id}?x={id}", headers: {X-Id: "{id}", X-B: "{brace\tb"}}
      - {upstream: users, path: "/users/{id}/more"}
      - {upstream: orders, path: /orders, fallback: [], name: o}
`), nil)
	ep := cfg.Endpoints[0]
	if ep.Graph || ep.Stages != nil || ep.Deep || ep.Merge != config.MergeShallow {
		t.Errorf("Graph %v Stages %v Deep %v Merge %q, want false nil false shallow", ep.Graph, ep.Stages, ep.Deep, ep.Merge)
	}
	for i, be := range ep.Backends {
		if be.Deps != nil || be.Referenced || be.Refs != nil || be.ForeachRef != nil {
			t.Errorf("backends[%d]: Deps %v Referenced %v Refs %v ForeachRef %v", i, be.Deps, be.Referenced, be.Refs, be.ForeachRef)
		}
		if be.MaxParallel != 4 || be.MaxItems != 100 {
			t.Errorf("backends[%d]: max_parallel %d max_items %d, want the defaults 4 and 100", i, be.MaxParallel, be.MaxItems)
		}
	}
	// A header value keeps {param}, a lone brace and a tab as they are.
	h := ep.Backends[0].HeaderTemplates
	if len(h) != 2 {
		t.Fatalf("HeaderTemplates = %v", h)
	}
	for _, want := range []struct{ name, value string }{{"X-B", "{brace\tb"}, {"X-Id", "{id}"}} {
		i := slices.IndexFunc(h, func(h *config.HeaderTemplate) bool { return h.Name == want.name })
		if i < 0 {
			t.Fatalf("no header %s", want.name)
		}
		if v, bad := h[i].Render(nil); bad != nil || v != want.value {
			t.Errorf("%s renders %q, %v; want %q", want.name, v, bad, want.value)
		}
	}
	if ep.Backends[2].ID != "o" || ep.Backends[1].ID != "users" {
		t.Errorf("IDs %q %q", ep.Backends[2].ID, ep.Backends[1].ID)
	}
}

func TestGraphMergeAndLimits(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withEndpoints(`  - path: /a
    merge: deep
    backends:
      - {name: a, upstream: users, path: /a}
      - {upstream: orders, path: "/o/{item.id}", foreach: a.list, group: g, max_parallel: 1, max_items: 1}
  - path: /b
    merge: shallow
    backends: [{upstream: users, path: /b, max_parallel: 64, max_items: 100000}]
`), nil)
	a, b := cfg.Endpoints[0], cfg.Endpoints[1]
	if a.Merge != "deep" || !a.Deep || b.Merge != "shallow" || b.Deep {
		t.Errorf("merge: %q %v / %q %v", a.Merge, a.Deep, b.Merge, b.Deep)
	}
	if be := a.Backends[1]; be.MaxParallel != 1 || be.MaxItems != 1 {
		t.Errorf("max_parallel %d max_items %d, want 1 1", be.MaxParallel, be.MaxItems)
	}
	if be := b.Backends[0]; be.MaxParallel != 64 || be.MaxItems != 100000 {
		t.Errorf("max_parallel %d max_items %d, want 64 100000", be.MaxParallel, be.MaxItems)
	}
	// The environment can set them too.
	cfg = mustLoad(t, withBackends(beA), map[string]string{"MANIFOLD_ENDPOINTS_0_MERGE": "deep",
		"MANIFOLD_ENDPOINTS_0_BACKENDS_0_MAX_PARALLEL": "7", "MANIFOLD_ENDPOINTS_0_BACKENDS_0_MAX_ITEMS": "9", "MANIFOLD_ENDPOINTS_0_BACKENDS_0_NAME": "z"})
	ep := cfg.Endpoints[0]
	if be := ep.Backends[0]; !ep.Deep || be.MaxParallel != 7 || be.MaxItems != 9 || be.ID != "z" {
		t.Errorf("from the environment: Deep %v max_parallel %d max_items %d ID %q", ep.Deep, be.MaxParallel, be.MaxItems, be.ID)
	}
}

// The fallback is the file's JSON: keys' case kept (viper would lower-case
// them), numbers' text kept (float64 would round them), YAML's other
// scalar forms turned into the JSON they mean.
func TestGraphFallbackJSON(t *testing.T) {
	t.Parallel()
	tests := []struct{ yaml, want string }{
		{`{"Items": [], "n": 9007199254740993, "f": 0.10, "s": "x"}`, `{"Items":[],"n":9007199254740993,"f":0.10,"s":"x"}`},
		{`{CamelCase: {Inner: [1, 2.50, -0, 1e3, 1E-3]}}`, `{"CamelCase":{"Inner":[1,2.50,-0,1e3,1E-3]}}`},
		{`{"a.b": 1, "a": {"b": 2}}`, `{"a.b":1,"a":{"b":2}}`},
		{`[]`, `[]`},
		{`{}`, `{}`},
		{`""`, `""`},
		{`"text"`, `"text"`},
		{`plain words`, `"plain words"`},
		{`"quote \" and \\ and é and \u0001"`, `"quote \" and \\ and é and \u0001"`},
		{`"12"`, `"12"`},
		{`'0x1F'`, `"0x1F"`},
		{`true`, `true`},
		{`True`, `true`},
		{`TRUE`, `true`},
		{`false`, `false`},
		{`False`, `false`},
		{`null`, `null`},
		{`~`, `null`},
		{`Null`, `null`},
		{`NULL`, `null`},
		{`[null, ~, true, false]`, `[null,null,true,false]`},
		{`yes`, `"yes"`}, // YAML 1.2: a string
		{`0`, `0`},
		{`-12`, `-12`},
		{`+12`, `12`},
		{`0x1F`, `31`},
		{`0xff`, `255`},
		{`0o17`, `15`},
		{`-0x10`, `-16`},
		{`0b101`, `5`},
		{`0x_1F`, `31`},
		{`0xFFFFFFFFFFFFFFFF`, `18446744073709551615`},
		{`010`, `8`}, // as go.yaml.in/yaml/v3 reads it everywhere (max_parallel: 010 is 8)
		{`1_000`, `1000`},
		{`12345678901234567890123`, `12345678901234567890123`},
		{`3.25`, `3.25`},
		{`+3.5`, `3.5`},
		{`.5`, `0.5`},
		{`-.5`, `-0.5`},
		{`5.`, `5`},
		{`1.e3`, `1000`},
		{`!!str 12`, `"12"`},
		{`!!int "12"`, `12`},
		{`2024-01-02`, `"2024-01-02"`},
		{`{a: &x [1, {B: 2}], c: *x}`, `{"a":[1,{"B":2}],"c":[1,{"B":2}]}`},
		{"\n          Multi:\n            - 1\n            - Two: 2", `{"Multi":[1,{"Two":2}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.yaml, func(t *testing.T) {
			t.Parallel()
			be := mustLoad(t, withEndpoints("  - path: /u\n    backends:\n      - upstream: users\n        path: /u\n        fallback: "+tc.yaml+"\n"), nil).Endpoints[0].Backends[0]
			if string(be.FallbackJSON) != tc.want {
				t.Errorf("FallbackJSON = %s, want %s", be.FallbackJSON, tc.want)
			}
		})
	}
	t.Run("no fallback", func(t *testing.T) {
		t.Parallel()
		be := mustLoad(t, withBackends(beA), nil).Endpoints[0].Backends[0]
		if be.FallbackJSON != nil {
			t.Errorf("FallbackJSON = %q, want nil", be.FallbackJSON)
		}
	})
	t.Run("an empty fallback is null", func(t *testing.T) {
		t.Parallel()
		be := mustLoad(t, withEndpoints("  - path: /u\n    backends:\n      - upstream: users\n        path: /u\n        fallback:\n"), nil).Endpoints[0].Backends[0]
		if string(be.FallbackJSON) != "null" {
			t.Errorf("FallbackJSON = %q, want null", be.FallbackJSON)
		}
	})
	t.Run("${VAR} is expanded in it", func(t *testing.T) {
		t.Parallel()
		be := mustLoad(t, withBackends(`{upstream: users, path: /u, fallback: {"Msg": "${MSG}"}}`), map[string]string{"MSG": "down"}).Endpoints[0].Backends[0]
		if string(be.FallbackJSON) != `{"Msg":"down"}` {
			t.Errorf("FallbackJSON = %s", be.FallbackJSON)
		}
	})
	t.Run("case of the key fallback", func(t *testing.T) {
		t.Parallel()
		be := mustLoad(t, withBackends(`{upstream: users, path: /u, fallback: {"K": 1}}`, `{upstream: orders, path: /o, group: g, fallback: [{"X": 2}]}`), nil).Endpoints[0]
		if string(be.Backends[0].FallbackJSON) != `{"K":1}` || string(be.Backends[1].FallbackJSON) != `[{"X":2}]` {
			t.Errorf("FallbackJSON = %s, %s", be.Backends[0].FallbackJSON, be.Backends[1].FallbackJSON)
		}
	})
}

// A fallback cannot come from the environment: the variable is not applied,
// and Load says so in a warning. Load reads the process environment for
// warnings, so this test sets it and does not run in parallel.
func TestGraphFallbackFromTheEnvironmentWarns(t *testing.T) {
	file := withBackends(`{upstream: users, path: /u, fallback: {"a": 1}}`, `{upstream: orders, path: /o}`)
	for _, tc := range []struct {
		name, variable, value, want string
	}{
		{"the fallback itself", "MANIFOLD_ENDPOINTS_0_BACKENDS_0_FALLBACK", `{"a": 2}`,
			"MANIFOLD_ENDPOINTS_0_BACKENDS_0_FALLBACK is not a config key: endpoints[0].backends[0].fallback cannot be set from the environment (write ${VAR} in its values instead)"},
		{"a backend without one", "MANIFOLD_ENDPOINTS_0_BACKENDS_1_FALLBACK", `[]`,
			"MANIFOLD_ENDPOINTS_0_BACKENDS_1_FALLBACK is not a config key: endpoints[0].backends[1].fallback cannot be set from the environment (write ${VAR} in its values instead)"},
		{"a key inside it", "MANIFOLD_ENDPOINTS_0_BACKENDS_0_FALLBACK_A", `2`,
			"MANIFOLD_ENDPOINTS_0_BACKENDS_0_FALLBACK_A is not a config key: endpoints[0].backends[0].fallback cannot be set from the environment (write ${VAR} in its values instead)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onlyProcessEnv(t, map[string]string{tc.variable: tc.value})
			p := writeFile(t, t.TempDir(), "config.yaml", file)
			cfg, err := config.Load(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Warnings, []string{tc.want}) {
				t.Errorf("Warnings = %q, want %q", cfg.Warnings, []string{tc.want})
			}
			ep := cfg.Endpoints[0]
			if string(ep.Backends[0].FallbackJSON) != `{"a":1}` || ep.Backends[1].FallbackJSON != nil {
				t.Errorf("FallbackJSON = %q, %q: the variable was applied", ep.Backends[0].FallbackJSON, ep.Backends[1].FallbackJSON)
			}
		})
	}
}
