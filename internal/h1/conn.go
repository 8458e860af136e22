package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Buffer sizes. A response head longer than the read buffer still parses
// (it is accumulated in conn.head); a chunk-size or trailer line must fit.
const (
	readBufSize  = 4 << 10
	writeBufSize = 4 << 10
)

// conn is one connection with its buffers; the struct lives as long as the
// connection and serves its requests one after the other.
type conn struct {
	client  *Client  // nil in parser tests and fuzzing
	nc      net.Conn // what is read and written (*tls.Conn or TCP)
	raw     net.Conn // the socket under nc; closing it stops any I/O
	prober  *prober  // looks at raw while idle; nil if raw has no fd
	isTLS   bool
	sock    *tlsSocket // what the tls.Conn reads from (TLS only)
	tls13   bool       // TLS 1.3 was negotiated
	one     [1]byte    // scratch for tlsAlive
	br      *bufio.Reader
	bw      *bufio.Writer
	head    []byte // scratch for the response head, reused
	maxHead int    // response head limit
	idleAt  time.Time
	reused  bool // a response was read on it before the current request
	// slot: it holds one of the client's MaxConns slots, given back once,
	// by close or by onCancel (a body dropped without Close).
	slot atomic.Bool

	// Per call.
	ctx         context.Context
	stop        func() bool    // context.AfterFunc's stop; nil if not armed
	cancelWG    sync.WaitGroup // held while onCancel may still run
	onCancelFn  func()         // pc.onCancel, bound once per connection
	deadlineSet bool
	broken      bool         // closed (or to be closed): never pooled
	written     atomic.Int64 // request bytes the socket accepted (retries, endWrite)
	closeAfter  bool         // the request said Connection: close
	lastReuse   bool         // what release decided (for tests and fuzzing)
	released    bool

	// The body writer of a call with a large body (see roundTripLarge).
	writing bool       // the writer runs (or ended, not yet waited for)
	wdone   chan error // its result; made once per connection
}

func newConn(c *Client, nc, raw net.Conn) *conn {
	pc := &conn{client: c, nc: nc, raw: raw, maxHead: c.opts.MaxHeaderBytes}
	pc.br = bufio.NewReaderSize(nc, readBufSize)
	pc.bw = bufio.NewWriterSize(writerFunc(pc.write), writeBufSize)
	pc.onCancelFn = pc.onCancel
	if sc, ok := raw.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			pc.prober = newProber(rc)
		}
	}
	return pc
}

// writerFunc adapts a method to io.Writer without an interface per call.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// write counts what the socket accepted, so a failed write of which not a
// byte went out can be replayed whatever the method.
func (pc *conn) write(p []byte) (int, error) {
	n, err := pc.nc.Write(p)
	pc.written.Add(int64(n))
	return n, err
}

// dial opens a new connection under ctx (and DialTimeout), TLS included.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	if c.tlsConfig == nil {
		nc, err := c.dialer.DialContext(ctx, "tcp", c.opts.Addr)
		if err != nil {
			return nil, ctxErr(ctx, "dial", err, false)
		}
		return newConn(c, nc, nc), nil
	}
	// As tls.Dialer does, but with a tlsSocket between crypto/tls and the
	// socket (see tlsAlive). DialTimeout bounds connecting and handshake.
	hctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	raw, err := c.dialer.DialContext(hctx, "tcp", c.opts.Addr)
	if err != nil {
		return nil, ctxErr(ctx, "dial", err, false)
	}
	cfg := c.tlsConfig
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(c.opts.Addr)
		if err != nil {
			host = c.opts.Addr
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	sock := &tlsSocket{Conn: raw}
	tc := tls.Client(sock, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, ctxErr(ctx, "dial", err, false)
	}
	st := tc.ConnectionState()
	if p := st.NegotiatedProtocol; p != "" && p != "http/1.1" {
		raw.Close()
		return nil, fmt.Errorf("h1: dial: server negotiated %q, not http/1.1", p)
	}
	pc := newConn(c, tc, raw)
	pc.isTLS = true
	pc.tls13 = st.Version >= tls.VersionTLS13
	pc.sock = sock
	sock.prober = pc.prober
	return pc, nil
}

// alive reports whether a pooled connection may carry a request. The read
// buffer is empty (release saw to it). On plain TCP the probe looks at the
// socket: anything there, bytes or the peer's close, means the connection
// is finished (a 408, or the tail of an over-long response, read as the
// next answer would be a desync).
func (pc *conn) alive() bool {
	if pc.isTLS {
		return pc.tlsAlive()
	}
	return pc.prober == nil || pc.prober.probe() == probeIdle
}

