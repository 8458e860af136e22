package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// bigBody is larger than any socket buffer: a client that writes it all
// before reading cannot hear a server that does not read it.
var bigBody = make([]byte, 8<<20)

// serverConn is what the early-answer tests need of a server connection,
// plain or TLS.
type serverConn struct {
	br    *bufio.Reader
	w     io.Writer
	close func() error
	n     int
}

// newEitherServer starts a plain or a TLS loopback server running handle
// on each connection, and a client for it.
func newEitherServer(t *testing.T, useTLS bool, o Options, handle func(*serverConn)) (*rawServer, *Client) {
	t.Helper()
	var srv *rawServer
	if useTLS {
		srv = newTLSServer(t, func(c *tlsConn) {
			handle(&serverConn{br: c.br, w: c.tc, close: c.raw.Close, n: c.n})
		})
		o.TLS = clientTLS(t, 0)
	} else {
		srv = newRawServer(t, func(rc *rawConn) {
			handle(&serverConn{br: rc.br, w: rc.Conn, close: rc.Conn.Close, n: rc.n})
		})
	}
	return srv, srv.client(t, o)
}

func (sc *serverConn) readHead() (*http.Request, error) { return http.ReadRequest(sc.br) }

func (sc *serverConn) write(s string) error {
	_, err := io.WriteString(sc.w, s)
	return err
}

// TestEarlyAnswer: a server that answers a large POST without reading its
// body (401 from an auth check, 413 for the size) is heard at once: Do
// returns the answer, with its body, long before the body could have been
// written, whether the server then closes (the unread body makes its
// kernel reset the connection), or keeps the connection open without
// reading (with or without Connection: close). The connection is not
// reused: the request was cut short on the wire.
func TestEarlyAnswer(t *testing.T) {
	t.Parallel()
	const timeout = 10 * time.Second
	behaviours := []struct {
		name  string
		close bool // the server closes right after answering
		keep  bool // the answer says keep-alive
	}{
		{"closes", true, false},
		{"stays open, Connection: close", false, false},
		{"stays open, keep-alive", false, true},
	}
	for _, useTLS := range []bool{false, true} {
		for _, status := range []int{401, 413} {
			for _, bh := range behaviours {
				name := fmt.Sprintf("tls=%v/%d/%s", useTLS, status, bh.name)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					done := make(chan struct{})
					answer := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Length: 9\r\n", status, http.StatusText(status))
					if !bh.keep {
						answer += "Connection: close\r\n"
					}
					answer += "\r\nnot today"
					srv, c := newEitherServer(t, useTLS, Options{}, func(sc *serverConn) {
						if _, err := sc.readHead(); err != nil {
							return
						}
						sc.write(answer)
						if bh.close {
							sc.close()
							return
						}
						<-done // never reads the body
					})
					t.Cleanup(func() { close(done) }) // runs before the server's cleanup
					ctx, cancel := context.WithTimeout(context.Background(), timeout)
					defer cancel()
					start := time.Now()
					resp, err := c.Do(ctx, &Request{Method: "POST", RequestURI: "/upload", Body: bigBody})
					if err != nil {
						t.Fatalf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					elapsed := time.Since(start)
					if err != nil || resp.StatusCode != status || string(body) != "not today" {
						t.Fatalf("got %d %q %v, want %d \"not today\"", resp.StatusCode, body, err, status)
					}
					if elapsed > 2*time.Second {
						t.Fatalf("answer took %v (the context allowed %v)", elapsed, timeout)
					}
					if c.idleCount() != 0 {
						t.Fatal("connection with a cut-short request pooled")
					}
					if n := srv.accepted.Load(); n != 1 {
						t.Fatalf("%d connections, want 1", n)
					}
				})
			}
		}
	}
}

// readBody reads a request body of Content-Length n and counts it.
func readBody(br *bufio.Reader, req *http.Request) (int64, error) {
	return io.Copy(io.Discard, io.LimitReader(br, req.ContentLength))
}

