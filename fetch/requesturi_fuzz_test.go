package fetch

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// requestURICase is one upstream URL and backend path template of the
// fuzz target, with the template's segments and static query as the test
// reads them (independently of config's compiler).
type requestURICase struct {
	base, path string
	backend    *Backend
}

// The endpoint path is /e/{a}/{b}; the templates use both parameters in
// path segments and in the static query.
var requestURICases = []struct{ base, path string }{
	{"http://127.0.0.1:9/api", "/users/{a}"},
	{"http://127.0.0.1:9", "/users/{a}/orders/{b}?v=1&k={a}"},
	{"http://127.0.0.1:9/a%20b/v1/", "/{a}/{b}"},
	{"https://h.example:8443/pre/x", "/x/{b}/y?q={b}&r=a{a}b"},
	{"http://[::1]:9/p", "/{a}?only"},
}

func compileRequestURICases(tb testing.TB) []requestURICase {
	tb.Helper()
	var cases []requestURICase
	for i, c := range requestURICases {
		yaml := fmt.Sprintf(`
upstreams: {u: {url: %q}}
endpoints:
  - path: /e/{a}/{b}
    forward_query: ["*"]
    backends: [{upstream: u, path: %q}]
`, c.base, c.path)
		cfg, err := config.Parse(fmt.Sprintf("case%d.yaml", i), []byte(yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			tb.Fatal(err)
		}
		u := NewUpstream(cfg.Upstreams["u"], nil)
		u.Close()
		ep, err := NewEndpoint(cfg.Endpoints[0], map[string]*Upstream{"u": u})
		if err != nil {
			tb.Fatal(err)
		}
		cases = append(cases, requestURICase{base: c.base, path: c.path, backend: ep.Backends[0]})
	}
	return cases
}

// FuzzRequestURI holds the rendered request-target to SPEC §4.3: whatever
// the path parameters and the forwarded query hold, the target stays under
// the upstream's path prefix, every parameter stays inside its own path
// segment (or query value), the template's query comes first and is the
// only '?', and the host never changes.
//
// Parameters "." and ".." are refused with 400 by handlers (the router
// hands them over decoded, and escaping cannot neutralise them: %2E is
// "." to any server that normalises), so fetch never renders them and
// the target skips them.
func FuzzRequestURI(f *testing.F) {
	cases := compileRequestURICases(f)
	for i := range cases {
		for _, p := range [][4]string{
			{"7", "x", "", ""},
			{"a/b", "../..", "q", "1"},
			{"%2F..%2F", "?x=1#frag", "a b", "c&d=e"},
			{"\r\nHost: evil", "\x00\xff", "#", "?"},
			{"//evil.example", "@evil", "k", "{a}"},
			{"", "...", "", "x"},
			{"ü€", "\t", "%", "%zz"},
			{"x&k=evil", "y;z+1", "v", "2"},
		} {
			f.Add(uint8(i), p[0], p[1], p[2], p[3])
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, a, b, qk, qv string) {
		c := cases[int(which)%len(cases)]
		if a == "." || a == ".." || b == "." || b == ".." {
			return // refused by handlers (see above)
		}
		params := map[string]string{"a": a, "b": b}
		in := &Inbound{Params: []string{a, b}}
		forwarded := url.Values{}
		if qk != "" {
			forwarded.Add(qk, qv)
			in.Query = forwarded.Encode() // as handlers encode it
		}
		uri := c.backend.requestURI(in)

		for i := 0; i < len(uri); i++ {
			if ch := uri[i]; ch <= ' ' || ch >= 0x7f || ch == '#' {
				t.Fatalf("%s: byte %#x at %d in %q", c.path, ch, i, uri)
			}
		}
		base, _ := url.Parse(c.base)
		prefix := strings.TrimSuffix(base.EscapedPath(), "/")
		if !strings.HasPrefix(uri, prefix+"/") {
			t.Fatalf("%q does not start with the prefix %q", uri, prefix+"/")
		}
		pathPart, rawQuery, hasQuery := strings.Cut(uri, "?")

		// Path: the prefix's segments, then the template's, each parameter
		// alone in its segment and decoding to exactly its value.
		tmplPath, tmplQuery, tmplHasQuery := strings.Cut(c.path, "?")
		want := strings.Split(strings.TrimPrefix(tmplPath, "/"), "/")
		got := strings.Split(strings.TrimPrefix(pathPart, prefix+"/"), "/")
		if len(got) != len(want) {
			t.Fatalf("%s with a=%q b=%q: %q has segments %q, want %d", c.path, a, b, uri, got, len(want))
		}
		for i, seg := range got {
			if seg == "." || seg == ".." {
				t.Fatalf("%q has a %q segment", uri, seg)
			}
			dec, err := url.PathUnescape(seg)
			if err != nil {
				t.Fatalf("segment %q of %q: %v", seg, uri, err)
			}
			w := want[i]
			if strings.HasPrefix(w, "{") {
				w = params[strings.Trim(w, "{}")]
			}
			if dec != w {
				t.Fatalf("segment %d of %q decodes to %q, want %q", i, uri, dec, w)
			}
		}

		// Query: the template's own (parameters query-escaped), then the
		// forwarded one; nothing else, and '?' only when there is one.
		if hasQuery != (tmplHasQuery || in.Query != "") {
			t.Fatalf("%q: query present %v", uri, hasQuery)
		}
		if hasQuery {
			wantQ := url.Values{}
			if tmplHasQuery {
				for pair := range strings.SplitSeq(tmplQuery, "&") {
					k, v, _ := strings.Cut(pair, "=")
					v = strings.NewReplacer("{a}", a, "{b}", b).Replace(v)
					wantQ[k] = append(wantQ[k], v)
				}
			}
			for k, vs := range forwarded {
				wantQ[k] = append(wantQ[k], vs...)
			}
			gotQ, err := url.ParseQuery(rawQuery)
			if err != nil || !reflect.DeepEqual(gotQ, wantQ) {
				t.Fatalf("%s with a=%q b=%q, forwarded %q: query %q parses to %v (%v), want %v", c.path, a, b, in.Query, rawQuery, gotQ, err, wantQ)
			}
			if tmplHasQuery && in.Query != "" && !strings.HasSuffix(rawQuery, "&"+in.Query) {
				t.Fatalf("query %q does not end with the forwarded %q", rawQuery, in.Query)
			}
		}

		// As a request-target (lean client) and as the stdlib client's URL:
		// the host is the upstream's and the path is the rendered one.
		ru, err := url.ParseRequestURI(uri)
		if err != nil {
			t.Fatalf("ParseRequestURI(%q): %v", uri, err)
		}
		if ru.Host != "" || ru.EscapedPath() != pathPart || ru.RawQuery != rawQuery {
			t.Fatalf("%q parses as host %q path %q query %q", uri, ru.Host, ru.EscapedPath(), ru.RawQuery)
		}
		req, err := http.NewRequest(http.MethodGet, c.backend.Upstream.instances[0].origin+uri, nil)
		if err != nil {
			t.Fatalf("stdlib URL %q: %v", c.backend.Upstream.instances[0].origin+uri, err)
		}
		if req.URL.Host != base.Host || req.Host != base.Host || req.URL.EscapedPath() != pathPart || req.URL.RawQuery != rawQuery {
			t.Fatalf("stdlib URL %q: host %q path %q query %q", c.backend.Upstream.instances[0].origin+uri, req.URL.Host, req.URL.EscapedPath(), req.URL.RawQuery)
		}
	})
}
