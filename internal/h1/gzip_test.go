package h1

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A gzip body with a Content-Length far past the read buffer decodes byte
// for byte (the buffered ReadByte path), and a Content-Length that cuts
// the gzip stream short fails instead of yielding a truncated body (it
// used to end cleanly once the framing ended, the decoder's output unread).
func TestGzipContentLengthAcrossBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var plain strings.Builder
	for plain.Len() < 256<<10 {
		fmt.Fprintf(&plain, `{"id":%d,"v":"%x"},`, rng.IntN(1e6), rng.Uint64())
	}
	want := plain.String()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write([]byte(want))
	zw.Close()
	if zb.Len() < 8*readBufSize {
		t.Fatalf("compressed body %d bytes: too small to span read buffers", zb.Len())
	}
	full := "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + strconv.Itoa(zb.Len()) + "\r\n\r\n" + zb.String()
	cut := "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + strconv.Itoa(zb.Len()/2) + "\r\n\r\n" + zb.String()[:zb.Len()/2]
	srv := newRawServer(t, serveEach(func(i int, req *http.Request) string {
		if req.URL.Path == "/cut" {
			return cut
		}
		return full
	}))
	c := srv.client(t, Options{})
	for range 2 { // the second from the pool, with a reset decoder
		resp, body, err := get(t, c, "/full")
		if err != nil || body != want || !resp.Uncompressed {
			t.Fatalf("full: %d bytes (want %d), Uncompressed %v, err %v", len(body), len(want), resp != nil && resp.Uncompressed, err)
		}
	}
	if _, body, err := get(t, c, "/cut"); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("gzip stream cut by Content-Length: %d bytes, err %v", len(body), err)
	}
}

// Decoding a pooled gzip body costs a bounded number of allocations, not
// one per compressed byte.
func TestGzipDecodeAllocs(t *testing.T) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(benchJSON8K)
	zw.Close()
	resp := "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + strconv.Itoa(zb.Len()) + "\r\n\r\n" + zb.String()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string { return resp }))
	c := srv.client(t, Options{})
	req := &Request{Method: "GET", Host: "test", RequestURI: "/", Header: http.Header{"Accept-Encoding": {"gzip"}}}
	buf := make([]byte, 16<<10)
	call := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := c.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		n := readAll(r.Body, buf)
		r.Body.Close()
		if n != len(benchJSON8K) {
			t.Fatalf("read %d bytes, want %d", n, len(benchJSON8K))
		}
	}
	call()
	if allocs := testing.AllocsPerRun(20, call); allocs > 40 {
		t.Errorf("%.0f allocations per gzip call (%d bytes compressed)", allocs, zb.Len())
	}
}
