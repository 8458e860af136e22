package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRequestWire: the request goes out exactly as documented: request
// line, Host, caller headers verbatim, Content-Length for a body (and for
// a bodiless POST/PUT/PATCH); framing headers from the caller are dropped.
func TestRequestWire(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  Request
		want string
	}{
		{"GET", Request{Method: "GET", Host: "api.example", RequestURI: "/users/42?x=%2F1",
			Header: http.Header{"x-api-key": {"k1"}}},
			"GET /users/42?x=%2F1 HTTP/1.1\r\nHost: api.example\r\nx-api-key: k1\r\n\r\n"},
		{"POST body", Request{Method: "POST", Host: "h", RequestURI: "/p", Body: []byte("hello")},
			"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"},
		{"POST nil body", Request{Method: "POST", Host: "h", RequestURI: "/p"},
			"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"},
		{"DELETE nil body", Request{Method: "DELETE", Host: "h", RequestURI: "/p"},
			"DELETE /p HTTP/1.1\r\nHost: h\r\n\r\n"},
		{"multi-value header", Request{Method: "GET", Host: "h", RequestURI: "/",
			Header: http.Header{"X-A": {"1", "2"}}},
			"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n\r\n"},
		{"framing headers dropped", Request{Method: "PUT", Host: "h", RequestURI: "/", Body: []byte("ab"),
			Header: http.Header{"content-length": {"99"}, "Transfer-Encoding": {"chunked"}, "HOST": {"evil"}}},
			"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan string, 1)
			srv := newRawServer(t, func(rc *rawConn) {
				head, _ := rc.readRawHead()
				body := ""
				if strings.Contains(head, "Content-Length: ") {
					var n int
					fmt.Sscanf(head[strings.Index(head, "Content-Length: ")+16:], "%d", &n)
					b := make([]byte, n)
					io.ReadFull(rc.br, b)
					body = string(b)
				}
				got <- head + body
				rc.write(okResponse)
			})
			c := srv.client(t, Options{})
			if _, _, err := do(t, c, &tc.req); err != nil {
				t.Fatal(err)
			}
			if g := <-got; g != tc.want {
				t.Fatalf("wire:\n%q\nwant\n%q", g, tc.want)
			}
		})
	}
}

// TestInvalidRequest: anything that could inject a line, a header or a
// request is refused before a connection is made.
func TestInvalidRequest(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
	c := srv.client(t, Options{})
	ok := Request{Method: "GET", Host: "h", RequestURI: "/"}
	tests := []struct {
		name string
		mod  func(r *Request)
	}{
		{"empty method", func(r *Request) { r.Method = "" }},
		{"space in method", func(r *Request) { r.Method = "GET /x" }},
		{"CONNECT", func(r *Request) { r.Method = "CONNECT" }},
		{"empty URI", func(r *Request) { r.RequestURI = "" }},
		{"absolute URI", func(r *Request) { r.RequestURI = "http://evil/" }},
		{"CR in URI", func(r *Request) { r.RequestURI = "/a\rb" }},
		{"LF in URI", func(r *Request) { r.RequestURI = "/a\nHost: evil" }},
		{"CRLF in URI", func(r *Request) { r.RequestURI = "/a HTTP/1.1\r\n\r\nGET /b" }},
		{"space in URI", func(r *Request) { r.RequestURI = "/a b" }},
		{"NUL in URI", func(r *Request) { r.RequestURI = "/a\x00" }},
		{"fragment in URI", func(r *Request) { r.RequestURI = "/a#frag" }},
		{"non-ASCII URI", func(r *Request) { r.RequestURI = "/caf\xc3\xa9" }},
		{"CRLF in Host", func(r *Request) { r.Host = "h\r\nX-Evil: 1" }},
		{"slash in Host", func(r *Request) { r.Host = "h/x" }},
		{"CR in header value", func(r *Request) { r.Header = http.Header{"X-A": {"a\rb"}} }},
		{"LF in header value", func(r *Request) { r.Header = http.Header{"X-A": {"a\nX-B: b"}} }},
		{"NUL in header value", func(r *Request) { r.Header = http.Header{"X-A": {"a\x00"}} }},
		{"space in header name", func(r *Request) { r.Header = http.Header{"X A": {"a"}} }},
		{"colon in header name", func(r *Request) { r.Header = http.Header{"X:A": {"a"}} }},
		{"empty header name", func(r *Request) { r.Header = http.Header{"": {"a"}} }},
		{"CRLF in header name", func(r *Request) { r.Header = http.Header{"X\r\nY": {"a"}} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.mod(&req)
			_, err := c.Do(context.Background(), &req)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("err = %v, want ErrInvalidRequest", err)
			}
		})
	}
	if _, err := c.Do(context.Background(), nil); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("nil request: %v", err)
	}
	if n := srv.accepted.Load(); n != 0 {
		t.Fatalf("%d connections made for invalid requests", n)
	}
	// Tabs are legal in values; an empty Host means Options.Addr.
	req := ok
	req.Host = ""
	req.Header = http.Header{"X-A": {"a\tb"}}
	if _, _, err := do(t, c, &req); err != nil {
		t.Fatal(err)
	}
}

