package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/handlers"
)

// Tests of SPEC §7 call graphs, end to end on loopback upstreams. Timing is
// asserted by what the upstreams observe (requests in flight at once, which
// request arrived before which answer went out), never by wall-clock
// thresholds alone: a loaded 2-core machine stretches every duration, but
// not the order of events. Every wait that stands for "this should happen"
// has a generous timeout that fails the test instead of hanging it.

// patience bounds every wait for something that should happen promptly.
const patience = 5 * time.Second

// hit is one request an upstream saw.
type hit struct {
	uri    string // the request-target exactly as sent (r.RequestURI)
	path   string // decoded
	query  url.Values
	header http.Header
}

// spy is a loopback upstream that records every request it sees
// before handing it to h (nil: answer {}).
type spy struct {
	url  string
	mu   sync.Mutex
	hits []hit
}

func spyOn(t *testing.T, h http.HandlerFunc) *spy {
	t.Helper()
	rec := &spy{}
	rec.url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.hits = append(rec.hits, hit{r.RequestURI, r.URL.Path, r.URL.Query(), r.Header.Clone()})
		rec.mu.Unlock()
		if h == nil {
			writeJSON(w, `{}`)
			return
		}
		h(w, r)
	})
	return rec
}

func (rec *spy) seen() []hit {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]hit(nil), rec.hits...)
}

func (rec *spy) calls() int { return len(rec.seen()) }

// hitFor returns the one request whose path starts with prefix.
func (rec *spy) hitFor(t *testing.T, prefix string) hit {
	t.Helper()
	var found []hit
	for _, h := range rec.seen() {
		if strings.HasPrefix(h.uri, prefix) {
			found = append(found, h)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d requests to %s*, want 1: %+v", len(found), prefix, found)
	}
	return found[0]
}

func writeJSON(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, body)
}

// await waits for ch to close, at most patience; it reports whether it did.
func await(ctx context.Context, ch <-chan struct{}) bool {
	t := time.NewTimer(patience)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// closer closes a channel once, however often it is called.
type closer struct {
	once sync.Once
	ch   chan struct{}
}

func newCloser() *closer { return &closer{ch: make(chan struct{})} }
func (c *closer) close() { c.once.Do(func() { close(c.ch) }) }

// graphGateway serves yaml with the spies' URLs and returns its base URL.
func graphGateway(t *testing.T, yaml string, ups map[string]*spy) string {
	t.Helper()
	base, _ := graphGatewayWith(t, yaml, ups, handlers.Options{})
	return base
}

func graphGatewayWith(t *testing.T, yaml string, ups map[string]*spy, opts handlers.Options) (string, *handlers.Gateway) {
	t.Helper()
	urls := make(map[string]string, len(ups))
	for name, rec := range ups {
		urls[name] = rec.url
	}
	return gatewayWith(t, yaml, urls, opts)
}

// errorsOf returns the "_errors" of a partial answer, checking the partial
// answer's headers on the way.
func (a answer) errorsOf(t *testing.T) map[string]any {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("status %d, want a partial 200: %s", a.status, a.body)
	}
	if got := a.header.Get("X-Manifold-Completed"); got != "false" {
		t.Errorf("X-Manifold-Completed %q, want false", got)
	}
	if got := a.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("partial answer Cache-Control %q, want no-store", got)
	}
	errs, _ := a.json(t)["_errors"].(map[string]any)
	return errs
}

// sameJSON fails unless got and want are the same JSON document (numbers
// compared by their text).
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	dg := json.NewDecoder(strings.NewReader(string(got)))
	dg.UseNumber()
	dw := json.NewDecoder(strings.NewReader(want))
	dw.UseNumber()
	if err := dg.Decode(&g); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, got)
	}
	if err := dw.Decode(&w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

// --- timing ------------------------------------------------------------

// Two backends that both depend on one fast root run at the same time: each
// holds its answer until it has seen the other in flight (and then 200ms
// more, as a slow backend would), so in sequence the first would wait out
// its patience.
func TestGraphIndependentBranchesRunInParallel(t *testing.T) {
	t.Parallel()
	var inflight atomic.Int32
	both := newCloser()
	var overlapped [2]atomic.Bool
	branch := func(i int) *spy {
		return spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			if inflight.Add(1) == 2 {
				both.close()
			}
			defer inflight.Add(-1)
			overlapped[i].Store(await(r.Context(), both.ch))
			wait(r.Context(), 200*time.Millisecond)
			fmt.Fprintf(w, `{"branch":%d,"root":%q}`, i, strings.TrimPrefix(r.URL.Path, "/b/"))
		})
	}
	ups := map[string]*spy{
		"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `{"id":"r7"}`) }),
		"b":    branch(0),
		"c":    branch(1),
	}
	base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 10s}
  b: {url: "{{b}}", timeout: 10s}
  c: {url: "{{c}}", timeout: 10s}
endpoints:
  - path: /g/{id}
    timeout: 20s
    backends:
      - {upstream: root, path: "/root/{id}", group: root}
      - {upstream: b, path: "/b/{root.id}", group: b}
      - {upstream: c, path: "/b/{root.id}", group: c}
`, ups)
	a := get(t, base+"/g/1")
	sameJSON(t, a.body, `{"root":{"id":"r7"},"b":{"branch":0,"root":"r7"},"c":{"branch":1,"root":"r7"}}`)
	if !overlapped[0].Load() || !overlapped[1].Load() {
		t.Fatalf("the two branches were not in flight at the same time (took %v)", a.took)
	}
	t.Logf("root + two overlapping 200ms branches answered in %v", a.took)
}

// A chain runs in sequence, whatever the config order: b is called only
// after a's answer went out, c only after b's, and d (depends_on, no
// reference) only after c's.
func TestGraphChainRunsInSequence(t *testing.T) {
	t.Parallel()
	var answered [4]atomic.Bool
	var early [4]atomic.Bool
	link := func(i int, body string) *spy {
		return spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			if i > 0 && !answered[i-1].Load() {
				early[i].Store(true)
			}
			answered[i].Store(true) // nothing of the answer is sent before this
			writeJSON(w, body)
		})
	}
	ups := map[string]*spy{
		"a": link(0, `{"next":"b1"}`),
		"b": link(1, `{"next":"c1"}`),
		"c": link(2, `{"c":true}`),
		"d": link(3, `{"d":true}`),
	}
	base := graphGateway(t, `
upstreams:
  a: {url: "{{a}}", timeout: 5s}
  b: {url: "{{b}}", timeout: 5s}
  c: {url: "{{c}}", timeout: 5s}
  d: {url: "{{d}}", timeout: 5s}
endpoints:
  - path: /chain/{id}
    timeout: 10s
    backends:
      - {name: d, upstream: d, path: /d, group: d, depends_on: [c]}
      - {name: c, upstream: c, path: "/c/{b.next}", group: c}
      - {name: b, upstream: b, path: "/b/{a.next}", group: b}
      - {name: a, upstream: a, path: "/a/{id}", group: a}
