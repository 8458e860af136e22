// Package h1 is a lean HTTP/1.1 client for calling one upstream host over a
// pool of keep-alive connections.
//
// It exists because net/http's Transport spends most of a small upstream
// call's CPU on machinery Manifold does not need (a reader and a writer
// goroutine per connection, channel hand-offs between them, per-request
// contexts and header copies). Client does the same work on the caller's
// goroutine: the request is written with one flush, the response head is
// parsed straight out of the connection's read buffer, and the connection,
// with its buffers, goes back to the pool when the body ends. Only a
// request body over 16 KiB is written by a goroutine of the call, while
// the response is read, so that a server answering before it reads the
// body (401, 413) is heard (see Request.Body).
//
// The client is deliberately strict, because a gateway that misreads where
// one response ends and the next begins can hand one client's answer to
// another (response smuggling / desync). Anything ambiguous in a response
// head or in its framing fails the call with ErrMalformedResponse and the
// connection is closed, never pooled. In particular, unlike net/http:
//
//   - every line of a head, chunk-size line and trailer must end in CRLF
//     (a bare LF is malformed);
//   - Transfer-Encoding must be exactly "chunked", and never comes with
//     Content-Length or in an HTTP/1.0 response;
//   - a status line is exactly HTTP/1.x SP 3DIGIT [SP reason], the status
//     100-599; no whitespace between a field name and its colon, no obs-fold
//     (line folding), no control bytes in a reason phrase, field value or
//     chunk extension; a Content-Length of at most 18 digits, a chunk size
//     of at most 16 hex digits; a head within Options.MaxHeaderBytes;
//   - a connection is pooled only if nothing beyond the response was
//     buffered, and a pooled connection on which the server sent anything
//     while idle (over TLS: anything but a post-handshake message such as
//     a session ticket, so also a close_notify) or which it closed is
//     discarded, not reused.
//
// Where both accept a response, the client and net/http.ReadResponse agree
// on it, headers included (FuzzReadResponse checks this), except that the
// client decodes a gzip body (ReadResponse leaves that to the Transport).
//
// What the client never does: follow redirects (a 3xx is returned as is),
// add an Accept-Encoding of its own (the caller's, if any, is sent; fetch
// sends gzip for an upstream with compression: true), speak HTTP/2, use
// proxies or read the environment.
//
// Cancellation: the request's context bounds the whole call, including the
// body read. Its deadline becomes the connection's deadline, and when the
// context ends (cancel or deadline) the connection is closed at once, so the
// upstream sees the call abandoned; the error then wraps the context's error.
// No goroutine outlives Do or the body's end except, for a moment, the one
// context.AfterFunc starts to close the connection, which Do and Body wait
// for; the writer of a large request body ends before Do returns; and a
// dial that a call started but did not need (a released connection served
// it first), which ends within DialTimeout and pools its connection (see
// dial.go: such spare dials are bounded by MaxIdleConns and cancelled by
// CloseIdleConnections).
package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// ErrMalformedResponse is wrapped by every error caused by a response that
// does not parse or whose framing is ambiguous (see the package doc). The
// connection it came on is always closed: after such an error nobody can
// tell where the next response would begin.
var ErrMalformedResponse = errors.New("h1: malformed HTTP response")

// ErrConnLimit is wrapped, with the context's error, by the error of a call
// whose context ended while it waited at MaxConns for a connection, without
// a dial of its own: the call never reached the upstream, so its failure
// says nothing about the upstream's health.
var ErrConnLimit = errors.New("h1: no connection within MaxConns")

// ErrInvalidRequest is wrapped by the errors Do returns, before dialing or
// writing anything, for a Request that cannot be sent safely (a method that
// is not a token, a request-target or header that could inject lines, ...).
var ErrInvalidRequest = errors.New("h1: invalid request")

// Defaults for the zero Options fields.
const (
	// DefaultMaxIdleConns is the default Options.MaxIdleConns.
	DefaultMaxIdleConns = 64
	// DefaultIdleTimeout is the default Options.IdleTimeout.
	DefaultIdleTimeout = 90 * time.Second
	// DefaultMaxHeaderBytes is the default Options.MaxHeaderBytes.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultDialTimeout is the default Options.DialTimeout.
	DefaultDialTimeout = 30 * time.Second
)

