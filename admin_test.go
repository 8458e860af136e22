package main

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// The admin server has the main listener's guards: its own timeouts were
// only ReadHeaderTimeout 5s, so idle keep-alive connections were held for
// ever and nothing bounded a write (#8 item 12).
func TestAdminServerTimeouts(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("t.yaml", []byte(`
server:
  read_header_timeout: 1100ms
  read_timeout: 2200ms
  write_timeout: 3300ms
  idle_timeout: 250ms
admin: {address: "127.0.0.1:0"}
upstreams: {u: {url: "http://u.test"}}
endpoints: [{path: /e, timeout: 1s, backends: [{upstream: u, path: /}]}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ready := &atomic.Bool{}
	ready.Store(true)
	srv := newAdminServer(cfg, handlers.NewMetrics(), ready, slog.New(slog.DiscardHandler))

	s := cfg.Server
	for _, f := range []struct {
		name      string
		got, want time.Duration
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout, s.ReadHeaderTimeout},
		{"ReadTimeout", srv.ReadTimeout, s.ReadTimeout},
		{"WriteTimeout", srv.WriteTimeout, s.WriteTimeout},
		{"IdleTimeout", srv.IdleTimeout, s.IdleTimeout},
	} {
		if f.got != f.want || f.got <= 0 {
			t.Errorf("admin %s = %v, want server's %v", f.name, f.got, f.want)
		}
	}
	if srv.ErrorLog == nil {
		t.Error("admin ErrorLog is nil: net/http would log to the standard logger, outside slog")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	}()

	conn, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for _, path := range []string{"/__health", "/__ready", "/metrics"} {
		if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: admin\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("GET %s = %d (Connection: close=%v), want 200 kept alive", path, resp.StatusCode, resp.Close)
		}
		if path == "/metrics" && !strings.Contains(string(body), "go_goroutines") {
			t.Errorf("/metrics lacks go_goroutines")
		}
	}

	// Idle from here: the server closes the connection after idle_timeout.
	idleFrom := time.Now()
	if err := conn.SetReadDeadline(idleFrom.Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := br.Read(make([]byte, 1))
	waited := time.Since(idleFrom)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("idle keep-alive connection still open after 5s (idle_timeout %v)", s.IdleTimeout)
	case err != io.EOF:
		t.Fatalf("idle read = %d bytes, %v; want EOF", n, err)
	case waited < s.IdleTimeout*8/10:
		t.Errorf("closed after %v, before idle_timeout %v", waited, s.IdleTimeout)
	}
}
