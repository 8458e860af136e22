package fetch_test

import (
	"context"
	"net/http"
	"testing"
)

// BenchmarkHedgedFastCall is the cost of hedging when no hedge fires: one
// backend call answered long before hedge.after, against the same call
// without hedge.
func BenchmarkHedgedFastCall(b *testing.B) {
	url := serve(b, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"a":1}`)) })
	for _, tc := range []struct{ name, hedge string }{{"plain", ""}, {"hedged", ", hedge: {after: 1s, max_percent: 5}"}} {
		b.Run(tc.name, func(b *testing.B) {
			eps, _ := endpoints(b, `
upstreams:
  u: {url: "`+url+`", timeout: 2s}
endpoints:
  - {path: /x, backends: [{upstream: u, path: /x`+tc.hedge+`}]}
`, nil)
			in := inbound()
			b.ReportAllocs()
			for b.Loop() {
				if r := eps[0].Fetch(context.Background(), in)[0]; r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		})
	}
}
