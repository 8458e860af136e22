package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// drainLimit is how much of an unread body Close may consume to save the
// connection; it only ever takes bytes already buffered (see Close).
const drainLimit = 4 << 10

// maxChunkLine bounds a chunk-size line (with extensions) and a trailer
// line: each must fit the read buffer.
const maxChunkLine = readBufSize

const (
	modeLength  = iota + 1 // Content-Length
	modeChunked            // Transfer-Encoding: chunked
	modeEOF                // delimited by the connection closing
)

const (
	chunkSize = iota // expecting a chunk-size line
	chunkData        // inside chunk data
	chunkCRLF        // expecting the CRLF after chunk data
)

// errWouldBlock stops a drain when the rest of the body is not buffered.
var errWouldBlock = errors.New("h1: body not buffered")

// body reads one response body off its connection and releases the
// connection when the body ends: pooled after a clean end (when allowed),
// closed after anything else.
type body struct {
	pc        *conn // nil once released
	mode      uint8
	chunk     uint8 // chunked state
	reuse     bool  // the connection may be pooled after a clean end
	gzip      bool
	closed    bool
	drain     bool  // only consume what is buffered (Close)
	remaining int64 // Content-Length left, or chunk data left
	err       error // sticky: io.EOF after a clean end
	zr        *gzip.Reader
	gzRaw     int64 // framed bytes handed to the gzip reader so far
	// Two int32s in the space one int took: one field more made the
	// response allocation (Response, body and header values together) a
	// size class larger.
	trailerBytes int32   // trailer bytes read so far (at most maxHead)
	excess       int32   // chunked framing read beyond its allowance (at most maxChunkExcess plus one line)
	one          [1]byte // ReadByte's scratch: a local would escape, one allocation a byte
}

// Read reads the body; after its end it returns io.EOF, after any failure
// the same error again (the connection is closed by then).
func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.gzip && b.zr != nil && b.err == io.EOF {
		// The framing ended but the decoder has not: it must still
		// yield what it holds and find the stream's end, or a gzip
		// stream cut short by its Content-Length would end cleanly.
		return b.readGzip(p)
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.gzip {
		return b.readGzip(p)
	}
	return b.readRaw(p)
}

// Close releases the body. Unread data: if the rest of the body is already
// in the read buffer (up to drainLimit), it is consumed and the connection
// pooled; otherwise the connection is closed. Close never waits on the
// network.
func (b *body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.zr != nil {
		gzipPool.Put(b.zr)
		b.zr = nil
	}
	if b.pc == nil {
		return nil
	}
	if b.err == io.EOF {
		// The framed body ended; only the gzip stream was not read to
		// its end. The connection is at a response boundary.
		b.release(true)
		return nil
	}
	if !b.reuse || b.err != nil {
		b.finish(errClosedEarly)
		return nil
	}
	b.drain = true
	var buf [512]byte
	for n := 0; n <= drainLimit; {
		m, err := b.readRaw(buf[:])
		n += m
		if err != nil {
			if err != io.EOF {
				b.finish(err)
			}
			return nil
		}
	}
	b.finish(errClosedEarly)
	return nil
}

var errClosedEarly = errors.New("h1: body closed early")

// finish records how the framed body ended (err == io.EOF: cleanly) and
// releases the connection, pooled only after a clean end. A gzip body
// keeps its connection until the decoder has checked the end of the
// stream too (see readGzip), so that every body error closes it.
func (b *body) finish(err error) {
	if b.err == nil {
		b.err = err
	}
	if err == io.EOF && b.gzip && !b.closed {
		return
	}
	b.release(err == io.EOF)
}

// release gives the connection back once: pooled if clean and allowed.
func (b *body) release(clean bool) {
	if pc := b.pc; pc != nil {
		b.pc = nil
		pc.release(clean && b.reuse)
	}
}

// fail records a read error (wrapping the context's error if the context
// ended), releases the connection and returns the error.
func (b *body) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != errWouldBlock {
		err = b.pc.ioErr("read body", err)
	}
	b.finish(err)
	return b.err
}

