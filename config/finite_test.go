package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// TestNonFiniteNumbersRefused: YAML can spell NaN and infinity (.nan, .inf,
// or a quoted "NaN" / "Infinity" that a number key parses), and every
// range check written as a comparison lets NaN through: such a value must
// be refused at the key, with its path, never reach the code that uses it
// (a NaN rps made the rate limiter panic at start and on reload).
func TestNonFiniteNumbersRefused(t *testing.T) {
	t.Parallel()
	base := `tracing: {endpoint: "http://127.0.0.1:4318", sample_ratio: %s}
upstreams:
  u:
    urls: ["http://127.0.0.1:1", "http://127.0.0.1:2"]
    circuit_breaker: {failure_ratio: %s, min_requests: 5}
endpoints:
  - path: /a
    rate_limit: {rps: %s, burst: 1, per: %s}
    backends: [{upstream: u, path: /x, hedge: {after: 10ms, max_percent: %s}}]
`
	keys := []struct{ path, sample, ratio, rps, maxPercent string }{
		{"tracing.sample_ratio", "X", "0.5", "1", "10"},
		{"upstreams.u.circuit_breaker.failure_ratio", "0.1", "X", "1", "10"},
		{"endpoints[0].rate_limit.rps", "0.1", "0.5", "X", "10"},
		{"endpoints[0].backends[0].hedge.max_percent", "0.1", "0.5", "1", "X"},
	}
	for _, k := range keys {
		for _, v := range []string{".nan", ".inf", "-.inf", `"NaN"`, `"Infinity"`} {
			for _, per := range []string{"global", "client"} {
				if per == "client" && k.path != "endpoints[0].rate_limit.rps" {
					continue
				}
				t.Run(k.path+"="+v+"/"+per, func(t *testing.T) {
					t.Parallel()
					r := strings.NewReplacer("X", v)
					yaml := fmt.Sprintf(base, r.Replace(k.sample), r.Replace(k.ratio), r.Replace(k.rps), per, r.Replace(k.maxPercent))
					_, err := config.Parse("c.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
					if err == nil {
						t.Fatalf("accepted %s: %s", k.path, v)
					}
					if want := "c.yaml: " + k.path + ": "; !strings.Contains(err.Error(), want) {
						t.Errorf("error does not name %q:\n%v", want, err)
					}
				})
			}
		}
	}
	t.Run("from the environment", func(t *testing.T) {
		t.Parallel()
		yaml := fmt.Sprintf(base, "0.1", "0.5", "1", "global", "10")
		env := func(k string) (string, bool) {
			if k == "MANIFOLD_ENDPOINTS_0_RATE_LIMIT_RPS" {
				return "Inf", true
			}
			return "", false
		}
		_, err := config.Parse("c.yaml", []byte(yaml), env)
		if err == nil || !strings.Contains(err.Error(), "endpoints[0].rate_limit.rps: from $MANIFOLD_ENDPOINTS_0_RATE_LIMIT_RPS") {
			t.Fatalf("rps=Inf from the environment: %v", err)
		}
	})
}
