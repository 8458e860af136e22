package h1

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCancellation: when the call's context ends during the dial (TLS
// handshake), the request write, the head read or the body read, the call
// fails promptly with an error wrapping the context's error, and the
// upstream, blocked reading, sees the connection close.
//
// It runs before the parallel tests, not among them; see alone.
func TestCancellation(t *testing.T) {
	const after = 150 * time.Millisecond
	phases := []struct {
		name   string
		tls    bool
		server func(rc *rawConn) // then it waits for the close
		call   func(ctx context.Context, c *Client) error
		// alone keeps a case out of the parallel ones: the write cases
		// fill the socket buffers with megabytes that the server must read
		// through to see the close, and on a loaded machine a second
		// heavy test beside them can make that drain outlast the bound.
		alone bool
	}{
		{
			name: "dial (TLS handshake)", tls: true,
			server: func(rc *rawConn) {}, // reads the ClientHello, never answers
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
				return err
			},
		},
		{
			name:   "write",
			server: func(rc *rawConn) { time.Sleep(2 * after) }, // does not read: the client's write blocks
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Do(ctx, &Request{Method: "POST", RequestURI: "/", Body: make([]byte, 64<<20)})
				return err
			},
			alone: true,
		},
		{
			name:   "head read",
			server: func(rc *rawConn) { rc.readRequest() },
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
				return err
			},
		},
		{
			name: "head read after interim response",
			server: func(rc *rawConn) {
				rc.readRequest()
				rc.write("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-")
			},
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
				return err
			},
		},
		{
			name: "body read",
			server: func(rc *rawConn) {
				rc.readRequest()
				rc.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
			},
			call: bodyCall,
		},
		{
			name: "chunked body read",
			server: func(rc *rawConn) {
				rc.readRequest()
				rc.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
			},
			call: bodyCall,
		},
		{
			name: "gzip body read",
			server: func(rc *rawConn) {
				rc.readRequest()
				// A flushed first block decodes; the rest never comes.
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				zw.Write([]byte(strings.Repeat("hello ", 1000)))
				zw.Flush()
				rc.write("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 100000\r\n\r\n" + b.String())
			},
			call: bodyCall,
		},
	}
	for _, ph := range phases {
		for _, how := range []string{"cancel", "deadline"} {
			t.Run(ph.name+"/"+how, func(t *testing.T) {
				if !ph.alone {
					t.Parallel() // each case waits for its context to end
				}
				closedAt := make(chan time.Time, 1)
				srv := newRawServer(t, func(rc *rawConn) {
					ph.server(rc)
					if _, err := rc.waitClosed(3 * time.Second); err != nil {
						t.Errorf("server: %v", err)
						closedAt <- time.Time{}
						return
					}
					closedAt <- time.Now()
				})
				o := Options{}
				if ph.tls {
					o.TLS = &tls.Config{ServerName: "upstream.test"}
				}
				c := srv.client(t, o)

				var ctx context.Context
				var cancel context.CancelFunc
				want := context.Canceled
				if how == "cancel" {
					ctx, cancel = context.WithCancel(context.Background())
					time.AfterFunc(after, cancel)
				} else {
					ctx, cancel = context.WithTimeout(context.Background(), after)
					want = context.DeadlineExceeded
				}
				defer cancel()
				start := time.Now()
				err := ph.call(ctx, c)
				ended := time.Now()
				if !errors.Is(err, want) {
					t.Fatalf("err = %v, want it to wrap %v", err, want)
				}
				if d := ended.Sub(start); d > after+time.Second {
					t.Fatalf("call ended %v after the context", d-after)
				}
				select {
				case at := <-closedAt:
					if at.IsZero() {
						t.Fatal("server never saw the close")
					}
					if d := at.Sub(start) - after; d > time.Second {
						t.Fatalf("server saw the close %v after the context ended", d)
					}
				case <-time.After(3 * time.Second):
					t.Fatal("server never saw the close")
				}
				if c.idleCount() != 0 {
					t.Fatal("cancelled connection pooled")
				}
			})
		}
	}
}

func bodyCall(ctx context.Context, c *Client) error {
	resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
	if err != nil {
		return fmt.Errorf("do failed before the body: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 5)); err != nil {
		return fmt.Errorf("first bytes: %v", err)
	}
	_, err = io.ReadAll(resp.Body)
	return err
}

// TestCanceledBeforeDo: an ended context fails the call without dialing.
func TestCanceledBeforeDo(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, func(rc *rawConn) {})
	c := srv.client(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if srv.accepted.Load() != 0 {
		t.Fatal("dialed")
	}
}

// TestCancelAfterBodyEnd: cancelling the context after the body was read
// does not harm the pooled connection (the context was detached at EOF).
func TestCancelAfterBodyEnd(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
	c := srv.client(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	cancel()
	resp.Body.Close()
	if _, body, err := get(t, c, "/"); err != nil || body != "ok" {
		t.Fatalf("%q %v", body, err)
	}
	if srv.accepted.Load() != 1 {
		t.Fatalf("%d connections, want 1", srv.accepted.Load())
	}
}
