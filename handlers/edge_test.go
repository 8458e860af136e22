package handlers_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// rawClient neither asks for gzip on its own nor decodes it, so the test
// sees the answer as sent.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}}

// send is do with rawClient, headers set as given (canonical or not).
func send(t *testing.T, method, url string, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = []string{v}
	}
	start := time.Now()
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rawClient.CloseIdleConnections)
	if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(b)) {
		t.Errorf("%s %s: Content-Length %s, body %d bytes", method, url, cl, len(b))
	}
	return answer{resp.StatusCode, resp.Header, b, time.Since(start)}
}

// gunzip decodes a gzip body.
func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("bad gzip: %v", err)
	}
	return out
}

// varyLists reports whether the Vary header lists name.
func varyLists(h http.Header, name string) bool {
	for _, v := range h.Values("Vary") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), name) {
				return true
			}
		}
	}
	return false
}

// countingUp answers body as JSON and counts its calls.
func countingUp(t *testing.T, n *atomic.Int64, body string) string {
	return upstream(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})
}

// bigJSON is a JSON object of about n bytes.
func bigJSON(prefix string, n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%s%03d":"value number %d of a compressible answer"`, prefix, i, i)
	}
	b.WriteString("}")
	return b.String()
}

const corsYAML = `
server:
  cors:
    allow_origins: [https://app.example.com, "http://localhost:5173"]
    allow_headers: [Content-Type, X-Api-Key]
    allow_credentials: true
upstreams:
  up: {url: "{{up}}"}
  raw: {url: "{{raw}}"}
endpoints:
  - path: /items
    backends: [{upstream: up, path: /x}]
  - path: /items
    method: POST
    backends: [{upstream: up, path: /x}]
  - path: /items/{id}
    method: DELETE
    backends: [{upstream: up, path: /x}]
  - path: /limited
    rate_limit: {rps: 0.001, burst: 1}
    response_headers: {X-Frame-Options: DENY}
    backends: [{upstream: up, path: /x}]
  - path: /raw
    backends: [{upstream: raw, path: /r, passthrough: true}]
  - path: /fail
    backends: [{upstream: up, path: /fail}]
`

