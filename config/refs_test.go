package config_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// refBackend compiles one backend of the endpoint /u/{id}, after a backend
// named a, and returns it.
func refBackend(t *testing.T, be string) *config.Backend {
	t.Helper()
	return mustLoad(t, withBackends(beA, be), nil).Endpoints[0].Backends[1]
}

// valsFor aligns values given by reference text with be.Refs; a reference
// not in m is missing.
func valsFor(t *testing.T, be *config.Backend, m map[string]config.RefValue) []config.RefValue {
	t.Helper()
	vals := make([]config.RefValue, len(be.Refs))
	seen := 0
	for i, r := range be.Refs {
		if v, ok := m[r.Text]; ok {
			vals[i] = v
			seen++
		}
	}
	if seen != len(m) {
		t.Fatalf("some of %v are not references of the backend (%d of them are)", m, seen)
	}
	return vals
}

func text(s string) config.RefValue { return config.RefValue{Found: true, Text: s} }
func list(s ...string) config.RefValue {
	return config.RefValue{Found: true, List: append([]string{}, s...)}
}
func refText(r *config.Ref) string {
	if r == nil {
		return ""
	}
	return r.Text
}

func TestAppendPathValues(t *testing.T) {
	t.Parallel()
	be := refBackend(t, `{upstream: orders, path: "/users/{a.id}/x/{id}"}`)
	tests := []struct {
		name  string
		value config.RefValue
		want  string // "" when the reference is refused
	}{
		{"a number", text("42"), "/users/42/x/P"},
		{"a number's exact text", text("9007199254740993"), "/users/9007199254740993/x/P"},
		{"a float's exact text", text("1.50e+3"), "/users/1.50e+3/x/P"},
		{"a boolean", text("true"), "/users/true/x/P"},
		{"a slash", text("a/b"), "/users/a%2Fb/x/P"},
		{"a climb", text("../../admin"), "/users/..%2F..%2Fadmin/x/P"},
		{"a question mark", text("x?y=1"), "/users/x%3Fy=1/x/P"},
		{"a hash", text("x#frag"), "/users/x%23frag/x/P"},
		{"a percent", text("100%"), "/users/100%25/x/P"},
		{"an escaped slash", text("%2F"), "/users/%252F/x/P"},
		{"a space", text("a b"), "/users/a%20b/x/P"},
		{"CR LF", text("a\r\nHost: evil"), "/users/a%0D%0AHost:%20evil/x/P"},
		{"NUL", text("a\x00b"), "/users/a%00b/x/P"},
		{"unicode", text("ü€"), "/users/%C3%BC%E2%82%AC/x/P"},
		{"a semicolon and plus", text("a;b+c"), "/users/a%3Bb+c/x/P"},
		{"dots inside", text("a..b"), "/users/a..b/x/P"},
		{"three dots", text("..."), "/users/.../x/P"},
		// An empty value would leave "//" (or, last, call the collection);
		// "." and ".." are dot-segments, which servers resolve however they
		// are escaped (%2E is '.'): none can fill a segment.
		{"empty", text(""), ""},
		{"a dot", text("."), ""},
		{"two dots", text(".."), ""},
		{"missing", config.RefValue{}, ""},
		{"an array", list("1", "2"), ""},
		{"an empty array", list(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vals := valsFor(t, be, map[string]config.RefValue{"{a.id}": tc.value})
			got, bad := be.Template.AppendPathValues([]byte("/api"), []string{"P"}, vals)
			if tc.want == "" {
				if refText(bad) != "{a.id}" {
					t.Fatalf("AppendPathValues = %q, %q; want {a.id} refused", got, refText(bad))
				}
				return
			}
			if bad != nil || string(got) != "/api"+tc.want {
				t.Fatalf("AppendPathValues = %q, %q; want %q", got, refText(bad), "/api"+tc.want)
			}
			// The value stays in its segment and decodes back to itself.
			u, err := url.Parse("http://h" + string(got))
			if err != nil {
				t.Fatal(err)
			}
			segs := strings.Split(u.EscapedPath(), "/")
			if u.RawQuery != "" || u.Fragment != "" || len(segs) != 6 {
				t.Fatalf("%q parses to path %q query %q fragment %q", got, u.EscapedPath(), u.RawQuery, u.Fragment)
			}
			if seg, err := url.PathUnescape(segs[3]); err != nil || seg != tc.value.Text {
				t.Errorf("segment %q decodes to %q (%v), want %q", segs[3], seg, err, tc.value.Text)
			}
		})
	}
}

func TestAppendQueryValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path string
		vals       map[string]config.RefValue
		want       string // the query
		bad        string // the reference refused, if any
	}{
		{name: "a scalar", path: "/o?q={a.q}", vals: map[string]config.RefValue{"{a.q}": text("x")}, want: "q=x"},
		{name: "query-escaped", path: "/o?q={a.q}&lit=1",
			vals: map[string]config.RefValue{"{a.q}": text("a&b=c#d+e f%/?")}, want: "q=a%26b%3Dc%23d%2Be+f%25%2F%3F&lit=1"},
		{name: "CR LF and unicode", path: "/o?q={a.q}",
			vals: map[string]config.RefValue{"{a.q}": text("\r\nü")}, want: "q=%0D%0A%C3%BC"},
		{name: "a number's exact text", path: "/o?n={a.n}&f={a.f}&z={a.z}",
			vals: map[string]config.RefValue{"{a.n}": text("9007199254740993"), "{a.f}": text("0.10"), "{a.z}": text("-0")},
			want: "n=9007199254740993&f=0.10&z=-0"},
		{name: "an exponent's plus is escaped", path: "/o?n={a.n}", vals: map[string]config.RefValue{"{a.n}": text("1e+400")}, want: "n=1e%2B400"},
		{name: "an array repeats the pair", path: "/o?id={a.ids}",
			vals: map[string]config.RefValue{"{a.ids}": list("1", "2")}, want: "id=1&id=2"},
		{name: "an array among other pairs", path: "/o?v=1&id={a.ids}&u={id}&w={a.w}",
			vals: map[string]config.RefValue{"{a.ids}": list("x&y", "z"), "{a.w}": text("w")}, want: "v=1&id=x%26y&id=z&u=P%26Q&w=w"},
		{name: "an array with a prefix and another reference", path: "/o?id=p-{a.ids}-{a.s}-{id}",
			vals: map[string]config.RefValue{"{a.ids}": list("1", "2", "3"), "{a.s}": text("s")}, want: "id=p-1-s-P%26Q&id=p-2-s-P%26Q&id=p-3-s-P%26Q"},
		{name: "an array of one", path: "/o?id={a.ids}", vals: map[string]config.RefValue{"{a.ids}": list("7")}, want: "id=7"},
		{name: "an empty array drops the pair", path: "/o?v=1&id={a.ids}&w=2",
			vals: map[string]config.RefValue{"{a.ids}": list()}, want: "v=1&w=2"},
		{name: "an empty array drops the only pair", path: "/o?id={a.ids}",
			vals: map[string]config.RefValue{"{a.ids}": list()}, want: ""},
		{name: "an empty array first", path: "/o?id={a.ids}&w=2",
			vals: map[string]config.RefValue{"{a.ids}": list()}, want: "w=2"},
		{name: "the same array in two pairs", path: "/o?a={a.ids}&b={a.ids}",
			vals: map[string]config.RefValue{"{a.ids}": list("1", "2")}, want: "a=1&a=2&b=1&b=2"},
		{name: "a missing value", path: "/o?v=1&q={a.q}",
			vals: map[string]config.RefValue{}, bad: "{a.q}"},
		{name: "a missing value beside an array", path: "/o?id={a.ids}&q={a.q}",
			vals: map[string]config.RefValue{"{a.ids}": list("1")}, bad: "{a.q}"},
		{name: "two arrays in one pair", path: "/o?id={a.ids}-{a.more}",
			vals: map[string]config.RefValue{"{a.ids}": list("1"), "{a.more}": list("2")}, bad: "{a.more}"},
		{name: "two arrays in name and value", path: "/o?{a.ids}={a.more}",
			vals: map[string]config.RefValue{"{a.ids}": list("1"), "{a.more}": list("2")}, bad: "{a.more}"},
		{name: "two arrays in two pairs", path: "/o?a={a.ids}&b={a.more}",
			vals: map[string]config.RefValue{"{a.ids}": list("1", "2"), "{a.more}": list("3")}, want: "a=1&a=2&b=3"},
		{name: "a static query only", path: "/o/{a.x}?v=1&u={id}",
			vals: map[string]config.RefValue{"{a.x}": text("x")}, want: "v=1&u=P%26Q"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := refBackend(t, `{upstream: orders, path: "`+tc.path+`"}`)
			got, bad := be.Template.AppendQueryValues([]byte("?"), []string{"P&Q"}, valsFor(t, be, tc.vals))
			if refText(bad) != tc.bad {
				t.Fatalf("AppendQueryValues = %q, bad %q; want bad %q", got, refText(bad), tc.bad)
			}
			if tc.bad == "" && string(got) != "?"+tc.want {
				t.Errorf("AppendQueryValues = %q, want %q", got, "?"+tc.want)
			}
		})
	}
}

