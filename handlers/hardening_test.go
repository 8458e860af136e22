package handlers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/handlers"
)

// rawRequest sends req as written over a new connection to base and
// returns the parsed answer (the connection is closed after it).
func rawRequest(t *testing.T, base, req string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Headers the client's Connection header names are hop-by-hop (RFC 9110
// §7.6.1): they never reach an upstream, even when forward_headers lists
// them; the others listed still do.
func TestConnectionNamedHeadersAreNotForwarded(t *testing.T) {
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			rec := &recorder{}
			base := gateway(t, `
upstreams:
  u: {url: "{{u}}", client: {{client}}}
endpoints:
  - path: /p
    forward_headers: [X-Tenant, Accept-Language, X-Other]
    backends: [{upstream: u, path: /}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`)), "client": client})
			for _, tc := range []struct{ name, conn string }{
				{"one line", "Connection: keep-alive, X-Tenant\r\n"},
				{"any case, two lines", "Connection: keep-alive\r\nConnection: x-tenant , x-other\r\n"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					resp, body := rawRequest(t, base, "GET /p HTTP/1.1\r\nHost: gw\r\n"+tc.conn+
						"X-Tenant: t1\r\nX-Other: o\r\nAccept-Language: fr\r\n\r\n")
					if resp.StatusCode != 200 {
						t.Fatalf("status %d: %s", resp.StatusCode, body)
					}
					got := rec.last(t).Header
					if v, ok := got["X-Tenant"]; ok {
						t.Errorf("upstream saw X-Tenant %q, which the client's Connection header names", v)
					}
					if strings.Contains(tc.conn, "x-other") {
						if v, ok := got["X-Other"]; ok {
							t.Errorf("upstream saw X-Other %q, which the client's Connection header names", v)
						}
					} else if got.Get("X-Other") != "o" {
						t.Errorf("X-Other = %q, want o (not named by Connection)", got.Get("X-Other"))
					}
					if got.Get("Accept-Language") != "fr" {
						t.Errorf("Accept-Language = %q, want fr", got.Get("Accept-Language"))
					}
				})
			}
		})
	}
}

// A client that leaves is noticed even when it sent a Content-Length body
// that no backend needs: the upstream call is cancelled at once, not at the
// endpoint's deadline.
func TestClientLeavingWithUnreadBodyCancelsCalls(t *testing.T) {
	cancelled := make(chan time.Time, 1)
	arrived := make(chan struct{}, 1)
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- time.Now()
		case <-time.After(5 * time.Second):
		}
	})
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}", timeout: 3s}
endpoints:
  - path: /p
    timeout: 2s
    backends: [{upstream: u, path: /}]
`, map[string]string{"u": up})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /p HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n0123456789")
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream never got the call")
	}
	left := time.Now()
	conn.Close()
	select {
	case at := <-cancelled:
		if d := at.Sub(left); d > time.Second {
			t.Errorf("upstream call cancelled %v after the client left, want well under the 2s deadline", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream call never cancelled")
	}
}

// A HEAD backend's answer declares the length of a body it does not carry:
// a passthrough relays it whatever max_response_bytes is, with a framing
// that matches the (empty) body it relays.
func TestHeadPassthroughIgnoresDeclaredLength(t *testing.T) {
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodHead {
					t.Errorf("upstream got %s, want HEAD", r.Method)
				}
				w.Header().Set("Content-Length", "10000000")
				w.Header().Set("ETag", `"v1"`)
			})
			base := gateway(t, `
upstreams:
  u: {url: "{{u}}", client: {{client}}, max_response_bytes: 1000}
endpoints:
  - path: /p
    backends: [{upstream: u, path: /, method: HEAD, passthrough: true}]
