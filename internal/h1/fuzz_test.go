package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// fuzzSeeds are valid responses and smuggling attempts; the malformed
// table of parse_test.go is added too.
var fuzzSeeds = []string{
	okResponse,
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"id\":42,\"a\"}",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0;x\r\nX-Trailer: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\n\r\nclose-delimited",
	"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\nContent-Length: 20\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + okResponse,
	"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 31\r\n\r\n" + gzipped("hello"),
	"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(gzipped("hi")) + "0\r\n\r\n",
	// Smuggling attempts: two framings, obfuscated framing headers, a
	// second response hidden in the body or after it.
	"HTTP/1.1 200 OK\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 05\r\n\r\nhello",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloHTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\nHTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 0\n\nHTTP/1.1 200 OK\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
	"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
}

// FuzzReadResponse feeds arbitrary bytes to the response parser as a
// server's answer to a GET or a HEAD. It must never panic or hang; a
// success must be consistent with its framing; a connection it would pool
// must sit exactly at the end of the response; and when net/http also
// accepts the bytes, both must agree on status, body and where the
// response ended (a disagreement is how desyncs start).
func FuzzReadResponse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	for _, tc := range malformedResponses {
		f.Add([]byte(tc.in), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		// A hang becomes a crash, so the engine saves the input.
		wd := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("hang on %q", data)) })
		defer wd.Stop()
		method := "GET"
		if head {
			method = "HEAD"
		}
		// The production buffer, and a tiny one that makes lines longer
		// than the buffer (and refills mid-line) reachable with small
		// inputs. (The tiny buffer may pool where the big one saw bytes
		// beyond the response: like bytes arriving after the check.)
		full := checkParse(t, data, method, readBufSize)
		small := checkParse(t, data, method, 64)
		if full.err == nil && small.err == nil &&
			(full.resp.StatusCode != small.resp.StatusCode || !bytes.Equal(full.body, small.body) ||
				full.consumed != small.consumed || full.reusable && !small.reusable) {
			t.Fatalf("buffer size changes the outcome: %d %q %v %d vs %d %q %v %d",
				full.resp.StatusCode, full.body, full.reusable, full.consumed,
				small.resp.StatusCode, small.body, small.reusable, small.consumed)
		}
		// Closing early (after a few body bytes) may save the connection
		// only where reading to the end would have, at the same place.
		if full.err == nil && len(full.body) > 0 {
			early := parseWith(data, method, readBufSize, int64(len(full.body)/2))
			if early.reusable && (!full.reusable || early.consumed != full.consumed) {
				t.Fatalf("early close pooled at %d; full read: reusable %v at %d", early.consumed, full.reusable, full.consumed)
			}
		}
	})
}

// checkParse parses data and checks the invariants of one outcome.
func checkParse(t *testing.T, data []byte, method string, bufSize int) parsed {
	t.Helper()
	const limit = 1 << 20
	p := parseWith(data, method, bufSize, limit)
	if p.err != nil {
		if p.reusable {
			t.Fatalf("buf %d: failed (%v) but reusable", bufSize, p.err)
		}
		return p
	}
	resp := p.resp
	if resp.StatusCode < 200 || resp.StatusCode > 599 {
		t.Fatalf("final status %d", resp.StatusCode)
	}
	noBody := method == "HEAD" || resp.StatusCode == 204 || resp.StatusCode == 304
	if noBody && len(p.body) != 0 {
		t.Fatalf("%d body bytes on a response that has none", len(p.body))
	}
	if !noBody && !resp.Uncompressed && resp.ContentLength >= 0 && int64(len(p.body)) != resp.ContentLength {
		if len(p.body) < limit {
			t.Fatalf("body %d bytes, ContentLength %d", len(p.body), resp.ContentLength)
		}
		return p // stopped reading at the limit
	}
	if p.reusable {
		if p.consumed != len(data) && len(data) <= bufSize {
			t.Fatalf("reusable with %d of %d bytes consumed", p.consumed, len(data))
		}
		// The response must stand on its own: parsing exactly the
		// consumed bytes gives the same answer.
		q := parseWith(data[:p.consumed], method, bufSize, limit)
		if q.err != nil || !q.reusable || q.consumed != p.consumed ||
			q.resp.StatusCode != resp.StatusCode || !bytes.Equal(q.body, p.body) {
			t.Fatalf("prefix reparse differs: err %v reusable %v consumed %d/%d", q.err, q.reusable, q.consumed, p.consumed)
		}
	}

	// Cross-check with net/http where it, too, accepts the input.
	std, stdBody, stdConsumed, err := stdParse(data, method, limit)
	if err != nil {
		return p
	}
	if std.StatusCode != resp.StatusCode {
		t.Fatalf("status %d, net/http %d", resp.StatusCode, std.StatusCode)
	}
	if !resp.Uncompressed && !bytes.Equal(stdBody, p.body) {
		t.Fatalf("body %q, net/http %q", p.body, stdBody)
	}
	if p.reusable && stdConsumed != p.consumed {
		t.Fatalf("response ends at %d, net/http says %d", p.consumed, stdConsumed)
	}
	return p
}

// stdParse reads the final response with net/http (skipping 1xx as the
// client does) and reports where it ended.
func stdParse(data []byte, method string, limit int64) (*http.Response, []byte, int, error) {
	r := bytes.NewReader(data)
	br := bufio.NewReaderSize(r, readBufSize)
	req := &http.Request{Method: method}
	for i := 0; ; i++ {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, nil, 0, err
		}
		if resp.StatusCode >= 200 {
			body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
			resp.Body.Close()
			if err != nil {
				return nil, nil, 0, err
			}
			return resp, body, len(data) - r.Len() - br.Buffered(), nil
		}
		if resp.StatusCode == 101 || i == maxInterim {
			return nil, nil, 0, errors.New("1xx")
		}
	}
}
