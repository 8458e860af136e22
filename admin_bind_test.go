package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminPortTakenServesNothing: when the admin address cannot be bound,
// run fails before the main listener serves a single request, so a
// balancer never sees the replica ready for a moment and then reset.
//
// Not parallel: serve sets process-wide values (fetch.UserAgent) that the
// package's parallel tests read.
func TestAdminPortTakenServesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := freePort(t)
	path := filepath.Join(t.TempDir(), "c.yaml")
	yaml := fmt.Sprintf(`server: {address: "127.0.0.1:%d"}
admin: {address: %q}
upstreams:
  u: {url: "http://127.0.0.1:1"}
endpoints:
  - {path: /a, backends: [{upstream: u, path: /}]}
`, port, taken.Addr().String())
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg, ok := load(source{path: path, from: "-c"}, logs, true)
	if !ok {
		t.Fatalf("load: %s", logs.String())
	}
	err = serve(path, cfg, logs)
	if err == nil || !strings.Contains(err.Error(), "listen admin") {
		t.Fatalf("serve with the admin port taken: %v", err)
	}
	if strings.Contains(logs.String(), `msg=listening`) || strings.Contains(logs.String(), `"msg":"listening"`) {
		t.Errorf("the main listener served before the admin bind failed:\n%s", logs.String())
	}
}