// tlsAlive is alive for TLS, where bytes in the socket prove nothing
// either way: a TLS 1.3 server may send a post-handshake message at any
// time (a NewSessionTicket, a KeyUpdate), which crypto/tls consumes without
// returning a byte, and the connection is fine; an alert (close_notify, as
// nginx sends when keepalive_timeout passes) or application data (a 408)
// means it is finished. And crypto/tls may hold records it read off the
// socket with the last answer, which no probe of the socket can see.
//
// So the check is a Read through the tls.Conn that must not block: in
// check mode the tlsSocket under it fails a Read at once with errIdleCheck,
// a temporary net.Error, when the socket holds nothing. crypto/tls passes a
// temporary error up without marking the connection broken (and keeps any
// partial record), so the connection stays usable. The connection is alive
// only if that Read returns nothing but errIdleCheck (every record that was
// there was consumed without application data, alert or error), the bytes
// read so far end at a record boundary (no record is half-read inside
// crypto/tls), and, below TLS 1.3, no byte was read at all (TLS 1.2 has no
// post-handshake message a client accepts).
func (pc *conn) tlsAlive() bool {
	s := pc.sock
	s.checking = true
	s.checked = 0
	n, err := pc.nc.Read(pc.one[:])
	s.checking = false
	return n == 0 && err == errIdleCheck && s.atBoundary() && (pc.tls13 || s.checked == 0)
}

// staleError marks a failure on a reused connection before any byte of the
// response arrived: the case where replaying on a fresh connection is
// legitimate (see Client.Do).
type staleError struct {
	err            error
	nothingWritten bool
}

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// syncBodyMax is the largest body written on the caller's goroutine, with
// the head, in one flush before the response is read. Such a write does
// not depend on the server reading: it fits the peer's receive window
// (64 KiB and more on any current stack) with room to spare, so a server
// that answers without reading the body is heard as soon as the flush
// returns. A larger body is written while the response is read (see
// roundTripLarge).
const syncBodyMax = 16 << 10

// earlyAnswerStall: after a final answer with keep-alive came before the
// whole body was sent, the call lets the writer go on as long as it makes
// progress, and stops it once no byte went out for this long (endWrite).
const earlyAnswerStall = 100 * time.Millisecond

// bodyChunk is the size of the writes of a large body, so that endWrite
// sees its progress.
const bodyChunk = 64 << 10

// roundTrip runs one request on pc; pc is released (pooled or closed) by
// the time the body ends, or before roundTrip returns an error.
func (pc *conn) roundTrip(ctx context.Context, req *Request) (*Response, error) {
	pc.watch(ctx)
	pc.written.Store(0)
	pc.closeAfter = false
	pc.released = false
	if len(req.Body) > syncBodyMax {
		return pc.roundTripLarge(ctx, req)
	}
	if err := pc.writeRequest(req); err != nil {
		return pc.writeFailed(ctx, req, err)
	}
	resp, gotBytes, err := readResponse(pc, req.Method)
	if err != nil {
		return nil, pc.readFailed(ctx, err, gotBytes, nil)
	}
	return resp, nil
}

// writeFailed ends a call whose one-flush write failed. If the server
// closed or reset the connection after part of the request arrived, it may
// have answered first (a 401 or 413 without reading the body): that answer
// waits in the socket, and is read and returned (the connection is then
// closed, not reused). Otherwise the write error is the call's.
func (pc *conn) writeFailed(ctx context.Context, req *Request, err error) (*Response, error) {
	werr := pc.ioErr("write request", err)
	if pc.written.Load() > 0 && ctx.Err() == nil && isConnLoss(err) {
		pc.broken = true
		resp, gotBytes, rerr := readResponse(pc, req.Method)
		if rerr == nil {
			return resp, nil
		}
		if gotBytes {
			pc.release(false)
			return nil, pc.ioErr("read response", rerr)
		}
	}
	pc.release(false)
	if pc.reused && ctx.Err() == nil && isConnLoss(err) {
		return nil, &staleError{err: werr, nothingWritten: pc.written.Load() == 0}
	}
	return nil, werr
}

// readFailed releases pc after the response could not be read and returns
// the call's error. werr is the body writer's error (roundTripLarge), nil
// if it succeeded or was stopped by the call.
func (pc *conn) readFailed(ctx context.Context, err error, gotBytes bool, werr error) error {
	err = pc.ioErr("read response", err)
	pc.release(false)
	if gotBytes || ctx.Err() != nil {
		return err
	}
	if werr != nil && isConnLoss(werr) {
		err = pc.ioErr("write request", werr) // the write failed first
	}
	if pc.reused && isConnLoss(err) {
		return &staleError{err: err, nothingWritten: pc.written.Load() == 0}
	}
	return err
}

