package handlers_test

import (
	"io"
	"net/http"
	"strconv"
	"testing"
)

// A configured Cache-Control (response_headers) is meant for the
// endpoint's answers: on a passthrough answer that is an upstream error
// (4xx/5xx) it does not replace the upstream's own Cache-Control, and
// where the upstream sent none the answer says no-store, as the gateway's
// own errors do, so a shared cache is never told to keep an outage's 503
// for a minute. A 2xx still gets it.
func TestRelayedErrorKeepsItsOwnCacheControl(t *testing.T) {
	t.Parallel()
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		if cc := r.URL.Query().Get("cc"); cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		io.WriteString(w, "body")
	})
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /raw
    forward_query: [code, cc]
    response_headers: {Cache-Control: "public, max-age=60", X-Frame-Options: DENY}
    backends: [{upstream: u, path: /x, passthrough: true}]
`, map[string]string{"u": up})
	for _, tc := range []struct {
		query, want string
	}{
		{"?code=200", "public, max-age=60"},
		{"?code=200&cc=no-cache", "public, max-age=60"},
		{"?code=503&cc=no-store", "no-store"},
		{"?code=503", "no-store"},
		{"?code=404", "no-store"},
		{"?code=404&cc=max-age=5", "max-age=5"},
	} {
		a := get(t, base+"/raw"+tc.query)
		if got := a.header.Get("Cache-Control"); got != tc.want {
			t.Errorf("%s: %d, Cache-Control %q, want %q", tc.query, a.status, got, tc.want)
		}
		if a.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: the other response_headers are still set on every answer", tc.query)
		}
	}
}
