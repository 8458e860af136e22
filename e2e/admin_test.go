package e2e_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

const shortIdleConfig = `
server:
  address: "{{ADDR}}"
  idle_timeout: 300ms
  shutdown_timeout: 5s
admin:
  address: "{{ADMIN}}"
log: {level: warn, format: json}
demo: true
upstreams:
  users: {url: "{{DEMO}}"}
endpoints:
  - path: /p/{id}
    backends: [{upstream: users, path: "/users/{id}"}]
`

// The admin listener closes a keep-alive connection left idle for
// server.idle_timeout, as the main listener does (#8 item 12). It used to set
// only ReadHeaderTimeout, so net/http (no IdleTimeout, no ReadTimeout to fall
// back on) held idle connections open for ever.
func TestAdminListenerClosesIdleConnections(t *testing.T) {
	t.Parallel()
	p := startManifold(t, shortIdleConfig)
	// The admin listener opens just after the main one: wait for it.
	waitFor(t, 5*time.Second, 20*time.Millisecond, "the admin listener", func() (bool, string) {
		c, err := net.DialTimeout("tcp", p.admin, time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	const idle = 300 * time.Millisecond
	for _, l := range []struct{ name, addr string }{{"admin", p.admin}, {"main", p.addr}} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			conn, err := net.DialTimeout("tcp", l.addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(conn, "GET /__health HTTP/1.1\r\nHost: manifold\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("GET /__health: %d, Connection: close=%v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
			}

			// Now idle: the server must close the connection after idle_timeout.
			idleFrom := time.Now()
			const patience = 10 * time.Second
			if err := conn.SetReadDeadline(idleFrom.Add(patience)); err != nil {
				t.Fatal(err)
			}
			n, err := br.Read(make([]byte, 1))
			waited := time.Since(idleFrom)
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				t.Fatalf("the %s listener still held the idle keep-alive connection open after %v (server.idle_timeout %v)", l.name, patience, idle)
			case err != io.EOF:
				t.Fatalf("idle read = %d bytes, %v; want EOF (the server closing the connection)", n, err)
			case waited < idle*8/10:
				t.Errorf("closed after %v, before idle_timeout %v", waited, idle)
			}
			t.Logf("%s listener closed the idle connection after %v", l.name, waited.Round(time.Millisecond))
		})
	}
}
