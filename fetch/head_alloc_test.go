package fetch_test

import (
	"context"
	"net/http"
	"testing"
)

// A merged HEAD backend reads no body, whatever Content-Length the answer
// declares (a HEAD answer's Content-Length is the GET body's size): sizing
// the read buffer from it allocated up to max_response_bytes per call for
// nothing.
func TestMergedHeadAllocatesNoBodyBuffer(t *testing.T) {
	for _, client := range []string{"lean", "stdlib"} {
		t.Run(client, func(t *testing.T) {
			up := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodHead {
					t.Errorf("method %s, want HEAD", r.Method)
				}
				w.Header().Set("Content-Length", "4000000") // the GET body's size
				w.WriteHeader(http.StatusOK)
			})
			ep := build(t, `
upstreams:
  u: {url: "{{u}}", client: `+client+`}
endpoints:
  - path: /h
    backends:
      - {upstream: u, path: /doc, method: HEAD, group: doc}
`, map[string]string{"u": up})
			ep.Fetch(context.Background(), inbound()) // warm the pool
			var err error
			alloc := allocated(func() {
				for range 4 {
					if res := ep.Fetch(context.Background(), inbound()); res[0].Err != nil {
						err = res[0].Err
					}
				}
			})
			if err != nil {
				t.Fatalf("HEAD backend: %v", err)
			}
			if alloc > 1<<20 {
				t.Errorf("4 merged HEAD calls declaring Content-Length 4000000 allocated %d KiB, want well under 1 MiB", alloc>>10)
			}
		})
	}
}
