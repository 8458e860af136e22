package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

// command is one subcommand of the CLI: its name, the one line that
// `manifold help` lists, its own flags and the text of its help page.
type command struct {
	name     string
	short    string // one line, for the command list
	long     string // the help page's first paragraph
	usage    string // the synopsis, after "manifold "
	examples string
	url      bool // takes --url
	graph    bool // takes --endpoint and --format
}

// commands is every subcommand in the order help lists them; run is the
// default when none is named.
var commands = []command{
	{
		name:  "run",
		short: "Serve the gateway (the default command)",
		long: `Serve the gateway. The config is validated first: an invalid file is refused
with every problem listed, as check does, before anything listens. SIGHUP or
an edit of the file reloads the config; SIGTERM or SIGINT drains and exits.`,
		usage: "run [-c FILE]",
		examples: `  # Serve the demo config shipped in the repository
  manifold run -c config.yaml

  # Serve the file named by the environment
  MANIFOLD_CONFIG=/etc/manifold/config.yaml manifold`,
	},
	{
		name:  "check",
		short: "Validate a config file and exit",
		long: `Validate a config file without serving it. A valid file prints a one-line
summary and exits 0; an invalid one prints every problem, one per line as
FILE: yaml.path: message, and exits 1. MANIFOLD_* overrides are applied, as
they would be by run.`,
		usage: "check [-c FILE]",
		examples: `  # Validate a config before deploying it
  manifold check -c /etc/manifold/config.yaml

  # Validate with an override, as the container would run it
  MANIFOLD_SERVER_ADDRESS=:9000 manifold check -c config.yaml`,
	},
	{
		name:  "graph",
		short: "Print each endpoint's call graph (text or Graphviz dot)",
		long: `Print each endpoint's call graph: its backends by stage, what each waits
for, foreach and fallback. Stage 1 needs nothing; a backend of stage N waits
for one of stage N-1. At request time each backend starts the moment its own
dependencies have answered, not stage by stage. The config is validated
first, as check does.`,
		usage: "graph [-c FILE] [--endpoint PATH] [--format text|dot]",
		examples: `  # The call graph of one endpoint
  manifold graph -c config.yaml --endpoint '/api/orders/{id}'

  # Every endpoint, drawn with Graphviz
  manifold graph -c config.yaml --format dot | dot -Tsvg > graph.svg`,
		graph: true,
	},
	{
		name:  "health",
		short: "Probe a running gateway's /__health (for container health checks)",
		long: `Ask a running gateway whether it is alive: one GET of /__health, exit 0 on a
200 and 1 otherwise. The address comes from the config's server.address
(0.0.0.0 and :: are probed on 127.0.0.1) unless --url names another. It needs
no shell or curl in the image.`,
		usage: "health [-c FILE] [--url URL]",
		examples: `  # As a Docker HEALTHCHECK
  manifold health -c /etc/manifold/config.yaml

  # Probe another address
  manifold health --url http://127.0.0.1:9000/__health`,
		url: true,
	},
	{
		name:  "schema",
		short: "Print the JSON Schema of the config file",
		long: `Print the JSON Schema (draft 2020-12) of the config file on stdout: every
key with its type, default and description. Unknown keys and values of the
wrong type are refused, so an editor with a YAML language server completes
and checks a config as you type. The schema judges each value on its own;
check also applies the rules between keys, ${VAR} and MANIFOLD_* overrides.`,
		usage: "schema",
		examples: `  # Save it beside your config
  manifold schema > config.schema.json

  # then name it on the config's first line, for the editor:
  # yaml-language-server: $schema=./config.schema.json`,
	},
	{
		name:     "version",
		short:    "Print the version",
		long:     "Print the version this binary was built as.",
		usage:    "version",
		examples: "  manifold version",
	},
	{
		name:  "help",
		short: "Show help for a command",
		long:  "Show the help of a command, or this overview when none is named.",
		usage: "help [COMMAND]",
		examples: `  manifold help check
  manifold check --help`,
	},
}

