package fetch_test

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/fetch"
)

// build compiles a one-endpoint config against the given upstream URLs and
// returns the endpoint runtime.
func build(t *testing.T, yaml string, urls map[string]string) *fetch.Endpoint {
	t.Helper()
	eps, _ := endpoints(t, yaml, urls)
	return eps[0]
}

func serve(t testing.TB, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func inbound() *fetch.Inbound { return &fetch.Inbound{Header: http.Header{}} }

func TestFetchResultsComeBackInConfigOrder(t *testing.T) {
	slow := serve(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(30 * time.Millisecond) // the first backend finishes last
		io.WriteString(w, `{"n":1}`)
	})
	fast := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"n":2}`) })
	ep := build(t, `
upstreams: {slow: {url: "{{slow}}"}, fast: {url: "{{fast}}"}}
endpoints:
  - path: /e
    backends: [{upstream: slow, path: /}, {upstream: fast, path: /}]
`, map[string]string{"slow": slow, "fast": fast})
	res := ep.Fetch(context.Background(), inbound())
	if len(res) != 2 || string(res[0].Body) != `{"n":1}` || string(res[1].Body) != `{"n":2}` {
		t.Fatalf("results out of config order: %+v", res)
	}
	if res[0].Backend != ep.Backends[0] || res[0].Status != 200 || res[0].Duration < 30*time.Millisecond {
		t.Errorf("result 0: %+v", res[0])
	}
}

// Both clients, lean (the default) and stdlib, must classify every failure
// the same way.
func TestFetchClassifiesFailures(t *testing.T) {
	t.Parallel() // each client waits out two 100ms timeouts
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			classifiesFailures(t, client)
		})
	}
}

func classifiesFailures(t *testing.T, client string) {
	gz := func(size int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			fmt.Fprintf(zw, `{"pad":"%s"}`, strings.Repeat("z", size))
			zw.Close()
		}
	}
	tests := []struct {
		name    string
		h       http.HandlerFunc
		timeout string
		check   func(error) bool
	}{
		{"5xx", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, "1s",
			func(err error) bool { var se *fetch.StatusError; return errors.As(err, &se) && se.Code == 503 }},
		{"redirect not followed", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/x", http.StatusMovedPermanently) }, "1s",
			func(err error) bool { var se *fetch.StatusError; return errors.As(err, &se) && se.Code == 301 }},
		{"timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, "100ms",
			func(err error) bool { return errors.Is(err, fetch.ErrTimeout) }},
		{"timeout mid-body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, `{"a":`)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, "100ms", func(err error) bool { return errors.Is(err, fetch.ErrTimeout) }},
		{"not JSON", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{nope") }, "1s",
			func(err error) bool { return errors.Is(err, fetch.ErrNotJSON) }},
		{"too large", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `"`+strings.Repeat("a", 300)+`"`) }, "1s",
			func(err error) bool { return errors.Is(err, fetch.ErrTooLarge) }},
		{"gzip under the cap on the wire but over it decoded", gz(5000), "1s",
			func(err error) bool { return errors.Is(err, fetch.ErrTooLarge) }},
		{"target missing", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"other":1}`) }, "1s",
			func(err error) bool {
				return errors.Is(err, fetch.ErrReshape) && errors.Is(err, fetch.ErrTargetMissing)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := ""
			if strings.HasPrefix(tt.name, "target") {
				target = "target: data"
			}
			ep := build(t, fmt.Sprintf(`
upstreams: {u: {url: "{{u}}", timeout: %s, max_response_bytes: 256, client: {{client}}}}
endpoints:
  - path: /e
    backends: [{upstream: u, path: /, %s}]
`, tt.timeout, target), map[string]string{"u": serve(t, tt.h), "client": client})
			res := ep.Fetch(context.Background(), inbound())
			if !tt.check(res[0].Err) {
				t.Fatalf("error %v (reason %q) is not of the expected class", res[0].Err, fetch.Reason(res[0].Err))
			}
		})
	}
	t.Run("connect error", func(t *testing.T) {
		ep := build(t, `
upstreams: {u: {url: "http://127.0.0.1:1", client: {{client}}}}
endpoints: [{path: /e, backends: [{upstream: u, path: /}]}]
`, map[string]string{"client": client})
		res := ep.Fetch(context.Background(), inbound())
		if !errors.Is(res[0].Err, fetch.ErrConnect) || fetch.Reason(res[0].Err) != "unreachable" {
			t.Fatalf("got %v", res[0].Err)
		}
	})
	t.Run("client canceled", func(t *testing.T) {
		arrived := make(chan struct{})
		ep := build(t, `
upstreams: {u: {url: "{{u}}", timeout: 10s, client: {{client}}}}
endpoints: [{path: /e, timeout: 10s, backends: [{upstream: u, path: /}]}]
`, map[string]string{"client": client, "u": serve(t, func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-r.Context().Done()
		})})
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			<-arrived
			cancel()
		}()
		res := ep.Fetch(ctx, inbound())
		if !errors.Is(res[0].Err, fetch.ErrCanceled) {
			t.Fatalf("got %v", res[0].Err)
		}
	})
}

func TestFetchSmallGzipIsDecoded(t *testing.T) {
	ep := build(t, `
upstreams: {u: {url: "{{u}}"}}
endpoints: [{path: /e, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		io.WriteString(zw, `{"zipped":true}`)
		zw.Close()
	})})
	res := ep.Fetch(context.Background(), inbound())
	if res[0].Err != nil || string(res[0].Body) != `{"zipped":true}` {
		t.Fatalf("got %s %v", res[0].Body, res[0].Err)
	}
}

func TestCallDeadlineNeverPassesTheEndpoints(t *testing.T) {
	// Upstream timeout 10s, endpoint 200ms: the call must end by the
	// endpoint's deadline, classified as a timeout.
	ep := build(t, `
upstreams: {u: {url: "{{u}}", timeout: 10s}}
endpoints: [{path: /e, timeout: 200ms, backends: [{upstream: u, path: /}]}]
`, map[string]string{"u": serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })})
	start := time.Now()
	res := ep.Fetch(context.Background(), inbound())
	took := time.Since(start)
	if !errors.Is(res[0].Err, fetch.ErrTimeout) {
		t.Fatalf("got %v", res[0].Err)
	}
	// The call's own deadline is the endpoint's less a few ms of headroom;
	// 100ms of margin absorbs scheduling noise under -race.
	if took > 300*time.Millisecond {
		t.Errorf("call took %v, well past the endpoint's 200ms deadline", took)
	}
}

func TestRelayCapsBody(t *testing.T) {
	tests := []struct {
		name    string
		chunked bool
	}{{"content-length", false}, {"chunked", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := build(t, `
upstreams: {u: {url: "{{u}}", max_response_bytes: 10}}
endpoints: [{path: /e, backends: [{upstream: u, path: /, passthrough: true}]}]
`, map[string]string{"u": serve(t, func(w http.ResponseWriter, r *http.Request) {
				if tt.chunked {
					io.WriteString(w, "0123456789")
					w.(http.Flusher).Flush()
				}
				io.WriteString(w, "0123456789abc")
			})})
			rel, err := ep.Relay(context.Background(), inbound())
			if !tt.chunked {
				if !errors.Is(err, fetch.ErrTooLarge) {
					t.Fatalf("Content-Length over the cap: got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rel.Close()
			b, err := io.ReadAll(rel.Body)
			if !errors.Is(err, fetch.ErrTooLarge) || len(b) > 11 {
				t.Fatalf("read %d bytes, err %v", len(b), err)
			}
		})
	}
}
