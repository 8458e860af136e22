package h1

import (
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"
)

// waitIdleData waits until the socket of c's one pooled connection holds
// something (bytes or the peer's close), as the idle probe sees it: the
// condition under which a pooled connection is tested before reuse.
func waitIdleData(t *testing.T, c *Client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		if len(c.idle) != 1 || c.idle[0].prober == nil {
			n := len(c.idle)
			c.mu.Unlock()
			t.Fatalf("%d pooled connections, want 1 (with a prober)", n)
		}
		res := c.idle[0].prober.probe()
		c.mu.Unlock()
		if res != probeIdle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing arrived on the idle connection within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

var errNotInjectable = errors.New("stub cannot inject records (TLS 1.3 with AES-GCM needed)")

// TestTLSIdleBytes: a pooled TLS connection on which the server sent
// something while it was idle. Alerts (close_notify), application data
// (an unsolicited 408) and bytes that are not TLS at all mean the
// connection is finished: the next request, a POST that may not be
// replayed, goes out on a fresh connection and gets its own answer, never
// the stray bytes. The same holds for a record that crypto/tls already read
// off the socket with the previous answer. A post-handshake message
// (NewSessionTicket, KeyUpdate) is consumed by crypto/tls and the
// connection stays in use.
func TestTLSIdleBytes(t *testing.T) {
	t.Parallel()
	const good = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood"
	const evil = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
	tests := []struct {
		name      string
		tls13only bool
		// answer writes the first answer (okResponse) and what follows;
		// idle is closed once the client has pooled the connection.
		answer func(c *tlsConn, idle <-chan struct{}) error
		// inSocket: the stray bytes wait in the client's socket (the test
		// waits for them); else crypto/tls holds them already.
		inSocket bool
		reused   bool // the connection must carry the second request
	}{
		{name: "close_notify", inSocket: true, answer: func(c *tlsConn, idle <-chan struct{}) error {
			c.write(okResponse)
			<-idle
			return c.tc.CloseWrite()
		}},
		{name: "close_notify and FIN", inSocket: true, answer: func(c *tlsConn, idle <-chan struct{}) error {
			c.write(okResponse)
			<-idle
			return c.tc.Close()
		}},
		{name: "unsolicited 408", inSocket: true, answer: func(c *tlsConn, idle <-chan struct{}) error {
			c.write(okResponse)
			<-idle
			return c.write("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		}},
		{name: "response beyond the answer", inSocket: true, answer: func(c *tlsConn, idle <-chan struct{}) error {
			c.write(okResponse)
			<-idle
			return c.write(evil)
		}},
		{name: "bytes that are not TLS", inSocket: true, answer: func(c *tlsConn, idle <-chan struct{}) error {
			c.write(okResponse)
			<-idle
			_, err := c.raw.Write([]byte(evil))
			return err
		}},
		{name: "record read ahead with the answer", answer: func(c *tlsConn, idle <-chan struct{}) error {
			// Two records in one segment: crypto/tls reads both off
			// the socket and returns the first; the socket is empty.
			c.rs.hold()
			c.write(okResponse)
			c.write(evil)
			return c.rs.flush()
		}},
		{name: "session ticket", tls13only: true, inSocket: true, reused: true, answer: func(c *tlsConn, idle <-chan struct{}) error {
			c.write(okResponse)
			<-idle
			if !c.rs.injectable() {
				return errNotInjectable
			}
			return c.rs.injectHandshake(4, sessionTicket())
		}},
		{name: "key update", tls13only: true, inSocket: true, reused: true, answer: func(c *tlsConn, idle <-chan struct{}) error {
			c.write(okResponse)
			<-idle
			if !c.rs.injectable() {
				return errNotInjectable
			}
			return c.rs.injectHandshake(24, []byte{0}) // update_not_requested
		}},
		{name: "session tickets then close_notify", tls13only: true, inSocket: true, answer: func(c *tlsConn, idle <-chan struct{}) error {
			c.write(okResponse)
			<-idle
			if !c.rs.injectable() {
				return errNotInjectable
			}
			c.rs.hold()
			c.rs.injectHandshake(4, sessionTicket())
			c.rs.injectHandshake(4, sessionTicket())
			c.tc.CloseWrite()
			return c.rs.flush()
		}},
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tc := range tests {
			if tc.tls13only && version != tls.VersionTLS13 {
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", tls.VersionName(version), tc.name), func(t *testing.T) {
				idle := make(chan struct{})
				first := make(chan error, 1)
				srv := newTLSServer(t, func(c *tlsConn) {
					if _, err := c.readRequest(); err != nil {
						return
					}
					if c.n == 0 {
						err := tc.answer(c, idle)
						first <- err
						if err != nil || !tc.reused {
							c.waitClosed(3 * time.Second)
							return
						}
					} else {
						c.write(good)
					}
					for {
						if _, err := c.readRequest(); err != nil {
							return
						}
						c.write(good)
					}
				})
				c := srv.client(t, Options{TLS: clientTLS(t, version)})
				if _, body, err := get(t, c, "/"); err != nil || body != "ok" {
					t.Fatalf("first call: %q %v", body, err)
				}
				close(idle)
				if err := <-first; err != nil {
					if errors.Is(err, errNotInjectable) {
						t.Skip(err)
					}
					t.Fatalf("server: %v", err)
				}
				if tc.inSocket {
					waitIdleData(t, c)
				}
				resp, body, err := do(t, c, &Request{Method: "POST", Host: "h", RequestURI: "/", Body: []byte("payload")})
				if err != nil {
					t.Fatalf("POST after the stray bytes: %v", err)
				}
				if resp.StatusCode != 200 || body != "good" {
					t.Fatalf("POST answered with %d %q (the stray bytes?), want 200 \"good\"", resp.StatusCode, body)
				}
				want := int32(2)
				if tc.reused {
					want = 1
				}
				if n := srv.accepted.Load(); n != want {
					t.Fatalf("%d connections, want %d", n, want)
				}
			})
		}
	}
}

// TestTLSIdleClean: a pooled TLS connection on which nothing arrived is
// reused, request after request (the check costs no connection).
func TestTLSIdleClean(t *testing.T) {
	t.Parallel()
	srv := newTLSServer(t, func(c *tlsConn) {
		for {
			if _, err := c.readRequest(); err != nil {
				return
			}
			c.write(okResponse)
		}
	})
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c := srv.client(t, Options{TLS: clientTLS(t, version)})
		for i := range 5 {
			if _, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: []byte("x")}); err != nil || body != "ok" {
				t.Fatalf("%s call %d: %q %v", tls.VersionName(version), i, body, err)
			}
		}
		c.CloseIdleConnections()
	}
	if n := srv.accepted.Load(); n != 2 {
		t.Fatalf("%d connections, want 2 (one per version)", n)
	}
}
