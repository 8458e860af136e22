package handlers_test

import (
	"net/http"
	"testing"
)

// The router matches the escaped request path, so that a %2F stays inside
// its parameter; the endpoint path and the request's path are brought to
// one escaped form first. A route whose literal needs escaping (non-ASCII,
// a space) answered /st%C3%A4dte/oslo but gave 404 to /st%C3%A4dte/a%2Fb,
// where Go keeps the client's raw form; and a client's own choice of
// escaping (lower-case hex, an escaped letter) missed every route.
func TestRoutesMatchAnyEscapingOfTheSamePath(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /städte/{id}
    backends: [{upstream: u, path: "/cities/{id}"}]
  - path: /a b/{id}
    backends: [{upstream: u, path: "/space/{id}"}]
  - path: /users/{id}
    backends: [{upstream: u, path: "/users/{id}"}]
  - path: /lit%2Fslash/{id}
    backends: [{upstream: u, path: "/slash/{id}"}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`))})
	for _, tc := range []struct{ request, upstream string }{
		{"/st%C3%A4dte/oslo", "/cities/oslo"},
		{"/st%C3%A4dte/a%2Fb", "/cities/a%2Fb"},
		{"/st%c3%a4dte/a%2fb", "/cities/a%2Fb"},
		{"/a%20b/1", "/space/1"},
		{"/a%20b/x%2Fy", "/space/x%2Fy"},
		{"/users/a%2Fb", "/users/a%2Fb"},
		{"/%75sers/7", "/users/7"},
		{"/users/%E2%82%AC", "/users/%E2%82%AC"},
		{"/lit%2Fslash/1", "/slash/1"},
		{"/lit%2fslash/1", "/slash/1"},
	} {
		a := get(t, base+tc.request)
		if a.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", tc.request, a.status, a.body)
			continue
		}
		if got := rec.last(t).EscapedURI; got != tc.upstream {
			t.Errorf("GET %s: upstream got %s, want %s", tc.request, got, tc.upstream)
		}
	}
	// Still not the same path: a %2F is not a segment boundary.
	for _, p := range []string{"/lit/slash/1", "/users/a/b"} {
		if a := get(t, base+p); a.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, a.status)
		}
	}
}

// What the router reads as its own syntax or decodes its own way stays
// the client's: a '+' in a parameter is a '+' (the router decodes
// parameters with url.QueryUnescape once the raw path is set, which makes
// a bare '+' a space), and an escaped ':' in an endpoint path is a literal
// colon, not the start of a parameter. A % that starts no escape in an
// endpoint path is a literal %.
func TestRouteSyntaxAndPlusStayLiteral(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /users/{id}
    backends: [{upstream: u, path: "/users/{id}"}]
  - path: /v1/items%3Aget
    backends: [{upstream: u, path: "/get"}]
  - path: /sale/50%off
    backends: [{upstream: u, path: "/sale"}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`))})
	for _, tc := range []struct{ request, upstream string }{
		{"/users/a+b", "/users/a+b"},
		{"/users/a+b%20c", "/users/a+b%20c"},
		{"/users/%E2%82%AC+1", "/users/%E2%82%AC+1"},
		{"/users/a+b%2Fc", "/users/a+b%2Fc"},
		{"/users/a%2Bb", "/users/a+b"},
		{"/v1/items%3Aget", "/get"},
		{"/v1/items:get", "/get"},
		{"/sale/50%25off", "/sale"},
	} {
		a := get(t, base+tc.request)
		if a.status != http.StatusOK {
			t.Errorf("GET %s: %d %s", tc.request, a.status, a.body)
			continue
		}
		if got := rec.last(t).EscapedURI; got != tc.upstream {
			t.Errorf("GET %s: upstream got %s, want %s", tc.request, got, tc.upstream)
		}
	}
	for _, p := range []string{"/v1/itemsfoo", "/v1/items"} {
		if a := get(t, base+p); a.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404 (the literal is items:get)", p, a.status)
		}
	}
}