// TestFramingLoopback: the framings on a real socket, and whether the
// connection is reused for the next request (counted by the server).
func TestFramingLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		method    string
		resp      string
		closeConn bool // the server closes after resp
		status    int
		body      string
		length    int64
		reused    bool
	}{
		{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, "hello", 5, true},
		{"chunked with extension and trailer", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Checksum: abc\r\n\r\n", false, 200, "hello!", -1, true},
		{"close-delimited", "GET", "HTTP/1.1 200 OK\r\n\r\nto the end", true, 200, "to the end", -1, false},
		{"HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", false, 200, "", 1234, true},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", false, 204, "", 0, true},
		{"304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", false, 304, "", 0, true},
		{"100 and 103 skipped", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" +
			"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", false, 201, "ok", 2, true},
		{"redirect not followed", "GET", "HTTP/1.1 301 Moved Permanently\r\nLocation: http://elsewhere/\r\nContent-Length: 3\r\n\r\nbye",
			false, 301, "bye", 3, true},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", true, 200, "ok", 2, false},
		{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true, 200, "ok", 2, false},
		{"HTTP/1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false, 200, "ok", 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := newRawServer(t, func(rc *rawConn) {
				for {
					if _, _, err := rc.readRequest(); err != nil {
						return
					}
					if n.Add(1) == 1 {
						rc.write(tc.resp)
						if tc.closeConn {
							return
						}
					} else {
						rc.write(okResponse)
					}
				}
			})
			c := srv.client(t, Options{})
			resp, body, err := do(t, c, &Request{Method: tc.method, Host: "h", RequestURI: "/"})
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || body != tc.body || resp.ContentLength != tc.length {
				t.Fatalf("got %d %q len %d, want %d %q len %d", resp.StatusCode, body, resp.ContentLength, tc.status, tc.body, tc.length)
			}
			if _, body, err := get(t, c, "/"); err != nil || body != "ok" {
				t.Fatalf("second request: %q %v", body, err)
			}
			want := int32(2)
			if tc.reused {
				want = 1
			}
			if got := srv.accepted.Load(); got != want {
				t.Fatalf("%d connections, want %d", got, want)
			}
		})
	}
}

// TestMalformedLoopback: each malformed response fails the call with
// ErrMalformedResponse and the server sees the connection closed.
func TestMalformedLoopback(t *testing.T) {
	t.Parallel()
	for _, tc := range malformedResponses {
		if strings.HasSuffix(tc.name, "cut short") {
			continue // needs the server to close: TestTruncatedBodyLoopback
		}
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan error, 1)
			srv := newRawServer(t, func(rc *rawConn) {
				if _, _, err := rc.readRequest(); err != nil {
					closed <- err
					return
				}
				rc.write(tc.in)
				_, err := rc.waitClosed(2 * time.Second)
				closed <- err
			})
			c := srv.client(t, Options{})
			_, _, err := get(t, c, "/")
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("err = %v, want ErrMalformedResponse", err)
			}
			if err := <-closed; err != nil {
				t.Fatalf("server did not see the close: %v", err)
			}
			if c.idleCount() != 0 {
				t.Fatal("connection pooled")
			}
		})
	}
}

