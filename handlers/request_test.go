package handlers_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/manifold-gw/manifold/internal/freeport"
)

// seen is what a recording upstream observed of one request.
type seen struct {
	Method     string
	Host       string
	EscapedURI string // path as sent on the wire, escaped
	RawQuery   string
	Header     http.Header
	Body       string
}

type recorder struct {
	mu   sync.Mutex
	reqs []seen
}

func (rec *recorder) handler(reply string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{r.Method, r.Host, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(b)})
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, reply)
	}
}

func (rec *recorder) last(t *testing.T) seen {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.reqs) == 0 {
		t.Fatal("upstream saw no request")
	}
	return rec.reqs[len(rec.reqs)-1]
}

// Both clients must put exactly the escaped path on the wire.
func TestPathParametersAreEscaped(t *testing.T) {
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) { pathParametersAreEscaped(t, client) })
	}
}

func pathParametersAreEscaped(t *testing.T, client string) {
	rec := &recorder{}
	up := upstream(t, rec.handler(`{}`))
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}/prefix", client: {{client}}}
endpoints:
  - path: /api/users/{id}
    backends: [{upstream: u, path: "/users/{id}/profile?v=1&who={id}"}]
`, map[string]string{"u": up, "client": client})
	upHost := strings.TrimPrefix(up, "http://")

	tests := []struct{ name, sent, value string }{
		{"encoded traversal", "..%2F..%2Fadmin", "../../admin"},
		{"slash", "a%2Fb", "a/b"},
		{"query and fragment", "x%3Fy=1%23z", "x?y=1#z"},
		{"CRLF header injection", "%0d%0aX:%20y", "\r\nX: y"},
		{"percent", "100%25", "100%"},
		{"plain", "42", "42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, base+"/api/users/"+tt.sent)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			s := rec.last(t)
			if want := "/prefix/users/" + url.PathEscape(tt.value) + "/profile"; s.EscapedURI != want {
				t.Errorf("upstream path %q, want %q", s.EscapedURI, want)
			}
			q, err := url.ParseQuery(s.RawQuery)
			if err != nil || len(q) != 2 || q.Get("v") != "1" || q.Get("who") != tt.value {
				t.Errorf("upstream query %q (%v), want v=1 and who=%q", s.RawQuery, q, tt.value)
			}
			if s.Host != upHost {
				t.Errorf("Host %q, want the upstream's %q", s.Host, upHost)
			}
			if s.Header.Get("X") != "" {
				t.Errorf("a parameter became a header: %v", s.Header)
			}
		})
	}
	for _, dots := range []string{".", ".."} {
		a := get(t, base+"/api/users/"+dots+"/")
		if a.status != 404 && a.status != 400 {
			t.Errorf("%q: status %d", dots, a.status)
		}
	}
	a := get(t, base+"/api/users/%2E%2E")
	if a.status != 400 {
		t.Errorf("encoded .. parameter: status %d, want 400: %s", a.status, a.body)
	}
	a.errorOf(t)
}

func TestOnlyConfiguredHeadersAndQueryReachUpstream(t *testing.T) {
	rec := &recorder{}
	base := gateway(t, `
server:
  trusted_proxies: []
upstreams:
  u:
    url: "{{u}}"
    headers: {X-Api-KEY: secret}