`, ups)
	for range 3 {
		for i := range answered {
			answered[i].Store(false)
		}
		a := get(t, base+"/chain/1")
		sameJSON(t, a.body, `{"d":{"d":true},"c":{"c":true},"b":{"next":"c1"},"a":{"next":"b1"}}`)
		for i, name := range []string{"a", "b", "c", "d"} {
			if early[i].Load() {
				t.Errorf("%s was called before its dependency had answered", name)
			}
		}
	}
	for _, h := range ups["c"].seen() {
		if h.uri != "/c/c1" {
			t.Errorf("c called as %s, want /c/c1", h.uri)
		}
	}
}

// A dependent starts the moment its own dependency has answered, not when
// an unrelated slower backend of the same "stage" does: b (independent)
// holds its answer until c's request has arrived, so in waves the two would
// wait on each other until b's patience ran out.
func TestGraphDependentDoesNotWaitForUnrelatedBackend(t *testing.T) {
	t.Parallel()
	cSeen := newCloser()
	var released atomic.Bool
	ups := map[string]*spy{
		"a": spyOn(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `{"id":42}`) }),
		"b": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			released.Store(await(r.Context(), cSeen.ch))
			writeJSON(w, `{"slow":true}`)
		}),
		"c": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			cSeen.close()
			writeJSON(w, `{"c":true}`)
		}),
	}
	base := graphGateway(t, `
upstreams:
  a: {url: "{{a}}", timeout: 10s}
  b: {url: "{{b}}", timeout: 10s}
  c: {url: "{{c}}", timeout: 10s}
endpoints:
  - path: /g
    timeout: 20s
    backends:
      - {name: a, upstream: a, path: /a, group: a}
      - {name: b, upstream: b, path: /b, group: b}
      - {name: c, upstream: c, path: "/c/{a.id}", group: c}
`, ups)
	a := get(t, base+"/g")
	sameJSON(t, a.body, `{"a":{"id":42},"b":{"slow":true},"c":{"c":true}}`)
	if !released.Load() {
		t.Fatalf("c was not called while the unrelated b was still in flight (took %v)", a.took)
	}
}

// --- references ----------------------------------------------------------

// References read the dependency's answer as the upstream sent it: a field
// that target, allow, deny or rename keep from the client still drives the
// dependent's call.
func TestGraphReferencesReadTheRawAnswer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, shape, answer, ref, wantPath, wantRoot string
	}{
		{"deny", `deny: [secret]`, `{"id":1,"secret":"s3"}`, "root.secret", "/s3", `{"id":1}`},
		{"allow", `allow: [id]`, `{"id":1,"meta":{"token":"t0k"}}`, "root.meta.token", "/t0k", `{"id":1}`},
		{"target", `target: data`, `{"data":{"x":1},"hidden":"h1"}`, "root.hidden", "/h1", `{"x":1}`},
		{"rename", `rename: {id: ident}`, `{"id":"i9"}`, "root.id", "/i9", `{"ident":"i9"}`},
		{"array index", `allow: [n]`, `{"n":0,"lines":[{"sku":"x"},{"sku":"y2"}]}`, "root.lines.1.sku", "/y2", `{"n":0}`},
		{"target and deny", `target: data, deny: [k]`, `{"data":{"k":"kk","v":1}}`, "root.data.k", "/kk", `{"v":1}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ups := map[string]*spy{
				"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, tc.answer) }),
				"dep":  spyOn(t, nil),
			}
			base := graphGateway(t, fmt.Sprintf(`
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s}
endpoints:
  - path: /g
    timeout: 10s
    expose_errors: true
    backends:
      - {upstream: root, path: /root, group: root, %s}
      - {upstream: dep, path: "/{%s}", group: dep}
`, tc.shape, tc.ref), ups)
			a := get(t, base+"/g")
			sameJSON(t, a.body, `{"root":`+tc.wantRoot+`,"dep":{}}`)
			if got := ups["dep"].hitFor(t, "/").uri; got != tc.wantPath {
				t.Errorf("dependent called as %s, want %s", got, tc.wantPath)
			}
		})
	}
}

// A referenced string is path-escaped in the path and query-escaped in the
// query, so that no value can change the upstream's path structure or
// query; the upstream decodes exactly the value. A value that cannot be a
// path segment of its own (empty, "." or "..": /users/{order.customer.id}
// would become /users/, or climb out of /users, and no escaping helps, as
// servers resolve %2E as '.') fails the dependent, which is not called. In
// a query every value is fine: it stays inside its parameter.
func TestGraphReferenceEscaping(t *testing.T) {
	t.Parallel()
	cases := []struct {
		v     string
		unfit bool // as a path segment
	}{
		{v: "plain"}, {v: "a/b"}, {v: "../../admin"}, {v: "?x=1"}, {v: "#frag"}, {v: "a\r\nb"},
		{v: "a&b=c"}, {v: "a=b"}, {v: "ü日本/x"}, {v: "%2F"}, {v: "%2e%2e"}, {v: "a b+c"}, {v: "a;b"},
		{v: "\x00"}, {v: "-._~"}, {v: "..."}, {v: ".a"},
		{v: "", unfit: true}, {v: ".", unfit: true}, {v: "..", unfit: true},
	}
	root := spyOn(t, func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/root/"))
		b, _ := json.Marshal(map[string]string{"v": cases[i].v})
		writeJSON(w, string(b))
	})
	dep := spyOn(t, nil)
	base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}/base", timeout: 5s}
endpoints:
  - path: /g/{i}
    timeout: 10s
    expose_errors: true
    backends:
      - {upstream: root, path: "/root/{i}", group: root}
      - {upstream: dep, path: "/p/{i}/{root.v}/end?q={root.v}&k=1", group: path_and_query}
      - {upstream: dep, path: "/q/{i}?q=pre-{root.v}-post", group: query_only}
`, map[string]*spy{"root": root, "dep": dep})
	for i, tc := range cases {
		v := tc.v
		t.Run(strconv.Quote(v), func(t *testing.T) {
			a := get(t, fmt.Sprintf("%s/g/%d", base, i))
			prefix := fmt.Sprintf("/base/p/%d/", i)
			if tc.unfit {
				errs := a.errorsOf(t)
				if want := map[string]any{"path_and_query": "missing {root.v}"}; !reflect.DeepEqual(errs, want) {
					t.Errorf("_errors %v, want %v", errs, want)
				}
				for _, h := range dep.seen() {
					if strings.HasPrefix(h.uri, prefix) {
						t.Errorf("upstream called as %q", h.uri)
					}
				}
			} else {
				if a.status != 200 || a.header.Get("X-Manifold-Completed") != "true" {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				h := dep.hitFor(t, prefix)
				if want := prefix + url.PathEscape(v) + "/end?q=" + url.QueryEscape(v) + "&k=1"; h.uri != want {
					t.Errorf("request-target %q, want %q", h.uri, want)
				}
				if h.path != prefix+v+"/end" {
					t.Errorf("upstream decoded path %q, want %q", h.path, prefix+v+"/end")
				}
				if !reflect.DeepEqual(h.query, url.Values{"q": {v}, "k": {"1"}}) {
					t.Errorf("upstream decoded query %v", h.query)
				}
			}
			h := dep.hitFor(t, fmt.Sprintf("/base/q/%d?", i))
			if want := fmt.Sprintf("/base/q/%d?q=pre-%s-post", i, url.QueryEscape(v)); h.uri != want {
				t.Errorf("query request-target %q, want %q", h.uri, want)
			}
			if !reflect.DeepEqual(h.query, url.Values{"q": {"pre-" + v + "-post"}}) {
				t.Errorf("upstream decoded query %v", h.query)
			}
		})
	}
}

// Numbers are substituted with their exact text (no float64 round trip),
// booleans as true/false, in the path, the query and headers.
func TestGraphReferenceNumbersKeepTheirText(t *testing.T) {
	t.Parallel()
	ups := map[string]*spy{
		"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"big":9007199254740993,"dec":0.10,"exp":1.5E+300,"neg":-0,"t":true,"f":false}`)
		}),
		"dep": spyOn(t, nil),
	}
	base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s}
