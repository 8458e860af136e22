package h1

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func gzipped(s string) string {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

// TestParseFraming: every way a response body can be framed, at the
// reader level (the loopback tests repeat the important ones on sockets).
func TestParseFraming(t *testing.T) {
	t.Parallel()
	gz := gzipped(`{"a":1}`)
	tests := []struct {
		name     string
		method   string
		in       string
		status   int
		body     string
		length   int64
		reusable bool
		header   http.Header // subset that must be present
		absent   []string    // header keys that must be absent
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
			status: 200, body: "hello", length: 5, reusable: true},
		{name: "content-length zero", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			status: 200, length: 0, reusable: true},
		{name: "repeated identical content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
			status: 200, body: "abc", length: 3, reusable: true,
			// One value, as net/http keeps (found by FuzzReadResponse).
			header: http.Header{"Content-Length": {"3"}}},
		{name: "no reason phrase", in: "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
			status: 200, body: "x", length: 1, reusable: true},
		{name: "empty reason phrase", in: "HTTP/1.1 404 \r\nContent-Length: 1\r\n\r\nx",
			status: 404, body: "x", length: 1, reusable: true},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			status: 200, body: "hello world", length: -1, reusable: true, absent: []string{"Transfer-Encoding"}},
		{name: "chunked upper-case hex and TE", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
			status: 200, body: "0123456789", length: -1, reusable: true},
		{name: "chunked extensions and trailers", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"3;name=value\r\nabc\r\n2 ; x=\"q\"\r\nde\r\n0;last\r\nX-Trailer: 1\r\nX-Other: two\r\n\r\n",
			status: 200, body: "abcde", length: -1, reusable: true, absent: []string{"X-Trailer"}},
		{name: "chunked leading zeros", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0003\r\nabc\r\n000\r\n\r\n",
			status: 200, body: "abc", length: -1, reusable: true},
		{name: "close-delimited", in: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
			status: 200, body: "until the end", length: -1, reusable: false},
		{name: "HEAD with content-length", method: "HEAD", in: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
			status: 200, length: 1234, reusable: true, header: http.Header{"Content-Length": {"1234"}}},
		{name: "HEAD chunked", method: "HEAD", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			status: 200, length: -1, reusable: true},
		{name: "HEAD without length", method: "HEAD", in: "HTTP/1.1 200 OK\r\n\r\n",
			status: 200, length: -1, reusable: true},
		{name: "204", in: "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", status: 204, reusable: true},
		{name: "204 without length", in: "HTTP/1.1 204 No Content\r\n\r\n", status: 204, reusable: true},
		{name: "304 with content-length", in: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", status: 304, reusable: true},
		{name: "interim 100 and 103 skipped", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", status: 200, body: "ok", length: 2, reusable: true, absent: []string{"Link"}},
		{name: "redirect returned as is", in: "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
			status: 302, reusable: true, header: http.Header{"Location": {"/elsewhere"}}},
		{name: "connection close", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
			status: 200, body: "ok", length: 2, reusable: false},
		{name: "connection keep-alive, close", in: "HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok",
			status: 200, body: "ok", length: 2, reusable: false},
		{name: "HTTP/1.0 closes by default", in: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
			status: 200, body: "ok", length: 2, reusable: false},
		{name: "HTTP/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
			status: 200, body: "ok", length: 2, reusable: true},
		{name: "HTTP/1.0 keep-alive close-delimited", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\nok",
			status: 200, body: "ok", length: -1, reusable: false},
		{name: "canonical keys and repeated headers", in: "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-custom-thing:  a \r\n" +
			"Set-Cookie: a=1\r\nSET-COOKIE: b=2\r\nContent-Length: 0\r\n\r\n", status: 200, reusable: true,
			header: http.Header{"Content-Type": {"application/json"}, "X-Custom-Thing": {"a"}, "Set-Cookie": {"a=1", "b=2"}}},
		{name: "empty header value", in: "HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n",
			status: 200, reusable: true, header: http.Header{"X-Empty": {""}}},
		{name: "obs-text in value", in: "HTTP/1.1 200 OK\r\nX-Latin: caf\xe9\r\nContent-Length: 0\r\n\r\n",
			status: 200, reusable: true, header: http.Header{"X-Latin": {"caf\xe9"}}},
		{name: "gzip decoded", in: "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\nContent-Length: " +
			itoa(len(gz)) + "\r\n\r\n" + gz, status: 200, body: `{"a":1}`, length: -1, reusable: true,
			absent: []string{"Content-Encoding", "Content-Length"}, header: http.Header{"Content-Type": {"application/json"}}},
		{name: "gzip chunked", in: "HTTP/1.1 200 OK\r\nContent-Encoding: GZIP\r\nTransfer-Encoding: chunked\r\n\r\n" +
			chunk(gz[:10]) + chunk(gz[10:]) + "0\r\n\r\n", status: 200, body: `{"a":1}`, length: -1, reusable: true},
		{name: "gzip on HEAD untouched", method: "HEAD", in: "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 30\r\n\r\n",
			status: 200, length: 30, reusable: true, header: http.Header{"Content-Encoding": {"gzip"}}},
		{name: "other encodings passed through", in: "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 3\r\n\r\nxyz",
			status: 200, body: "xyz", length: 3, reusable: true, header: http.Header{"Content-Encoding": {"br"}}},
		{name: "head larger than the read buffer", in: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 10000) +
			"\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x", length: 1, reusable: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			p := parseBytes([]byte(tc.in), method, 1<<20)
			if p.err != nil {
				t.Fatalf("error: %v", p.err)
			}
			if p.resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", p.resp.StatusCode, tc.status)
			}
			if string(p.body) != tc.body {
				t.Errorf("body %q, want %q", p.body, tc.body)
			}
			if p.resp.ContentLength != tc.length {
				t.Errorf("ContentLength %d, want %d", p.resp.ContentLength, tc.length)
			}
			if p.reusable != tc.reusable {
				t.Errorf("reusable %v, want %v", p.reusable, tc.reusable)
			}
			if tc.reusable && p.consumed != len(tc.in) {
				t.Errorf("consumed %d of %d bytes", p.consumed, len(tc.in))
			}
			for k, v := range tc.header {
				if got := p.resp.Header[k]; !reflect.DeepEqual(got, v) {
					t.Errorf("Header[%s] = %q, want %q", k, got, v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := p.resp.Header[k]; ok {
					t.Errorf("Header[%s] present", k)
				}
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func chunk(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }

// malformedResponses are server outputs that must fail with
// ErrMalformedResponse and leave the connection closed. Shared by the
// reader-level and the loopback test, and seeds of the fuzz target.
var malformedResponses = []struct{ name, in string }{
	{"garbage status line", "HTCPCP/1.0 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n"},
	{"HTTP/2 version", "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"HTTP/2.0 version", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"HTTP/0.9 version", "HTTP/0.9 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"lower-case version", "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"two-digit status", "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"},
	{"four-digit status", "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"},
	{"status 99", "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n"},
	{"status 600", "HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n"},
	{"non-numeric status", "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"},
	{"two spaces after version", "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"control byte in reason", "HTTP/1.1 200 O\x00K\r\nContent-Length: 0\r\n\r\n"},
	{"101 unasked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"},
	{"leading empty line", "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
	{"header without colon", "HTTP/1.1 200 OK\r\nContent-Length 0\r\n\r\n"},
	{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"},
	{"tab before colon", "HTTP/1.1 200 OK\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"},
	{"empty header name", "HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 0\r\n\r\n"},
	{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"},
	{"obs-fold with tab", "HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\nContent-Length: 0\r\n\r\n"},
	{"first header folded", "HTTP/1.1 200 OK\r\n Content-Length: 0\r\n\r\n"},
	{"invalid name byte", "HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 0\r\n\r\n"},
	{"non-ASCII name", "HTTP/1.1 200 OK\r\nX-\xc3\xa9: 1\r\nContent-Length: 0\r\n\r\n"},
	{"NUL in value", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n"},
	{"CR in value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n"},
	{"TE and CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"CL and TE", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"},
	{"differing CL", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
	{"CL list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello"},
	{"negative CL", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
	{"plus CL", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"},
	{"hex CL", "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\nhello"},
	{"empty CL", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"},
	{"huge CL", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"},
	{"CL on HEAD still validated", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"},
	{"TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
	{"TE gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"},
	{"TE chunked, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"},
	{"TE twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"TE identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n"},
	{"TE with junk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"},
	{"TE in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
	{"chunk size not hex", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\nabc\r\n0\r\n\r\n"},
	{"chunk size 0x", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n"},
	{"chunk size signed", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n"},
	{"chunk size empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n"},
	{"chunk size leading space", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 3\r\nabc\r\n0\r\n\r\n"},
	{"chunk size junk after", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3 x\r\nabc\r\n0\r\n\r\n"},
	{"chunk size overflow", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n"},
	{"chunk size max int64+1", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\nabc\r\n0\r\n\r\n"},
	// Found by FuzzReadResponse: net/http refuses a chunk size of more
	// than 16 hex digits whatever its value; so does the client now.
	{"chunk size of 17 digits", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000\r\n\r\n"},
	{"chunk size of 17 digits, nonzero", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000003\r\nabc\r\n0\r\n\r\n"},
	{"chunk data without CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"},
	{"chunk data longer than size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n"},
	{"chunk line bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"},
	{"chunk data bare LF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n"},
	{"chunk extension with control byte", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\x01\r\nabc\r\n0\r\n\r\n"},
	{"trailer without colon", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nnot a field\r\n\r\n"},
	{"trailer obs-fold", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n"},
	{"bare LF status line", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"},
	{"bare LF header", "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n"},
	{"bare LF end of head", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n"},
	{"head too large", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", DefaultMaxHeaderBytes) + "\r\nContent-Length: 0\r\n\r\n"},
	{"too many interim responses", strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", maxInterim+1) + okResponse},
	{"bad interim header", "HTTP/1.1 103 Early Hints\r\nBad Header\r\n\r\n" + okResponse},
	{"head cut short", "HTTP/1.1 200 OK\r\nContent-Len"},
	{"status line cut short", "HTTP/1.1 20"},
}

// TestParseMalformed: every malformed server output fails with
// ErrMalformedResponse (wherever the parser notices: head or body) and the
// connection is never reusable.
func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for _, tc := range malformedResponses {
		for _, method := range []string{"GET", "HEAD"} {
			t.Run(tc.name+"/"+method, func(t *testing.T) {
				p := parseBytes([]byte(tc.in), method, 1<<20)
				if method == "HEAD" && p.err == nil && bodyOnlyProblem(tc.name) {
					// A HEAD response has no body: the broken body is
					// then the start of the next response, which the
					// pool refuses (bytes remain buffered).
					if p.reusable {
						t.Fatal("reusable with bytes left over")
					}
					return
				}
				if !errors.Is(p.err, ErrMalformedResponse) {
					t.Fatalf("err = %v, want ErrMalformedResponse", p.err)
				}
				if p.reusable {
					t.Fatal("connection reusable after a malformed response")
				}
			})
		}
	}
}

func bodyOnlyProblem(name string) bool {
	return strings.HasPrefix(name, "chunk") || strings.HasPrefix(name, "trailer")
}

// TestParseTruncatedBody: a body that ends early is io.ErrUnexpectedEOF,
// never a short success, and the connection is not reusable.
func TestParseTruncatedBody(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n",
		"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 30\r\n\r\n" + gzipped("hello")[:10],
	} {
		p := parseBytes([]byte(in), "GET", 1<<20)
		if !errors.Is(p.err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: err = %v, want io.ErrUnexpectedEOF", in, p.err)
		}
		if p.reusable {
			t.Errorf("%q: reusable", in)
		}
	}
}

// TestParseLeftovers: bytes after a complete response (a server sending
// more than it declared, or a second response nobody asked for) keep the
// connection out of the pool.
func TestParseLeftovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ method, in string }{
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"},
		{"GET", okResponse + okResponse},
		{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nX"},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
		{"GET", "HTTP/1.1 204 No Content\r\nContent-Length: 2\r\n\r\nok"},
		{"GET", "HTTP/1.1 304 Not Modified\r\n\r\n\r\n"},
	} {
		p := parseBytes([]byte(tc.in), tc.method, 1<<20)
		if p.err != nil {
			t.Errorf("%q: %v", tc.in, p.err)
		}
		if p.reusable {
			t.Errorf("%s %q: reusable with bytes left over", tc.method, tc.in)
		}
	}
}

// TestParseCloseEarly: closing a body before its end saves the connection
// only when the rest is already buffered, and never waits.
func TestParseCloseEarly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		in       string
		reusable bool
	}{
		{"CL rest buffered", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", true},
		{"chunked rest buffered", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\nX-T: 1\r\n\r\n", true},
		{"CL rest missing", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789", false},
		{"chunked rest missing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n567", false},
		{"chunked last chunk missing", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n", false},
		{"chunked malformed rest", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\nzz\r\n", false},
		{"close-delimited", "HTTP/1.1 200 OK\r\n\r\n0123456789", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bytes.NewReader([]byte(tc.in))
			pc := &conn{br: bufio.NewReaderSize(r, readBufSize), maxHead: DefaultMaxHeaderBytes}
			resp, _, err := readResponse(pc, "GET")
			if err != nil {
				t.Fatal(err)
			}
			var one [3]byte
			if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if pc.lastReuse != tc.reusable {
				t.Fatalf("reusable = %v, want %v", pc.lastReuse, tc.reusable)
			}
			if _, err := resp.Body.Read(one[:]); err != http.ErrBodyReadAfterClose {
				t.Fatalf("read after close: %v", err)
			}
		})
	}
}
