package h1

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxBinary finds nginx (Debian installs it in /usr/sbin, often not on
// PATH). Absent, the test is skipped, except in CI (CI=true), where .ci/run
// installs it and its absence is a failure.
func nginxBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx not installed (CI=true: .ci/run installs the Debian package nginx)")
	}
	t.Skip("nginx not installed (apt-get install nginx); in CI this fails instead")
	return ""
}

// startNginx runs nginx in the foreground on a free loopback port with TLS
// (the stub certificate) and the given http-level and server-level
// directives, and stops it when the test ends. It returns the address.
func startNginx(t *testing.T, httpConf, serverConf string) string {
	t.Helper()
	bin := nginxBinary(t)
	sc := mustCert(t)
	dir := t.TempDir()
	for name, b := range map[string][]byte{"cert.pem": sc.certPEM, "key.pem": sc.keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		conf := strings.NewReplacer("DIR", dir, "ADDR", addr).Replace(`
daemon off;
master_process off;
pid DIR/nginx.pid;
error_log DIR/error.log notice;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path DIR/body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
` + httpConf + `
    server {
        listen ADDR ssl;
        ssl_certificate DIR/cert.pem;
        ssl_certificate_key DIR/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
` + serverConf + `
    }
}
`)
		confPath := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", confPath)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		if err := waitListening(addr, exited); err != nil {
			stop()
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			if attempt < 2 && strings.Contains(string(log), "Address already in use") {
				continue // the free port was taken in between
			}
			t.Fatalf("nginx did not start: %v\n%s", err, log)
		}
		t.Cleanup(stop)
		return addr
	}
}

// waitListening waits until addr accepts connections, or nginx exited.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("not listening after 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNginxTLSIdleClose: nginx over TLS closes a keep-alive connection when
// keepalive_timeout passes, sending close_notify before its FIN. A POST
// (never replayed) sent after each such lull must succeed: the client has
// to notice that the pooled connection is finished and dial afresh. The
// lull is not a guess: the test waits until the close_notify has reached
// the client's socket (the server's own timer is the subject here).
func TestNginxTLSIdleClose(t *testing.T) {
	t.Parallel() // 15 lulls of keepalive_timeout per TLS version: real waits
	addr := startNginx(t, "    keepalive_timeout 200ms;\n", `
        location / { return 200 "ok"; }
`)
	const posts = 15
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel()
			c := New(Options{Addr: addr, TLS: clientTLS(t, version)})
			defer c.CloseIdleConnections()
			failed := 0
			for i := range posts {
				if c.idleCount() == 0 {
					// First round, or a failure closed the connection:
					// one POST to have a pooled connection again.
					if _, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: []byte("warm-up")}); err != nil || body != "ok" {
						t.Fatalf("warm-up POST: %q %v", body, err)
					}
				}
				waitIdleData(t, c)
				_, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: []byte("after a lull")})
				if err != nil || body != "ok" {
					failed++
					t.Errorf("POST %d after the lull: %q %v", i, body, err)
				}
			}
			t.Logf("%d POSTs after lulls longer than keepalive_timeout, %d failed", posts, failed)
		})
	}
}

// TestNginxTLSKeepAlive: within keepalive_timeout the connection is reused
// (nginx's session tickets, sent after the handshake, are no reason to drop
// it).
func TestNginxTLSKeepAlive(t *testing.T) {
	t.Parallel()
	addr := startNginx(t, "    keepalive_timeout 60s;\n", `
        location / { return 200 "ok"; }
`)
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		var dials int
		c := New(Options{Addr: addr, TLS: clientTLS(t, version)})
		for i := range 20 {
			if c.idleCount() == 0 {
				dials++
			}
			if _, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: []byte("x")}); err != nil || body != "ok" {
				t.Fatalf("%s POST %d: %q %v", tls.VersionName(version), i, body, err)
			}
		}
		c.CloseIdleConnections()
		if dials != 1 {
			t.Fatalf("%s: %d connections for 20 POSTs, want 1", tls.VersionName(version), dials)
		}
	}
}

// TestNginxEarlyAnswer: nginx answers a body over client_max_body_size
// with 413 (and Connection: close) before reading it, and the client
// returns that answer at once; a body nginx's return answers before
// draining it goes out whole, and the connection is reused.
func TestNginxEarlyAnswer(t *testing.T) {
	t.Parallel()
	addr := startNginx(t, "    keepalive_timeout 60s;\n", `
        client_max_body_size 1m;
        location / { return 200 "ok"; }
`)
	c := New(Options{Addr: addr, TLS: clientTLS(t, 0)})
	defer c.CloseIdleConnections()
	start := time.Now()
	resp, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: bigBody})
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("8 MiB POST: %v %v", resp, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("413 took %v", d)
	}
	if !strings.Contains(body, "413") {
		t.Fatalf("413 body %q", body)
	}
	dials := 0
	for i := range 5 {
		if c.idleCount() == 0 {
			dials++
		}
		if _, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: bigBody[:512<<10]}); err != nil || body != "ok" {
			t.Fatalf("512 KiB POST %d: %q %v", i, body, err)
		}
	}
	if dials != 1 {
		t.Fatalf("%d connections for 5 POSTs of 512 KiB, want 1", dials)
	}
}
