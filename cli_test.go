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
		"  graph     Print each endpoint's call graph (text or Graphviz dot)\n",
		"  health    Probe a running gateway's /__health (for container health checks)\n",
		"  schema    Print the JSON Schema of the config file\n",
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
		"graph": {"Print each endpoint's call graph", "Usage:\n  manifold graph [-c FILE] [--endpoint PATH] [--format text|dot]\n",
			"      --endpoint PATH   only the endpoint with this PATH, as written in the config\n", "  manifold graph -c config.yaml --format dot | dot -Tsvg > graph.svg\n"},
		"schema": {"Print the JSON Schema (draft 2020-12) of the config file on stdout", "Usage:\n  manifold schema\n",
			"  -h, --help   show this help\n", "  manifold schema > config.schema.json\n"},
		"version": {"Print the version this binary was built as.", "Usage:\n  manifold version\n"},
		"help":    {"Show the help of a command", "Usage:\n  manifold help [COMMAND]\n", "  manifold help check\n"},
	}
	// Flags that a page must not list: each command shows its own.
	absent := map[string][]string{
		"run": {"--url", "--version", "--endpoint"}, "check": {"--url", "--version", "--endpoint"}, "health": {"--version", "--endpoint"},
		"graph":   {"--url", "--version"},
		"version": {"--config", "--url"}, "help": {"--config", "--url"}, "schema": {"--config", "--url", "--endpoint", "--version"},
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

const graphConfig = `server: {address: "127.0.0.1:18080"}
admin: {address: ""}
upstreams:
  orders: {url: "http://orders.test"}
  users: {url: "http://users.test"}
  products: {url: "http://products.test"}
endpoints:
  - path: /o/{id}
    merge: deep
    backends:
      - {name: order, upstream: orders, path: "/orders/{id}", group: order, required: true}
      - {upstream: users, path: "/users/{order.customer.id}", group: customer}
      - {upstream: products, path: "/products/{item.sku}", foreach: order.lines, max_parallel: 2, group: products}
      - {name: audit, upstream: orders, path: "/audit/{customer.id}", depends_on: [order], fallback: {"ok": false}}
  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{id}"}
      - {upstream: orders, path: "/orders?user={id}"}
`

// manifold graph prints the stages of each endpoint, or one endpoint's, or
// the graph as Graphviz dot; a path that names no endpoint is an error
// that lists the known ones.
func TestCLIGraph(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, t.TempDir(), "graph.yaml", graphConfig)
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"one endpoint, text", []string{"graph", "-c", cfg, "--endpoint", "/o/{id}"}, 0, `GET /o/{id}  (timeout 3s, merge deep)
  stage 1  order     GET orders /orders/{id}               required
  stage 2  customer  GET users /users/{order.customer.id}  after order
           products  GET products /products/{item.sku}     after order; foreach order.lines (max_parallel 2, max_items 100)
  stage 3  audit     GET orders /audit/{customer.id}       after order, customer; fallback {"ok":false}
`, ""},
		{"an endpoint without a graph is one stage", []string{"graph", "-c", cfg, "--endpoint", "/u/{id}"}, 0, `GET /u/{id}  (timeout 3s)
  stage 1  users   GET users /users/{id}
           orders  GET orders /orders?user={id}
`, ""},
		{"dot", []string{"graph", "-c", cfg, "--endpoint", "/o/{id}", "--format", "dot"}, 0, `digraph manifold {
  rankdir=LR;
  node [shape=box];
  subgraph cluster_0 {
    label="GET /o/{id}";
    e0b0 [label="order\nGET orders /orders/{id}"];
    e0b1 [label="customer\nGET users /users/{order.customer.id}"];
    e0b2 [label="products\nGET products /products/{item.sku}\nforeach order.lines"];
    e0b3 [label="audit\nGET orders /audit/{customer.id}"];
  }
  e0b0 -> e0b1;
  e0b0 -> e0b2;
  e0b0 -> e0b3;
  e0b1 -> e0b3;
}
`, ""},
		{"unknown endpoint", []string{"graph", "-c", cfg, "--endpoint", "/x"}, 1, "",
			"manifold graph: " + cfg + `: no endpoint has the path "/x" (known: /o/{id}, /u/{id})` + "\n"},
		{"bad format", []string{"graph", "-c", cfg, "--format", "svg"}, 2, "",
			"manifold graph: --format \"svg\": use text or dot\nRun \"manifold graph --help\" for usage.\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(tc.args...)
			if code != tc.code || stdout != tc.stdout || stderr != tc.stderr {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s", code, tc.code, stdout, tc.stdout, stderr, tc.stderr)
			}
		})
	}
	t.Run("every endpoint by default", func(t *testing.T) {
		t.Parallel()
		code, stdout, _ := runCLI("graph", "-c", cfg)
		if code != 0 || !strings.Contains(stdout, "GET /o/{id}") || !strings.Contains(stdout, "\nGET /u/{id}") {
			t.Errorf("exit %d stdout:\n%s", code, stdout)
		}
	})
	t.Run("an invalid file is refused as check refuses it", func(t *testing.T) {
		t.Parallel()
		broken := writeConfig(t, t.TempDir(), "b.yaml", brokenConfig)
		code, stdout, stderr := runCLI("graph", "-c", broken)
		if code != 1 || stdout != "" {
			t.Errorf("exit %d stdout %q, want 1 and nothing", code, stdout)
		}
		checkProblemLines(t, stderr, broken)
	})
}
