package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// rawServer is a loopback TCP server whose connections are served by a
// hand-written function, for tests that need exact bytes on the wire.
type rawServer struct {
	t        *testing.T
	ln       net.Listener
	handle   func(*rawConn)
	accepted atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

// rawConn is one server-side connection; n is its accept order (0-based).
type rawConn struct {
	net.Conn
	br *bufio.Reader
	n  int
}

func newRawServer(t *testing.T, handle func(*rawConn)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{t: t, ln: ln, handle: handle}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *rawServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		n := int(s.accepted.Add(1)) - 1
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.handle(&rawConn{Conn: c, br: bufio.NewReader(c), n: n})
		}()
	}
}

func (s *rawServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *rawServer) addr() string { return s.ln.Addr().String() }

func (s *rawServer) client(t *testing.T, o Options) *Client {
	o.Addr = s.addr()
	c := New(o)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// readRequest reads one request (head and Content-Length body).
func (rc *rawConn) readRequest() (*http.Request, []byte, error) {
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer rc.SetReadDeadline(time.Time{})
	req, err := http.ReadRequest(rc.br)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(req.Body)
	return req, body, err
}

// readRawHead reads the request head bytes exactly as sent.
func (rc *rawConn) readRawHead() (string, error) {
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer rc.SetReadDeadline(time.Time{})
	var sb strings.Builder
	for {
		line, err := rc.br.ReadString('\n')
		sb.WriteString(line)
		if err != nil {
			return sb.String(), err
		}
		if line == "\r\n" {
			return sb.String(), nil
		}
	}
}

func (rc *rawConn) write(s string) {
	rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	rc.Write([]byte(s))
}

// waitClosed reads (and discards) until the client closes or resets the
// connection; it returns how long that took, or an error after limit.
func (rc *rawConn) waitClosed(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	rc.SetReadDeadline(start.Add(limit))
	buf := make([]byte, 64<<10)
	for {
		_, err := rc.br.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return time.Since(start), nil
		}
		return time.Since(start), err
	}
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// serveEach answers every request on every connection with resp(i), i
// counting requests across the server, and stops when resp returns "".
func serveEach(resp func(i int, req *http.Request) string) func(*rawConn) {
	var n atomic.Int32
	return func(rc *rawConn) {
		for {
			req, _, err := rc.readRequest()
			if err != nil {
				return
			}
			r := resp(int(n.Add(1))-1, req)
			if r == "" {
				return
			}
			rc.write(r)
		}
	}
}

// get runs one GET and reads the whole body.
func get(t *testing.T, c *Client, uri string) (*Response, string, error) {
	t.Helper()
	return do(t, c, &Request{Method: "GET", Host: "test", RequestURI: uri})
}

func do(t *testing.T, c *Client, req *Request) (*Response, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// parsed is the outcome of parsing bytes as a server's output.
type parsed struct {
	resp     *Response
	body     []byte
	err      error // from the head or the body
	reusable bool  // the connection would have been pooled
	consumed int   // bytes the parser took from data
}

// parseBytes runs the response parser over data, as if a server had sent
// it in answer to method, reading the body fully (at most bodyLimit).
func parseBytes(data []byte, method string, bodyLimit int64) parsed {
	return parseWith(data, method, readBufSize, bodyLimit)
}

// parseWith is parseBytes with a read buffer of bufSize bytes; the caller
// reads at most bodyLimit body bytes, then closes the body.
func parseWith(data []byte, method string, bufSize int, bodyLimit int64) parsed {
	r := bytes.NewReader(data)
	pc := &conn{br: bufio.NewReaderSize(r, bufSize), maxHead: DefaultMaxHeaderBytes}
	var p parsed
	resp, _, err := readResponse(pc, method)
	if err != nil {
		pc.release(false)
		p.err = err
	} else {
		p.resp = resp
		p.body, p.err = io.ReadAll(io.LimitReader(resp.Body, bodyLimit))
		resp.Body.Close()
	}
	p.reusable = pc.lastReuse
	p.consumed = len(data) - r.Len() - pc.br.Buffered()
	return p
}