endpoints:
  - path: /e
    forward_headers: [Accept-Language, X-Tenant]
    forward_query: [page, lang]
    backends: [{upstream: u, path: "/x?static=1"}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`))})

	a := do(t, "GET", base+"/e?page=2&secret=1&lang=de&lang=fr", nil, map[string]string{
		"Accept-Language": "de",
		"X-Tenant":        "t1",
		"Authorization":   "Bearer client-token",
		"Cookie":          "sid=1",
		"X-Other":         "no",
		"X-Forwarded-For": "6.6.6.6",
		"X-Request-ID":    "req-123_ok.1",
		"Traceparent":     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	})
	if a.status != 200 {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	s := rec.last(t)
	q, _ := url.ParseQuery(s.RawQuery)
	if q.Get("static") != "1" || q.Get("page") != "2" || fmt.Sprint(q["lang"]) != "[de fr]" || q.Has("secret") {
		t.Errorf("query %q", s.RawQuery)
	}
	want := map[string]string{
		"Accept-Language":   "de",
		"X-Tenant":          "t1",
		"X-Request-Id":      "req-123_ok.1",
		"X-Forwarded-For":   "127.0.0.1", // the peer: the client's own XFF is not believed
		"X-Forwarded-Proto": "http",
		"Traceparent":       "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	for k, v := range want {
		if got := s.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if got := s.Header.Get("X-Api-Key"); got != "secret" {
		t.Errorf("static header missing: %v", s.Header)
	}
	for _, k := range []string{"Authorization", "Cookie", "X-Other"} {
		if s.Header.Get(k) != "" {
			t.Errorf("%s leaked upstream", k)
		}
	}
	if s.Header.Get("X-Forwarded-Host") == "" {
		t.Error("no X-Forwarded-Host")
	}
	if got := a.header.Get("X-Request-Id"); got != "req-123_ok.1" {
		t.Errorf("response X-Request-ID %q", got)
	}
}

func TestTrustedProxyChainIsForwarded(t *testing.T) {
	rec := &recorder{}
	base := gateway(t, `
server:
  trusted_proxies: [127.0.0.0/8]
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends: [{upstream: u, path: /x}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`))})
	do(t, "GET", base+"/e", nil, map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
	s := rec.last(t)
	if got := s.Header.Get("X-Forwarded-For"); got != "203.0.113.9, 127.0.0.1" {
		t.Errorf("X-Forwarded-For %q", got)
	}
	if got := s.Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto %q", got)
	}
}

func TestRequestID(t *testing.T) {
	rec := &recorder{}
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends: [{upstream: u, path: /x}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`))})
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"sane", "abc-123_X.y", true},
		{"max length", strings.Repeat("a", 128), true},
		{"too long", strings.Repeat("a", 129), false},
		{"space", "a b", false},
		{"newline-ish", "a%0d", false},
		{"absent", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.sent != "" {
				hdr["X-Request-ID"] = tt.sent
			}
			a := do(t, "GET", base+"/e", nil, hdr)
			got := a.header.Get("X-Request-Id")
			if tt.kept && got != tt.sent {
				t.Errorf("got %q, want the client's", got)
			}
			if !tt.kept && (got == tt.sent || len(got) != 32) {
				t.Errorf("got %q, want a new 32-character id", got)
			}
			if up := rec.last(t).Header.Get("X-Request-Id"); up != got {
				t.Errorf("upstream saw %q, client got %q", up, got)
			}
		})
	}
	// Gateway-generated errors carry it too.
	if a := get(t, base+"/nope"); a.header.Get("X-Request-Id") == "" {
		t.Error("404 without X-Request-ID")
	}
}

func TestGatewayErrors(t *testing.T) {
	rec := &recorder{}
	base := gateway(t, `
server:
  max_body_bytes: 16
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    method: POST
    backends: [{upstream: u, path: /x, method: POST}]
  - path: /g
    backends: [{upstream: u, path: /x}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`))})
	tests := []struct {
		name, method, path, body string
		chunked                  bool // no Content-Length: the body must be read to be measured
		status                   int
	}{
		{"no route", "GET", "/nope", "", false, 404},
		{"wrong method", "GET", "/e", "", false, 405},
		{"body too large", "POST", "/e", strings.Repeat("x", 17), false, 413},
		{"chunked body too large", "POST", "/e", strings.Repeat("y", 40), true, 413},
		{"chunked body too large on a GET endpoint", "GET", "/g", strings.Repeat("y", 40), true, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length from net/http
			}
			a := do(t, tt.method, base+tt.path, body, nil)
			if a.status != tt.status {
				t.Fatalf("status %d, want %d", a.status, tt.status)
			}
			a.errorOf(t)
		})
	}
}

