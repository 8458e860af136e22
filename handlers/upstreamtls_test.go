package handlers_test

import (
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// insecure_skip_verify reaches an upstream whose certificate nothing
// trusts, and says so at warn with the upstream's name on every build of
// the gateway: at start-up and again at a reload that keeps the upstream's
// runtime unchanged.
func TestInsecureSkipVerifyIsWarnedAtEveryBuild(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS() // httptest's own certificate: trusted by nobody
	t.Cleanup(srv.Close)
	yaml := `
upstreams:
  users: {url: "` + srv.URL + `", tls: {insecure_skip_verify: true}}
  orders: {url: "` + srv.URL + `"}
endpoints:
  - path: /api/u
    backends: [{upstream: users, path: /}]
`
	parse := func() *config.Config {
		cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	logs := &syncBuffer{}
	opts := handlers.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	base, first := gatewayWith(t, yaml, nil, opts)
	if a := get(t, base+"/api/u"); a.status != http.StatusOK || string(a.body) != `{"ok":true}` {
		t.Fatalf("status %d body %s: insecure_skip_verify should reach the upstream", a.status, a.body)
	}
	warnings := func() int {
		n := 0
		for _, l := range logs.lines(t) {
			if l["level"] == "WARN" && strings.Contains(l["msg"].(string), "insecure_skip_verify") {
				if l["upstream"] != "users" {
					t.Errorf("warning names upstream %v, want users", l["upstream"])
				}
				n++
			}
		}
		return n
	}
	if n := warnings(); n != 1 {
		t.Fatalf("%d insecure_skip_verify warnings at start-up, want 1 (for users only)", n)
	}
	opts.Previous = first
	second, err := handlers.New(parse(), opts) // a reload of the same file
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if n := warnings(); n != 2 {
		t.Fatalf("%d insecure_skip_verify warnings after a reload, want 2", n)
	}
}
