package fetch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
	"golang.org/x/net/http/httpguts"

	"github.com/manifold-gw/manifold/config"
)

// renderCase is one backend of the fuzz target: a dependent whose path,
// query and headers read fields of the answer of backend order, on an
// upstream with a path prefix.
type renderCase struct {
	base, path string
	headers    map[string]string // as in the file
	foreach    bool              // foreach order.lines: {item} is V1
	backend    *Backend
}

// The order answer is {"customer":{"id":V1},"q":V2,"ids":V2,"lines":[V1]},
// V1 and V2 the fuzzed JSON values; {id} is the endpoint's parameter.
var renderCases = []renderCase{
	{base: "http://127.0.0.1:9/api", path: "/users/{order.customer.id}/x?q={order.q}", headers: map[string]string{"X-C": "c-{order.customer.id}"}},
	{base: "http://127.0.0.1:9/api/", path: "/users/{order.customer.id}?id={order.ids}&q={order.q}&v=1"},
	{base: "http://127.0.0.1:9/a%20b/v1", path: "/{order.customer.id}/{id}/{order.q}"},
	{base: "http://127.0.0.1:9", path: "/p/{item}?lang={order.q}&id={id}", foreach: true, headers: map[string]string{"X-Q": "{order.q}", "X-Item": "{item}"}},
	{base: "http://[::1]:9/api", path: "/u/{order.customer.id}?only={order.ids}"},
}

