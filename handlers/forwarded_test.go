package handlers_test

import (
	"net/http"
	"strings"
	"testing"
)

// What a trusted proxy's request carries upstream: the X-Forwarded-For chain
// is the valid IP entries read from the right (every header line, in
// order), in canonical form, stopping at the first entry that is not an IP
// (everything left of it is the client's own unverifiable text) and at 16
// entries, then the peer. X-Forwarded-Host is believed only when it is a
// valid host of at most 260 bytes. Before, both were copied verbatim: a
// client behind the balancer could put tabs, markup or a 45 KB list into the
// headers every upstream receives.
func TestForwardedHeadersFromATrustedProxy(t *testing.T) {
	rec := &recorder{}
	base := gateway(t, `
server:
  trusted_proxies: [127.0.0.0/8]
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends: [{upstream: u, path: /x}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`))})
	self := strings.TrimPrefix(base, "http://")
	long := strings.Repeat("198.51.100.7, ", 5000) + "203.0.113.9"
	long16 := strings.TrimSuffix(strings.Repeat("198.51.100.7, ", 15), ", ")

	tests := []struct {
		name     string
		xff      []string // header lines
		xfHost   string
		wantXFF  string
		wantHost string
	}{
		{"one client", []string{"203.0.113.9"}, "", "203.0.113.9, 127.0.0.1", self},
		{"several lines, in order", []string{"198.51.100.1, 203.0.113.9", "10.0.0.1"}, "", "198.51.100.1, 203.0.113.9, 10.0.0.1, 127.0.0.1", self},
		{"canonical forms", []string{" 203.0.113.9 ,\t2001:DB8:0:0::1"}, "", "203.0.113.9, 2001:db8::1, 127.0.0.1", self},
		{"junk left of the client is dropped", []string{"evil\tjunk, <script>, 203.0.113.9"}, "", "203.0.113.9, 127.0.0.1", self},
		{"an empty entry stops the chain", []string{"198.51.100.1,, 203.0.113.9"}, "", "203.0.113.9, 127.0.0.1", self},
		{"an entry with a port or a zone stops it", []string{"198.51.100.1, fe80::1%eth0, 203.0.113.9:443, 203.0.113.9"}, "", "203.0.113.9, 127.0.0.1", self},
		{"nothing valid", []string{"unknown"}, "", "127.0.0.1", self},
		{"at most 16 entries, the right-most", []string{long}, "", long16 + ", 203.0.113.9, 127.0.0.1", self},
		{"a valid forwarded host", []string{"203.0.113.9"}, "api.example.com:8443", "203.0.113.9, 127.0.0.1", "api.example.com:8443"},
		{"a forwarded host with a tab", []string{"203.0.113.9"}, "api.example.com\tx", "203.0.113.9, 127.0.0.1", self},
		{"a forwarded host with a space", []string{"203.0.113.9"}, "a.example, b.example", "203.0.113.9, 127.0.0.1", self},
		{"an over-long forwarded host", []string{"203.0.113.9"}, strings.Repeat("a", 261), "203.0.113.9, 127.0.0.1", self},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, base+"/e", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header["X-Forwarded-For"] = tt.xff
			if tt.xfHost != "" {
				req.Header.Set("X-Forwarded-Host", tt.xfHost)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			t.Cleanup(client.CloseIdleConnections)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			s := rec.last(t)
			if got := s.Header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != tt.wantXFF {
				show := strings.Join(got, " | ")
				if len(show) > 200 {
					show = show[:200] + "..."
				}
				t.Errorf("X-Forwarded-For upstream = %q (%d bytes), want %q", show, len(strings.Join(got, "")), tt.wantXFF)
			}
			if got := s.Header.Values("X-Forwarded-Host"); len(got) != 1 || got[0] != tt.wantHost {
				t.Errorf("X-Forwarded-Host upstream = %q, want %q", got, tt.wantHost)
			}
		})
	}
}

// From a peer that is not a trusted proxy nothing the client sends is
// believed: the chain is the peer, the host is the request's own.
func TestForwardedHeadersFromAnUntrustedPeer(t *testing.T) {
	rec := &recorder{}
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends: [{upstream: u, path: /x}]
`, map[string]string{"u": upstream(t, rec.handler(`{}`))})
	do(t, http.MethodGet, base+"/e", nil, map[string]string{
		"X-Forwarded-For": "203.0.113.9, 10.0.0.1", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"})
	s := rec.last(t)
	want := map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": strings.TrimPrefix(base, "http://"), "X-Forwarded-Proto": "http"}
	for k, v := range want {
		if got := s.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s upstream = %q, want %q", k, got, v)
		}
	}
}
