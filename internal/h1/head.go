package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxInterim bounds the 1xx responses skipped before the final one, so a
// server cannot keep a call busy forever with Early Hints.
const maxInterim = 8

// keepHeadBuf: a head scratch buffer that grew beyond this is not kept on
// the connection (a rare huge head should not pin 64 KiB per idle conn).
const keepHeadBuf = 16 << 10

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedResponse}, args...)...)
}

// readResponse reads the final response to a request with the given method
// from pc.br: interim 1xx heads are skipped, the final head is parsed, and
// the body is framed. For a response without a body, pc is released before
// it returns. gotBytes reports whether any byte of a response arrived (a
// failure before that, on a reused connection, allows a retry).
func readResponse(pc *conn, method string) (resp *Response, gotBytes bool, err error) {
	limit := pc.maxHead
	var head []byte
	var code, minor int
	for interim := 0; ; interim++ {
		head, err = readHead(pc.br, pc.head[:0], limit)
		if cap(head) <= keepHeadBuf {
			pc.head = head[:0]
		}
		if len(head) > 0 {
			gotBytes = true
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(head) > 0 {
				err = malformed("head cut short: %w", io.ErrUnexpectedEOF)
			}
			return nil, gotBytes, err
		}
		limit -= len(head)
		eol := indexByte(head, '\n')
		code, minor, err = parseStatusLine(head[:eol-1])
		if err != nil {
			return nil, true, err
		}
		if code >= 200 {
			break
		}
		if code == http.StatusSwitchingProtocols {
			return nil, true, malformed("101 Switching Protocols to a request that asked for no upgrade")
		}
		if interim == maxInterim {
			return nil, true, malformed("more than %d interim 1xx responses", maxInterim)
		}
		// Interim response: its fields must parse, then it is dropped.
		if _, err := parseFields(string(head[eol+1:]), nil, nil); err != nil {
			return nil, true, err
		}
	}

	r := &response{}
	s := string(head) // the only copy: keys and values are substrings of it
	eol := strings.IndexByte(s, '\n')
	n := strings.Count(s, "\n") - 2
	vals := r.vals[:]
	if n > len(vals) {
		vals = make([]string, n)
	}
	h, err := parseFields(s[eol+1:], make(http.Header, n), vals)
	if err != nil {
		return nil, true, err
	}

	resp = &r.Response
	resp.StatusCode = code
	resp.ProtoMinor = minor
	resp.Header = h

	// Framing (RFC 9112 §6.3), strictly: every ambiguity is an error.
	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		switch {
		case minor == 0:
			return nil, true, malformed("Transfer-Encoding in an HTTP/1.0 response")
		case len(te) != 1 || !equalFold(te[0], "chunked"):
			return nil, true, malformed("Transfer-Encoding %q is not exactly chunked", te)
		case h["Content-Length"] != nil:
			return nil, true, malformed("both Transfer-Encoding and Content-Length")
		}
		chunked = true
		delete(h, "Transfer-Encoding")
	}
	length := int64(-1)
	if cl, ok := h["Content-Length"]; ok {
		if length, err = parseContentLength(cl); err != nil {
			return nil, true, err
		}
		if len(cl) > 1 {
			h["Content-Length"] = cl[:1] // identical repeats: one value, as net/http keeps
		}
	}
	closeTok, keepAliveTok := false, false
	for _, v := range h["Connection"] {
		closeTok = closeTok || hasToken(v, "close")
		keepAliveTok = keepAliveTok || hasToken(v, "keep-alive")
	}
	keepAlive := !closeTok && (minor >= 1 || keepAliveTok)

	if method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified {
		resp.ContentLength = 0
		if method == http.MethodHead {
			resp.ContentLength = length
		}
		resp.Body = http.NoBody
		pc.release(keepAlive)
		return resp, true, nil
	}

	b := &r.body
	b.pc = pc
	b.reuse = keepAlive
	switch {
	case chunked:
		b.mode = modeChunked
		resp.ContentLength = -1
	case length == 0:
		resp.ContentLength = 0
		resp.Body = http.NoBody
		pc.release(keepAlive)
		return resp, true, nil
	case length > 0:
		b.mode = modeLength
		b.remaining = length
		resp.ContentLength = length
	default:
		// Neither: the body runs to the connection's end (RFC 9112
		// §6.3 item 8), so the connection cannot be reused.
		b.mode = modeEOF
		b.reuse = false
		resp.ContentLength = -1
	}
	if ce := h["Content-Encoding"]; len(ce) == 1 && equalFold(ce[0], "gzip") {
		b.gzip = true
		resp.Uncompressed = true
		resp.ContentLength = -1
		delete(h, "Content-Encoding")
		delete(h, "Content-Length")
	}
	resp.Body = b
	return resp, true, nil
}

// response allocates a Response, its body reader and the backing array of
// a typical number of header values together.
type response struct {
	Response
	body body
	vals [8]string
}

