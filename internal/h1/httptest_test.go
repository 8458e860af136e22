package h1

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// countConns counts the connections a httptest server accepts.
func countConns(srv *httptest.Server) *atomic.Int32 {
	var n atomic.Int32
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	return &n
}

// TestTLS: with Options.TLS the client handshakes (verifying the
// certificate against the caller's roots and ServerName), offers only
// http/1.1 by ALPN even to a server that prefers h2, and reuses the
// connection.
func TestTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.ProtoMajor != 1 || r.TLS.NegotiatedProtocol != "http/1.1" {
			http.Error(w, "want HTTP/1.1 over TLS, got "+r.Proto+" alpn "+r.TLS.NegotiatedProtocol, 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}} // prefers h2
	conns := countConns(srv)
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())

	c := New(Options{Addr: srv.Listener.Addr().String(), TLS: &tls.Config{RootCAs: roots, ServerName: "example.com"}})
	defer c.CloseIdleConnections()
	for range 3 {
		resp, body, err := get(t, c, "/")
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || body != `{"ok":true}` {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	}
	if conns.Load() != 1 {
		t.Fatalf("%d connections, want 1", conns.Load())
	}

	bad := New(Options{Addr: srv.Listener.Addr().String(), TLS: &tls.Config{RootCAs: roots, ServerName: "wrong.example"}})
	defer bad.CloseIdleConnections()
	if _, _, err := get(t, bad, "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("certificate for another name accepted: %v", err)
	}
}

// TestGzip: the client never asks for compression, but decodes a gzip
// body it gets anyway (dropping Content-Encoding and Content-Length, whose
// values describe the encoded bytes), and still reuses the connection.
func TestGzip(t *testing.T) {
	t.Parallel()
	small := `{"user":{"id":42,"name":"Ada"}}`
	large := strings.Repeat(`{"k":"v"},`, 20000)
	var sawAcceptEncoding atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header["Accept-Encoding"] != nil {
			sawAcceptEncoding.Store(true)
		}
		body := small
		if r.URL.Path == "/large" {
			body = large
		}
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(body))
		zw.Close()
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/corrupt":
			w.Write(b.Bytes()[:b.Len()-4])
			w.Write([]byte("XXXX"))
		case "/large": // streamed: chunked
			w.Write(b.Bytes()[:100])
			w.(http.Flusher).Flush()
			w.Write(b.Bytes()[100:])
		default:
			w.Header().Set("Content-Length", itoa(b.Len()))
			w.Write(b.Bytes())
		}
	}))
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	c := New(Options{Addr: srv.Listener.Addr().String()})
	defer c.CloseIdleConnections()

	for _, tc := range []struct{ path, want string }{{"/small", small}, {"/large", large}, {"/small", small}} {
		resp, body, err := get(t, c, tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if body != tc.want {
			t.Fatalf("%s: body %d bytes, want %d", tc.path, len(body), len(tc.want))
		}
		if !resp.Uncompressed || resp.ContentLength != -1 ||
			resp.Header["Content-Encoding"] != nil || resp.Header["Content-Length"] != nil {
			t.Fatalf("%s: Uncompressed %v ContentLength %d Header %v", tc.path, resp.Uncompressed, resp.ContentLength, resp.Header)
		}
	}
	if sawAcceptEncoding.Load() {
		t.Fatal("client sent Accept-Encoding")
	}
	if conns.Load() != 1 {
		t.Fatalf("%d connections, want 1", conns.Load())
	}
	if _, _, err := get(t, c, "/corrupt"); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("corrupt gzip: %v", err)
	}
	// The framing was intact (only the content was bad), so the
	// connection is at a response boundary and may serve the next call.
	if _, body, err := get(t, c, "/small"); err != nil || body != small {
		t.Fatalf("after corrupt gzip: %v", err)
	}
}

// TestNoRedirects: a 3xx is the answer, not an instruction.
func TestNoRedirects(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	}))
	defer srv.Close()
	c := New(Options{Addr: srv.Listener.Addr().String()})
	defer c.CloseIdleConnections()
	resp, _, err := get(t, c, "/here")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/elsewhere" || calls.Load() != 1 {
		t.Fatalf("status %d Location %q calls %d", resp.StatusCode, resp.Header.Get("Location"), calls.Load())
	}
}