endpoints:
  - path: /g
    timeout: 10s
    backends:
      - {upstream: root, path: /root, group: root}
      - upstream: dep
        path: "/n/{root.big}/{root.dec}?exp={root.exp}&neg={root.neg}&t={root.t}&f={root.f}"
        group: dep
        headers: {X-Big: "{root.big}", X-Price: "EUR {root.dec}"}
`, ups)
	a := get(t, base+"/g")
	sameJSON(t, a.body, `{"root":{"big":9007199254740993,"dec":0.10,"exp":1.5E+300,"neg":-0,"t":true,"f":false},"dep":{}}`)
	h := ups["dep"].hitFor(t, "/n/")
	if want := "/n/9007199254740993/0.10?exp=1.5E%2B300&neg=-0&t=true&f=false"; h.uri != want {
		t.Errorf("request-target %q, want %q", h.uri, want)
	}
	if got := h.header.Get("X-Big"); got != "9007199254740993" {
		t.Errorf("X-Big %q", got)
	}
	if got := h.header.Get("X-Price"); got != "EUR 0.10" {
		t.Errorf("X-Price %q", got)
	}
}

// An array of scalars in a query value repeats the parameter, literal text
// around it included; an empty array drops the parameter (and the '?' when
// nothing is left). The forwarded query still follows.
func TestGraphReferenceArrayInQueryRepeats(t *testing.T) {
	t.Parallel()
	ups := map[string]*spy{
		"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"ids":[1,"two words",3.50,true],"none":[],"one":["x&y"]}`)
		}),
		"dep": spyOn(t, nil),
	}
	base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s}
endpoints:
  - path: /g
    timeout: 10s
    forward_query: [f]
    backends:
      - {upstream: root, path: /root, group: root, allow: [none]}
      - {upstream: dep, path: "/list?id={root.ids}&none={root.none}&k=v&tag=t-{root.ids}&one={root.one}", group: list}
      - {upstream: dep, path: "/only?x={root.none}", group: only}
`, ups)
	for _, q := range []string{"", "?f=1"} {
		a := get(t, base+"/g"+q)
		sameJSON(t, a.body, `{"root":{"none":[]},"list":{},"only":{}}`)
	}
	var got []string
	for _, h := range ups["dep"].seen() {
		got = append(got, h.uri)
	}
	ids := "id=1&id=two+words&id=3.50&id=true"
	tags := "tag=t-1&tag=t-two+words&tag=t-3.50&tag=t-true"
	want := map[string]bool{
		"/list?" + ids + "&k=v&" + tags + "&one=x%26y":     true,
		"/list?" + ids + "&k=v&" + tags + "&one=x%26y&f=1": true,
		"/only":     true,
		"/only?f=1": true,
	}
	for _, u := range got {
		if !want[u] {
			t.Errorf("unexpected request-target %q", u)
		}
		delete(want, u)
	}
	for u := range want {
		t.Errorf("missing request-target %q (got %q)", u, got)
	}
}

// An array (outside a query value), object, null or missing field fails
// the dependent, which is not called, with reason "missing {ref}".
func TestGraphReferenceWithoutScalarFailsTheDependent(t *testing.T) {
	t.Parallel()
	dep := spyOn(t, nil)
	ups := map[string]*spy{
		"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"s":"x","arr":[1,2],"obj":{"a":1},"nul":null,"objs":[{"a":1}],"nested":[[1]],"order":{"customer":{"name":"n"}}}`)
		}),
		"dep":   dep,
		"order": spyOn(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `{"customer":{"name":"n"}}`) }),
	}
	cases := []struct{ group, spec, ref string }{
		{"path_array", `path: "/p/{root.arr}"`, "{root.arr}"},
		{"path_object", `path: "/p/{root.obj}"`, "{root.obj}"},
		{"path_null", `path: "/p/{root.nul}"`, "{root.nul}"},
		{"path_missing", `path: "/p/{root.nope}"`, "{root.nope}"},
		{"path_under_scalar", `path: "/p/{root.s.deeper}"`, "{root.s.deeper}"},
		{"index_out_of_range", `path: "/p/{root.arr.9}"`, "{root.arr.9}"},
		{"nested_missing", `path: "/p/{root.order.customer.id}"`, "{root.order.customer.id}"},
		{"query_array_of_objects", `path: "/q?x={root.objs}"`, "{root.objs}"},
		{"query_nested_array", `path: "/q?x={root.nested}"`, "{root.nested}"},
		{"query_object", `path: "/q?x={root.obj}"`, "{root.obj}"},
		{"query_null", `path: "/q?x={root.nul}"`, "{root.nul}"},
		{"query_missing", `path: "/q?x={root.nope}"`, "{root.nope}"},
		{"header_array", `path: /h, headers: {X-V: "{root.arr}"}`, "{root.arr}"},
		{"header_object", `path: /h, headers: {X-V: "v={root.obj}"}`, "{root.obj}"},
		{"header_missing", `path: /h, headers: {X-V: "{root.nope}"}`, "{root.nope}"},
	}
	var b strings.Builder
	for _, tc := range cases {
		fmt.Fprintf(&b, "      - {upstream: dep, group: %s, %s}\n", tc.group, tc.spec)
	}
	base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s}
  order: {url: "{{order}}", timeout: 5s}
endpoints:
  - path: /g
    timeout: 10s
    expose_errors: true
    backends:
      - {upstream: root, path: /root, group: root, allow: [s]}
      - {upstream: dep, path: "/ok/{root.s}", group: ok}
`+b.String()+`
  - path: /required
    timeout: 10s
    backends:
      - {upstream: order, path: /order, group: order}
      - {upstream: dep, path: "/users/{order.customer.id}", group: customer, required: true}