// TestCORSPreflight: preflights shaped as Chrome and Firefox send them are
// answered by the gateway, 204, never forwarded; a refused one gets 204
// without CORS headers; OPTIONS that is not a preflight, or to a path no
// endpoint serves, keeps its 405 or 404.
func TestCORSPreflight(t *testing.T) {
	var calls atomic.Int64
	base := gateway(t, corsYAML, map[string]string{"up": countingUp(t, &calls, `{"a":1}`), "raw": countingUp(t, &calls, `{"r":1}`)})
	const app = "https://app.example.com"
	chrome := func(extra map[string]string) map[string]string {
		h := map[string]string{
			"Origin":                         app,
			"Access-Control-Request-Method":  "POST",
			"Access-Control-Request-Headers": "content-type,x-api-key",
			"Sec-Fetch-Mode":                 "cors",
			"Sec-Fetch-Site":                 "cross-site",
			"Sec-Fetch-Dest":                 "empty",
			"Referer":                        app + "/",
			"User-Agent":                     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
			"Accept":                         "*/*",
			"Accept-Encoding":                "gzip, deflate, br, zstd",
		}
		for k, v := range extra {
			if v == "" {
				delete(h, k)
			} else {
				h[k] = v
			}
		}
		return h
	}
	for _, tc := range []struct {
		name    string
		path    string
		hdr     map[string]string
		status  int
		allowed bool
	}{
		{"chrome", "/items", chrome(nil), 204, true},
		{"chrome private network", "/items", chrome(map[string]string{"Access-Control-Request-Private-Network": "true"}), 204, true},
		{"firefox", "/items", map[string]string{
			"Origin": app, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type",
			"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
			"Accept":     "*/*", "Accept-Language": "en-US,en;q=0.5", "Sec-Fetch-Mode": "cors", "Connection": "keep-alive",
		}, 204, true},
		{"no request headers", "/items", chrome(map[string]string{"Access-Control-Request-Headers": ""}), 204, true},
		{"method served on another route", "/items/7", chrome(map[string]string{"Access-Control-Request-Method": "DELETE"}), 204, true},
		{"second allowed origin", "/items", chrome(map[string]string{"Origin": "http://localhost:5173"}), 204, true},
		{"passthrough path", "/raw", chrome(nil), 204, true},
		{"disallowed origin", "/items", chrome(map[string]string{"Origin": "https://evil.example.com"}), 204, false},
		{"origin null", "/items", chrome(map[string]string{"Origin": "null"}), 204, false},
		{"origin is exact", "/items", chrome(map[string]string{"Origin": "https://APP.example.com"}), 204, false},
		{"origin with a port", "/items", chrome(map[string]string{"Origin": app + ":8443"}), 204, false},
		{"disallowed method", "/items", chrome(map[string]string{"Access-Control-Request-Method": "HEAD"}), 204, false},
		{"disallowed header", "/items", chrome(map[string]string{"Access-Control-Request-Headers": "content-type,x-secret"}), 204, false},
		{"not a preflight", "/items", map[string]string{"Origin": app}, 405, false},
		{"no origin", "/items", chrome(map[string]string{"Origin": ""}), 405, false},
		{"no endpoint", "/nope", chrome(nil), 404, false},
		{"ops route", "/__health", chrome(nil), 405, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, http.MethodOptions, base+tc.path, tc.hdr)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.status != 204 {
				a.errorOf(t)
				if a.header.Get("Access-Control-Allow-Origin") != "" {
					t.Errorf("CORS headers on a %d: %v", a.status, a.header)
				}
				if tc.status == 405 && a.header.Get("Allow") == "" {
					t.Error("405 without Allow")
				}
				return
			}
			if len(a.body) != 0 || a.header.Get("Allow") != "" || a.header.Get("X-Request-Id") == "" {
				t.Errorf("preflight answer: body %q, headers %v", a.body, a.header)
			}
			if !varyLists(a.header, "Origin") || !varyLists(a.header, "Access-Control-Request-Method") {
				t.Errorf("Vary %q", a.header.Values("Vary"))
			}
			acao := a.header.Get("Access-Control-Allow-Origin")
			if !tc.allowed {
				for k := range a.header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("refused preflight carries %s: %v", k, a.header[k])
					}
				}
				return
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":      tc.hdr["Origin"],
				"Access-Control-Allow-Methods":     tc.hdr["Access-Control-Request-Method"],
				"Access-Control-Allow-Headers":     tc.hdr["Access-Control-Request-Headers"],
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Max-Age":           "600",
				// Not granted: allow_private_network is off (TestCORSPrivateNetwork).
				"Access-Control-Allow-Private-Network": "",
			}
			for k, v := range want {
				if got := a.header.Get(k); got != v {
					t.Errorf("%s %q, want %q (ACAO %q)", k, got, v, acao)
				}
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("preflights reached upstreams %d times", n)
	}
}

