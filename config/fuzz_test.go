package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// fuzzEnv reads "NAME=value" lines into an environment; nothing else is
// visible to Load, so the fuzz target never depends on the process's
// environment (${VAR} and MANIFOLD_* overrides alike).
func fuzzEnv(text string) map[string]string {
	env := map[string]string{}
	for line := range strings.Lines(text) {
		if k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "="); ok && len(env) < 64 {
			env[k] = v
		}
	}
	return env
}

// FuzzLoad: loading any file with any environment never panics, and fails
// only with Problems (errors.Is ErrInvalid) whose every entry names the
// file, has a YAML path and a message, and renders as one line
// "FILE: path: message" (check prints one problem per line), except a YAML
// syntax error: the file's only problem, at (root), whose further lines
// (the source line quoted, a caret, a hint) are indented. The problems
// are the same, in the same order, every time. A file that loads is
// compiled: every endpoint routed, every backend templated, every upstream
// URL parsed, and every endpoint timeout below server.write_timeout.
func FuzzLoad(f *testing.F) {
	shipped, _ := filepath.Glob("../docs/examples/*.yaml")
	for _, p := range append([]string{"../config.yaml"}, shipped...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "")
		f.Add(data, "DEMO_URL=https://demo.test:8443\nMANIFOLD_SERVER_WRITE_TIMEOUT=1s\nMANIFOLD_ENDPOINTS_0_TIMEOUT=0s\n")
	}
	// More seeds, broken in many ways, are in testdata/fuzz/FuzzLoad.
	f.Fuzz(func(t *testing.T, data []byte, envText string) {
		env := fuzzEnv(envText)
		path := filepath.Join(t.TempDir(), "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, envOf(env))
		if err == nil {
			checkCompiled(t, cfg, path)
			return
		}
		if cfg != nil {
			t.Errorf("Load returned a config and an error: %v", err)
		}
		var ps config.Problems
		if !errors.As(err, &ps) || !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("Load failed with %T, not Problems: %v", err, err)
		}
		if len(ps) == 0 {
			t.Fatal("empty Problems")
		}
		for _, p := range ps {
			if p.File != path || p.Path == "" || p.Message == "" {
				t.Errorf("problem without file, path or message: %#v", p)
			}
			s := p.String()
			first, more, multi := strings.Cut(s, "\n")
			if s != path+": "+p.Path+": "+p.Message || strings.ContainsRune(first, '\r') {
				t.Errorf("problem does not render as FILE: path: message: %q", s)
			}
			if multi && (len(ps) != 1 || p.Path != config.RootPath || !strings.HasPrefix(first, path+": (root): invalid YAML: ")) {
				t.Errorf("a problem other than a sole YAML syntax error spans lines: %q", s)
			}
			for _, line := range strings.Split(more, "\n") {
				if multi && (!strings.HasPrefix(line, "  ") || strings.ContainsRune(line, '\r')) {
					t.Errorf("a further line of a problem is not indented, or holds a CR: %q", s)
				}
			}
		}
		_, again := config.Parse(path, data, envOf(env))
		if got, want := problemLines(again), problemLines(err); !slices.Equal(got, want) {
			t.Errorf("problems differ between two loads of the same file:\n%q\n%q", want, got)
		}
	})
}

func problemLines(err error) []string {
	var ps config.Problems
	errors.As(err, &ps)
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// checkCompiled asserts what handlers rely on in a config that loaded.
func checkCompiled(t *testing.T, cfg *config.Config, path string) {
	t.Helper()
	if cfg == nil || cfg.File != path || len(cfg.Digest) == 0 {
		t.Fatalf("Load succeeded with config %+v", cfg)
	}
	if len(cfg.UpstreamNames) != len(cfg.Upstreams) || !slices.IsSorted(cfg.UpstreamNames) {
		t.Errorf("UpstreamNames %q for %d upstreams", cfg.UpstreamNames, len(cfg.Upstreams))
	}
	for name, u := range cfg.Upstreams {
		if u == nil || u.BaseURL == nil || u.Name != name || u.Timeout <= 0 {
			t.Errorf("upstream %q not compiled: %+v", name, u)
		}
	}
	if len(cfg.Endpoints) == 0 {
		t.Error("a config without endpoints loaded")
	}
	for i, ep := range cfg.Endpoints {
		if ep == nil || ep.Route == "" || ep.Timeout <= 0 || ep.Timeout >= cfg.Server.WriteTimeout || len(ep.Backends) == 0 {
			t.Errorf("endpoints[%d] not compiled or timeout not below write_timeout: %+v", i, ep)
			continue
		}
		for j, be := range ep.Backends {
			if be == nil || be.Template == nil || cfg.Upstreams[be.Upstream] == nil {
				t.Errorf("endpoints[%d].backends[%d] not compiled: %+v", i, j, be)
			}
		}
	}
}