`, ups)

	a := get(t, base+"/g")
	errs := a.errorsOf(t)
	for _, tc := range cases {
		if got, want := errs[tc.group], "missing "+tc.ref; got != want {
			t.Errorf("%s: reason %v, want %q", tc.group, got, want)
		}
	}
	if len(errs) != len(cases) {
		t.Errorf("_errors %v: want exactly the %d failed dependents", errs, len(cases))
	}
	m := a.json(t)
	if !reflect.DeepEqual(m["root"], map[string]any{"s": "x"}) || m["ok"] == nil {
		t.Errorf("root or the scalar dependent missing: %s", a.body)
	}
	if got := dep.calls(); got != 1 {
		t.Errorf("dep called %d times, want 1 (only the scalar reference): %+v", got, dep.seen())
	}

	// A required dependent whose reference is missing decides: 502.
	a = get(t, base+"/required")
	status, _, backends := a.errorOf(t)
	if status != 502 {
		t.Errorf("status %v, want 502", status)
	}
	if want := map[string]any{"customer": "missing {order.customer.id}"}; !reflect.DeepEqual(backends, want) {
		t.Errorf("backends %v, want %v", backends, want)
	}
	if got := dep.calls(); got != 1 {
		t.Errorf("dep called for the missing reference")
	}
}

// Static header values under a backend's headers: may hold references;
// a value holding CR, LF or NUL fails the call before anything is sent.
func TestGraphHeaderReferences(t *testing.T) {
	t.Parallel()
	dep := spyOn(t, nil)
	ups := map[string]*spy{
		"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"id":42,"lang":"de-CH","crlf":"a\r\nX-Evil: 1","lf":"a\nb","cr":"a\rb","nul":"a\u0000b","uni":"Zürich"}`)
		}),
		"dep": dep,
	}
	base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s, headers: {X-Lang: upstream-default}}
endpoints:
  - path: /g
    timeout: 10s
    expose_errors: true
    backends:
      - {upstream: root, path: /root, group: root, allow: [id]}
      - {upstream: dep, path: /ok, group: ok, headers: {X-User: "user-{root.id}", x-lang: "{root.lang}", X-City: "{root.uni}", X-Static: "{not a ref}"}}
      - {upstream: dep, path: /crlf, group: crlf, headers: {X-V: "{root.crlf}"}}
      - {upstream: dep, path: /lf, group: lf, headers: {X-V: "v {root.lf}"}}
      - {upstream: dep, path: /cr, group: cr, headers: {X-V: "{root.cr}"}}
      - {upstream: dep, path: /nul, group: nul, headers: {X-V: "{root.nul}"}}
`, ups)
	a := get(t, base+"/g")
	errs := a.errorsOf(t)
	for _, g := range []string{"crlf", "lf", "cr", "nul"} {
		reason, _ := errs[g].(string)
		if !strings.Contains(reason, "{root."+g+"}") {
			t.Errorf("%s: reason %q does not name the reference", g, reason)
		}
	}
	if len(errs) != 4 {
		t.Errorf("_errors %v", errs)
	}
	seen := dep.seen()
	if len(seen) != 1 || seen[0].uri != "/ok" {
		t.Fatalf("dep saw %+v, want only /ok", seen)
	}
	h := seen[0].header
	for name, want := range map[string]string{"X-User": "user-42", "X-Lang": "de-CH", "X-City": "Zürich", "X-Static": "{not a ref}"} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %q, want [%q]", name, got, want)
		}
	}
	if h.Get("X-Evil") != "" {
		t.Error("a header was injected")
	}
}

// --- foreach ---------------------------------------------------------------

const foreachConfig = `
upstreams:
  orders: {url: "{{orders}}", timeout: 10s}
  products: {url: "{{products}}", timeout: 10s}
endpoints:
  - path: /o/{n}
    timeout: 20s
    expose_errors: true
    backends:
      - {name: order, upstream: orders, path: "/orders/{n}", group: order, allow: [lang]}
      - upstream: products
        foreach: order.lines
        path: "/products/{item.sku}?lang={order.lang}&n={item.n}"
        max_parallel: %d
        max_items: 20
        group: products
        required: %t