// TestTruncatedBodyLoopback: the server closes mid-body: the read fails
// with io.ErrUnexpectedEOF and the next call dials afresh.
func TestTruncatedBodyLoopback(t *testing.T) {
	t.Parallel()
	for _, resp := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
	} {
		var n atomic.Int32
		srv := newRawServer(t, func(rc *rawConn) {
			for {
				if _, _, err := rc.readRequest(); err != nil {
					return
				}
				if n.Add(1) == 1 {
					rc.write(resp)
					return
				}
				rc.write(okResponse)
			}
		})
		c := srv.client(t, Options{})
		if _, _, err := get(t, c, "/"); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%q: err = %v, want io.ErrUnexpectedEOF", resp, err)
		}
		if c.idleCount() != 0 {
			t.Fatal("connection pooled")
		}
		if _, body, err := get(t, c, "/"); err != nil || body != "ok" {
			t.Fatalf("next call: %q %v", body, err)
		}
		if srv.accepted.Load() != 2 {
			t.Fatalf("%d connections, want 2", srv.accepted.Load())
		}
	}
}

// TestExtraBytesNotPooled: a server that sends more than it declared, in
// the same segment or later while the connection is idle, never gets that
// connection back for another request (which would read the extra bytes as
// its answer).
func TestExtraBytesNotPooled(t *testing.T) {
	t.Parallel()
	t.Run("buffered with the response", func(t *testing.T) {
		closed := make(chan error, 1)
		srv := newRawServer(t, func(rc *rawConn) {
			if rc.n == 0 {
				rc.readRequest()
				rc.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
				_, err := rc.waitClosed(2 * time.Second)
				closed <- err
				return
			}
			serveEach(func(int, *http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood" })(rc)
		})
		c := srv.client(t, Options{})
		if _, body, err := get(t, c, "/"); err != nil || body != "ok" {
			t.Fatalf("%q %v", body, err)
		}
		if err := <-closed; err != nil {
			t.Fatalf("server did not see the close: %v", err)
		}
		if _, body, err := get(t, c, "/"); err != nil || body != "good" {
			t.Fatalf("second call: %q %v", body, err)
		}
	})
	t.Run("arriving while idle", func(t *testing.T) {
		sent := make(chan struct{})
		srv := newRawServer(t, func(rc *rawConn) {
			if rc.n == 0 {
				rc.readRequest()
				rc.write(okResponse)
				time.Sleep(50 * time.Millisecond)
				rc.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
				close(sent)
				rc.waitClosed(2 * time.Second)
				return
			}
			serveEach(func(int, *http.Request) string { return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ngood" })(rc)
		})
		c := srv.client(t, Options{})
		if _, body, err := get(t, c, "/"); err != nil || body != "ok" {
			t.Fatalf("%q %v", body, err)
		}
		<-sent
		time.Sleep(20 * time.Millisecond)
		for _, m := range []string{"GET", "POST"} {
			if _, body, err := do(t, c, &Request{Method: m, Host: "h", RequestURI: "/"}); err != nil || body != "good" {
				t.Fatalf("%s after unsolicited bytes: %q %v", m, body, err)
			}
		}
		if srv.accepted.Load() != 2 {
			t.Fatalf("%d connections, want 2", srv.accepted.Load())
		}
	})
}

// TestCloseEarlyLoopback: Close before EOF pools the connection when the
// rest of the body was already buffered, else closes it (without waiting
// for the rest).
func TestCloseEarlyLoopback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		pooled bool
	}{{"small body drained", 1000, true}, {"large body abandoned", 4 << 20, false}} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan error, 1)
			srv := newRawServer(t, func(rc *rawConn) {
				rc.readRequest()
				rc.write(fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", tc.size, strings.Repeat("x", tc.size)))
				_, err := rc.waitClosed(2 * time.Second)
				closed <- err
			})
			c := srv.client(t, Options{})
			resp, err := c.Do(context.Background(), &Request{Method: "GET", Host: "h", RequestURI: "/"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
				t.Fatal(err)
			}
			if !tc.pooled {
				time.Sleep(10 * time.Millisecond) // let more than a buffer arrive
			}
			start := time.Now()
			resp.Body.Close()
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Fatalf("Close took %v", d)
			}
			if got := c.idleCount() == 1; got != tc.pooled {
				t.Fatalf("pooled = %v, want %v", got, tc.pooled)
			}
			if tc.pooled {
				c.CloseIdleConnections()
			}
			if err := <-closed; err != nil {
				t.Fatalf("server did not see the close: %v", err)
			}
		})
	}
}