func compileRenderCases(tb testing.TB) []renderCase {
	tb.Helper()
	cases := make([]renderCase, len(renderCases))
	for i, c := range renderCases {
		be := fmt.Sprintf("{upstream: u, path: %q, group: g", c.path)
		if c.foreach {
			be += ", foreach: order.lines"
		}
		if len(c.headers) > 0 {
			h, _ := json.Marshal(c.headers)
			be += ", headers: " + string(h)
		}
		yaml := fmt.Sprintf(`
upstreams: {u: {url: %q}}
endpoints:
  - path: /e/{id}
    backends:
      - {name: order, upstream: u, path: "/orders/{id}"}
      - %s}
`, c.base, be)
		cfg, err := config.Parse(fmt.Sprintf("render%d.yaml", i), []byte(yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			tb.Fatal(err)
		}
		u := NewUpstream(cfg.Upstreams["u"], nil)
		u.Close()
		ep, err := NewEndpoint(cfg.Endpoints[0], map[string]*Upstream{"u": u})
		if err != nil {
			tb.Fatal(err)
		}
		if !ep.Config.Graph {
			tb.Fatalf("case %d is no graph", i)
		}
		c.backend = ep.Backends[1]
		cases[i] = c
	}
	return cases
}

// jsonString writes s as a JSON string the way an upstream may: bytes
// kept as they are, invalid UTF-8 included (fetch accepts it, as
// encoding/json does), only '"', '\' and control characters escaped.
func jsonString(s string) []byte {
	b := []byte{'"'}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = fmt.Appendf(b, `\u%04x`, c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// fuzzValue turns a fuzzed kind and text into a JSON value and what a
// reference to it must find: a string of any bytes, the text itself when
// it is valid UTF-8 JSON (read by encoding/json), a number, true, false or
// null, an array of strings (the text split at ','), or an object.
func fuzzValue(kind uint8, s string) ([]byte, expected) {
	switch kind % 6 {
	case 1:
		if json.Valid([]byte(s)) && gjson.Valid(s) && utf8.ValidString(s) {
			return []byte(s), expect([]byte(s))
		}
	case 2:
		if b, err := json.Marshal(json.Number(s)); err == nil {
			return b, expected{found: true, text: string(b)} // "" is 0
		}
	case 3:
		switch len(s) % 3 {
		case 0:
			return []byte("null"), expected{}
		case 1:
			return []byte("true"), expected{found: true, text: "true"}
		}
		return []byte("false"), expected{found: true, text: "false"}
	case 4:
		if s == "" {
			return []byte("[]"), expected{found: true, list: []string{}}
		}
		b := []byte{'['}
		parts := strings.Split(s, ",")
		for i, p := range parts {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, jsonString(p)...)
		}
		return append(b, ']'), expected{found: true, list: parts}
	case 5:
		return append(append([]byte(`{"k":`), jsonString(s)...), '}'), expected{}
	}
	return jsonString(s), expected{found: true, text: s}
}

// expected is what a reference must find in a value: found (a scalar, or
// an array of scalars: list), its text.
type expected struct {
	found bool
	text  string
	list  []string // non-nil for an array of scalars
}

// expect is the reference oracle for JSON text, built on encoding/json.
func expect(raw []byte) expected {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		panic(fmt.Sprintf("%q: %v", raw, err))
	}
	scalar := func(v any) (string, bool) {
		switch v := v.(type) {
		case string:
			return v, true
		case json.Number:
			return string(v), true
		case bool:
			return fmt.Sprint(v), true
		}
		return "", false
	}
	if s, ok := scalar(v); ok {
		return expected{found: true, text: s}
	}
	arr, ok := v.([]any)
	if !ok {
		return expected{}
	}
	list := []string{}
	for _, e := range arr {
		s, ok := scalar(e)
		if !ok {
			return expected{}
		}
		list = append(list, s)
	}
	return expected{found: true, list: list}
}

// inPath is whether an expected value can fill a path segment: a scalar
// that, path-escaped, is a segment of its own, neither empty nor a
// dot-segment (which no escaping can neutralise: %2E is '.' to any server
// that normalises).
func (e expected) inPath() bool {
	return e.found && e.list == nil && e.text != "" && e.text != "." && e.text != ".."
}

// FuzzRender holds a graph backend's rendered call to SPEC §7 and §4.3:
// whatever the referenced answers hold, the request-target stays under the
// upstream's prefix and the template's literal path, every path reference
// fills exactly its own segment (never adding one, never a dot-segment),
// the query has exactly the template's pairs with the values
// query-escaped (an array repeating its pair, an empty one dropping it),
// headers carry the value verbatim or fail the call on a control
// character (CR, LF, NUL, DEL...; a tab passes), and a
// value that cannot be substituted fails the call with a *ReferenceError
// naming a reference that is indeed unfit.
func FuzzRender(f *testing.F) {
	cases := compileRenderCases(f)
	seeds := []string{
		"42", "", ".", "..", "...", "/", "a/b", "../../admin", "..%2F..", "%2F", "%2e%2e", "?x=1#frag", "#", "%", "%zz",
		"a b", "\r\nHost: evil", "\x00", "\xff\xfe", "ü€", "a&b=c", "+", "=", ";", "//evil.example", "@evil", "\\..\\",
		`"\u002e\u002e"`, `"\u002e"`, `""`, `"a\/b"`, `1.50e+3`, `9007199254740993`, `-0`, `[1,2]`, `[]`, `["..","x"]`, `[null]`,
		`[[1]]`, `{"a":1}`, `null`, `true`, "1,2,3", ",", "a,,b", "x\ty", "\x01", "\x7f", "\x1b[0m", "\xee00", `"\ud800"`,
	}
	for i := range cases {
		for k, s := range seeds {
			f.Add(uint8(i), uint8(k), s, uint8(k+1), seeds[(k+7)%len(seeds)], k%2 == 0)
		}
	}
	f.Fuzz(func(t *testing.T, which, kind1 uint8, s1 string, kind2 uint8, s2 string, forward bool) {
		c := cases[int(which)%len(cases)]
		b := c.backend
		v1, e1 := fuzzValue(kind1, s1)
		v2, e2 := fuzzValue(kind2, s2)
		answer := fmt.Appendf(nil, `{"customer":{"id":%s},"q":%s,"ids":%s,"lines":[%s]}`, v1, v2, v2, v1)
		if !gjson.ValidBytes(answer) {
			t.Fatalf("answer %q is not JSON", answer)
		}
		results := []Result{{raw: answer}, {}}
		in := &Inbound{Params: []string{"7"}}
		if forward {
			in.Query = "fwd=1"
		}
		var item gjson.Result
		if c.foreach {
			item = gjson.GetBytes(answer, "lines").Array()[0]
		}
		vals, err := b.resolve(results, item)
		if err != nil {
			t.Fatal(err)
		}
		env, err := b.render(in, vals)

		// refs maps each reference to its expected value.
		refs := map[string]expected{"{order.customer.id}": e1, "{item}": e1, "{order.q}": e2, "{order.ids}": e2}
		unfit := map[string]bool{} // the references that must fail the call
		tmplPath, tmplQuery, _ := strings.Cut(c.path, "?")
		for seg := range strings.SplitSeq(tmplPath, "/") {
			if e, ok := refs[seg]; ok && !e.inPath() {
				unfit[seg] = true
			}
		}
		for pair := range strings.SplitSeq(tmplQuery, "&") {
			_, v, _ := strings.Cut(pair, "=")
			if e, ok := refs[v]; ok && !e.found {
				unfit[v] = true
			}
		}
		for _, v := range c.headers {
			for r, e := range refs {
				if strings.Contains(v, r) && (!e.found || e.list != nil || !httpguts.ValidHeaderFieldValue(e.text)) {
					unfit[r] = true
				}
			}
		}
		if len(unfit) > 0 {
			var re *ReferenceError
			if !errors.As(err, &re) || !errors.Is(err, ErrReference) || !unfit[re.Ref] {
				t.Fatalf("%s with V1=%s V2=%s: render = %+v, %v; want a *ReferenceError naming one of %v", c.path, v1, v2, env, err, unfit)
			}
			if re.Header && httpguts.ValidHeaderFieldValue(refs[re.Ref].text) {
				t.Fatalf("%v: Header is set for %q", err, refs[re.Ref].text)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s with V1=%s V2=%s: render: %v", c.path, v1, v2, err)
		}
		uri := env.uri

		for i := 0; i < len(uri); i++ {
			if ch := uri[i]; ch <= ' ' || ch >= 0x7f || ch == '#' {
				t.Fatalf("%s: byte %#x at %d in %q", c.path, ch, i, uri)
			}
		}
		base, _ := url.Parse(c.base)
		prefix := strings.TrimSuffix(base.EscapedPath(), "/")
		pathPart, rawQuery, hasQuery := strings.Cut(uri, "?")

		// Path: the prefix, then exactly the template's segments, each
		// reference decoding to its value, none empty or a dot-segment.
		want := strings.Split(strings.TrimPrefix(tmplPath, "/"), "/")
		if !strings.HasPrefix(pathPart, prefix+"/") {
			t.Fatalf("%q does not start with the prefix %q", uri, prefix+"/")
		}
		got := strings.Split(strings.TrimPrefix(pathPart, prefix+"/"), "/")
		if len(got) != len(want) {
			t.Fatalf("%s with V1=%s V2=%s: %q has segments %q, want %d", c.path, v1, v2, uri, got, len(want))
		}
		for i, seg := range got {
			dec, err := url.PathUnescape(seg)
			if err != nil {
				t.Fatalf("segment %q of %q: %v", seg, uri, err)
			}
			if dec == "" || dec == "." || dec == ".." {
				t.Fatalf("%q has the segment %q", uri, seg)
			}
			w := want[i]
			if e, ok := refs[w]; ok {
				w = e.text
			} else if w == "{id}" {
				w = "7"
			}
			if dec != w {
				t.Fatalf("segment %d of %q decodes to %q, want %q", i, uri, dec, w)
			}
		}
		// The literal path prefix (up to the first reference) starts the
		// path, and stays its start once dot-segments are resolved: no
		// value climbs out of it.
		lit := prefix + tmplPath[:strings.IndexByte(tmplPath, '{')]
		if !strings.HasPrefix(pathPart, lit) {
			t.Fatalf("%q does not start with %q", uri, lit)
		}
		ru, err := url.ParseRequestURI(uri)
		if err != nil {
			t.Fatalf("ParseRequestURI(%q): %v", uri, err)
		}
		if ru.Host != "" || ru.EscapedPath() != pathPart || ru.RawQuery != rawQuery {
			t.Fatalf("%q parses as host %q path %q query %q", uri, ru.Host, ru.EscapedPath(), ru.RawQuery)
		}
		origin, _ := url.Parse(b.Upstream.instances[0].origin + "/")
		if abs := origin.ResolveReference(ru); abs.EscapedPath() != pathPart || abs.Host != base.Host {
			t.Fatalf("%q resolves to %q", uri, abs)
		}
		if cleaned := path.Clean(pathPart); cleaned != strings.TrimSuffix(pathPart, "/") || !strings.HasPrefix(cleaned+"/", lit) {
			t.Fatalf("%q cleans to %q", pathPart, cleaned)
		}

		// Query: the template's pairs, values substituted (an array
		// repeats its pair, an empty one drops it), then the forwarded
		// query; nothing else.
		wantQ := url.Values{}
		if tmplQuery != "" {
			for pair := range strings.SplitSeq(tmplQuery, "&") {
				k, v, _ := strings.Cut(pair, "=")
				switch e, ok := refs[v]; {
				case ok && e.list != nil:
					for _, x := range e.list {
						wantQ[k] = append(wantQ[k], x)
					}
				case ok:
					wantQ[k] = append(wantQ[k], e.text)
				case v == "{id}":
					wantQ[k] = append(wantQ[k], "7")
				default:
					wantQ[k] = append(wantQ[k], v)
				}
			}
		}
		if forward {
			wantQ["fwd"] = append(wantQ["fwd"], "1")
		}
		if hasQuery != (len(wantQ) > 0) {
			t.Fatalf("%q: query present %v, want %v", uri, hasQuery, wantQ)
		}
		gotQ, err := url.ParseQuery(rawQuery)
		if err != nil || (len(gotQ) > 0 || len(wantQ) > 0) && !reflect.DeepEqual(gotQ, wantQ) {
			t.Fatalf("%s with V1=%s V2=%s: query %q parses to %v (%v), want %v", c.path, v1, v2, rawQuery, gotQ, err, wantQ)
		}
		if forward && !strings.HasSuffix(rawQuery, in.Query) {
			t.Fatalf("query %q does not end with the forwarded %q", rawQuery, in.Query)
		}
		if strings.Contains(rawQuery, "&&") || strings.HasPrefix(rawQuery, "&") || strings.HasSuffix(rawQuery, "&") {
			t.Fatalf("query %q has an empty pair", rawQuery)
		}

		// Headers: the value verbatim.
		if len(env.header) != len(c.headers) {
			t.Fatalf("headers %v, want %v", env.header, c.headers)
		}
		var pairs []string
		for r, e := range refs {
			pairs = append(pairs, r, e.text)
		}
		fill := strings.NewReplacer(pairs...)
		for name, v := range c.headers {
			v = fill.Replace(v)
			if got := env.header[name]; len(got) != 1 || got[0] != v {
				t.Fatalf("header %s = %q, want %q", name, got, v)
			}
		}
	})
}