`

// ordersOf answers /orders/{n} with n lines {sku: s<k>, n: k} (n may be
// "missing": no lines field).
func ordersOf(t *testing.T) *spy {
	return spyOn(t, func(w http.ResponseWriter, r *http.Request) {
		arg := strings.TrimPrefix(r.URL.Path, "/orders/")
		if arg == "missing" {
			writeJSON(w, `{"lang":"de"}`)
			return
		}
		n, _ := strconv.Atoi(arg)
		lines := make([]string, n)
		for k := range lines {
			lines[k] = fmt.Sprintf(`{"sku":"s%d","n":%d}`, k, k)
		}
		writeJSON(w, `{"lang":"de","lines":[`+strings.Join(lines, ",")+`]}`)
	})
}

// productAnswer is what the products upstream answers for r.
func productAnswer(r *http.Request) string {
	return fmt.Sprintf(`{"sku":%q,"lang":%q}`, strings.TrimPrefix(r.URL.Path, "/products/"), r.URL.Query().Get("lang"))
}

func wantProducts(n int) string {
	items := make([]string, n)
	for k := range items {
		items[k] = fmt.Sprintf(`{"sku":"s%d","lang":"de"}`, k)
	}
	return `{"order":{"lang":"de"},"products":[` + strings.Join(items, ",") + `]}`
}

// At most max_parallel element calls are in flight at once, and the pool
// really reaches that many: each call holds its answer until three are in
// flight (or every element has been asked for).
func TestGraphForeachBoundsCallsInFlight(t *testing.T) {
	t.Parallel()
	const items, parallel = 20, 3
	var inflight, peak, started atomic.Int32
	var stalled atomic.Bool
	products := spyOn(t, func(w http.ResponseWriter, r *http.Request) {
		all := started.Add(1) == items
		cur := inflight.Add(1)
		for old := peak.Load(); cur > old && !peak.CompareAndSwap(old, cur); old = peak.Load() {
		}
		deadline := time.Now().Add(patience)
		for !all && inflight.Load() < parallel && started.Load() < items {
			if time.Now().After(deadline) || r.Context().Err() != nil {
				stalled.Store(true)
				break
			}
			time.Sleep(time.Millisecond)
		}
		inflight.Add(-1) // before the answer: the next element may start the moment it arrives
		writeJSON(w, productAnswer(r))
	})
	ups := map[string]*spy{"orders": ordersOf(t), "products": products}
	base := graphGateway(t, fmt.Sprintf(foreachConfig, parallel, false), ups)
	a := get(t, fmt.Sprintf("%s/o/%d", base, items))
	sameJSON(t, a.body, wantProducts(items))
	if got := peak.Load(); got != parallel {
		t.Errorf("peak calls in flight %d, want max_parallel %d", got, parallel)
	}
	if stalled.Load() {
		t.Errorf("a call waited %v for %d calls in flight", patience, parallel)
	}
	if got := products.calls(); got != items {
		t.Errorf("%d element calls, want %d", got, items)
	}
	for k := range items {
		h := products.hitFor(t, fmt.Sprintf("/products/s%d?", k))
		if want := fmt.Sprintf("/products/s%d?lang=de&n=%d", k, k); h.uri != want {
			t.Errorf("element %d called as %s, want %s", k, h.uri, want)
		}
	}
}

// Results keep element order when the answers arrive in reverse order
// (every element answers only after the next one has).
func TestGraphForeachKeepsElementOrder(t *testing.T) {
	t.Parallel()
	const items = 8
	var answered [items + 1]*closer
	for k := range answered {
		answered[k] = newCloser()
	}
	answered[items].close()
	var outOfOrder atomic.Bool
	products := spyOn(t, func(w http.ResponseWriter, r *http.Request) {
		k, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if !await(r.Context(), answered[k+1].ch) {
			outOfOrder.Store(true)
		}
		answered[k].close() // nothing is sent before this
		writeJSON(w, productAnswer(r))
	})
	ups := map[string]*spy{"orders": ordersOf(t), "products": products}
	base := graphGateway(t, fmt.Sprintf(foreachConfig, items, false), ups)
	a := get(t, fmt.Sprintf("%s/o/%d", base, items))
	sameJSON(t, a.body, wantProducts(items))
	if outOfOrder.Load() {
		t.Error("the elements' answers did not arrive in reverse order: calls not all in flight")
	}
}

func TestGraphForeachEdges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		n         string
		status    int // of the element calls: by sku
		required  bool
		wantCalls int
		wantBody  string // with X-Manifold-Completed: true
		wantError string // the reason under _errors.products
		wantCode  int    // required: the status of the error answer
	}{
		{name: "empty array: [] and no call", n: "0", wantCalls: 0, wantBody: `{"order":{"lang":"de"},"products":[]}`},
		{name: "one element", n: "1", wantCalls: 1, wantBody: wantProducts(1)},
		{name: "max_items elements", n: "20", wantCalls: 20, wantBody: wantProducts(20)},
		{name: "over max_items", n: "21", wantCalls: 0, wantError: "too many items"},
		{name: "over max_items, required", n: "21", required: true, wantCalls: 0, wantError: "too many items", wantCode: 502},
		{name: "no array", n: "missing", wantCalls: 0, wantError: "missing {order.lines}"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			products := spyOn(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, productAnswer(r)) })
			ups := map[string]*spy{"orders": ordersOf(t), "products": products}
			base := graphGateway(t, fmt.Sprintf(foreachConfig, 4, tc.required), ups)
			a := get(t, base+"/o/"+tc.n)
			switch {
			case tc.wantCode != 0:
				status, _, backends := a.errorOf(t)
				if int(status) != tc.wantCode || backends["products"] != tc.wantError {
					t.Errorf("status %v backends %v, want %d and %q", status, backends, tc.wantCode, tc.wantError)
				}
			case tc.wantError != "":
				errs := a.errorsOf(t)
				if got, _ := errs["products"].(string); !strings.HasPrefix(got, tc.wantError) {
					t.Errorf("reason %q, want %q", got, tc.wantError)
				}
				if _, ok := a.json(t)["products"]; ok {
					t.Errorf("failed foreach still in the answer: %s", a.body)
				}
			default:
				if a.header.Get("X-Manifold-Completed") != "true" {
					t.Errorf("X-Manifold-Completed %q", a.header.Get("X-Manifold-Completed"))
				}
				sameJSON(t, a.body, tc.wantBody)
			}
			if got := products.calls(); got != tc.wantCalls {
				t.Errorf("%d element calls, want %d", got, tc.wantCalls)
			}
		})
	}
}

// One failed element fails the backend, with the reason of the first failed
// element in element order, even when a later element failed first.
func TestGraphForeachFirstFailedElementDecides(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{false, true} {
		t.Run(fmt.Sprintf("required=%t", required), func(t *testing.T) {
			t.Parallel()
			secondDone := newCloser()
			var ordered atomic.Bool
			products := spyOn(t, func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Query().Get("n") {
				case "1": // answers 404, but only after element 2's 500 went out
					ordered.Store(await(r.Context(), secondDone.ch))
					w.WriteHeader(404)
				case "2":
					secondDone.close()
					w.WriteHeader(500)
				default:
					writeJSON(w, productAnswer(r))
				}
			})
			ups := map[string]*spy{"orders": ordersOf(t), "products": products}
			base := graphGateway(t, fmt.Sprintf(foreachConfig, 3, required), ups)
			a := get(t, base+"/o/3")
			if !ordered.Load() {
				t.Fatal("element 2 did not answer before element 1")
			}
			if required {
				status, _, backends := a.errorOf(t)
				if status != 404 || backends["products"] != "status 404" {
					t.Errorf("status %v backends %v, want the first failed element's 404", status, backends)
				}
				return
			}
			errs := a.errorsOf(t)
			if got := errs["products"]; got != "status 404" {
				t.Errorf("reason %v, want the first failed element's (status 404)", got)
			}
			sameJSON(t, a.body, `{"order":{"lang":"de"},"_errors":{"products":"status 404"}}`)
		})
	}
}

// {item} is the element itself (escaped like any value); {item.path} a field
// of it, a numeric segment an array index; an element that lacks the field
// fails the backend with that reference.
func TestGraphForeachItemReferences(t *testing.T) {
	t.Parallel()
	dep := spyOn(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(r.URL.Path)
		writeJSON(w, `{"path":`+string(b)+`}`)
	})
	ups := map[string]*spy{
		"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"names":["a b","c/d",7,true],"pairs":[[1,"x"],[2,"y"]],"objs":[{"id":"1"},{"other":2}]}`)
		}),
		"dep": dep,
	}
	base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s}
endpoints:
  - path: /g
    timeout: 10s
    expose_errors: true
    backends:
      - {upstream: root, path: /root, name: root, group: root, allow: [names]}
      - {upstream: dep, foreach: root.names, path: "/names/{item}", group: names, headers: {X-Item: "{item}"}}
      - {upstream: dep, foreach: root.pairs, path: "/pairs/{item.0}?v={item.1}", group: pairs}
      - {upstream: dep, foreach: root.objs, path: "/objs/{item.id}", group: objs}
      - {upstream: dep, foreach: root.objs, path: "/whole/{item}", group: whole}