// TestConnectionCloseInRequest: a request saying Connection: close does not
// leave its connection in the pool.
func TestConnectionCloseInRequest(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
	c := srv.client(t, Options{})
	req := &Request{Method: "GET", Host: "h", RequestURI: "/", Header: http.Header{"Connection": {"close"}}}
	if _, _, err := do(t, c, req); err != nil {
		t.Fatal(err)
	}
	if c.idleCount() != 0 {
		t.Fatal("connection pooled")
	}
}

// TestStaleConnection: the server drops a pooled connection. What is sent
// again, and what is not, follows the replay rule (see Request.replayable).
func TestStaleConnection(t *testing.T) {
	t.Parallel()
	// dropSecond: connection 0 answers its first request, then reads the
	// next one and closes without answering (the keep-alive race where the
	// server gave up on the connection just as the request arrived).
	dropSecond := func(calls *atomic.Int32, freshAlsoDrops bool) func(*rawConn) {
		return func(rc *rawConn) {
			for i := 0; ; i++ {
				if _, _, err := rc.readRequest(); err != nil {
					return
				}
				calls.Add(1)
				if rc.n == 0 && i == 1 || rc.n > 0 && freshAlsoDrops {
					return
				}
				rc.write(okResponse)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		req     Request
		retried bool
	}{
		{"GET replayed", Request{Method: "GET", RequestURI: "/"}, true},
		{"HEAD replayed", Request{Method: "HEAD", RequestURI: "/"}, true},
		{"POST not replayed", Request{Method: "POST", RequestURI: "/", Body: []byte("x")}, false},
		{"bodiless DELETE not replayed", Request{Method: "DELETE", RequestURI: "/"}, false},
		{"POST with Idempotency-Key replayed", Request{Method: "POST", RequestURI: "/", Body: []byte("x"),
			Header: http.Header{"Idempotency-Key": {"abc"}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := newRawServer(t, dropSecond(&calls, false))
			c := srv.client(t, Options{})
			if _, _, err := get(t, c, "/"); err != nil {
				t.Fatal(err)
			}
			_, _, err := do(t, c, &tc.req)
			if tc.retried {
				if err != nil {
					t.Fatalf("not retried: %v", err)
				}
				if calls.Load() != 3 || srv.accepted.Load() != 2 {
					t.Fatalf("calls %d, connections %d; want 3, 2", calls.Load(), srv.accepted.Load())
				}
			} else {
				if err == nil {
					t.Fatal("replayed a non-idempotent request")
				}
				if calls.Load() != 2 || srv.accepted.Load() != 1 {
					t.Fatalf("calls %d, connections %d; want 2, 1", calls.Load(), srv.accepted.Load())
				}
			}
		})
	}
	t.Run("retried once only", func(t *testing.T) {
		var calls atomic.Int32
		srv := newRawServer(t, dropSecond(&calls, true))
		c := srv.client(t, Options{})
		get(t, c, "/")
		if _, _, err := get(t, c, "/"); err == nil {
			t.Fatal("no error")
		}
		if srv.accepted.Load() != 2 {
			t.Fatalf("%d connections, want 2", srv.accepted.Load())
		}
	})
	t.Run("fresh connection not retried", func(t *testing.T) {
		srv := newRawServer(t, func(rc *rawConn) { rc.readRequest() })
		c := srv.client(t, Options{})
		if _, _, err := get(t, c, "/"); err == nil || !errors.Is(err, io.EOF) {
			t.Fatalf("err = %v, want EOF", err)
		}
		if srv.accepted.Load() != 1 {
			t.Fatalf("%d connections, want 1", srv.accepted.Load())
		}
	})
	t.Run("closed while idle is not used", func(t *testing.T) {
		// The server closes right after answering; by the next call the
		// FIN is there and the probe discards the connection, so even a
		// POST (never replayed) succeeds, sent exactly once.
		var posts atomic.Int32
		done := make(chan struct{}, 4)
		srv := newRawServer(t, func(rc *rawConn) {
			defer func() {
				rc.Close()
				done <- struct{}{}
			}()
			req, _, err := rc.readRequest()
			if err != nil {
				return
			}
			if req.Method == "POST" {
				posts.Add(1)
			}
			rc.write(okResponse)
		})
		c := srv.client(t, Options{})
		get(t, c, "/")
		<-done
		time.Sleep(20 * time.Millisecond)
		if _, body, err := do(t, c, &Request{Method: "POST", RequestURI: "/", Body: []byte("x")}); err != nil || body != "ok" {
			t.Fatalf("%q %v", body, err)
		}
		if posts.Load() != 1 || srv.accepted.Load() != 2 {
			t.Fatalf("posts %d, connections %d", posts.Load(), srv.accepted.Load())
		}
	})
}

// TestPoolLimits: at most MaxIdleConns stay pooled, the rest are closed;
// CloseIdleConnections closes the pooled ones; IdleTimeout expires them,
// also when nobody calls again.
func TestPoolLimits(t *testing.T) {
	t.Parallel()
	t.Run("MaxIdleConns", func(t *testing.T) {
		const calls = 5
		var closedConns atomic.Int32
		var arrived sync.WaitGroup
		arrived.Add(calls)
		srv := newRawServer(t, func(rc *rawConn) {
			defer closedConns.Add(1)
			for i := 0; ; i++ {
				if _, _, err := rc.readRequest(); err != nil {
					return
				}
				if i == 0 {
					arrived.Done()
					arrived.Wait() // all calls are in flight at once
				}
				rc.write(okResponse)
			}
		})
		c := srv.client(t, Options{MaxIdleConns: 2})
		var wg sync.WaitGroup
		for range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := get(t, c, "/"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := c.idleCount(); n != 2 {
			t.Fatalf("%d idle, want 2", n)
		}
		waitFor(t, func() bool { return closedConns.Load() == calls-2 })
		c.CloseIdleConnections()
		waitFor(t, func() bool { return closedConns.Load() == calls })
	})
	t.Run("IdleTimeout", func(t *testing.T) {
		closed := make(chan time.Time, 2)
		srv := newRawServer(t, func(rc *rawConn) {
			serveEach(func(int, *http.Request) string { return okResponse })(rc)
			closed <- time.Now()
		})
		c := srv.client(t, Options{IdleTimeout: 100 * time.Millisecond})
		get(t, c, "/")
		start := time.Now()
		select {
		case at := <-closed:
			if d := at.Sub(start); d < 50*time.Millisecond {
				t.Fatalf("closed after %v", d)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("idle connection not closed by the sweeper")
		}
		if c.idleCount() != 0 {
			t.Fatal("expired connection still pooled")
		}
		get(t, c, "/")
		if srv.accepted.Load() != 2 {
			t.Fatalf("%d connections, want 2", srv.accepted.Load())
		}
	})
	t.Run("expired not reused", func(t *testing.T) {
		srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
		c := srv.client(t, Options{IdleTimeout: time.Hour})
		get(t, c, "/")
		c.mu.Lock()
		c.idle[0].idleAt = time.Now().Add(-2 * time.Hour)
		c.mu.Unlock()
		get(t, c, "/")
		if srv.accepted.Load() != 2 {
			t.Fatalf("%d connections, want 2", srv.accepted.Load())
		}
	})
	t.Run("pooling disabled", func(t *testing.T) {
		srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
		c := srv.client(t, Options{MaxIdleConns: -1})
		get(t, c, "/")
		get(t, c, "/")
		if srv.accepted.Load() != 2 {
			t.Fatalf("%d connections, want 2", srv.accepted.Load())
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 2s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadAfterClose: a closed body says so, and never reads the
// connection's next response.
func TestReadAfterClose(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
	c := srv.client(t, Options{})
	resp, err := c.Do(context.Background(), &Request{Method: "GET", RequestURI: "/"})
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	get(t, c, "/") // the connection now serves another call
	if _, err := resp.Body.Read(make([]byte, 1)); err != http.ErrBodyReadAfterClose {
		t.Fatalf("err = %v", err)
	}
}

// TestConcurrentUse hammers one client from many goroutines, some calls
// cancelled at random points, under the race detector.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(i int, _ *http.Request) string {
		if i%3 == 0 {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
		}
		return okResponse
	}))
	c := srv.client(t, Options{MaxIdleConns: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				ctx, cancel := context.WithCancel(context.Background())
				if (g+i)%7 == 0 {
					time.AfterFunc(time.Duration(i%5)*50*time.Microsecond, cancel)
				}
				resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
				if err == nil {
					var b []byte
					b, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && string(b) != "ok" {
						t.Errorf("body %q", b)
					}
				}
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("unexpected error: %v", err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
}

// TestMaxHeaderBytes: Options.MaxHeaderBytes bounds the head, interim
// responses included.
func TestMaxHeaderBytes(t *testing.T) {
	t.Parallel()
	big := "HTTP/1.1 200 OK\r\nX-Pad: " + strings.Repeat("p", 200) + "\r\nContent-Length: 2\r\n\r\nok"
	interim := strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", 5) + okResponse
	for _, tc := range []struct {
		resp string
		ok   bool
	}{{okResponse, true}, {big, false}, {interim, false}} {
		srv := newRawServer(t, serveEach(func(int, *http.Request) string { return tc.resp }))
		c := srv.client(t, Options{MaxHeaderBytes: 150})
		_, _, err := get(t, c, "/")
		if tc.ok && err != nil || !tc.ok && !errors.Is(err, ErrMalformedResponse) {
			t.Fatalf("%.40q: err = %v", tc.resp, err)
		}
	}
}

// TestCloseDrains: after Close, a connection in use when it was called is
// closed when its call ends instead of being pooled, idle ones at once.
func TestCloseDrains(t *testing.T) {
	t.Parallel()
	var closedConns atomic.Int32
	release := make(chan struct{})
	inFlight := make(chan struct{})
	srv := newRawServer(t, func(rc *rawConn) {
		defer closedConns.Add(1)
		for {
			req, _, err := rc.readRequest()
			if err != nil {
				return
			}
			if req.URL.Path == "/slow" {
				close(inFlight)
				<-release
			}
			rc.write(okResponse)
		}
	})
	c := srv.client(t, Options{})
	if _, _, err := get(t, c, "/"); err != nil { // one idle connection
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := get(t, c, "/slow"); done <- err }() // reuses it... or dials
	<-inFlight
	// A second connection, idle now, if the slow call took the first one.
	if _, _, err := get(t, c, "/"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	waitFor(t, func() bool { return closedConns.Load() == 1 }) // the idle one
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return closedConns.Load() == 2 }) // the one in use, after its call
	if n := c.idleCount(); n != 0 {
		t.Fatalf("%d idle after Close, want 0", n)
	}
	// Calls still work, on a connection that is closed after use.
	if _, _, err := get(t, c, "/"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return closedConns.Load() == 3 })
}
