package fetch_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
)

// A backend's own headers win over the upstream's static headers, the
// forwarded ones and Manifold's User-Agent, however the name is spelled,
// and exactly one value goes out, with either client.
func TestBackendHeadersWin(t *testing.T) {
	tests := []struct {
		name    string
		backend string // backend headers: entry
		check   string
		want    []string
	}{
		{"over the upstream's", "X-Api-Key: backend", "X-Api-Key", []string{"backend"}},
		{"over the upstream's, another spelling", "x-api-key: backend", "X-Api-Key", []string{"backend"}},
		{"over the forwarded one", "X-Tenant: fixed", "X-Tenant", []string{"fixed"}},
		{"over Manifold's User-Agent", "User-Agent: probe/2", "User-Agent", []string{"probe/2"}},
		{"over Manifold's User-Agent, lower case", "user-agent: probe/2", "User-Agent", []string{"probe/2"}},
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
    headers: {X-Api-Key: upstream}
endpoints:
  - path: /e
    forward_headers: [X-Tenant]
    backends: [{upstream: u, path: /, headers: {%s}}]
`, client, tt.backend), map[string]string{"u": url})
				in := inbound()
				in.Header = http.Header{"X-Tenant": {"from-client"}}
				if res := ep.Fetch(context.Background(), in); res[0].Err != nil {
					t.Fatal(res[0].Err)
				}
				if got := (<-seen).Values(tt.check); !slices.Equal(got, tt.want) {
					t.Errorf("%s = %q, want %q", tt.check, got, tt.want)
				}
			})
		}
	}
}