`, ups)
	a := get(t, base+"/g")
	errs := a.errorsOf(t)
	m := a.json(t)
	wantNames := []any{
		map[string]any{"path": "/names/a b"}, map[string]any{"path": "/names/c/d"},
		map[string]any{"path": "/names/7"}, map[string]any{"path": "/names/true"},
	}
	if !reflect.DeepEqual(m["names"], wantNames) {
		t.Errorf("names %v", m["names"])
	}
	if want := []any{map[string]any{"path": "/pairs/1"}, map[string]any{"path": "/pairs/2"}}; !reflect.DeepEqual(m["pairs"], want) {
		t.Errorf("pairs %v", m["pairs"])
	}
	if !reflect.DeepEqual(m["root"], map[string]any{"names": []any{"a b", "c/d", 7.0, true}}) {
		t.Errorf("root %v", m["root"])
	}
	if got := errs["objs"]; got != "missing {item.id}" {
		t.Errorf("objs: reason %v, want missing {item.id}", got)
	}
	if got := errs["whole"]; got != "missing {item}" {
		t.Errorf("whole: reason %v, want missing {item} (an object)", got)
	}
	for _, u := range []string{"/names/a%20b", "/names/c%2Fd", "/names/7", "/names/true", "/pairs/1?v=x", "/pairs/2?v=y", "/objs/1"} {
		dep.hitFor(t, u)
	}
	if got := dep.hitFor(t, "/names/c%2Fd").header.Get("X-Item"); got != "c/d" {
		t.Errorf("X-Item %q", got)
	}
	for _, h := range dep.seen() {
		if strings.HasPrefix(h.uri, "/whole/") {
			t.Errorf("called with an object element: %s", h.uri)
		}
	}
}

// A backend may read a foreach backend's answer: the element answers, as
// the upstream sent them, in element order.
func TestGraphReferenceToForeachAnswer(t *testing.T) {
	t.Parallel()
	dep := spyOn(t, nil)
	ups := map[string]*spy{
		"orders": ordersOf(t),
		"products": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"data":`+productAnswer(r)+`,"internal":"i-`+r.URL.Query().Get("n")+`"}`)
		}),
		"dep": dep,
	}
	base := graphGateway(t, `
upstreams:
  orders: {url: "{{orders}}", timeout: 5s}
  products: {url: "{{products}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s}
endpoints:
  - path: /o/{n}
    timeout: 10s
    expose_errors: true
    backends:
      - {name: order, upstream: orders, path: "/orders/{n}", group: order, allow: [lang]}
      - {name: products, upstream: products, foreach: order.lines, path: "/products/{item.sku}?lang={order.lang}&n={item.n}", group: products, target: data}
      - {upstream: dep, path: "/first/{products.0.internal}?skus={products.1.data.sku}", group: first}
      - {upstream: dep, path: /after, group: after, depends_on: [products]}
`, ups)
	a := get(t, base+"/o/2")
	if a.status != 200 || a.header.Get("X-Manifold-Completed") != "true" {
		t.Fatalf("status %d %s: %s", a.status, a.header.Get("X-Manifold-Completed"), a.body)
	}
	sameJSON(t, a.body, `{"order":{"lang":"de"},"products":[{"sku":"s0","lang":"de"},{"sku":"s1","lang":"de"}],"first":{},"after":{}}`)
	dep.hitFor(t, "/first/i-0?skus=s1")
	dep.hitFor(t, "/after")

	// An empty foreach still answers [], and whatever depends on it runs.
	a = get(t, base+"/o/0")
	if errs := a.json(t)["_errors"]; !reflect.DeepEqual(errs, map[string]any{"first": "missing {products.0.internal}"}) {
		t.Errorf("_errors %v, want only the reference into the empty array", errs)
	}
	if got := dep.calls(); got != 3 {
		t.Errorf("dep called %d times, want 3", got)
	}
}

// --- failures --------------------------------------------------------------

// A dependency's failure propagates: its dependents (by reference, by
// depends_on, and theirs in turn) are not called and fail with "dependency
// NAME failed"; an independent backend is untouched.
func TestGraphDependencyFailurePropagates(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		root   http.HandlerFunc
		reason string
	}{
		{"status 500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }, "status 500"},
		{"status 404", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }, "status 404"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, "timeout"},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>") }, "invalid JSON response"},
		{"target missing", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `{"id":1}`) }, "unexpected response shape"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dep := spyOn(t, nil)
			ups := map[string]*spy{"root": spyOn(t, tc.root), "dep": dep, "other": spyOn(t, nil)}
			base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 200ms}
  dep: {url: "{{dep}}", timeout: 5s}
  other: {url: "{{other}}", timeout: 5s}
endpoints:
  - path: /g
    timeout: 10s
    expose_errors: true
    backends:
      - {name: order, upstream: root, path: /root, group: root, target: data}
      - {name: customer, upstream: dep, path: "/c/{order.id}", group: c}
      - {name: after, upstream: dep, path: /after, group: after, depends_on: [order]}
      - {name: deeper, upstream: dep, path: "/d/{customer.id}", group: d}
      - {name: items, upstream: dep, foreach: order.lines, path: "/i/{item}", group: items}
      - {name: other, upstream: other, path: /other, group: other}
`, ups)
			a := get(t, base+"/g")
			errs := a.errorsOf(t)
			want := map[string]any{
				"root":  tc.reason,
				"c":     "dependency order failed",
				"after": "dependency order failed",
				"d":     "dependency customer failed",
				"items": "dependency order failed",
			}
			if !reflect.DeepEqual(errs, want) {
				t.Errorf("_errors\n got %v\nwant %v", errs, want)
			}
			sameJSON(t, a.body, `{"other":{},"_errors":`+mustJSON(want)+`}`)
			if got := dep.calls(); got != 0 {
				t.Errorf("dependents called %d times: %+v", got, dep.seen())
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// fallback stands in for a failed backend (skipped dependents included):
// its JSON in the backend's place, X-Manifold-Completed: false, _errors
// still names it, and the backend never decides the status, even when
// required. A required dependent without fallback that could not run
// decides like any required failure.
func TestGraphFallbackAndRequired(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		backends string
		expose   bool
		code     int
		body     string            // for 200
		backErrs map[string]string // for errors: the error body's backends
	}{
		{
			name: "skipped dependent falls back",
			backends: `
      - {name: order, upstream: bad, path: /x, group: order}
      - {upstream: ok, path: "/r/{order.id}", group: recs, fallback: {"items": []}}`,
			expose: true, code: 200,
			body: `{"recs":{"items":[]},"_errors":{"order":"status 500","recs":"dependency order failed"}}`,
		},
		{
			name: "required backend with fallback never decides",
			backends: `
      - {name: order, upstream: bad, path: /x, group: order, required: true, fallback: {"id": 0, "big": 9007199254740993}}
      - {upstream: ok, path: "/r", group: recs}`,
			expose: true, code: 200,
			body: `{"order":{"id":0,"big":9007199254740993},"recs":{},"_errors":{"order":"status 500"}}`,
		},
		{
			name: "required skipped dependent with fallback never decides",
			backends: `
      - {name: order, upstream: bad, path: /x, group: order}
      - {upstream: ok, path: "/r/{order.id}", group: recs, required: true, fallback: []}`,
			code: 200,
			body: `{"recs":[]}`,
		},
		{
			name: "ungrouped fallback merges at the top",
			backends: `
      - {name: order, upstream: bad, path: /x}
      - {upstream: ok, path: "/r/{order.id}", fallback: {"items": [], "note": "n/a"}}
      - {upstream: ok, path: "/plain", group: plain}`,
			code: 200,
			body: `{"items":[],"note":"n/a","plain":{}}`,
		},
		{
			name: "required skipped dependent decides",
			backends: `
      - {name: order, upstream: bad, path: /x, group: order}
      - {upstream: ok, path: "/r/{order.id}", group: recs, required: true}
      - {upstream: ok, path: "/plain", group: plain}`,
			code:     502,
			backErrs: map[string]string{"order": "status 500", "recs": "dependency order failed"},
		},
		{
			name: "required dependency decides over its dependents",
			backends: `
      - {name: order, upstream: notfound, path: /x, group: order, required: true}
      - {upstream: ok, path: "/r/{order.id}", group: recs, required: true}`,
			code:     404,
			backErrs: map[string]string{"order": "status 404", "recs": "dependency order failed"},
		},
		{
			name: "all failed, none required",
			backends: `
      - {name: order, upstream: notfound, path: /x, group: order}
      - {upstream: ok, path: "/r/{order.id}", group: recs}`,
			code:     404,
			backErrs: map[string]string{"order": "status 404", "recs": "dependency order failed"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok := spyOn(t, nil)
			ups := map[string]*spy{
				"ok":       ok,
				"bad":      spyOn(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }),
				"notfound": spyOn(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(404) }),
			}
			base := graphGateway(t, fmt.Sprintf(`