// roundTripLarge runs a request whose body may not fit the socket buffers.
// Writing all of it before reading would not hear a server that answers
// without reading the body (a 401 from an auth check, a 413): the write
// blocks until the deadline, or fails when the server closes. So the body
// is written by a goroutine of the call while the caller reads the
// response; interim 1xx answers leave the writer alone. When a final answer
// arrives, the writer is waited for (endWrite) before roundTrip returns: if
// the body is not all out, the call stops it and the connection is not
// reused. The goroutine never outlives the call.
func (pc *conn) roundTripLarge(ctx context.Context, req *Request) (*Response, error) {
	pc.writeHead(req)
	if pc.wdone == nil {
		pc.wdone = make(chan error, 1)
	}
	pc.writing = true
	go pc.writeBody(req.Body)
	resp, gotBytes, err := readResponse(pc, req.Method)
	if err != nil {
		werr := pc.endWrite(false)
		return nil, pc.readFailed(ctx, err, gotBytes, werr)
	}
	// A bodiless answer was released by readResponse, writer ended: pc may
	// already serve another call, so only an answer with a body still
	// holding pc may touch it.
	if b, ok := resp.Body.(*body); ok && b.pc == pc {
		pc.endWrite(b.reuse)
	}
	return resp, nil
}

func (pc *conn) writeBody(b []byte) {
	var err error
	for len(b) > 0 && err == nil {
		n := min(len(b), bodyChunk)
		_, err = pc.bw.Write(b[:n])
		b = b[n:]
	}
	if err == nil {
		err = pc.bw.Flush()
	}
	pc.wdone <- err
}

// endWrite waits for the body writer, if one runs, and returns its error.
// A writer still busy means the server answered (or the call failed)
// before the whole body was sent. After a final answer that keeps the
// connection (drain), the server means to read the rest (nginx's return
// and net/http's server answer first and drain after), so the writer goes
// on while it makes progress; otherwise, or once it stalls for
// earlyAnswerStall, it is stopped by an expired write deadline (reads,
// such as of the answer's body, are not affected) and the connection is
// marked broken: with the request cut short on the wire it is closed when
// the call ends, never pooled.
func (pc *conn) endWrite(drain bool) error {
	if !pc.writing {
		return nil
	}
	pc.writing = false
	var err error
	select {
	case err = <-pc.wdone:
	default:
		finished := false
		if drain {
			t := time.NewTimer(earlyAnswerStall)
			for last := pc.written.Load(); !finished; {
				select {
				case err = <-pc.wdone:
					finished = true
					continue
				case <-t.C:
				}
				n := pc.written.Load()
				if n == last {
					break // stalled
				}
				last = n
				t.Reset(earlyAnswerStall)
			}
			t.Stop()
		}
		if !finished {
			pc.nc.SetWriteDeadline(aLongTimeAgo)
			err = <-pc.wdone
			// Even if the writer just made it, the write deadline is now in
			// the past: the connection must not be pooled.
			pc.broken = true
		}
	}
	if err != nil {
		pc.broken = true
	}
	return err
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0)

// isConnLoss reports whether err says the peer closed or reset the
// connection (not a timeout, not a parse error).
func isConnLoss(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// watch ties the call to ctx: ctx's deadline becomes the connection's, and
// ctx ending closes the socket (through context.AfterFunc, which starts a
// goroutine only when ctx actually ends), which unblocks any Read or Write
// and shows the upstream that the call was abandoned.
func (pc *conn) watch(ctx context.Context) {
	pc.ctx = ctx
	if pc.nc == nil {
		return
	}
	if d, ok := ctx.Deadline(); ok {
		pc.nc.SetDeadline(d)
		pc.deadlineSet = true
	}
	if ctx.Done() != nil {
		pc.cancelWG.Add(1)
		pc.stop = context.AfterFunc(ctx, pc.onCancelFn)
	}
}

func (pc *conn) onCancel() {
	defer pc.cancelWG.Done()
	pc.raw.Close()
	// The connection is dead: its slot goes back now, not at release,
	// which never comes for a body dropped without Close.
	if pc.slot.CompareAndSwap(true, false) {
		pc.client.releaseSlot()
	}
}

// unwatch detaches the call from its context. If the AfterFunc already
// started, it waits for it (so no goroutine outlives the call) and marks the
// connection broken: it is being closed.
func (pc *conn) unwatch() {
	if pc.stop == nil {
		return
	}
	if pc.stop() {
		pc.cancelWG.Done()
	} else {
		pc.cancelWG.Wait()
		pc.broken = true
	}
	pc.stop = nil
}

// release ends the call on pc: the connection is pooled when reuse is
// allowed and it is certain that the connection is at a response boundary
// (nothing buffered beyond the response), else closed. It runs once per
// call.
func (pc *conn) release(reuse bool) {
	if pc.released {
		return
	}
	pc.released = true
	if pc.writing {
		pc.endWrite(reuse)
	}
	pc.unwatch()
	reuse = reuse && !pc.broken && !pc.closeAfter && pc.br.Buffered() == 0
	pc.lastReuse = reuse
	if reuse && pc.client != nil {
		if pc.deadlineSet {
			pc.nc.SetDeadline(time.Time{})
			pc.deadlineSet = false
		}
		pc.reused = true
		pc.ctx = nil
		if pc.client.putIdle(pc) {
			return
		}
	}
	pc.close()
}

// close closes the socket. The TLS layer is bypassed on purpose: a
// close_notify could block on a peer that does not read, and HTTP/1.1
// framing does not need it.
func (pc *conn) close() {
	pc.broken = true
	if pc.raw != nil {
		pc.raw.Close()
	}
	if pc.slot.CompareAndSwap(true, false) {
		pc.client.releaseSlot()
	}
}

// ioErr describes an I/O error of the call. When the call's context ended,
// the result wraps the context's error (the I/O error is then only the
// consequence of the socket being closed or timing out).
func (pc *conn) ioErr(phase string, err error) error {
	return ctxErr(pc.ctx, phase, err, pc.deadlineSet)
}

func ctxErr(ctx context.Context, phase string, err error, deadlineSet bool) error {
	if errors.Is(err, ErrMalformedResponse) || errors.Is(err, ErrInvalidRequest) {
		return err
	}
	if ctx != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("h1: %s: %w", phase, cerr)
		}
	}
	if deadlineSet && errors.Is(err, os.ErrDeadlineExceeded) {
		// The socket deadline is the context's deadline; its timer may
		// just not have fired yet.
		return fmt.Errorf("h1: %s: %w", phase, context.DeadlineExceeded)
	}
	return fmt.Errorf("h1: %s: %w", phase, err)
}

