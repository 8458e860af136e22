package main

import (
	"os"
	"os/exec"
	"path/filepath"
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

// The build context holds every file the image build reads: what the main
// package embeds (go build in the builder) and what the final stage
// copies. .dockerignore drops docs/, so those under it are let back in.
func TestDockerContextHoldsWhatTheBuildReads(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(".dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		if p := strings.TrimSpace(line); p != "" && !strings.HasPrefix(p, "#") {
			patterns = append(patterns, p)
		}
	}
	out, err := exec.Command("go", "list", "-f", `{{join .EmbedFiles "\n"}}`, ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	needed := strings.Fields(string(out))
	for _, c := range readDockerfile(t, "Dockerfile").copies {
		needed = append(needed, c[0])
	}
	for _, p := range needed {
		if dockerIgnored(patterns, p) {
			t.Errorf("the image build reads %s, which .dockerignore leaves out of the build context", p)
		}
	}
}

// dockerIgnored applies .dockerignore's patterns to path in order, the
// last match deciding: a pattern drops what it matches and everything under
// it, a !pattern lets it back in.
func dockerIgnored(patterns []string, path string) bool {
	ignored := false
	for _, p := range patterns {
		keep := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		for prefix := path; ; {
			if ok, _ := filepath.Match(p, prefix); ok {
				ignored = !keep
				break
			}
			i := strings.LastIndexByte(prefix, '/')
			if i < 0 {
				break
			}
			prefix = prefix[:i]
		}
	}
	return ignored
}