// Options configures a Client. Zero fields take the defaults above, so that
// a Client built from a partial Options is still bounded everywhere.
type Options struct {
	// Addr is the host:port every connection dials.
	Addr string
	// TLS, when non-nil, makes every connection TLS. The caller sets
	// ServerName (empty: the host part of Addr) and RootCAs etc.; the
	// certificate is verified as crypto/tls does. The client clones the
	// config and offers only "http/1.1" by ALPN, so the server cannot
	// switch to HTTP/2.
	TLS *tls.Config
	// DialTimeout bounds connecting plus the TLS handshake (the call's
	// context bounds it too). Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxIdleConns is how many idle connections are kept for reuse;
	// connections released beyond it are closed. It also bounds the spare
	// dials (started by calls that a released connection served first)
	// plus the idle connections. Zero means DefaultMaxIdleConns; a
	// negative value disables pooling (and every call waits for its own
	// dial).
	MaxIdleConns int
	// IdleTimeout is how long a connection may sit idle before it is closed
	// instead of reused (servers drop idle connections too, and a request
	// sent on one they just dropped fails). Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConns bounds the connections open or being dialed at once. A call
	// that finds no idle connection while the limit is reached waits, under
	// its context, for a connection to be released (it gets the longest
	// waiting call's turn) or to close (which lets it dial). Zero or less
	// means no limit.
	MaxConns int
	// MaxHeaderBytes bounds a response head (status line and header lines,
	// interim 1xx heads included), so a hostile upstream cannot make the
	// client buffer without limit. Zero means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

// Request is one HTTP/1.1 request as it goes on the wire. It holds only
// what Manifold sends upstream; the client adds Host, and Content-Length
// when there is a body (or the method is POST, PUT or PATCH).
type Request struct {
	// Method is the request method, e.g. "GET"; it must be a token.
	// CONNECT is refused: the client does not do tunnels.
	Method string
	// Host is the Host header value; empty means Options.Addr.
	Host string
	// RequestURI is the request-target as written on the wire: an
	// already-escaped path and query starting with "/". Bytes that could
	// end the request line or start another (CR, LF, SP, NUL, any control
	// or non-ASCII byte) and '#' make the request invalid.
	RequestURI string
	// Header is sent as written: keys verbatim, each value on its own
	// line. Keys must be tokens and values free of control characters
	// (HTAB aside), else the request is invalid. Host, Content-Length and
	// Transfer-Encoding keys are ignored (the client owns framing).
	// "Connection: close" is honoured: the connection is not reused.
	Header http.Header
	// Body is the request body, sent with Content-Length; nil means none.
	// It is only read, so one slice may be shared by concurrent calls.
	//
	// A server may answer before it has read the body (401, 413): Do
	// returns that final answer without waiting for the body to be
	// written. If the answer keeps the connection open, the rest of the
	// body still goes out as long as the server reads it (it means to
	// drain it), within Do; if the answer closes the connection, or the
	// server stops reading for 100 ms, the rest is not sent and the
	// connection is closed after the answer, never reused. A 1xx interim
	// answer does not stop the body.
	Body []byte
}

// Response is an upstream's final (non-1xx) response.
type Response struct {
	// StatusCode is the status code, 100-599 (never 1xx: interim responses
	// are skipped).
	StatusCode int
	// ProtoMinor is the HTTP/1.x minor version the upstream answered with.
	ProtoMinor int
	// Header holds the response headers under canonical keys. The client
	// removes Transfer-Encoding (it consumed the chunked framing; copying
	// it onto another response would corrupt that response's framing),
	// and Content-Encoding and Content-Length when it decoded gzip.
	Header http.Header
	// ContentLength is the length of Body, or -1 when it is not known in
	// advance (chunked, close-delimited or decoded gzip). For a HEAD
	// request it is the declared length (-1 if none) while Body is empty.
	ContentLength int64
	// Uncompressed reports that the upstream sent Content-Encoding: gzip
	// and Body yields the decoded bytes.
	Uncompressed bool
	// Body streams the response body. It must be closed. The connection
	// goes back to the pool as soon as the body has been read to its end
	// (the Read that returns io.EOF) or when Close finds the rest of a
	// short body already buffered; otherwise Close closes it. Body reads
	// stay under the request's context: to abort a read, end the context
	// (which also closes the connection of a body that was abandoned
	// without Close). Body is not safe for concurrent use.
	Body io.ReadCloser
}

// Client is a pool of HTTP/1.1 keep-alive connections to one upstream host.
// It is safe for concurrent use; every connection carries one request at a
// time (no pipelining). The zero value is not usable: call New.
type Client struct {
	opts      Options
	tlsConfig *tls.Config // clone of opts.TLS with NextProtos = http/1.1
	dialer    net.Dialer

	mu         sync.Mutex
	idle       []*conn     // LIFO stack: idle[len-1] is the most recently used
	sweep      *time.Timer // closes expired idle conns; created on first use
	sweepArmed bool        // sweep will fire (or is firing)
	waiters    wantQueue   // calls waiting for a connection, oldest first (dial.go)
	needDial   wantQueue   // those of them waiting at MaxConns for a slot to dial with
	dials      map[*dialing]struct{}
	spare      int  // dials in flight that no call waits for, not cancelled
	conns      int  // with MaxConns: connections open plus dials in flight
	closed     bool // Close was called: released connections are closed, not pooled
}

// New returns a Client for o.Addr. It does not dial: connections are made
// on demand and kept up to o.MaxIdleConns.
func New(o Options) *Client {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.MaxIdleConns == 0 {
		o.MaxIdleConns = DefaultMaxIdleConns
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	c := &Client{
		opts:     o,
		dialer:   net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second},
		needDial: wantQueue{k: 1},
	}
	if o.TLS != nil {
		c.tlsConfig = o.TLS.Clone()
		c.tlsConfig.NextProtos = []string{"http/1.1"}
	}
	return c
}

// Do sends req and reads the response head. On success the caller must
// close Response.Body. Do never follows redirects and never retries, except
// once, on a fresh connection, when a reused connection fails before any
// byte of the response arrived and replaying is safe (see replayable). At
// MaxConns, with no slot to dial with, the replay takes the next connection
// that becomes available instead, which may be a pooled one that passed the
// liveness check; if that one fails the same way, the call fails.
//
// Errors: ErrInvalidRequest for a request that cannot be sent safely;
// ErrMalformedResponse for a response that does not parse; an error
// wrapping ctx's error (context.Canceled, context.DeadlineExceeded) when
// ctx ended; else the network error.
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("h1: %w", err)
	}
	pc, err := c.getConn(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := pc.roundTrip(ctx, req)
	if err == nil {
		return resp, nil
	}
	var se *staleError
	if !errors.As(err, &se) {
		return nil, err
	}
	// A reused connection failed before any response byte arrived: the
	// server most likely closed it while it was idle. Replay once, on a
	// connection dialed for the purpose, if that cannot do harm.
	if ctx.Err() != nil || !(se.nothingWritten || req.replayable()) {
		return nil, se.err
	}
	pc, err = c.dialFresh(ctx)
	if err != nil {
		return nil, err
	}
	resp, err = pc.roundTrip(ctx, req)
	if errors.As(err, &se) {
		err = se.err // the replay is never replayed
	}
	return resp, err
}

