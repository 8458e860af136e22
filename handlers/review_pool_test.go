package handlers_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/handlers"
)

// A reload whose build fails after it built a changed upstream (here: its
// jwks_file no longer parses) leaves the running Gateway's series as they
// were: the failed build's fresh instance, reported healthy when it was
// built, must not leave the gauge of the running, ejected one at 1.
func TestReviewFailedReloadKeepsInstanceGauge(t *testing.T) {
	keys(t)
	bad, good := newCounting(t), newCounting(t)
	bad.status.Store(500)
	m := handlers.NewMetrics()
	baseA, a := gatewayWith(t, poolGatewayYAML(bad.url, good.url), nil, handlers.Options{Metrics: m})
	for bad.hits.Load() == 0 || good.hits.Load() == 0 { // bad ejected
		get(t, baseA+"/u")
	}
	line := fmt.Sprintf(`manifold_upstream_instance_healthy{instance="%s",upstream="users"} 0`, bad.addr)
	if !hasLine(scrape(t, m, "manifold_upstream_"), line) {
		t.Fatal("bad not ejected")
	}

	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwkSet(rsaKey.jwk(true)), 0o600); err != nil {
		t.Fatal(err)
	}
	// compression changes how every instance's pool is built: none is
	// carried over, both are built afresh.
	y := strings.Replace(poolGatewayYAML(bad.url, good.url), "circuit_breaker: {enabled: false}", "circuit_breaker: {enabled: false}\n    compression: false", 1)
	y = "auth:\n  jwt: {jwks_file: " + file + ", issuer: https://idp.test/, audience: [api], algorithms: [RS256]}\n" + y
	cfg := mustParse(t, y)
	if err := os.WriteFile(file, []byte("not a key set"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := handlers.New(cfg, handlers.Options{Metrics: m, Previous: a}); err == nil {
		t.Fatal("the build did not fail")
	}
	if lines := scrape(t, m, "manifold_upstream_"); !hasLine(lines, line) {
		t.Errorf("after a failed reload, the running gateway's ejected instance is not reported out:\n%s", strings.Join(lines, "\n"))
	}
}