// readHead appends one head, from the status line to the empty line that
// ends it, to dst. Every line must end in CRLF; the head may not exceed
// limit bytes. On error, dst holds what was read (empty: nothing arrived).
func readHead(br *bufio.Reader, dst []byte, limit int) ([]byte, error) {
	lineStart := 0
	for {
		frag, err := br.ReadSlice('\n')
		if len(dst)+len(frag) > limit {
			return append(dst, frag...), malformed("response head larger than %d bytes", limit)
		}
		dst = append(dst, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return dst, err
		}
		line := dst[lineStart:]
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return dst, malformed("line not ended by CRLF")
		}
		if len(line) == 2 {
			if lineStart == 0 {
				return dst, malformed("empty line instead of a status line")
			}
			return dst, nil
		}
		lineStart = len(dst)
	}
}

// parseStatusLine parses "HTTP/1.x SP 3DIGIT [SP reason]" (no CRLF).
func parseStatusLine(line []byte) (code, minor int, err error) {
	if len(line) < len("HTTP/1.1 200") || string(line[:7]) != "HTTP/1." ||
		!isDigit(line[7]) || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) {
		return 0, 0, malformed("bad status line %q", truncate(line))
	}
	minor = int(line[7] - '0')
	code = int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0')
	if code < 100 || code > 599 {
		return 0, 0, malformed("status %d out of range", code)
	}
	if rest := line[12:]; len(rest) > 0 {
		if rest[0] != ' ' {
			return 0, 0, malformed("bad status line %q", truncate(line))
		}
		for _, c := range rest[1:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0, 0, malformed("control byte %#x in reason phrase", c)
			}
		}
	}
	return code, minor, nil
}

// parseFields parses header field lines (each ending in CRLF, then the
// empty line). When h is nil the lines are only validated. Keys are
// canonicalized; values are substrings of s (no copy per value), each
// first value placed in vals (one slot per line at least).
func parseFields(s string, h http.Header, vals []string) (http.Header, error) {
	for {
		eol := strings.IndexByte(s, '\n')
		if eol < 1 {
			return nil, malformed("head not ended by an empty line")
		}
		line := s[:eol-1] // without CRLF (readHead checked the CR)
		s = s[eol+1:]
		if line == "" {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, malformed("obsolete line folding")
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil, malformed("header line without colon %q", truncate([]byte(line)))
		}
		name := line[:colon]
		if !isToken(name) {
			return nil, malformed("invalid header name %q", truncate([]byte(name)))
		}
		v := trimOWS(line[colon+1:])
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
				return nil, malformed("header %s: control byte %#x in value", name, c)
			}
		}
		if h == nil {
			continue
		}
		key := canonicalKey(name)
		if vv := h[key]; vv != nil {
			h[key] = append(vv, v)
		} else {
			vals[0] = v
			h[key] = vals[:1:1]
			vals = vals[1:]
		}
	}
}

// parseContentLength accepts one or more identical values of 1*DIGIT that
// fit an int64. Lists ("5, 5"), signs, spaces and differing repeats are
// errors: two parsers reading different lengths is how smuggling starts.
func parseContentLength(vv []string) (int64, error) {
	v := vv[0]
	for _, o := range vv[1:] {
		if o != v {
			return 0, malformed("differing Content-Length values %q", vv)
		}
	}
	if v == "" || len(v) > 18 {
		return 0, malformed("bad Content-Length %q", v)
	}
	var n int64
	for i := 0; i < len(v); i++ {
		if !isDigit(v[i]) {
			return 0, malformed("bad Content-Length %q", v)
		}
		n = n*10 + int64(v[i]-'0')
	}
	return n, nil
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// equalFold is ASCII case-insensitive equality.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x != y && lower(x) != lower(y) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasToken reports whether the comma-separated list v holds token
// (case-insensitively), as in "Connection: keep-alive, close".
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		if i := strings.IndexByte(v, ','); i >= 0 {
			t, v = v[:i], v[i+1:]
		} else {
			t, v = v, ""
		}
		if equalFold(trimOWS(t), token) {
			return true
		}
	}
	return false
}

// tokenByte: tchar of RFC 9110 §5.6.2.
var tokenByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validHostByte: what a Host header may hold (reg-name, IP literal, port),
// as net/http's httpguts allows.
var validHostByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$%&'()*+,-.:;=[]_~" {
		t[c] = true
	}
	return t
}()

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

// canonicalKey returns the canonical form of a header name (a token), as
// http.CanonicalHeaderKey does, without allocating when name is already
// canonical (then name itself, a substring of the head, is the key) or is
// a common header (then the interned constant is).
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return canonicalSlow(name)
		}
		upper = c == '-'
	}
	return name
}

func canonicalSlow(name string) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(name)
	}
	b := buf[:len(name)]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonHeaders[string(b)]; ok {
		return k
	}
	return string(b)
}

// commonHeaders interns the names upstreams send most, for servers that
// send them in lower case.
var commonHeaders = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Origin", "Age", "Cache-Control",
		"Connection", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Type", "Date", "Etag", "Expires", "Keep-Alive", "Last-Modified",
		"Link", "Location", "Pragma", "Retry-After", "Server", "Set-Cookie",
		"Strict-Transport-Security", "Trailer", "Transfer-Encoding", "Vary",
		"Via", "Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options",
		"X-Request-Id", "Traceparent",
	} {
		m[k] = k
	}
	return m
}()