// CloseIdleConnections closes every idle connection. Connections in use
// are unaffected and may be pooled again when their call ends. Manifold
// calls it when a reload drops or changes the upstream.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	if c.sweep != nil {
		c.sweep.Stop()
	}
	c.sweepArmed = false
	c.cancelSpareDials()
	c.mu.Unlock()
	for _, pc := range idle {
		pc.close()
	}
}

// Close closes every idle connection, as CloseIdleConnections does, and
// from then on closes each connection in use when its call ends instead of
// pooling it: the client of an upstream instance that a reload removed
// drains and then holds no socket. Calls may still be made; their
// connections are closed after use.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.CloseIdleConnections()
}

// popIdle takes the most recently pooled connection, closing expired ones
// (all of them are older than the top, so an expired top empties the pool).
func (c *Client) popIdle() *conn {
	c.mu.Lock()
	n := len(c.idle)
	if n == 0 {
		c.mu.Unlock()
		return nil
	}
	pc := c.idle[n-1]
	c.idle[n-1] = nil
	c.idle = c.idle[:n-1]
	if time.Since(pc.idleAt) < c.opts.IdleTimeout {
		c.mu.Unlock()
		return pc
	}
	expired := c.idle
	c.idle = nil
	c.mu.Unlock()
	pc.close()
	for _, old := range expired {
		old.close()
	}
	return nil
}