// readRaw reads the framed (not decoded) body.
func (b *body) readRaw(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	br := b.pc.br
	switch b.mode {
	case modeLength:
		if len(p) == 0 {
			return 0, nil
		}
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		if b.drain && br.Buffered() == 0 {
			return 0, b.fail(errWouldBlock)
		}
		n, err := br.Read(p)
		b.remaining -= int64(n)
		if b.remaining == 0 {
			b.finish(io.EOF)
			return n, io.EOF
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	case modeEOF:
		if b.drain {
			return 0, b.fail(errWouldBlock)
		}
		n, err := br.Read(p)
		if err == io.EOF {
			b.finish(io.EOF)
			return n, io.EOF
		}
		if err != nil {
			return n, b.fail(err)
		}
		return n, nil
	}
	return b.readChunked(p)
}

func (b *body) readChunked(p []byte) (int, error) {
	br := b.pc.br
	for {
		switch b.chunk {
		case chunkSize:
			line, err := b.line(br)
			if err != nil {
				return 0, b.fail(err)
			}
			size, err := parseChunkSize(line)
			if err != nil {
				return 0, b.fail(err)
			}
			// Extensions are discarded, so a body framed mostly with
			// them would cost the wire and the parser megabytes for each
			// byte the caller's size cap counts. As net/http does, each
			// chunk may carry 16 bytes of framing plus twice its data;
			// beyond 16 KiB of excess the body fails.
			// Counted: the size line and the CRLF after the data (the
			// line's own CRLF is not), as net/http counts.
			b.excess = int32(max(int64(b.excess)+int64(len(line))+2-16-min(size, maxChunkExcess)*2, 0))
			if b.excess > maxChunkExcess {
				return 0, b.fail(malformed("chunked encoding contains too much non-data"))
			}
			if size == 0 {
				if err := b.trailers(br); err != nil {
					return 0, b.fail(err)
				}
				b.finish(io.EOF)
				return 0, io.EOF
			}
			b.remaining = size
			b.chunk = chunkData
		case chunkData:
			if len(p) == 0 {
				return 0, nil
			}
			if b.drain && br.Buffered() == 0 {
				return 0, b.fail(errWouldBlock)
			}
			if int64(len(p)) > b.remaining {
				p = p[:b.remaining]
			}
			n, err := br.Read(p)
			b.remaining -= int64(n)
			if b.remaining > 0 {
				if err != nil {
					return n, b.fail(err)
				}
				return n, nil
			}
			b.chunk = chunkCRLF
			// Common case: the last chunk follows, already buffered;
			// end now so the caller needs no extra Read for the EOF.
			if peek, _ := br.Peek(min(br.Buffered(), 7)); string(peek) == "\r\n0\r\n\r\n" {
				br.Discard(7)
				b.finish(io.EOF)
				return n, io.EOF
			}
			return n, nil
		case chunkCRLF:
			if b.drain && br.Buffered() < 2 {
				return 0, b.fail(errWouldBlock)
			}
			c1, err := br.ReadByte()
			if err != nil {
				return 0, b.fail(err)
			}
			c2, err := br.ReadByte()
			if err != nil {
				return 0, b.fail(err)
			}
			if c1 != '\r' || c2 != '\n' {
				return 0, b.fail(malformed("chunk data not followed by CRLF"))
			}
			b.chunk = chunkSize
		}
	}
}

// line reads one CRLF-terminated line that must fit the read buffer and
// returns it without the CRLF. In drain mode it never waits.
func (b *body) line(br *bufio.Reader) ([]byte, error) {
	if b.drain {
		buffered, _ := br.Peek(br.Buffered())
		if indexByte(buffered, '\n') < 0 {
			return nil, errWouldBlock
		}
	}
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, malformed("chunk-size or trailer line longer than %d bytes", maxChunkLine)
	}
	if err != nil {
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, malformed("chunked framing line not ended by CRLF")
	}
	return line[:len(line)-2], nil
}