// TestCORSPrivateNetwork: with server.cors.allow_private_network, a
// preflight from an allowed origin that asks for private network access
// (Access-Control-Request-Private-Network: true) is granted it
// (Access-Control-Allow-Private-Network: true), and preflights vary on the
// request header; without the key (the default), or for a preflight that
// does not ask, or from an origin that is not allowed, it never is.
func TestCORSPrivateNetwork(t *testing.T) {
	var calls atomic.Int64
	urls := map[string]string{"up": countingUp(t, &calls, `{"a":1}`), "raw": countingUp(t, &calls, `{"r":1}`)}
	on := gateway(t, strings.Replace(corsYAML, "allow_credentials: true", "allow_credentials: true\n    allow_private_network: true", 1), urls)
	off := gateway(t, corsYAML, urls)
	const app = "https://app.example.com"
	pna := map[string]string{"Origin": app, "Access-Control-Request-Method": "GET", "Access-Control-Request-Private-Network": "true"}
	with := func(k, v string) map[string]string {
		h := maps.Clone(pna)
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	for _, tc := range []struct {
		name    string
		base    string
		hdr     map[string]string
		granted bool
	}{
		{"on, asked", on, pna, true},
		{"on, not asked", on, with("Access-Control-Request-Private-Network", ""), false},
		{"on, asked with another value", on, with("Access-Control-Request-Private-Network", "false"), false},
		{"on, origin not allowed", on, with("Origin", "https://evil.example.com"), false},
		{"off, asked", off, pna, false},
		{"off, not asked", off, with("Access-Control-Request-Private-Network", ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, http.MethodOptions, tc.base+"/items", tc.hdr)
			if a.status != 204 {
				t.Fatalf("status %d, want 204", a.status)
			}
			got := a.header.Values("Access-Control-Allow-Private-Network")
			if want := map[bool]int{true: 1, false: 0}[tc.granted]; len(got) != want || (want == 1 && got[0] != "true") {
				t.Errorf("Access-Control-Allow-Private-Network %q, granted %v", got, tc.granted)
			}
			if tc.hdr["Origin"] == app && a.header.Get("Access-Control-Allow-Origin") != app {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", a.header.Get("Access-Control-Allow-Origin"), app)
			}
			if tc.base == on && !varyLists(a.header, "Access-Control-Request-Private-Network") {
				t.Errorf("Vary %q, want it to list Access-Control-Request-Private-Network", a.header.Values("Vary"))
			}
		})
	}
	// An actual request is not a preflight: no private network grant.
	a := send(t, http.MethodGet, on+"/items", pna)
	if a.status != 200 || a.header.Get("Access-Control-Allow-Private-Network") != "" || a.header.Get("Access-Control-Allow-Origin") != app {
		t.Errorf("actual request: %d, headers %v", a.status, a.header)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("upstream calls %d, want 1 (the actual request's)", n)
	}
}

// TestCORSPreflightNotRateLimited: preflights beyond the burst are still
// answered, and take no token from the endpoint's bucket.
func TestCORSPreflightNotRateLimited(t *testing.T) {
	var calls atomic.Int64
	base := gateway(t, corsYAML, map[string]string{"up": countingUp(t, &calls, `{"a":1}`), "raw": countingUp(t, &calls, `{}`)})
	pre := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
	for i := range 5 {
		if a := send(t, http.MethodOptions, base+"/limited", pre); a.status != 204 || a.header.Get("Access-Control-Allow-Origin") == "" {
			t.Fatalf("preflight %d: %d %v", i, a.status, a.header)
		}
	}
	actual := map[string]string{"Origin": "https://app.example.com"}
	if a := send(t, http.MethodGet, base+"/limited", actual); a.status != 200 {
		t.Fatalf("first GET after 5 preflights: %d %s (the burst is 1)", a.status, a.body)
	}
	a := send(t, http.MethodGet, base+"/limited", actual)
	if a.status != 429 {
		t.Fatalf("second GET: %d, want 429", a.status)
	}
	// The 429 is readable by the page: CORS and the endpoint's headers.
	if a.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || a.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("429 headers %v", a.header)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("upstream calls %d, want 1", n)
	}
}

