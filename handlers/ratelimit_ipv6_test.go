package handlers_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// TestPerClientLimitKeysIPv6ByItsSlash64: an IPv6 host normally holds a
// whole /64 and may use a new source address for every request, so a
// per-client limit keyed by the full address could be dodged at will (and
// grew a bucket per request): an IPv6 client is keyed by its /64, an IPv4
// one (IPv4-mapped included) by its address.
func TestPerClientLimitKeysIPv6ByItsSlash64(t *testing.T) {
	t.Parallel()
	up := jsonUpstream(t, 0, `{"ok":true}`)
	cfg, err := config.Parse("test.yaml", []byte(`
upstreams:
  up: {url: "`+up+`"}
endpoints:
  - path: /e
    rate_limit: {rps: 0.001, burst: 1, per: client}
    backends: [{upstream: up, path: /}]
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	gw, err := handlers.New(cfg, handlers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	status := func(remote string) int {
		req := httptest.NewRequest(http.MethodGet, "/e", nil)
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, req)
		return rec.Code
	}
	served := 0
	for i := range 50 {
		if status(fmt.Sprintf("[2001:db8:1:2::%x]:40000", i+1)) == http.StatusOK { // one /64
			served++
		}
	}
	if served != 1 {
		t.Errorf("one IPv6 /64 got %d of 50 requests past a burst-1 per-client limit, want 1", served)
	}
	if got := status("[2001:db8:1:3::1]:40000"); got != http.StatusOK {
		t.Errorf("another /64: %d, want 200 (its own bucket)", got)
	}
	if got := status("192.0.2.1:40000"); got != http.StatusOK {
		t.Errorf("an IPv4 client: %d, want 200", got)
	}
	if got := status("192.0.2.2:40000"); got != http.StatusOK {
		t.Errorf("another IPv4 client, same /24: %d, want 200 (IPv4 clients are keyed by address)", got)
	}
	if got := status("[::ffff:192.0.2.1]:40000"); got != http.StatusTooManyRequests {
		t.Errorf("the first IPv4 client, IPv4-mapped: %d, want 429 (the same client)", got)
	}
}
