package e2e_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const simpleConfig = `
server:
  address: "{{ADDR}}"
  shutdown_timeout: 5s
admin:
  address: "{{ADMIN}}"
log: {level: info, format: json}
demo: true
upstreams:
  users:
    url: "{{DEMO}}"
    timeout: 2s
endpoints:
  - path: /p/{id}
    backends:
      - {upstream: users, path: "/users/{id}", allow: [id, name]}
`

func TestAccessLogLine(t *testing.T) {
	p := startManifold(t, simpleConfig)
	const id = "e2e-access-log-42"
	code, body, err := p.get("/p/42", http.Header{"X-Request-Id": {id}})
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /p/42 = %d %s %v", code, body, err)
	}

	// The request id is forwarded to the backend call, which the same
	// process serves (/__demo), so two access lines carry it; the client's
	// is the one whose route is not the demo's.
	var line map[string]any
	waitFor(t, 2*time.Second, 20*time.Millisecond, "the access line", func() (bool, string) {
		var mine, demo []map[string]any
		for _, l := range p.JSONLogs() {
			if l["msg"] != "request" || l["request_id"] != id {
				continue
			}
			if r, _ := l["route"].(string); strings.HasPrefix(r, "/__demo") {
				demo = append(demo, l)
			} else {
				mine = append(mine, l)
			}
		}
		if len(mine) == 1 && len(demo) == 1 {
			line = mine[0]
			return true, ""
		}
		return false, fmt.Sprintf("%d client lines %v, %d demo lines", len(mine), mine, len(demo))
	})
	t.Logf("access line: %v", line)

	want := map[string]any{
		"request_id": id,
		"method":     "GET",
		"route":      "/p/{id}",
		"status":     float64(200),
		"completed":  true,
		"client_ip":  "127.0.0.1",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access line %s = %#v, want %#v", k, line[k], v)
		}
	}
	if d, ok := line["duration"].(float64); !ok || d <= 0 || d > 5 {
		t.Errorf("access line duration = %#v, want a positive number of seconds, under 5", line["duration"])
	}
	if line["level"] != "INFO" {
		t.Errorf("access line level = %v, want INFO", line["level"])
	}
}

func TestVersionAndHealthSubcommands(t *testing.T) {
	code, out, errOut := runCLI(t, "version")
	if code != 0 || out != "manifold e2e\n" {
		t.Errorf("manifold version = %d %q (stderr %q), want 0 \"manifold e2e\\n\"", code, out, errOut)
	}

	p := startManifold(t, simpleConfig)
	code, out, errOut = runCLI(t, "health", "--url", p.URL()+"/__health")
	if code != 0 || strings.TrimSpace(out) != `{"status":"ok"}` {
		t.Errorf("health --url (running) = %d %q %q, want 0 {\"status\":\"ok\"}", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "health", "-c", p.cfgPath)
	if code != 0 || strings.TrimSpace(out) != `{"status":"ok"}` {
		t.Errorf("health -c (running) = %d %q %q, want 0", code, out, errOut)
	}

	closed := freeAddr(t)
	code, out, errOut = runCLI(t, "health", "--url", "http://"+closed+"/__health")
	if code != 1 {
		t.Errorf("health --url (closed port) = %d %q %q, want 1", code, out, errOut)
	}
	t.Logf("health on a closed port: exit %d, stderr %q", code, strings.TrimSpace(errOut))

	// -c on a config whose server.address nobody listens on.
	other := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(other, []byte(render(simpleConfig, closed, freeAddr(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "health", "-c", other)
	if code != 1 {
		t.Errorf("health -c (closed port) = %d %q %q, want 1", code, out, errOut)
	}
}