// lookup finds a command by name.
func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// cliFlags are the parsed flags of one invocation.
type cliFlags struct {
	set      *pflag.FlagSet
	config   string
	url      string
	endpoint string
	format   string
	help     bool
	version  bool
}

// newFlags is the flag set of cmd: every command takes -h, every one but
// version, help and schema also -c, health --url, graph --endpoint and
// --format, and the top level also -v/--version.
func newFlags(cmd command, top bool) *cliFlags {
	f := &cliFlags{set: pflag.NewFlagSet("manifold", pflag.ContinueOnError)}
	f.set.SetOutput(io.Discard) // errors are printed by run, help by printHelp
	f.set.SortFlags = false
	if cmd.name != "version" && cmd.name != "help" && cmd.name != "schema" {
		f.set.StringVarP(&f.config, "config", "c", "", "read the config from `FILE` (default $MANIFOLD_CONFIG, else ./config.yaml)")
	}
	if cmd.url {
		f.set.StringVar(&f.url, "url", "", "the `URL` to probe (default /__health on server.address)")
	}
	if cmd.graph {
		f.set.StringVar(&f.endpoint, "endpoint", "", "only the endpoint with this `PATH`, as written in the config")
		f.set.StringVar(&f.format, "format", "text", "`text` (stages, the default) or dot (Graphviz)")
	}
	f.set.BoolVarP(&f.help, "help", "h", false, "show this help")
	if top {
		f.set.BoolVarP(&f.version, "version", "v", false, "print the version")
	}
	return f
}

// commandName finds the command in args: the first argument that is not a
// flag or a flag's value. It returns "" when none is named.
func commandName(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			if i+1 < len(args) {
				return args[i+1]
			}
			return ""
		case a == "-c" || a == "--config" || a == "--url" || a == "--endpoint" || a == "--format":
			i++ // the flag's value
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return ""
}

// printOverview is `manifold --help`: what Manifold is, its commands, the
// top-level flags and a few examples.
func printOverview(w io.Writer) {
	var b strings.Builder
	b.WriteString(`Manifold is an API aggregation gateway: one client request fans out to
several upstream services in parallel, and their answers are reshaped and
merged into one JSON response.

Usage:
  manifold [COMMAND] [-c FILE]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.short)
	}
	b.WriteString("\nFlags:\n")
	b.WriteString(flagUsages(newFlags(commands[0], true).set))
	b.WriteString(`
Examples:
  # Serve the demo config shipped in the repository
  manifold run -c config.yaml

  # Validate a config before deploying it
  manifold check -c /etc/manifold/config.yaml

The config is read from -c FILE, else $MANIFOLD_CONFIG, else ./config.yaml.
Use "manifold help COMMAND" or "manifold COMMAND --help" for more about a command.
`)
	io.WriteString(w, b.String())
}

// printHelp is the help page of one command.
func printHelp(w io.Writer, cmd command) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nUsage:\n  manifold %s\n", cmd.long, cmd.usage)
	if flags := flagUsages(newFlags(cmd, false).set); flags != "" {
		fmt.Fprintf(&b, "\nFlags:\n%s", flags)
	}
	fmt.Fprintf(&b, "\nExamples:\n%s\n", cmd.examples)
	io.WriteString(w, b.String())
}

// flagUsages lists a flag set as "  -c, --config FILE   usage" lines, in
// the order the flags were defined.
func flagUsages(set *pflag.FlagSet) string {
	type row struct{ left, usage string }
	var rows []row
	width := 0
	set.VisitAll(func(f *pflag.Flag) {
		name, usage := pflag.UnquoteUsage(f)
		left := "    "
		if f.Shorthand != "" {
			left = "-" + f.Shorthand + ", "
		}
		left += "--" + f.Name
		if f.Value.Type() != "bool" {
			left += " " + name
		}
		rows = append(rows, row{left, usage})
		width = max(width, len(left))
	})
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-*s   %s\n", width, r.left, r.usage)
	}
	return b.String()
}
