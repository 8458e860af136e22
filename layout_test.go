package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The import graph the README describes: the layout is the architecture, so
// a new internal import shows up here before it shows up in a review.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	const mod = "github.com/manifold-gw/manifold"
	want := map[string][]string{
		mod:                         {"config", "fetch", "handlers", "internal/demo", "internal/telemetry"},
		mod + "/handlers":           {"config", "fetch", "limiter"},
		mod + "/fetch":              {"config", "internal/h1"},
		mod + "/config":             nil,
		mod + "/limiter":            nil,
		mod + "/internal/h1":        nil,
		mod + "/internal/demo":      nil,
		mod + "/internal/telemetry": {"config"},
	}
	pkgs := make([]string, 0, len(want))
	for p := range want {
		pkgs = append(pkgs, p)
	}
	out, err := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}"}, pkgs...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		var got []string
		for _, imp := range fields[1:] {
			if rest, ok := strings.CutPrefix(imp, mod+"/"); ok {
				got = append(got, rest)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want[fields[0]]) {
			t.Errorf("%s imports %q of Manifold's packages; the README says %q", fields[0], got, want[fields[0]])
		}
	}
}