`, map[string]string{"u": up, "client": client})
			a := get(t, base+"/p")
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			if a.header.Get("ETag") != `"v1"` {
				t.Errorf("ETag %q not relayed", a.header.Get("ETag"))
			}
			if len(a.body) != 0 {
				t.Errorf("body %q, want empty", a.body)
			}
		})
	}
}

// logLines collects what a Gateway logs, for assertions on access lines.
type logLines struct {
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logLines) WithGroup(string) slog.Handler            { return l }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	line := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool { line.attrs[a.Key] = a.Value.String(); return true })
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
	return nil
}

func (l *logLines) with(msg string) []logLine {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logLine
	for _, x := range l.lines {
		if x.msg == msg {
			out = append(out, x)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cutShort checks that the gateway closes the connection before the
// declared 1000000-byte body is complete: the client can tell the answer
// is incomplete.
func cutShort(t *testing.T, _ net.Conn, br *bufio.Reader) {
	t.Helper()
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading until the gateway closes: %v", err)
	}
	if n := len("first bytes;") + len(rest); n >= 1000000 {
		t.Errorf("%d body bytes: the answer was not cut short", n)
	}
}

// A passthrough answer that breaks off still produces one access line and
// one request sample, and its backend outcome says why it broke off. Its
// status line and first bytes reach the client as they arrive, before the
// upstream stalls.
func TestPassthroughThatBreaksOff(t *testing.T) {
	tests := []struct {
		name    string
		outcome string
		level   slog.Level
		// run makes the upstream misbehave after its first bytes and
		// returns once the case is over; the client reads the first bytes.
		upstream func(w http.ResponseWriter, r *http.Request, release <-chan struct{})
		client   func(t *testing.T, conn net.Conn, br *bufio.Reader)
	}{
		{
			name: "upstream stalls past the timeout", outcome: "timeout", level: slog.LevelWarn,
			upstream: func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			},
			client: cutShort,
		},
		{
			name: "upstream resets mid-body", outcome: "error", level: slog.LevelWarn,
			upstream: func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Error(err)
					return
				}
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			},
			client: cutShort,
		},
		{
			name: "client leaves mid-body", outcome: "error", level: slog.LevelDebug,
			upstream: func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
				// Keep streaming until the gateway gives up on the call.
				for {
					select {
					case <-r.Context().Done():
						return
					case <-release:
						return
					case <-time.After(10 * time.Millisecond):
					}
					if _, err := io.WriteString(w, strings.Repeat("y", 4096)); err != nil {
						return
					}
					http.NewResponseController(w).Flush()
				}
			},
			client: func(t *testing.T, conn net.Conn, br *bufio.Reader) { conn.Close() },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // a case can wait out the 500ms upstream timeout
			release := make(chan struct{})
			defer close(release)
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Content-Length", "1000000")
				w.WriteHeader(200)
				io.WriteString(w, "first bytes;")
				http.NewResponseController(w).Flush()
				tc.upstream(w, r, release)
			})
			logs := &logLines{}
			m := handlers.NewMetrics()
			base, _ := gatewayWith(t, `
upstreams:
  u: {url: "{{u}}", timeout: 500ms}
endpoints:
  - path: /raw
    timeout: 1s
    backends: [{upstream: u, path: /, passthrough: true}]
`, map[string]string{"u": up}, handlers.Options{Logger: slog.New(logs), Metrics: m})

			conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "GET /raw HTTP/1.1\r\nHost: gw\r\n\r\n")
			br := bufio.NewReader(conn)
			// Status line, headers and the first bytes arrive while the
			// upstream is still in the middle of its answer. (Errorf, not
			// Fatalf: the checks below hold whatever the client saw.)
			if err := readHeadAndFirstBytes(br); err != nil {
				t.Errorf("%v: not relayed before the upstream broke off", err)
				conn.Close()
			} else {
				tc.client(t, conn, br)
			}

			// The backend sample and line come first, the access line last.
			waitFor(t, "the backend sample", func() bool {
				return len(scrape(t, m, `manifold_backend_requests_total{`)) > 0
			})
			want := fmt.Sprintf(`manifold_backend_requests_total{outcome=%q,upstream="u"} 1`, tc.outcome)
			if got := scrape(t, m, `manifold_backend_requests_total{`); !hasLine(got, want) {
				t.Errorf("backend samples %v, want %s", got, want)
			}
			failures := logs.with("backend failed")
			if len(failures) != 1 || failures[0].level != tc.level {
				t.Errorf("backend failure lines %+v, want one at %v", failures, tc.level)
			}

			waitFor(t, "the access line", func() bool { return len(logs.with("request")) > 0 })
			access := logs.with("request")
			if len(access) != 1 {
				t.Fatalf("%d access lines, want 1", len(access))
			}
			if a := access[0].attrs; a["completed"] != "false" || a["status"] != "200" {
				t.Errorf("access line status=%s completed=%s, want 200 (the status that went out) and false", a["status"], a["completed"])
			}
			if got := scrape(t, m, `manifold_requests_total{`); len(got) != 1 || got[0] != `manifold_requests_total{code="200",endpoint="/raw",method="GET"} 1` {
				t.Errorf("request samples %v, want one, code 200", got)
			}
			if got := scrape(t, m, `manifold_request_duration_seconds_count{`); len(got) != 1 || !strings.HasSuffix(got[0], " 1") {
				t.Errorf("duration samples %v, want one", got)
			}
		})
	}
}

// readHeadAndFirstBytes reads a 200 status line, the head and the body's
// first bytes ("first bytes;").
func readHeadAndFirstBytes(br *bufio.Reader) error {
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
		return fmt.Errorf("status line %q, %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("head: %w", err)
		}
		if line == "\r\n" {
			break
		}
	}
	first := make([]byte, len("first bytes;"))
	if _, err := io.ReadFull(br, first); err != nil || string(first) != "first bytes;" {
		return fmt.Errorf("first bytes %q, %v", first, err)
	}
	return nil
}