// TestLargePost: a large body that the server reads before answering goes
// out whole and the connection is reused; an interim 100 Continue before
// the final answer does not stop the body; a server that answers early
// with keep-alive and then reads the rest (as nginx's return and net/http's
// server do) gets the whole body too, and the connection is reused.
func TestLargePost(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		for _, mode := range []string{"read then answer", "100 Continue, read, answer", "answer early, then read"} {
			t.Run(fmt.Sprintf("tls=%v/%s", useTLS, mode), func(t *testing.T) {
				var total atomic.Int64
				srv, c := newEitherServer(t, useTLS, Options{}, func(sc *serverConn) {
					for {
						req, err := sc.readHead()
						if err != nil {
							return
						}
						answer := func(n int64) error {
							b := strconv.FormatInt(n, 10)
							return sc.write("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(b)) + "\r\n\r\n" + b)
						}
						switch mode {
						case "100 Continue, read, answer":
							sc.write("HTTP/1.1 100 Continue\r\n\r\n")
							fallthrough
						case "read then answer":
							n, err := readBody(sc.br, req)
							if err != nil {
								return
							}
							total.Add(n)
							answer(n)
						case "answer early, then read":
							answer(req.ContentLength)
							n, err := readBody(sc.br, req)
							if err != nil {
								return
							}
							total.Add(n)
						}
					}
				})
				for i := range 3 {
					_, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: bigBody})
					if err != nil || body != strconv.Itoa(len(bigBody)) {
						t.Fatalf("POST %d: %q %v", i, body, err)
					}
				}
				if mode == "answer early, then read" {
					waitFor(t, func() bool { return total.Load() == 3*int64(len(bigBody)) })
				}
				if got := total.Load(); got != 3*int64(len(bigBody)) {
					t.Fatalf("server read %d body bytes, want %d", got, 3*len(bigBody))
				}
				if n := srv.accepted.Load(); n != 1 {
					t.Fatalf("%d connections, want 1", n)
				}
			})
		}
	}
}

// TestCancelMidBody: the context ends while a large body is being written
// (the server read part of it, then stopped): Do returns the context's
// error promptly and the server sees the connection close.
func TestCancelMidBody(t *testing.T) {
	t.Parallel()
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			readSome, callEnded := make(chan struct{}), make(chan struct{})
			closed := make(chan error, 1)
			_, c := newEitherServer(t, useTLS, Options{}, func(sc *serverConn) {
				if _, err := sc.readHead(); err != nil {
					closed <- err
					return
				}
				if _, err := io.CopyN(io.Discard, sc.br, 1<<20); err != nil {
					closed <- err
					return
				}
				close(readSome)
				<-callEnded                          // reads no more while the call runs
				_, err := io.Copy(io.Discard, sc.br) // until the client closes
				if isConnLoss(err) || errors.Is(err, net.ErrClosed) {
					err = nil
				}
				closed <- err
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				<-readSome
				cancel()
			}()
			start := time.Now()
			_, err := c.Do(ctx, &Request{Method: "PUT", RequestURI: "/", Body: bigBody})
			close(callEnded)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("Do returned %v after the start", d)
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Fatalf("server: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("server never saw the close")
			}
			if c.idleCount() != 0 {
				t.Fatal("cancelled connection pooled")
			}
		})
	}
}

// TestEarlyAnswerSmallBody: a body small enough to be written with the
// head in one flush, on a connection whose buffers are shrunk so that the
// flush blocks; the server answers 401 without reading and closes, so the
// write fails (EPIPE or ECONNRESET). The answer, already in the socket, is
// still read and returned.
func TestEarlyAnswerSmallBody(t *testing.T) {
	t.Parallel()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		conn.Write([]byte("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno"))
	}()
	c := New(Options{Addr: ln.Addr().String()})
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := c.dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.raw.(*net.TCPConn).SetWriteBuffer(2048); err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("s", 16<<10))
	resp, err := pc.roundTrip(ctx, &Request{Method: "POST", RequestURI: "/", Body: body})
	<-served
	if err != nil {
		t.Fatalf("roundTrip: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || string(b) != "no" || err != nil {
		t.Fatalf("got %d %q %v", resp.StatusCode, b, err)
	}
}

// TestEarlyAnswerNetHTTPServer: net/http's server, with a handler that
// answers 401 without reading the body. For a body it is willing to drain
// (up to 256 KiB) it answers with keep-alive and drains after: the
// connection is reused. For a larger one it answers with Connection: close:
// the answer is returned at once.
func TestEarlyAnswerNetHTTPServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not today", http.StatusUnauthorized)
	}))
	conns := countConns(srv)
	srv.Start()
	defer srv.Close()
	c := New(Options{Addr: srv.Listener.Addr().String()})
	defer c.CloseIdleConnections()
	for i := range 3 {
		resp, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: bigBody[:200<<10]})
		if err != nil || resp.StatusCode != 401 || body != "not today\n" {
			t.Fatalf("200 KiB POST %d: %v %q %v", i, resp, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 3 drained POSTs, want 1", n)
	}
	start := time.Now()
	resp, _, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: bigBody})
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("8 MiB POST: %v %v", resp, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("401 took %v", d)
	}
}
