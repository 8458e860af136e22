package fetch_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// gzipIfAsked answers body, gzipped when the request accepts gzip, and
// reports each request's Accept-Encoding on seen.
func gzipIfAsked(body string, seen chan<- []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Values("Accept-Encoding")
		w.Header().Set("Content-Type", "application/json")
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			io.WriteString(w, body)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, body)
		zw.Close()
	}
}

// jsonBody is a JSON object of about size bytes.
func jsonBody(size int) string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d","tags":["a","b"],"price":%d.5}`, i, i, i*3)
	}
	b.WriteString(`]}`)
	return b.String()
}

// With compression (the default) both clients ask for gzip and hand back
// the decoded body; with compression: false neither sends Accept-Encoding.
func TestUpstreamCompressionAsksForGzip(t *testing.T) {
	body := jsonBody(8 << 10)
	for _, client := range []string{"lean", "stdlib"} {
		for _, compression := range []string{"", "true", "false"} {
			t.Run(client+"/compression="+compression, func(t *testing.T) {
				seenA, seenB := make(chan []string, 1), make(chan []string, 1)
				setting := ""
				if compression != "" {
					setting = ", compression: " + compression
				}
				ep := build(t, fmt.Sprintf(`
upstreams:
  a: {url: "{{a}}", client: %[1]s%[2]s}
  b: {url: "{{b}}", client: %[1]s%[2]s}
endpoints: [{path: /e, backends: [{upstream: a, path: /}, {upstream: b, path: /}]}]
`, client, setting), map[string]string{"a": serve(t, gzipIfAsked(body, seenA)), "b": serve(t, gzipIfAsked(`{"b":true}`, seenB))})
				res := ep.Fetch(context.Background(), inbound())
				if res[0].Err != nil || string(res[0].Body) != body {
					t.Fatalf("a: err %v, body %d bytes, want %d", res[0].Err, len(res[0].Body), len(body))
				}
				if res[1].Err != nil || string(res[1].Body) != `{"b":true}` {
					t.Fatalf("b: got %s %v", res[1].Body, res[1].Err)
				}
				want := "[gzip]"
				if compression == "false" {
					want = "[]"
				}
				for _, seen := range []chan []string{seenA, seenB} {
					if got := fmt.Sprint(<-seen); got != want {
						t.Errorf("upstream saw Accept-Encoding %s, want %s", got, want)
					}
				}
			})
		}
	}
}

// A forwarded Range header keeps the lean client from asking for gzip, as
// http.Transport does: a gzipped byte range could not be decoded.
func TestUpstreamCompressionNotWithRange(t *testing.T) {
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			seen := make(chan []string, 1)
			ep := build(t, `
upstreams: {u: {url: "{{u}}", client: `+client+`}}
endpoints: [{path: /e, forward_headers: [Range], backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": serve(t, gzipIfAsked(`{}`, seen))})
			in := inbound()
			in.Header = http.Header{"Range": {"bytes=0-"}}
			if res := ep.Fetch(context.Background(), in); res[0].Err != nil {
				t.Fatal(res[0].Err)
			}
			if got := <-seen; len(got) != 0 {
				t.Errorf("Accept-Encoding %q sent with a Range header", got)
			}
		})
	}
}

// bomb is 10 MB of zeros, gzipped (about 10 KB).
var bomb = func() []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(make([]byte, 10<<20))
	zw.Close()
	return b.Bytes()
}()

func serveBomb(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Encoding", "gzip")
	w.Header().Set("Content-Length", fmt.Sprint(len(bomb)))
	w.Write(bomb)
}

// max_response_bytes caps the decoded size: a gzip bomb far under the cap
// on the wire fails as "response too large", and only about the cap is
// ever inflated, not the 10 MB.
func TestUpstreamCompressionCapsDecodedSize(t *testing.T) {
	if len(bomb) > 64<<10 {
		t.Fatalf("the bomb is %d bytes on the wire", len(bomb))
	}
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			ep := build(t, `
upstreams: {u: {url: "{{u}}", client: `+client+`, max_response_bytes: 65536}}
endpoints: [{path: /e, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": serve(t, serveBomb)})
			ep.Fetch(context.Background(), inbound()) // warm the pools
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res := ep.Fetch(context.Background(), inbound())
			runtime.ReadMemStats(&after)
			if !errors.Is(res[0].Err, fetch.ErrTooLarge) || fetch.Reason(res[0].Err) != "response too large" {
				t.Fatalf("got %v (%q), want response too large", res[0].Err, fetch.Reason(res[0].Err))
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
				t.Errorf("the call allocated %d bytes: the bomb was inflated past the cap", alloc)
			}
		})
	}
}

// Passthrough relays a gzip answer decoded, without Content-Encoding or a
// stale Content-Length, with either client, and caps it by decoded size.
func TestUpstreamCompressionPassthrough(t *testing.T) {
	body := jsonBody(8 << 10)
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			seen := make(chan []string, 1)
			ep := build(t, `
upstreams: {u: {url: "{{u}}", client: `+client+`}}
endpoints: [{path: /e, backends: [{upstream: u, path: /, passthrough: true}]}]
`, map[string]string{"u": serve(t, gzipIfAsked(body, seen))})
			rel, err := ep.Relay(context.Background(), inbound())
			if err != nil {
				t.Fatal(err)
			}
			defer rel.Close()
			if got := <-seen; fmt.Sprint(got) != "[gzip]" {
				t.Errorf("Accept-Encoding %q, want gzip", got)
			}
			h := rel.Response.Header
			if h.Get("Content-Encoding") != "" || h.Get("Content-Length") != "" || rel.Response.ContentLength != -1 {
				t.Errorf("relayed headers %v, ContentLength %d: want the decoded body's", h, rel.Response.ContentLength)
			}
			got, err := io.ReadAll(rel.Body)
			if err != nil || string(got) != body {
				t.Fatalf("relayed %d bytes (want %d), err %v", len(got), len(body), err)
			}
		})
		t.Run(client+"/bomb", func(t *testing.T) {
			ep := build(t, `
upstreams: {u: {url: "{{u}}", client: `+client+`, max_response_bytes: 65536}}
endpoints: [{path: /e, backends: [{upstream: u, path: /, passthrough: true}]}]
`, map[string]string{"u": serve(t, serveBomb)})
			rel, err := ep.Relay(context.Background(), inbound())
			if err != nil {
				t.Fatal(err)
			}
			defer rel.Close()
			n, err := io.Copy(io.Discard, rel.Body)
			if !errors.Is(err, fetch.ErrTooLarge) || n > 65536 || !errors.Is(rel.Err(), fetch.ErrTooLarge) {
				t.Fatalf("relayed %d bytes, err %v, Err() %v", n, err, rel.Err())
			}
		})
	}
}
