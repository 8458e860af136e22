package fetch_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// A static upstream header always wins over a forwarded client header of
// the same name, however either is spelled, and exactly one value of it
// goes out, with either client. Otherwise a client could send its own
// X-Api-Key next to (or instead of) the gateway's secret.
func TestStaticHeaderBeatsForwardedOne(t *testing.T) {
	tests := []struct {
		name    string
		static  string // upstream headers: entry
		forward string // forward_headers: entry
		client  http.Header
		check   string // header the upstream must see ...
		want    []string
	}{
		{"lower-case static", "x-api-key: secret", "X-Api-Key", http.Header{"X-Api-Key": {"attacker"}}, "X-Api-Key", []string{"secret"}},
		{"canonical static", "X-Api-Key: secret", "x-api-key", http.Header{"X-Api-Key": {"attacker"}}, "X-Api-Key", []string{"secret"}},
		{"upper-case static", "X-API-KEY: secret", "X-Api-Key", http.Header{"X-Api-Key": {"attacker", "again"}}, "X-Api-Key", []string{"secret"}},
		{"absent from the request", "x-api-key: secret", "X-Api-Key", http.Header{}, "X-Api-Key", []string{"secret"}},
		{"other forwarded headers still go", "x-api-key: secret", "X-Tenant", http.Header{"X-Tenant": {"t1"}}, "X-Tenant", []string{"t1"}},
		{"static user-agent over a forwarded one", "user-agent: custom/1", "User-Agent", http.Header{"User-Agent": {"evil"}}, "User-Agent", []string{"custom/1"}},
		{"static user-agent, any spelling", "user-agent: custom/1", "X-Tenant", http.Header{}, "User-Agent", []string{"custom/1"}},
		{"forwarded user-agent replaced by Manifold's", "x-api-key: secret", "User-Agent", http.Header{"User-Agent": {"evil"}}, "User-Agent", []string{fetch.UserAgent}},
	}
	for _, client := range []string{"lean", "stdlib"} {
		for _, tt := range tests {
			t.Run(client+"/"+tt.name, func(t *testing.T) {
				seen := make(chan http.Header, 1)
				url := serve(t, func(w http.ResponseWriter, r *http.Request) {
					seen <- r.Header.Clone()
					io.WriteString(w, `{}`)
				})
				ep := build(t, fmt.Sprintf(`
upstreams:
  u:
    url: "{{u}}"
    client: %s
    headers: {%s}
endpoints:
  - path: /e
    forward_headers: [%s]
    backends: [{upstream: u, path: /}]
`, client, tt.static, tt.forward), map[string]string{"u": url})
				in := inbound()
				in.Header = tt.client
				if res := ep.Fetch(context.Background(), in); res[0].Err != nil {
					t.Fatal(res[0].Err)
				}
				got := <-seen
				if !slices.Equal(got[tt.check], tt.want) {
					t.Fatalf("upstream saw %s: %q, want %q (all headers: %v)", tt.check, got[tt.check], tt.want, got)
				}
			})
		}
	}
}