upstreams:
  ok: {url: "{{ok}}", timeout: 5s}
  bad: {url: "{{bad}}", timeout: 5s}
  notfound: {url: "{{notfound}}", timeout: 5s}
endpoints:
  - path: /g
    timeout: 10s
    expose_errors: %t
    backends:%s
`, tc.expose, tc.backends), ups)
			a := get(t, base+"/g")
			if tc.code != 200 {
				status, _, backends := a.errorOf(t)
				want := map[string]any{}
				for k, v := range tc.backErrs {
					want[k] = v
				}
				if int(status) != tc.code || !reflect.DeepEqual(backends, want) {
					t.Errorf("status %v backends %v, want %d %v", status, backends, tc.code, want)
				}
			} else {
				a.errorsOf(t) // partial: 200, X-Manifold-Completed: false, no-store
				sameJSON(t, a.body, tc.body)
			}
			for _, h := range ok.seen() {
				if strings.HasPrefix(h.uri, "/r/") {
					t.Errorf("dependent of a failed backend called: %s", h.uri)
				}
			}
		})
	}
}

// merge: deep merges objects recursively and concatenates arrays in config
// order, whatever order the answers arrived in; grouped results and
// fallbacks take part the same way.
func TestGraphMergeDeep(t *testing.T) {
	t.Parallel()
	bAnswered := newCloser()
	var reversed atomic.Bool
	ups := map[string]*spy{
		"a": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			reversed.Store(await(r.Context(), bAnswered.ch)) // a answers after b
			writeJSON(w, `{"user":{"name":"n","tags":["a1","a2"],"addr":{"city":"Bern"}},"list":[1],"v":1,"o":{"x":1},"id":"u1"}`)
		}),
		"b": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			bAnswered.close()
			writeJSON(w, `{"user":{"age":3,"tags":["b1"],"addr":{"zip":"3000"}},"list":[2,{"k":1}],"v":2,"o":5}`)
		}),
		"c": spyOn(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, `{"p":1,"arr":[1]}`) }),
		"dep": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"g":{"q":2,"arr":[2]},"user":{"tags":["dep"]}}`)
		}),
		"bad": spyOn(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }),
	}
	base := graphGateway(t, `
upstreams:
  a: {url: "{{a}}", timeout: 10s}
  b: {url: "{{b}}", timeout: 10s}
  c: {url: "{{c}}", timeout: 10s}
  dep: {url: "{{dep}}", timeout: 10s}
  bad: {url: "{{bad}}", timeout: 10s}
endpoints:
  - path: /deep
    merge: deep
    timeout: 20s
    backends:
      - {name: a, upstream: a, path: /a}
      - {upstream: b, path: /b}
      - {upstream: c, path: /c, group: g}
      - {upstream: dep, path: "/dep/{a.id}"}
      - {upstream: bad, path: /bad, fallback: {"list": [0], "user": {"tags": ["fb"], "addr": {"city": "Zürich"}}}}
  - path: /shallow
    timeout: 20s
    backends:
      - {name: a, upstream: a, path: /a}
      - {upstream: b, path: /b}
      - {upstream: dep, path: "/dep/{a.id}"}
`, ups)
	a := get(t, base+"/deep")
	if !reversed.Load() {
		t.Error("a did not answer after b")
	}
	if a.status != 200 || a.header.Get("X-Manifold-Completed") != "false" {
		t.Errorf("status %d completed %q (a fallback stood in)", a.status, a.header.Get("X-Manifold-Completed"))
	}
	sameJSON(t, a.body, `{
		"user":{"name":"n","tags":["a1","a2","b1","dep","fb"],"addr":{"city":"Zürich","zip":"3000"},"age":3},
		"list":[1,2,{"k":1},0],"v":2,"o":5,"id":"u1",
		"g":{"p":1,"arr":[1,2],"q":2}}`)

	a = get(t, base+"/shallow")
	sameJSON(t, a.body, `{"user":{"tags":["dep"]},"list":[2,{"k":1}],"v":2,"o":5,"id":"u1","g":{"q":2,"arr":[2]}}`)
}

// --- metrics -----------------------------------------------------------------

// A dependent that was not called counts as outcome skipped, with no
// duration: a failed dependency, a missing reference, a foreach over
// max_items (with a fallback too: the failure it replaced). Each foreach
// element call counts on its own.
func TestGraphMetrics(t *testing.T) {
	t.Parallel()
	ups := map[string]*spy{
		"bad":      spyOn(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }),
		"orders":   ordersOf(t),
		"products": spyOn(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, productAnswer(r)) }),
		"dep":      spyOn(t, nil),
		"refs":     spyOn(t, nil),
	}
	m := handlers.NewMetrics()
	base, _ := graphGatewayWith(t, `
upstreams:
  bad: {url: "{{bad}}", timeout: 5s}
  orders: {url: "{{orders}}", timeout: 5s}
  products: {url: "{{products}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s}
  refs: {url: "{{refs}}", timeout: 5s}
endpoints:
  - path: /skip
    timeout: 10s
    backends:
      - {name: order, upstream: bad, path: /x, group: order}
      - {upstream: dep, path: "/a/{order.id}", group: a}
      - {upstream: dep, path: "/b", group: b, depends_on: [order], fallback: {}}
  - path: /o/{n}
    timeout: 10s
    backends:
      - {name: order, upstream: orders, path: "/orders/{n}", group: order}
      - {upstream: products, foreach: order.lines, path: "/products/{item.sku}", group: products}
      - {upstream: refs, path: "/r/{order.nothing}", group: missing}
`, ups, handlers.Options{Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	get(t, base+"/skip")
	get(t, base+"/o/3")
	get(t, base+"/o/0")
	get(t, base+"/o/101") // over max_items: the foreach makes no call
	got := scrape(t, m, "manifold_backend_requests_total{")
	for _, want := range []string{
		`manifold_backend_requests_total{outcome="error",upstream="bad"} 1`,
		`manifold_backend_requests_total{outcome="skipped",upstream="dep"} 2`,
		`manifold_backend_requests_total{outcome="ok",upstream="orders"} 3`,
		`manifold_backend_requests_total{outcome="ok",upstream="products"} 3`,
		`manifold_backend_requests_total{outcome="skipped",upstream="products"} 1`,
		`manifold_backend_requests_total{outcome="skipped",upstream="refs"} 3`,
	} {
		if !hasLine(got, want) {
			t.Errorf("missing %s\n have: %s", want, strings.Join(got, "\n       "))
		}
	}
	if len(got) != 6 {
		t.Errorf("backend series:\n%s", strings.Join(got, "\n"))
	}
	if ups["dep"].calls()+ups["refs"].calls() != 0 {
		t.Error("a skipped dependent was called")
	}
	// A call that was never made has no duration.
	durations := scrape(t, m, "manifold_backend_duration_seconds_count{")
	for _, want := range []string{
		`manifold_backend_duration_seconds_count{upstream="products"} 3`,
		`manifold_backend_duration_seconds_count{upstream="orders"} 3`,
	} {
		if !hasLine(durations, want) {
			t.Errorf("missing %s\n have: %s", want, strings.Join(durations, "\n       "))
		}
	}
	for _, l := range durations {
		if strings.Contains(l, `"dep"`) || strings.Contains(l, `"refs"`) {
			t.Errorf("duration observed for a call never made: %s", l)
		}
	}
}

// --- lifetime ------------------------------------------------------------------

// A client that leaves mid-graph cancels every call in flight (a dependent
// and foreach elements alike), and what had not started yet never starts.
func TestGraphClientLeavingCancelsTheGraph(t *testing.T) {
	t.Parallel()
	const elements = 3
	var arrived, cancelled sync.WaitGroup
	arrived.Add(1 + elements)
	cancelled.Add(1 + elements)
	block := func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-r.Context().Done()
		cancelled.Done()
	}
	later := spyOn(t, nil)
	ups := map[string]*spy{
		"orders": ordersOf(t),
		"block":  spyOn(t, block),
		"later":  later,
	}
	logs := &logLines{}
	base, _ := graphGatewayWith(t, `
upstreams:
  orders: {url: "{{orders}}", timeout: 30s}
  block: {url: "{{block}}", timeout: 30s}
  later: {url: "{{later}}", timeout: 30s}
endpoints:
  - path: /o/{n}
    timeout: 25s
    backends:
      - {name: order, upstream: orders, path: "/orders/{n}", group: order}
      - {name: customer, upstream: block, path: "/c/{order.lang}", group: customer}
      - {upstream: block, foreach: order.lines, path: "/p/{item.sku}", group: products, max_parallel: 4}
      - {upstream: later, path: "/l/{customer.id}", group: later}
      - {upstream: later, path: "/after", group: after, depends_on: [products]}
`, ups, handlers.Options{Logger: slog.New(logs)})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/o/%d", base, elements), nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	if !waitGroup(&arrived) {
		t.Fatal("the dependent and the foreach elements were never all in flight")
	}
	cancel()
	if !waitGroup(&cancelled) {
		t.Fatal("calls still running after the client left")
	}
	if err := <-errc; err == nil {
		t.Error("the client's request succeeded")
	}
	waitFor(t, "the access line", func() bool { return len(logs.with("request")) > 0 })
	if got := later.calls(); got != 0 {
		t.Errorf("dependents of cancelled calls were called: %+v", later.seen())
	}
}