// putIdle hands pc to the longest waiting call (see dial.go), once it
// passed the liveness check, else pools it, or reports false when the pool
// is full or pc failed the check.
func (c *Client) putIdle(pc *conn) bool {
	if c.opts.MaxIdleConns < 0 {
		return false
	}
	pc.idleAt = time.Now()
	c.mu.Lock()
	if c.waiters.n > 0 && pc.reused {
		// A connection handed to a waiting call skips getConn's liveness
		// check, so it is probed here (outside the lock): what the server
		// sent after the response, such as the tail of a body longer than
		// its Content-Length, that bufio never buffered, would otherwise be
		// read as the waiting call's answer. One syscall, only when a call
		// waits.
		c.mu.Unlock()
		if !pc.alive() {
			return false // the caller closes it; with MaxConns that frees a slot
		}
		c.mu.Lock()
	}
	if c.waiters.n > 0 {
		w := c.popWaiter()
		c.mu.Unlock()
		w.ch <- dialResult{pc: pc}
		return true
	}
	defer c.mu.Unlock()
	if c.closed || len(c.idle) >= c.opts.MaxIdleConns {
		return false
	}
	c.idle = append(c.idle, pc)
	if !c.sweepArmed {
		c.sweepArmed = true
		if c.sweep == nil {
			c.sweep = time.AfterFunc(c.opts.IdleTimeout, c.sweepIdle)
		} else {
			c.sweep.Reset(c.opts.IdleTimeout)
		}
	}
	return true
}

// sweepIdle runs from the (single) sweep timer: it closes the connections
// idle longer than IdleTimeout, so a pool that is no longer used does not
// hold sockets (that the server has long closed) forever, and re-arms the
// timer for the oldest survivor.
func (c *Client) sweepIdle() {
	now := time.Now()
	c.mu.Lock()
	i := 0
	for i < len(c.idle) && now.Sub(c.idle[i].idleAt) >= c.opts.IdleTimeout {
		i++
	}
	expired := make([]*conn, i)
	copy(expired, c.idle[:i])
	n := copy(c.idle, c.idle[i:])
	clear(c.idle[n:])
	c.idle = c.idle[:n]
	c.sweepArmed = n > 0
	if n > 0 {
		c.sweep.Reset(c.opts.IdleTimeout - now.Sub(c.idle[0].idleAt))
	}
	c.mu.Unlock()
	for _, pc := range expired {
		pc.close()
	}
}

// idleCount reports the number of pooled connections (for tests).
func (c *Client) idleCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.idle)
}

// replayable reports whether req may be sent a second time after a reused
// connection failed with part of the request written but no response byte
// read. The server may have received and acted on the first copy before the
// connection died, so only methods that are safe to repeat qualify: GET,
// HEAD, OPTIONS and TRACE (RFC 9110 §9.2.1), or any request carrying an
// Idempotency-Key / X-Idempotency-Key header, which is the caller's promise
// that the server deduplicates. (This is net/http's rule. A bodiless POST or
// DELETE is not replayed: an empty body says nothing about side effects.)
// A request of which not a byte was written is always replayable.
func (r *Request) replayable() bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	for k := range r.Header {
		if len(k) == len("Idempotency-Key") && equalFold(k, "Idempotency-Key") ||
			len(k) == len("X-Idempotency-Key") && equalFold(k, "X-Idempotency-Key") {
			return true
		}
	}
	return false
}
