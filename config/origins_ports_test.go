package config_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// TestUpstreamPortOutOfRange: a port that no socket can have is refused at
// load, instead of every call failing to connect.
func TestUpstreamPortOutOfRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, want string
	}{
		{"http://127.0.0.1:99999", `upstreams.u.url: "http://127.0.0.1:99999": port 99999 is out of range (1-65535)`},
		{"http://127.0.0.1:0", `upstreams.u.url: "http://127.0.0.1:0": port 0 is out of range (1-65535)`},
		{"https://[::1]:65536", `upstreams.u.url: "https://[::1]:65536": port 65536 is out of range (1-65535)`},
	} {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			yaml := fmt.Sprintf("upstreams:\n  u: {url: %q}\nendpoints:\n  - path: /a\n    backends: [{upstream: u, path: /x}]\n", tc.url)
			_, err := config.Parse("c.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	yaml := "upstreams:\n  u: {urls: [\"http://127.0.0.1:65535\", \"http://127.0.0.1:1\"]}\nendpoints:\n  - path: /a\n    backends: [{upstream: u, path: /x}]\n"
	if _, err := config.Parse("c.yaml", []byte(yaml), func(string) (string, bool) { return "", false }); err != nil {
		t.Fatalf("ports 1 and 65535: %v", err)
	}
}

// TestCORSOriginsInTheFormBrowsersSend: browsers send Origin with the scheme
// and host in lower case and without the scheme's default port, and origins
// are matched exactly, so an entry in any other form would never match:
// it is refused with the form to write.
func TestCORSOriginsInTheFormBrowsersSend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ origin, want string }{
		{"https://App.Example.com", `"https://App.Example.com": browsers send origins in lower case without the default port; write "https://app.example.com"`},
		{"HTTPS://b.com", `"HTTPS://b.com": browsers send origins in lower case without the default port; write "https://b.com"`},
		{"https://b.com:443", `"https://b.com:443": browsers send origins in lower case without the default port; write "https://b.com"`},
		{"http://b.com:80", `"http://b.com:80": browsers send origins in lower case without the default port; write "http://b.com"`},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			t.Parallel()
			yaml := fmt.Sprintf("server:\n  cors: {allow_origins: [%q]}\nupstreams:\n  u: {url: \"http://127.0.0.1:1\"}\nendpoints:\n  - path: /a\n    backends: [{upstream: u, path: /x}]\n", tc.origin)
			_, err := config.Parse("c.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
			if err == nil || !strings.Contains(err.Error(), "server.cors.allow_origins[0]: "+tc.want) {
				t.Fatalf("got %v\nwant %q", err, tc.want)
			}
		})
	}
	for _, ok := range []string{"https://app.example.com", "http://localhost:8080", "https://b.com:8443", "http://[::1]:3000"} {
		yaml := fmt.Sprintf("server:\n  cors: {allow_origins: [%q]}\nupstreams:\n  u: {url: \"http://127.0.0.1:1\"}\nendpoints:\n  - path: /a\n    backends: [{upstream: u, path: /x}]\n", ok)
		if _, err := config.Parse("c.yaml", []byte(yaml), func(string) (string, bool) { return "", false }); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