// writeRequest writes the whole request into the write buffer and flushes
// once (a body larger than the buffer is written through).
func (pc *conn) writeRequest(req *Request) error {
	pc.writeHead(req)
	if len(req.Body) > 0 {
		pc.bw.Write(req.Body)
	}
	// On error the connection is closed, with whatever stayed buffered.
	return pc.bw.Flush()
}

// writeHead writes the request line and header into the write buffer (a
// write error stays in the bufio.Writer, for the flush to report).
func (pc *conn) writeHead(req *Request) {
	bw := pc.bw
	host := req.Host
	if host == "" && pc.client != nil {
		host = pc.client.opts.Addr
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.RequestURI)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		if skipRequestHeader(k) {
			continue
		}
		if len(k) == len("Connection") && equalFold(k, "Connection") {
			for _, v := range vv {
				if hasToken(v, "close") {
					pc.closeAfter = true
				}
			}
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if req.Body != nil || methodWantsLength(req.Method) {
		var num [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(num[:0], int64(len(req.Body)), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// methodWantsLength: RFC 9110 §8.6, a user agent should send
// Content-Length: 0 for a bodiless request whose method defines a body.
func methodWantsLength(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// skipRequestHeader: the keys whose values the client computes itself.
func skipRequestHeader(k string) bool {
	switch len(k) {
	case len("Host"):
		return equalFold(k, "Host")
	case len("Content-Length"):
		return equalFold(k, "Content-Length")
	case len("Transfer-Encoding"):
		return equalFold(k, "Transfer-Encoding")
	}
	return false
}

// validate checks everything that goes on the request line and in header
// lines, so that no caller-supplied string can end a line early, start a
// new header or a new request, or change the framing.
func (r *Request) validate() error {
	if r == nil {
		return fmt.Errorf("%w: nil request", ErrInvalidRequest)
	}
	if !isToken(r.Method) {
		return fmt.Errorf("%w: method %q is not a token", ErrInvalidRequest, r.Method)
	}
	if r.Method == http.MethodConnect {
		return fmt.Errorf("%w: CONNECT is not supported", ErrInvalidRequest)
	}
	if len(r.RequestURI) == 0 || r.RequestURI[0] != '/' {
		return fmt.Errorf("%w: request URI %q does not start with /", ErrInvalidRequest, r.RequestURI)
	}
	for i := 0; i < len(r.RequestURI); i++ {
		if c := r.RequestURI[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return fmt.Errorf("%w: request URI %q: byte %#x not allowed", ErrInvalidRequest, r.RequestURI, c)
		}
	}
	for i := 0; i < len(r.Host); i++ {
		if !validHostByte[r.Host[i]] {
			return fmt.Errorf("%w: Host %q: byte %#x not allowed", ErrInvalidRequest, r.Host, r.Host[i])
		}
	}
	for k, vv := range r.Header {
		if !isToken(k) {
			return fmt.Errorf("%w: header name %q is not a token", ErrInvalidRequest, k)
		}
		for _, v := range vv {
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
					return fmt.Errorf("%w: header %s: control byte %#x in value", ErrInvalidRequest, k, c)
				}
			}
		}
	}
	return nil
}
