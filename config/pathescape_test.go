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
		{"/a-b_c.d~e/!$&'()*+,;=:@", "", false},
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
	} {
		if got, ok := routeLiteral(lit); !ok || got != want {
			t.Errorf("routeLiteral(%q) = %q, %v; want %q", lit, got, ok, want)
		}
	}
	if _, ok := routeLiteral("/100%"); ok {
		t.Error("routeLiteral accepted an invalid escape")
	}
}

// The fast path: a plain path is not rewritten and costs no allocation.
func TestCanonicalPathPlainAllocatesNothing(t *testing.T) {
	u := &url.URL{Path: "/api/profile/1029384756"}
	if n := testing.AllocsPerRun(100, func() { CanonicalPath(u) }); n != 0 {
		t.Errorf("%v allocations for a plain path", n)
	}
}
