package main

import (
	"os"
	"strings"
	"testing"
)

// Every plain path .dockerignore lists exists: a stale entry means the file
// no longer says what the build context holds.
func TestDockerignoreNamesRealPaths(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") || strings.HasPrefix(p, "!") || strings.ContainsAny(p, "*?[") {
			continue
		}
		p = strings.TrimPrefix(p, "/")
		if p == "manifold" {
			continue // the binary a local `go build` leaves
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf(".dockerignore lists %q, which does not exist: %v", line, err)
		}
	}
}
