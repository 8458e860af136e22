package h1

import (
	"io"
	"strings"
	"testing"
)

// overlongServer answers the first request on its first connection with a
// body whose declared length is shorter than what it writes: the tail is a
// complete, crafted response. Every other request gets "real".
func overlongServer(t *testing.T) *rawServer {
	body := strings.Repeat("a", 8192)
	first := "HTTP/1.1 200 OK\r\nContent-Length: 8192\r\n\r\n" + body +
		"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
	return newRawServer(t, func(rc *rawConn) {
		for i := 0; ; i++ {
			if _, _, err := rc.readRequest(); err != nil {
				return
			}
			if rc.n == 0 && i == 0 {
				rc.write(first) // one write: the tail is in the client's socket at once
			} else {
				rc.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
			}
		}
	})
}

// readLikeFetch reads a body as fetch.readBody does: into a buffer sized
// from Content-Length, so the reads past the first buffer go straight to
// the socket for exactly the bytes left.
func readLikeFetch(t *testing.T, resp *Response) {
	t.Helper()
	buf := make([]byte, 0, resp.ContentLength+1)
	for {
		n, err := resp.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	resp.Body.Close()
	if int64(len(buf)) != resp.ContentLength {
		t.Fatalf("read %d bytes, want %d", len(buf), resp.ContentLength)
	}
}

// overlongFirst makes the first call, whose answer is the over-long one;
// the test reads its body when it wants the connection released.
func overlongFirst(t *testing.T, c *Client) *Response {
	t.Helper()
	resp, err := c.Do(t.Context(), &Request{Method: "GET", RequestURI: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// result is a call's outcome as getAsync delivers it.
type result struct {
	body string
	err  error
}

// getAsync runs a GET of uri on its own goroutine; its outcome comes on the
// channel (buffered: the goroutine never blocks).
func getAsync(t *testing.T, c *Client, uri string) <-chan result {
	done := make(chan result, 1)
	go func() {
		_, body, err := do(t, c, &Request{Method: "GET", Host: "test", RequestURI: uri})
		done <- result{body, err}
	}()
	return done
}

// Control: the tail of an over-long response sits in the socket; a
// connection pooled idle is probed before reuse and discarded.
func TestOverlongTailPooledIsDiscarded(t *testing.T) {
	srv := overlongServer(t)
	c := srv.client(t, Options{})
	resp := overlongFirst(t, c)
	readLikeFetch(t, resp)
	_, got, err := get(t, c, "/b")
	if err != nil || got != "real" {
		t.Fatalf("B got %q, %v; want \"real\"", got, err)
	}
}

// The same connection handed straight to a call waiting for one (its dial
// is slow) is probed before the hand-off, as a pooled one is: the waiting
// call gets its own answer, never the tail of the previous one.
func TestOverlongTailHandedToWaiter(t *testing.T) {
	srv := overlongServer(t)
	c := srv.client(t, Options{})
	resp := overlongFirst(t, c)
	started, _, release := slowDials(t, c)
	done := getAsync(t, c, "/b")
	waitFor(t, func() bool { return started.Load() == 1 }) // B waits for a connection
	readLikeFetch(t, resp)                                 // A's end hands its connection to B
	release()                                              // with the fix, B may use its own dial
	o := <-done
	release()
	if o.err != nil || o.body != "real" {
		t.Fatalf("B got %q, %v; want \"real\" (the tail of A's response was read as B's answer)", o.body, o.err)
	}
}

// At MaxConns the waiting call has no dial of its own: the connection that
// fails the probe is closed, and its slot lets the waiting call dial.
func TestOverlongTailHandedToWaiterAtMaxConns(t *testing.T) {
	srv := overlongServer(t)
	c := srv.client(t, Options{MaxConns: 1})
	resp := overlongFirst(t, c)
	done := getAsync(t, c, "/b")
	waitFor(t, func() bool { // B waits for the only slot
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.waiters.n == 1
	})
	readLikeFetch(t, resp) // A's end hands its connection to B, unless the probe refuses it
	o := <-done
	if o.err != nil || o.body != "real" {
		t.Fatalf("B got %q, %v; want \"real\" (the tail of A's response was read as B's answer)", o.body, o.err)
	}
	if n := srv.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the poisoned one closed, B's own)", n)
	}
}
