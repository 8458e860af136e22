package config

import (
	"net/url"
	"testing"
)

// A request path and an endpoint path that name the same segments meet in
// one form however either was escaped.
func TestCanonicalPath(t *testing.T) {
	for _, tc := range []struct {
		request, want string
		rewritten     bool
	}{
		{"/api/users/7", "", false},
		{"/a-b_c.d~e/!$&'(),;=@", "", false},
		// ':' and '*' would be route syntax, '+' a space to the router's
		// decoding of parameters: all three are escaped.
		{"/v1/items:get", "/v1/items%3Aget", true},
		{"/users/a+b", "/users/a%2Bb", true},
		{"/users/a+b%20c", "/users/a%2Bb%20c", true},
		{"/files/*", "/files/%2A", true},
		{"/st%C3%A4dte/oslo", "/st%C3%A4dte/oslo", true},
		{"/städte/oslo", "/st%C3%A4dte/oslo", true},
		{"/st%c3%a4dte/oslo", "/st%C3%A4dte/oslo", true},
		{"/st%C3%A4dte/a%2Fb", "", false}, // RawPath is the canonical form already
		{"/users/a%2fb", "/users/a%2Fb", true},
		{"/%61/1", "/a/1", true},
		{"/a%20b/1", "/a%20b/1", true},
		{"/a/100%25", "/a/100%25", true},
		{"/a/%2C", "/a/,", true},
	} {
		u, err := url.Parse(tc.request)
		if err != nil {
			t.Fatal(err)
		}
		got, rewritten := CanonicalPath(u)
		if got != tc.want || rewritten != tc.rewritten {
			t.Errorf("CanonicalPath(%q) = %q, %v; want %q, %v", tc.request, got, rewritten, tc.want, tc.rewritten)
		}
	}
}

func TestRouteLiteral(t *testing.T) {
	for lit, want := range map[string]string{
		"/api/users/":  "/api/users/",
		"/städte/":     "/st%C3%A4dte/",
		"/st%c3%a4dte": "/st%C3%A4dte",
		"/a%2Fb":       "/a%2Fb",
		"/a b/":        "/a%20b/",
		"/%61":         "/a",
		"/v1/items%3A": "/v1/items%3A",
		"/a+b":         "/a%2Bb",
		// A % that starts no escape stands for itself.
		"/sale/50%off": "/sale/50%25off",
		"/100%":        "/100%25",
		"/%4":          "/%254",
	} {
		if got := routeLiteral(lit); got != want {
			t.Errorf("routeLiteral(%q) = %q; want %q", lit, got, want)
		}
	}
}

// The fast path: a plain path is not rewritten and costs no allocation.
func TestCanonicalPathPlainAllocatesNothing(t *testing.T) {
	u := &url.URL{Path: "/api/profile/1029384756"}
	if n := testing.AllocsPerRun(100, func() { CanonicalPath(u) }); n != 0 {
		t.Errorf("%v allocations for a plain path", n)
	}
}