func TestRequestBodyReplayedToEachBackend(t *testing.T) {
	rec := &recorder{}
	up := upstream(t, rec.handler(`{}`))
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    method: POST
    backends:
      - {upstream: u, path: /one, method: POST, group: one}
      - {upstream: u, path: /two, method: PUT, group: two}
      - {upstream: u, path: /three, group: three}
`, map[string]string{"u": up})
	a := do(t, "POST", base+"/e", strings.NewReader(`{"n":1}`), map[string]string{"Content-Type": "application/json"})
	if a.status != 200 {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	bodies := map[string]string{}
	for _, s := range rec.reqs {
		bodies[s.Method+" "+s.EscapedURI] = s.Body
		if s.Method != "GET" && s.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s without the body's Content-Type", s.Method)
		}
	}
	want := map[string]string{"POST /one": `{"n":1}`, "PUT /two": `{"n":1}`, "GET /three": ""}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("bodies %v, want %v", bodies, want)
	}
}

func TestPassthroughRelaysUnchanged(t *testing.T) {
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "must not pass")
		w.WriteHeader(418)
		fmt.Fprintf(w, "teapot %s %s", r.Method, b)
	})
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /raw
    method: POST
    backends: [{upstream: u, path: /t, method: POST, passthrough: true}]
`, map[string]string{"u": up})
	a := do(t, "POST", base+"/raw", strings.NewReader("hi"), nil)
	if a.status != 418 || string(a.body) != "teapot POST hi" {
		t.Fatalf("got %d %q", a.status, a.body)
	}
	if a.header.Get("X-Upstream") != "yes" || a.header.Get("Content-Type") != "text/plain" {
		t.Errorf("headers not relayed: %v", a.header)
	}
	if a.header.Get("X-Secret-Hop") != "" {
		t.Error("header named in Connection was relayed")
	}
	if a.header.Get("X-Request-Id") == "" {
		t.Error("passthrough answer without X-Request-ID")
	}
}

func TestPassthroughConnectErrorIsJSON(t *testing.T) {
	// A port nothing listens on, outside the ephemeral range so that no
	// parallel test's listener takes it meanwhile.
	dead := "http://" + freeport.Addr(t)
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /raw
    backends: [{upstream: u, path: /t, passthrough: true}]
`, map[string]string{"u": dead})
	a := get(t, base+"/raw")
	if a.status != 502 {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	_, _, backends := a.errorOf(t)
	if backends["u"] != "unreachable" {
		t.Errorf("backends %v", backends)
	}
}

func TestExposeErrorsOffHidesReasons(t *testing.T) {
	fail := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	base := gateway(t, `
upstreams:
  ok: {url: "{{ok}}"}
  bad: {url: "{{bad}}"}
endpoints:
  - path: /e
    backends:
      - {upstream: ok, path: /}
      - {upstream: bad, path: /}
`, map[string]string{"ok": jsonUpstream(t, 0, `{"a":1}`), "bad": fail})
	a := get(t, base+"/e")
	var m map[string]json.RawMessage
	_ = json.Unmarshal(a.body, &m)
	if _, has := m["_errors"]; has || a.header.Get("X-Manifold-Completed") != "false" {
		t.Errorf("got %s %v", a.body, a.header)
	}
}

func TestHealthAndReady(t *testing.T) {
	base := gateway(t, `
upstreams:
  u: {url: "http://127.0.0.1:1"}
endpoints:
  - path: /e
    backends: [{upstream: u, path: /}]
`, nil)
	for path, want := range map[string]string{"/__health": `{"status":"ok"}`, "/__ready": `{"status":"ready"}`} {
		a := get(t, base+path)
		if a.status != 200 || string(a.body) != want {
			t.Errorf("%s: %d %s", path, a.status, a.body)
		}
	}
}

// rawUpstream accepts one connection at a time, records the request head
// exactly as it came over the wire (Go's server would canonicalise header
// names) and answers {}.
func rawUpstream(t *testing.T) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	heads := make(chan string, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(conn)
			var head strings.Builder
			for {
				line, err := br.ReadString('\n')
				head.WriteString(line)
				if err != nil || line == "\r\n" {
					break
				}
			}
			select {
			case heads <- head.String():
			default:
			}
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String(), heads
}

func TestStaticHeaderNamesKeepTheirCase(t *testing.T) {
	up, heads := rawUpstream(t)
	base := gateway(t, `
upstreams:
  u:
    url: "{{u}}"
    headers: {X-Api-KEY: secret, x-lower: v}
endpoints:
  - path: /e
    backends: [{upstream: u, path: /x}]
`, map[string]string{"u": up})
	if a := get(t, base+"/e"); a.status != 200 {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	head := <-heads
	for _, want := range []string{"\r\nX-Api-KEY: secret\r\n", "\r\nx-lower: v\r\n"} {
		if !strings.Contains(head, want) {
			t.Errorf("request head lacks %q:\n%s", want, head)
		}
	}
}