// trailers reads the trailer section after the last chunk and discards it;
// each line must be a valid field line, and all of them fit MaxHeaderBytes.
func (b *body) trailers(br *bufio.Reader) error {
	for {
		line, err := b.line(br)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		b.trailerBytes += int32(len(line) + 2)
		if int(b.trailerBytes) > b.pc.maxHead {
			return malformed("trailers larger than %d bytes", b.pc.maxHead)
		}
		s := string(line) + "\r\n\r\n"
		if _, err := parseFields(s, nil, nil); err != nil {
			return fmt.Errorf("trailer: %w", err)
		}
	}
}

// maxChunkExcess is how much chunked framing beyond its allowance a body
// may hold (16 KiB, as net/http allows).
const maxChunkExcess = 16 << 10

// parseChunkSize parses "1*HEXDIG [ BWS ; chunk-ext ]": the size strictly
// (no sign, no 0x, no spaces before it, no overflow, at most 16 digits as
// net/http allows, leading zeros included), extensions tolerated but free
// of control bytes.
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i == 16 {
			return 0, malformed("chunk size of more than 16 hex digits")
		}
		if n > (1<<63-1)>>4 {
			return 0, malformed("chunk size overflows")
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, malformed("bad chunk size %q", truncate(line))
	}
	rest := line[i:]
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) > 0 && rest[0] != ';' {
		return 0, malformed("bad chunk size %q", truncate(line))
	}
	for _, c := range rest {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, malformed("control byte %#x in chunk extension", c)
		}
	}
	return n, nil
}

// gzipPool keeps gzip readers (their decompressor state is large).
var gzipPool sync.Pool

// rawReader exposes a body's framed bytes to the gzip reader; ReadByte
// keeps gzip from wrapping it in a bufio.Reader of its own.
type rawReader struct{ b *body }

func (r rawReader) Read(p []byte) (int, error) {
	n, err := r.b.readRaw(p)
	r.b.gzRaw += int64(n)
	return n, err
}

func (r rawReader) ReadByte() (byte, error) {
	b := r.b
	if b.mode == modeLength && b.remaining > 1 && b.err == nil && b.pc.br.Buffered() > 0 {
		// The common case, a buffered byte short of the body's end.
		b.remaining--
		b.gzRaw++
		return b.pc.br.ReadByte()
	}
	for {
		n, err := b.readRaw(b.one[:])
		if n == 1 {
			b.gzRaw++
			return b.one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

func (b *body) readGzip(p []byte) (int, error) {
	if b.zr == nil {
		zr, _ := gzipPool.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(rawReader{b})
		} else {
			err = zr.Reset(rawReader{b})
		}
		if err != nil {
			if zr != nil {
				gzipPool.Put(zr)
			}
			if err == io.EOF && b.err == io.EOF && b.gzRaw == 0 {
				b.release(true)
				return 0, io.EOF // empty body: nothing to decode
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the body ended inside the gzip header
			}
			return 0, b.gzipFail(err)
		}
		b.zr = zr
	}
	n, err := b.zr.Read(p)
	if err == io.EOF {
		if b.err != io.EOF {
			// The gzip stream ended but the framed body did not.
			return n, b.gzipFail(malformed("data after the gzip stream"))
		}
		gzipPool.Put(b.zr)
		b.zr = nil
		b.release(true)
		return n, io.EOF
	}
	if err != nil {
		return n, b.gzipFail(err)
	}
	return n, nil
}

// gzipFail: a decoding error (or a framing error surfacing through gzip)
// ends the body with the connection closed.
func (b *body) gzipFail(err error) error {
	if b.err != nil && b.err != io.EOF {
		return b.err // the framing error, already recorded
	}
	if b.pc != nil {
		err = b.pc.ioErr("read body", err)
	}
	b.err = fmt.Errorf("h1: gzip: %w", err)
	b.release(false)
	b.zr = nil // state unknown: not pooled
	return b.err
}