// TestCORSActual: answers to actual requests carry the CORS headers for
// allowed origins only, errors and passthrough included; a passthrough
// upstream's own CORS headers never reach the client.
func TestCORSActual(t *testing.T) {
	raw := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "X-Internal")
		w.Header().Set("Vary", "Accept-Language")
		io.WriteString(w, `{"r":1}`)
	})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"a":1}`)
	})
	base := gateway(t, corsYAML, map[string]string{"up": up, "raw": raw})
	for _, tc := range []struct {
		name, method, path, origin string
		status                     int
		allowed                    bool
	}{
		{"GET allowed", "GET", "/items", "https://app.example.com", 200, true},
		{"POST allowed", "POST", "/items", "http://localhost:5173", 200, true},
		{"disallowed", "GET", "/items", "https://evil.example.com", 200, false},
		{"null", "GET", "/items", "null", 200, false},
		{"same-origin (no Origin)", "GET", "/items", "", 200, false},
		{"502 allowed", "GET", "/fail", "https://app.example.com", 502, true},
		{"passthrough allowed", "GET", "/raw", "https://app.example.com", 200, true},
		{"passthrough disallowed", "GET", "/raw", "https://evil.example.com", 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.origin != "" {
				hdr["Origin"] = tc.origin
			}
			a := send(t, tc.method, base+tc.path, hdr)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d", a.status, tc.status)
			}
			if !varyLists(a.header, "Origin") {
				t.Errorf("Vary %q lacks Origin", a.header.Values("Vary"))
			}
			if tc.path == "/raw" && !varyLists(a.header, "Accept-Language") {
				t.Errorf("Vary %q lost the upstream's Accept-Language", a.header.Values("Vary"))
			}
			if !tc.allowed {
				for k := range a.header {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("%s: %v", k, a.header[k])
					}
				}
				return
			}
			for k, v := range map[string]string{
				"Access-Control-Allow-Origin":      tc.origin,
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Expose-Headers":    "X-Request-Id, X-Manifold-Completed",
			} {
				if got := a.header.Get(k); got != v {
					t.Errorf("%s %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestCORSAnyOrigin: "*" answers any origin, null included, with "*" and
// never with credentials.
func TestCORSAnyOrigin(t *testing.T) {
	base := gateway(t, `
server:
  cors: {allow_origins: ["*"], max_age: 0s}
upstreams:
  up: {url: "{{up}}"}
endpoints:
  - path: /items
    backends: [{upstream: up, path: /x}]
`, map[string]string{"up": jsonUpstream(t, 0, `{"a":1}`)})
	for _, origin := range []string{"https://anyone.example", "null"} {
		a := send(t, http.MethodOptions, base+"/items", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "content-type",
		})
		if a.status != 204 || a.header.Get("Access-Control-Allow-Origin") != "*" || a.header.Get("Access-Control-Allow-Credentials") != "" ||
			a.header.Get("Access-Control-Max-Age") != "0" || a.header.Get("Access-Control-Allow-Headers") != "content-type" {
			t.Errorf("preflight from %s: %d %v", origin, a.status, a.header)
		}
		a = send(t, http.MethodGet, base+"/items", map[string]string{"Origin": origin})
		if a.header.Get("Access-Control-Allow-Origin") != "*" || a.header.Get("Access-Control-Expose-Headers") == "" {
			t.Errorf("GET from %s: %v", origin, a.header)
		}
	}
}

// TestCORSOff: without server.cors nothing changes: a preflight is a 405,
// answers carry no CORS headers and a passthrough upstream's are relayed.
func TestCORSOff(t *testing.T) {
	raw := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		io.WriteString(w, `{}`)
	})
	base := gateway(t, `
upstreams:
  up: {url: "{{up}}"}
  raw: {url: "{{raw}}"}
endpoints:
  - path: /items
    backends: [{upstream: up, path: /x}]
  - path: /raw
    backends: [{upstream: raw, path: /r, passthrough: true}]
