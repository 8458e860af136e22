package e2e_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial number to cert.pem and key.pem in dir (replacing them atomically,
// as a certificate manager would) and returns it.
func writeCert(t *testing.T, dir string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "manifold-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "EC PRIVATE KEY", Bytes: kb},
	} {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return cert
}

// tlsClient trusts only roots and speaks HTTP/2 when the server offers it
// (h2) or HTTP/1.1 only (!h2).
func tlsClient(t *testing.T, h2 bool, roots ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		var p http.Protocols
		p.SetHTTP1(true)
		tr.Protocols = &p
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// edgeProc is a manifold process whose main listener may speak TLS or h2c,
// which the HTTP-only start-up wait of launch cannot probe.
type edgeProc struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan struct{}
	code int
}

// startEdge writes cfg ({{ADDR}} and {{UP}} filled) and starts manifold on
// it, waiting until get answers /__health with 200.
func startEdge(t *testing.T, cfg, upstream string, get func(url string) (*http.Response, error), scheme string) *edgeProc {
	t.Helper()
	addr := freeAddr(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	cfg = strings.NewReplacer("{{ADDR}}", addr, "{{UP}}", upstream).Replace(cfg)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "-c", path)
	cmd.Env = cleanEnv()
	p := &edgeProc{cmd: cmd, addr: addr, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("manifold logs:\n%s", tail(p.logs.String(), 40))
		}
	})
	waitFor(t, 10*time.Second, 20*time.Millisecond, "/__health over "+scheme, func() (bool, string) {
		select {
		case <-p.done:
			t.Fatalf("manifold exited during start-up:\n%s", p.logs.String())
		default:
		}
		resp, err := get(scheme + "://" + addr + "/__health")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return p
}

const edgeConfig = `
server:
  address: "{{ADDR}}"
  shutdown_timeout: 10s
  %s
admin: {address: ""}
log: {level: info, format: json}
upstreams:
  up: {url: "{{UP}}", timeout: 5s}
endpoints:
  - path: /x
    timeout: 5s
    backends: [{upstream: up, path: /x}]
  - path: /slow
    timeout: 5s
    backends: [{upstream: up, path: /slow}]
`

// edgeUpstream answers /x at once and /slow once release is closed (or
// its client leaves); seen receives one value per /slow request arriving.
func edgeUpstream(t *testing.T) (url string, seen chan struct{}, release chan struct{}) {
	seen, release = make(chan struct{}, 16), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			seen <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, seen, release
}

// HTTPS on the main listener: HTTP/2 by ALPN for clients that offer it,
// HTTP/1.1 for those that do not, with a certificate the client verifies.
// SIGHUP reloads the certificate: new connections get the new one, and a
// connection opened before keeps working (with the old one). SIGTERM then
// drains over HTTP/2: the request in flight finishes and the process exits 0.
func TestHTTPSAndHTTP2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := writeCert(t, dir, 1)
	up, seen, release := edgeUpstream(t)
	h2 := tlsClient(t, true, first)
	cfg := strings.Replace(edgeConfig, "%s", `tls: {cert_file: "`+filepath.Join(dir, "cert.pem")+`", key_file: "`+filepath.Join(dir, "key.pem")+`"}`, 1)
	p := startEdge(t, cfg, up, h2.Get, "https")

	resp, err := h2.Get("https://" + p.addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" || string(body) != `{"ok":true}` {
		t.Fatalf("HTTPS with ALPN h2: %s %s %s, want 200 over HTTP/2.0", resp.Proto, resp.Status, body)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 1 {
		t.Fatalf("certificate serial %d, want 1", got)
	}

	h1 := tlsClient(t, false, first)
	resp, err = h1.Get("https://" + p.addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
		t.Errorf("HTTPS without h2: %s %s, want 200 over HTTP/1.1", resp.Proto, resp.Status)
	}
	plain := newClient(t, false)
	if resp, err := plain.Get("http://" + p.addr + "/x"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS listener: %s, want 400 (Go's answer to HTTP on a TLS port)", resp.Status)
		}
	}

	// A renewed certificate, then SIGHUP.
	second := writeCert(t, dir, 2)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fresh := func() *http.Client { return tlsClient(t, true, first, second) }
	waitFor(t, 10*time.Second, 20*time.Millisecond, "a new connection to get the reloaded certificate", func() (bool, string) {
		c := fresh()
		resp, err := c.Get("https://" + p.addr + "/x")
		c.CloseIdleConnections()
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		serial := resp.TLS.PeerCertificates[0].SerialNumber.Int64()
		return serial == 2, "serial " + big.NewInt(serial).String()
	})
	// The connection opened before SIGHUP was not dropped: the same client
	// reuses it, handshaken with the first certificate.
	resp, err = h2.Get("https://" + p.addr + "/x")
	if err != nil {
		t.Fatalf("request on the connection opened before the reload: %v", err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); resp.StatusCode != 200 || got != 1 {
		t.Errorf("old connection after reload: %s, serial %d; want 200 on the same connection (serial 1)", resp.Status, got)
	}
	if !strings.Contains(p.logs.String(), `"msg":"certificate reloaded"`) {
		t.Errorf("no certificate reloaded log line")
	}

	// Drain over HTTP/2: a request in flight at SIGTERM still gets its answer.
	type result struct {
		resp *http.Response
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := h2.Get("https://" + p.addr + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp, b, err}
	}()
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow request never reached the upstream")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Once the listener has closed, release the upstream.
	waitFor(t, 10*time.Second, 10*time.Millisecond, "the listener to close", func() (bool, string) {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return true, ""
		}
		c.Close()
		return false, "still accepting"
	})
	close(release)
	r := <-done
	if r.err != nil || r.resp.StatusCode != 200 || r.resp.Proto != "HTTP/2.0" || string(r.body) != `{"ok":true}` {
		t.Errorf("in-flight HTTP/2 request during the drain: %+v", r)
	}
	select {
	case <-p.done:
		if p.code != 0 {
			t.Errorf("exit code %d after a clean drain, want 0", p.code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("manifold still running 10s after SIGTERM")
	}
}

// h2c: cleartext HTTP/2 with prior knowledge on the same port as HTTP/1.1.
func TestH2C(t *testing.T) {
	t.Parallel()
	up, _, _ := edgeUpstream(t)
	var p2 http.Protocols
	p2.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &p2}, Timeout: 15 * time.Second}
	t.Cleanup(h2c.CloseIdleConnections)
	p := startEdge(t, strings.Replace(edgeConfig, "%s", "h2c: true", 1), up, h2c.Get, "http")

	resp, err := h2c.Get("http://" + p.addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/2.0" {
		t.Errorf("h2c prior knowledge: %s %s, want 200 over HTTP/2.0", resp.Proto, resp.Status)
	}
	resp, err = newClient(t, false).Get("http://" + p.addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 beside h2c: %s %s", resp.Proto, resp.Status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.code != 0 {
			t.Errorf("exit code %d, want 0", p.code)
		}
	case <-ctx.Done():
		t.Fatal("manifold still running 10s after SIGTERM")
	}
}
