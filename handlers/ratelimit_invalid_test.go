package handlers_test

import (
	"math"
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// TestGatewayRefusesAnUnusableRateLimit: a rate_limit that config
// validation would refuse (here built by hand, past it) makes handlers.New
// return an error instead of panicking, so a reload to it is refused and
// the running gateway keeps serving.
func TestGatewayRefusesAnUnusableRateLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		rps   float64
		burst int
		per   string
	}{
		{"NaN rps", math.NaN(), 1, "global"},
		{"infinite rps", math.Inf(1), 1, "client"},
		{"zero burst", 1, 0, "global"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Parse("t.yaml", []byte(`upstreams:
  u: {url: "http://127.0.0.1:1"}
endpoints:
  - path: /a
    rate_limit: {rps: 1, burst: 1}
    backends: [{upstream: u, path: /x}]
`), func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			rl := cfg.Endpoints[0].RateLimit
			rl.RPS, rl.Burst, rl.Per = tc.rps, tc.burst, tc.per
			var gw *handlers.Gateway
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("handlers.New panicked: %v", p)
					}
				}()
				gw, err = handlers.New(cfg, handlers.Options{})
			}()
			if err == nil {
				gw.Close()
				t.Fatal("handlers.New accepted it")
			}
		})
	}
}