`, map[string]string{"up": jsonUpstream(t, 0, `{"a":1}`), "raw": raw})
	pre := map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}
	if a := send(t, http.MethodOptions, base+"/items", pre); a.status != 405 || a.header.Get("Allow") != "GET" {
		t.Errorf("preflight without server.cors: %d %v", a.status, a.header)
	}
	a := send(t, http.MethodGet, base+"/items", pre)
	if a.header.Get("Vary") != "" || a.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET without server.cors: %v", a.header)
	}
	if a := send(t, http.MethodGet, base+"/raw", pre); a.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("passthrough without server.cors lost the upstream's header: %v", a.header)
	}
}

// TestCompression: gzip for clients that accept it and bodies of at least
// min_bytes, merged, errors, cache hits and relayed answers of known
// length; everything else as before.
func TestCompression(t *testing.T) {
	big := bigJSON("k", 3000)
	small := `{"s":1}`
	pre := new(bytes.Buffer)
	zw := gzip.NewWriter(pre)
	io.WriteString(zw, big)
	zw.Close()
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		status, body := 200, big // every body with its length: a relayed one is then compressible
		switch r.URL.Path {
		case "/small":
			body = small
		case "/relay":
			h.Set("ETag", `"v1"`)
			h.Set("Accept-Ranges", "bytes")
		case "/encoded":
			// The upstream clients decode gzip themselves (internal/h1,
			// net/http), so an answer that reaches relay encoded is in
			// another coding.
			h.Set("Content-Encoding", "br")
			body = pre.String()
		case "/gzipped":
			h.Set("Content-Encoding", "gzip")
			body = pre.String()
		case "/notransform":
			h.Set("Cache-Control", "public, no-transform")
		case "/png":
			h.Set("Content-Type", "image/png")
		case "/nocontent":
			status, body = 204, ""
		case "/missing":
			status = 404
		case "/fail":
			status, body = 500, ""
		}
		if status != 204 {
			h.Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	yaml := `
server:
  compression: {min_bytes: 1024}