func TestHeaderTemplateRender(t *testing.T) {
	t.Parallel()
	be := refBackend(t, `{upstream: orders, path: /o, headers: {X-A: "Bearer {a.tok}", X-B: "{a.n}/{a.tok}", X-Lit: "{id} {x"}}`)
	h := map[string]*config.HeaderTemplate{}
	for _, t := range be.HeaderTemplates {
		h[t.Name] = t
	}
	tests := []struct {
		name, header string
		vals         map[string]config.RefValue
		want         string
		bad          string
	}{
		{name: "a string", header: "X-A", vals: map[string]config.RefValue{"{a.tok}": text("abc")}, want: "Bearer abc"},
		{name: "verbatim", header: "X-A", vals: map[string]config.RefValue{"{a.tok}": text("a b%2F/?&=#\tü")}, want: "Bearer a b%2F/?&=#\tü"},
		{name: "a number's text", header: "X-B", vals: map[string]config.RefValue{"{a.n}": text("1.50"), "{a.tok}": text("t")}, want: "1.50/t"},
		{name: "literals only", header: "X-Lit", want: "{id} {x"},
		{name: "CR", header: "X-A", vals: map[string]config.RefValue{"{a.tok}": text("a\rb")}, want: "a\rb", bad: "{a.tok}"},
		{name: "LF", header: "X-A", vals: map[string]config.RefValue{"{a.tok}": text("a\nX-Evil: 1")}, want: "a\nX-Evil: 1", bad: "{a.tok}"},
		{name: "NUL", header: "X-A", vals: map[string]config.RefValue{"{a.tok}": text("\x00")}, want: "\x00", bad: "{a.tok}"},
		{name: "an array", header: "X-A", vals: map[string]config.RefValue{"{a.tok}": list("a", "b")}, bad: "{a.tok}"},
		{name: "an empty array", header: "X-A", vals: map[string]config.RefValue{"{a.tok}": list()}, bad: "{a.tok}"},
		{name: "missing (object, null)", header: "X-A", vals: map[string]config.RefValue{}, bad: "{a.tok}"},
		{name: "the first bad one", header: "X-B", vals: map[string]config.RefValue{"{a.tok}": list()}, bad: "{a.n}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, bad := h[tc.header].Render(valsFor(t, be, tc.vals))
			if refText(bad) != tc.bad || got != tc.want {
				t.Errorf("Render = %q, bad %q; want %q, bad %q", got, refText(bad), tc.want, tc.bad)
			}
		})
	}
}
