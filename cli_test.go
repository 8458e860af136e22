package main

import (
	"strings"
	"testing"
)

// Help goes to stdout with exit 0, in every spelling, and each command's
// page is its own: its purpose, its flags only, and an example.
func TestCLIHelp(t *testing.T) {
	t.Parallel()
	overview := []string{
		"Manifold is an API aggregation gateway",
		"Usage:\n  manifold [COMMAND] [-c FILE]\n",
		"  run       Serve the gateway (the default command)\n",
		"  check     Validate a config file and exit\n",
		"  health    Probe a running gateway's /__health (for container health checks)\n",
		"  version   Print the version\n",
		"  help      Show help for a command\n",
		"  -c, --config FILE   read the config from FILE (default $MANIFOLD_CONFIG, else ./config.yaml)\n",
		"  -h, --help          show this help\n",
		"  -v, --version       print the version\n",
		"Examples:\n  # Serve the demo config shipped in the repository\n  manifold run -c config.yaml\n",
		`Use "manifold help COMMAND" or "manifold COMMAND --help" for more about a command.`,
	}
	pages := map[string][]string{
		"run": {"Serve the gateway.", "Usage:\n  manifold run [-c FILE]\n",
			"  -c, --config FILE   read the config from FILE", "  manifold run -c config.yaml\n"},
		"check": {"Validate a config file without serving it.", "Usage:\n  manifold check [-c FILE]\n",
			"FILE: yaml.path: message", "  -c, --config FILE", "  manifold check -c /etc/manifold/config.yaml\n"},
		"health": {"Ask a running gateway whether it is alive", "Usage:\n  manifold health [-c FILE] [--url URL]\n",
			"      --url URL       the URL to probe (default /__health on server.address)\n", "  manifold health -c /etc/manifold/config.yaml\n"},
		"version": {"Print the version this binary was built as.", "Usage:\n  manifold version\n"},
		"help":    {"Show the help of a command", "Usage:\n  manifold help [COMMAND]\n", "  manifold help check\n"},
	}
	// Flags that a page must not list: each command shows its own.
	absent := map[string][]string{
		"run": {"--url", "--version"}, "check": {"--url", "--version"}, "health": {"--version"},
		"version": {"--config", "--url"}, "help": {"--config", "--url"},
	}
	type helpCase struct{ args, want, not []string }
	cases := []helpCase{
		{[]string{"--help"}, overview, nil},
		{[]string{"-h"}, overview, nil},
		{[]string{"help"}, overview, nil},
	}
	for name, want := range pages {
		cases = append(cases,
			helpCase{[]string{"help", name}, want, absent[name]},
			helpCase{[]string{name, "--help"}, want, absent[name]},
			helpCase{[]string{name, "-h"}, want, absent[name]},
		)
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(tc.args...)
			if code != 0 || stderr != "" {
				t.Errorf("exit %d stderr %q, want 0 and nothing", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(stdout, n) {
					t.Errorf("stdout lists %q, which is not this command's flag:\n%s", n, stdout)
				}
			}
		})
	}
}

// --version and -v print what `version` prints.
func TestCLIVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		code, stdout, stderr := runCLI(args...)
		if code != 0 || stdout != "manifold dev\n" || stderr != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q; want 0, \"manifold dev\\n\", nothing", args, code, stdout, stderr)
		}
	}
}

func TestCommandName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"-c", "check"}, ""}, // a file named check
		{[]string{"-c", "f.yaml", "check"}, "check"},
		{[]string{"--config=f.yaml", "health"}, "health"},
		{[]string{"--url", "http://x", "health"}, "health"},
		{[]string{"-h"}, ""},
		{[]string{"--", "run"}, "run"},
		{[]string{"check", "-c", "f"}, "check"},
	} {
		if got := commandName(tc.args); got != tc.want {
			t.Errorf("commandName(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}