// waitGroup waits for wg, at most patience.
func waitGroup(wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(patience):
		return false
	}
}

// A referenced header value with any control character but tab (not only
// CR, LF, NUL: also \x01, ESC or DEL) fails the call before anything is
// sent, with either client, as such a static value is refused at load; it
// is the reference's fault, not the upstream's, whose breaker stays closed
// (here it would open at the first failure). A tab passes verbatim.
func TestGraphHeaderReferenceControlCharacters(t *testing.T) {
	t.Parallel()
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			dep := spyOn(t, nil)
			ups := map[string]*spy{
				"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
					writeJSON(w, `{"soh":"a\u0001b","del":"a\u007fb","esc":"\u001b[31m","tab":"a\tb"}`)
				}),
				"dep": dep,
			}
			base := graphGateway(t, fmt.Sprintf(`
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s, client: %s, circuit_breaker: {consecutive_failures: 1, open_timeout: 1m}}
endpoints:
  - path: /g
    timeout: 10s
    expose_errors: true
    backends:
      - {upstream: root, path: /root, group: root, allow: [tab]}
      - {upstream: dep, path: /soh, group: soh, headers: {X-V: "{root.soh}"}}
      - {upstream: dep, path: /del, group: del, headers: {X-V: "v={root.del}"}}
      - {upstream: dep, path: /esc, group: esc, headers: {X-V: "{root.esc}"}}
      - {upstream: dep, path: /tab, group: tab, headers: {X-V: "{root.tab}"}}
`, client), ups)
			for range 2 {
				a := get(t, base+"/g")
				errs := a.errorsOf(t)
				want := map[string]any{
					"soh": "invalid header value from {root.soh}",
					"del": "invalid header value from {root.del}",
					"esc": "invalid header value from {root.esc}",
				}
				if !reflect.DeepEqual(errs, want) {
					t.Errorf("_errors\n got %v\nwant %v", errs, want)
				}
			}
			seen := dep.seen()
			if len(seen) != 2 || seen[0].uri != "/tab" || seen[1].uri != "/tab" {
				t.Fatalf("dep saw %+v, want /tab twice", seen)
			}
			if got := seen[0].header.Get("X-V"); got != "a\tb" {
				t.Errorf("X-V %q, want the tab verbatim", got)
			}
		})
	}
}

// A reference reads the answer as its client decodes it (encoding/json,
// as merge and reshape compare keys): of duplicate keys the last wins, at
// every level, so a dependent is never called with a value the client
// does not see in the answer it gets.
func TestGraphReferenceDuplicateKeysLastWins(t *testing.T) {
	t.Parallel()
	dep := spyOn(t, nil)
	ups := map[string]*spy{
		"root": spyOn(t, func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, `{"id":"first","id":"last","a":{"x":1},"a":{"y":2},"lines":[{"sku":"s1"}],"lines":[{"sku":"s2","sku":"s3"}],"\u0069d2":"esc"}`)
		}),
		"dep": dep,
	}
	base := graphGateway(t, `
upstreams:
  root: {url: "{{root}}", timeout: 5s}
  dep: {url: "{{dep}}", timeout: 5s}
endpoints:
  - path: /g
    timeout: 10s
    expose_errors: true
    backends:
      - {upstream: root, path: /root, group: root}
      - {upstream: dep, path: "/id/{root.id}?e={root.id2}", group: id}
      - {upstream: dep, path: "/ax/{root.a.x}", group: ax}
      - {upstream: dep, path: "/ay/{root.a.y}", group: ay}
      - {upstream: dep, path: "/first/{root.lines.0.sku}", group: first}
      - {upstream: dep, foreach: root.lines, path: "/sku/{item.sku}", group: skus}
`, ups)
	a := get(t, base+"/g")
	m := a.json(t) // as any client decoding into a generic value: the last duplicate replaces
	root, _ := m["root"].(map[string]any)
	if want := map[string]any{"y": 2.0}; root["id"] != "last" || !reflect.DeepEqual(root["a"], want) {
		t.Fatalf("the client decodes %v", root)
	}
	if want := map[string]any{"ax": "missing {root.a.x}"}; !reflect.DeepEqual(m["_errors"], want) {
		t.Errorf("_errors %v, want %v", m["_errors"], want)
	}
	var got []string
	for _, h := range dep.seen() {
		got = append(got, h.uri)
	}
	want := []string{"/ay/2", "/first/s3", "/id/last?e=esc", "/sku/s3"}
	slices.Sort(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dependents called as %q, want %q", got, want)
	}
}
