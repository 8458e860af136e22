package handlers_test

import (
	"net/http"
	"testing"
)

// An Origin header is one origin (RFC 6454 §7): a request carrying two
// Origin lines, the first allowed, gets no CORS headers at all, on the
// preflight and on the actual request. rs/cors checked the first line and
// then echoed every line into Access-Control-Allow-Origin, the
// unconfigured origin included.
func TestCORSTwoOriginLinesGetNoCORSHeaders(t *testing.T) {
	t.Parallel()
	base := gateway(t, `
server:
  cors: {allow_origins: ["https://app.example.com"]}
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends: [{upstream: u, path: /x}]
`, map[string]string{"u": jsonUpstream(t, 0, `{}`)})
	t.Cleanup(rawClient.CloseIdleConnections)
	for _, tc := range []struct {
		method string
		origin []string
		want   string // Access-Control-Allow-Origin
		status int
	}{
		{http.MethodOptions, []string{"https://app.example.com"}, "https://app.example.com", http.StatusNoContent},
		{http.MethodGet, []string{"https://app.example.com"}, "https://app.example.com", http.StatusOK},
		{http.MethodOptions, []string{"https://app.example.com", "https://evil.example"}, "", http.StatusNoContent},
		{http.MethodGet, []string{"https://app.example.com", "https://evil.example"}, "", http.StatusOK},
	} {
		req, err := http.NewRequest(tc.method, base+"/e", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header["Origin"] = tc.origin
		if tc.method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "GET")
		}
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Values("Access-Control-Allow-Origin")
		if resp.StatusCode != tc.status || (tc.want == "" && len(got) != 0) || (tc.want != "" && (len(got) != 1 || got[0] != tc.want)) {
			t.Errorf("%s with Origin %q: %d, Access-Control-Allow-Origin %q; want %d and %q", tc.method, tc.origin, resp.StatusCode, got, tc.status, tc.want)
		}
		if tc.method == http.MethodGet && resp.Header.Get("Vary") == "" {
			t.Errorf("%s with Origin %q: no Vary", tc.method, tc.origin)
		}
	}
}