upstreams:
  up: {url: "{{up}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /big
    backends: [{upstream: up, path: /big}]
  - path: /small
    backends: [{upstream: up, path: /small}]
  - path: /cached
    cache: {ttl: 1m}
    backends: [{upstream: up, path: /big}]
  - path: /relay
    backends: [{upstream: up, path: /relay, passthrough: true}]
  - path: /encoded
    backends: [{upstream: up, path: /encoded, passthrough: true}]
  - path: /gzipped
    backends: [{upstream: up, path: /gzipped, passthrough: true}]
  - path: /notransform
    backends: [{upstream: up, path: /notransform, passthrough: true}]
  - path: /png
    backends: [{upstream: up, path: /png, passthrough: true}]
  - path: /nocontent
    backends: [{upstream: up, path: /nocontent, passthrough: true}]
  - path: /missing
    backends: [{upstream: up, path: /missing, passthrough: true}]
  - path: /fail
    backends:
`
	for i := range 40 { // an error body above 1 KB: one reason per backend
		yaml += fmt.Sprintf("      - {upstream: up, path: /fail, group: backend_with_a_long_name_%02d}\n", i)
	}
	base := gateway(t, yaml, map[string]string{"up": up})
	off := gateway(t, strings.Replace(yaml, "{min_bytes: 1024}", "{enabled: false}", 1), map[string]string{"up": up})

	plain := map[string][]byte{}
	for _, p := range []string{"/big", "/fail"} {
		plain[p] = send(t, "GET", base+p, nil).body
	}
	if len(plain["/fail"]) < 1024 {
		t.Fatalf("the error body is %d bytes: too small to test", len(plain["/fail"]))
	}
	for _, tc := range []struct {
		name, base, path, ae string
		status               int
		gz                   bool
		want                 string // decoded body; "" = plain[path]
	}{
		{"merged gzip", base, "/big", "gzip", 200, true, ""},
		{"chrome", base, "/big", "gzip, deflate, br, zstd", 200, true, ""},
		{"q", base, "/big", "br;q=1.0, GZIP;Q=0.5", 200, true, ""},
		{"x-gzip", base, "/big", "x-gzip", 200, true, ""},
		{"wildcard", base, "/big", "*", 200, true, ""},
		{"q=0", base, "/big", "gzip;q=0", 200, false, ""},
		{"q=0.000 with spaces", base, "/big", "deflate, gzip ; q=0.000", 200, false, ""},
		{"q=0 beats wildcard", base, "/big", "gzip;q=0, *", 200, false, ""},
		{"wildcard q=0", base, "/big", "*;q=0", 200, false, ""},
		{"br only", base, "/big", "br", 200, false, ""},
		{"identity", base, "/big", "identity", 200, false, ""},
		{"no Accept-Encoding", base, "/big", "", 200, false, ""},
		{"small", base, "/small", "gzip", 200, false, small},
		{"error", base, "/fail", "gzip", 502, true, ""},
		{"cache miss", base, "/cached", "gzip", 200, true, big},
		{"cache hit", base, "/cached", "gzip", 200, true, big},
		{"relayed", base, "/relay", "gzip", 200, true, big},
		{"relayed without gzip", base, "/relay", "", 200, false, big},
		{"relayed 404", base, "/missing", "gzip", 404, true, big},
		{"already encoded", base, "/encoded", "gzip", 200, false, pre.String()},
		// Decoded by the upstream client, its length unknown: relayed
		// as it streams, uncompressed.
		{"upstream gzip", base, "/gzipped", "gzip", 200, false, big},
		{"no-transform", base, "/notransform", "gzip", 200, false, big},
		{"image", base, "/png", "gzip", 200, false, big},
		{"204", base, "/nocontent", "gzip", 204, false, "-"},
		{"disabled", off, "/big", "gzip", 200, false, ""},
		{"disabled relay", off, "/relay", "gzip", 200, false, big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.ae != "" {
				hdr["Accept-Encoding"] = tc.ae
			}
			a := send(t, "GET", tc.base+tc.path, hdr)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d", a.status, tc.status)
			}
			want := []byte(tc.want)
			switch tc.want {
			case "":
				want = plain[tc.path]
			case "-":
				want = nil
			}
			ce := a.header.Values("Content-Encoding")
			got := a.body
			if tc.gz {
				if !slices.Equal(ce, []string{"gzip"}) {
					t.Fatalf("Content-Encoding %q, want gzip", ce)
				}
				got = gunzip(t, a.body)
				if !varyLists(a.header, "Accept-Encoding") {
					t.Errorf("Vary %q", a.header.Values("Vary"))
				}
			} else if tc.path == "/encoded" {
				if !slices.Equal(ce, []string{"br"}) {
					t.Errorf("Content-Encoding %q, want the upstream's br alone", ce)
				}
			} else if len(ce) > 0 || varyLists(a.header, "Accept-Encoding") {
				t.Errorf("uncompressed answer with Content-Encoding %q, Vary %q", ce, a.header.Values("Vary"))
			}
			if !bytes.Equal(got, want) {
				t.Errorf("body %d bytes, want %d: %.80q", len(got), len(want), got)
			}
			switch tc.path {
			case "/big":
				if a.header.Get("X-Manifold-Completed") != "true" {
					t.Errorf("X-Manifold-Completed %q", a.header.Get("X-Manifold-Completed"))
				}
			case "/relay":
				etag, ranges := `"v1"`, "bytes"
				if tc.gz {
					etag, ranges = `W/"v1"`, ""
				}
				if a.header.Get("Etag") != etag || a.header.Get("Accept-Ranges") != ranges {
					t.Errorf("ETag %q, Accept-Ranges %q", a.header.Get("Etag"), a.header.Get("Accept-Ranges"))
				}
			case "/cached":
				if state := map[string]string{"cache miss": "miss", "cache hit": "hit"}[tc.name]; a.header.Get("X-Manifold-Cache") != state {
					t.Errorf("X-Manifold-Cache %q, want %q", a.header.Get("X-Manifold-Cache"), state)
				}
			}
		})
	}
}

// TestCompressionStreamedRelay: a passthrough answer that streams (no
// Content-Length) is relayed uncompressed and as it arrives, even to a
// client that accepts gzip.
func TestCompressionStreamedRelay(t *testing.T) {
	next := make(chan struct{})
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: %s\n\n", strings.Repeat("x", 2000))
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: end\n\n")
	})
	base := gateway(t, `
upstreams:
  up: {url: "{{up}}"}
endpoints:
  - path: /events
    backends: [{upstream: up, path: /e, passthrough: true}]
`, map[string]string{"up": up})
	req, _ := http.NewRequest("GET", base+"/events", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := rawClient.Do(req)
	if err != nil {
		close(next)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer rawClient.CloseIdleConnections()
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		close(next)
		t.Fatalf("streamed answer encoded %q", ce)
	}
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n') // arrives before the upstream sends the rest
	close(next)
	if err != nil || !strings.HasPrefix(first, "data: xxx") {
		t.Fatalf("first event %.20q: %v", first, err)
	}
	rest, _ := io.ReadAll(br)
	if !strings.HasSuffix(string(rest), "data: end\n\n") {
		t.Errorf("rest %q", rest)
	}
}

// TestCompressionDrain: while draining (the process's Connection: close)
// a gzipped answer still says Connection: close and is whole.
func TestCompressionDrain(t *testing.T) {
	body := bigJSON("d", 1500) // under net/http's 2 KB buffer: sent with its length
	yaml := strings.ReplaceAll(`
upstreams:
  up: {url: "{{up}}"}
endpoints:
  - path: /big
    backends: [{upstream: up, path: /x}]
  - path: /relay
    backends: [{upstream: up, path: /x, passthrough: true}]
`, "{{up}}", jsonUpstream(t, 0, body))
	cfg, err := config.Parse("drain.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	gw, err := handlers.New(cfg, handlers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Connection"] = []string{"close"} // as serve.go's liveGateway while draining
		gw.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); gw.Close() })
	for _, p := range []string{"/big", "/relay"} {
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !resp.Close || resp.Header.Get("Content-Encoding") != "gzip" || string(gunzip(t, b)) != body {
			t.Errorf("%s: close %v, Content-Encoding %q", p, resp.Close, resp.Header.Get("Content-Encoding"))
		}
	}
}

// TestResponseHeaders: an endpoint's response_headers are on every one of
// its answers, errors included, and win over a passthrough upstream's
// header of the same name; the gateway's own headers of an answer win
// over them.
func TestResponseHeaders(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "SAMEORIGIN")
		w.Header().Set("X-Lower-Case", "upstream")
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, `{"a":1}`)
		case "/missing":
			w.WriteHeader(404)
			io.WriteString(w, `{"gone":true}`)
		default:
			w.WriteHeader(500)
		}
	})
	base := gateway(t, `
upstreams:
  up: {url: "{{up}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /ok
    response_headers: {X-Frame-Options: DENY, x-lower-Case: ours, Cache-Control: max-age=60}
    rate_limit: {rps: 0.001, burst: 1}
    backends: [{upstream: up, path: /ok}]
  - path: /fail
    response_headers: {X-Frame-Options: DENY, x-lower-Case: ours, Cache-Control: max-age=60}
    backends: [{upstream: up, path: /fail}]
  - path: /missing
    response_headers: {X-Frame-Options: DENY, x-lower-Case: ours}
    backends: [{upstream: up, path: /missing, passthrough: true}]
  - path: /other
    backends: [{upstream: up, path: /ok}]
`, map[string]string{"up": up})
	for _, tc := range []struct {
		name, path string
		status     int
		cache      string
	}{
		{"200", "/ok", 200, "max-age=60"},
		{"429", "/ok", 429, "no-store"},
		{"502", "/fail", 502, "no-store"},
		{"passthrough 404", "/missing", 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, "GET", base+tc.path, nil)
			if a.status != tc.status {
				t.Fatalf("status %d, want %d", a.status, tc.status)
			}
			if v := a.header.Values("X-Frame-Options"); !slices.Equal(v, []string{"DENY"}) {
				t.Errorf("X-Frame-Options %q", v)
			}
			if v := a.header.Values("X-Lower-Case"); !slices.Equal(v, []string{"ours"}) {
				t.Errorf("x-lower-Case %q", v)
			}
			if v := a.header.Values("Cache-Control"); !slices.Equal(v, []string{tc.cache}) && tc.cache != "" {
				t.Errorf("Cache-Control %q, want %q", v, tc.cache)
			}
		})
	}
	if a := send(t, "GET", base+"/other", nil); a.header.Get("X-Frame-Options") != "" {
		t.Errorf("another endpoint's answer has X-Frame-Options %q", a.header.Get("X-Frame-Options"))
	}

	// The name goes out canonical, once.
	head := rawHeaderLines(t, base, "/missing")
	if !slices.Contains(head, "X-Lower-Case: ours") || slices.ContainsFunc(head, func(l string) bool { return strings.Contains(l, "upstream") }) {
		t.Errorf("raw answer:\n%s", strings.Join(head, "\n"))
	}
}

// rawHeaderLines sends GET path over a socket of its own and returns the
// answer's header lines as they came on the wire (the status line
// first), so that a header sent twice under two spellings shows.
func rawHeaderLines(t *testing.T, base, path string) []string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	b, err := io.ReadAll(io.LimitReader(conn, 64<<10))
	if err != nil {
		t.Fatal(err)
	}
	head, _, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of header in %q", b)
	}
	return strings.Split(string(head), "\r\n")
}

// TestResponseHeadersAnySpelling: a response_headers name written in
// another case than the canonical one (cache-control, retry-after,
// x-frame-options) goes out as one header line under the canonical name,
// which the gateway's own header of that name replaces (Cache-Control:
// no-store on an error, Retry-After on a 429) and which replaces a
// passthrough upstream's: never two lines of one header.
func TestResponseHeadersAnySpelling(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "SAMEORIGIN")
		w.Header().Set("Cache-Control", "private")
		switch r.URL.Path {
		case "/ok", "/relay":
			io.WriteString(w, `{"a":1}`)
		default:
			w.WriteHeader(500)
		}
	})
	hdrs := `response_headers: {cache-control: "max-age=60", x-frame-options: DENY, retry-after: "7", x-REQUEST-source: ours}`
	base := gateway(t, `
server: {cache_bytes: 1048576}
upstreams:
  up: {url: "{{up}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /ok
    `+hdrs+`
    rate_limit: {rps: 0.001, burst: 1}
    backends: [{upstream: up, path: /ok}]
  - path: /fail
    `+hdrs+`
    backends: [{upstream: up, path: /fail}]
  - path: /relay
    `+hdrs+`
    backends: [{upstream: up, path: /relay, passthrough: true}]
  - path: /cached
    `+hdrs+`
    cache: {ttl: 1h}
    backends: [{upstream: up, path: /ok}]
`, map[string]string{"up": up})
	for _, tc := range []struct {
		name, path string
		status     string
		want       map[string]string // canonical name -> its one value
	}{
		{"200", "/ok", "200", map[string]string{"Cache-Control": "max-age=60", "Retry-After": "7"}},
		{"429", "/ok", "429", map[string]string{"Cache-Control": "no-store", "Retry-After": ""}},
		{"502", "/fail", "502", map[string]string{"Cache-Control": "no-store", "Retry-After": "7"}},
		{"passthrough", "/relay", "200", map[string]string{"Cache-Control": "max-age=60", "Retry-After": "7"}},
		{"cache miss", "/cached", "200", map[string]string{"Cache-Control": "max-age=60", "Retry-After": "7", "X-Manifold-Cache": "miss"}},
		{"cache hit", "/cached", "200", map[string]string{"Cache-Control": "max-age=60", "Retry-After": "7", "X-Manifold-Cache": "hit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := rawHeaderLines(t, base, tc.path)
			if f := strings.Fields(head[0]); len(f) < 2 || f[1] != tc.status {
				t.Fatalf("status line %q, want %s", head[0], tc.status)
			}
			tc.want["X-Frame-Options"] = "DENY"
			tc.want["X-Request-Source"] = "ours"
			for name, want := range tc.want {
				var lines []string
				for _, l := range head[1:] {
					if n, _, _ := strings.Cut(l, ":"); strings.EqualFold(n, name) {
						lines = append(lines, l)
					}
				}
				if want == "" {
					if len(lines) != 1 || strings.HasSuffix(lines[0], ": 7") {
						t.Errorf("%s lines %q, want the gateway's one", name, lines)
					}
					continue
				}
				if len(lines) != 1 || lines[0] != name+": "+want {
					t.Errorf("%s lines %q, want one, %q", name, lines, name+": "+want)
				}
			}
		})
	}
}
