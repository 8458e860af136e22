// Command manifold is an API aggregation gateway: one client request fans
// out to several upstream services in parallel, and their answers are
// reshaped and merged into one JSON response.
//
// Usage:
//
//	manifold [run] [-c FILE]   serve (config: -c, else $MANIFOLD_CONFIG, else ./config.yaml)
//	manifold check [-c FILE]   validate the config and exit
//	manifold graph [-c FILE] [--endpoint PATH] [--format text|dot]  print the call graphs
//	manifold health [-c FILE] [--url URL]  probe /__health (for container health checks)
//	manifold schema            print the config file's JSON Schema
//	manifold version           print the version (also -v, --version)
//	manifold help [COMMAND]    show help (also -h, --help)
package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole CLI; it returns the exit code: 0 done, 1 failed, 2 a
// usage error. Help goes to stdout, everything else that is not a result to
// stderr.
func run(args []string, stdout, stderr io.Writer) int {
	name := commandName(args)
	cmd, known := lookup(name)
	if name == "" {
		cmd, known = commands[0], true
	}
	if !known {
		fmt.Fprintf(stderr, "manifold: unknown command %q%s\nRun \"manifold --help\" for the commands.\n", name, suggestCommand(name))
		return 2
	}
	f := newFlags(cmd, name == "")
	if err := f.set.Parse(args); err != nil {
		fmt.Fprintf(stderr, "manifold %s: %v\nRun \"manifold %s --help\" for usage.\n", cmd.name, err, cmd.name)
		return 2
	}
	rest := f.set.Args()
	if name != "" {
		rest = rest[1:] // the command itself
	}
	switch {
	case f.help && name == "":
		printOverview(stdout)
		return 0
	case f.help:
		printHelp(stdout, cmd)
		return 0
	case f.version:
		cmd, _ = lookup("version")
	}
	if cmd.name == "help" {
		return help(rest, stdout, stderr)
	}
	if len(rest) > 0 {
		fmt.Fprintf(stderr, "manifold %s: unexpected argument %q\nRun \"manifold %s --help\" for usage.\n", cmd.name, rest[0], cmd.name)
		return 2
	}
	src := configSource(f.config)

	switch cmd.name {
	case "version":
		fmt.Fprintf(stdout, "manifold %s\n", version)
		return 0
	case "schema":
		return schema(stdout)
	case "check":
		cfg, ok := load(src, stderr, false)
		if !ok {
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok: %s, %s, listening on %s\n",
			src.path, plural(len(cfg.Upstreams), "upstream"), plural(len(cfg.Endpoints), "endpoint"), cfg.Server.Address)
		return 0
	case "health":
		return health(f.url, src.path, stdout, stderr)
	case "graph":
		return graphCommand(src, f.endpoint, f.format, stdout, stderr)
	default: // run
		cfg, ok := load(src, stderr, true)
		if !ok {
			return 1
		}
		if err := serve(src.path, cfg, stderr); err != nil {
			fmt.Fprintf(stderr, "manifold: %v\n", err)
			return 1
		}
		return 0
	}
}

// help is `manifold help [COMMAND]`.
func help(args []string, stdout, stderr io.Writer) int {
	switch len(args) {
	case 0:
		printOverview(stdout)
		return 0
	case 1:
		if cmd, ok := lookup(args[0]); ok {
			printHelp(stdout, cmd)
			return 0
		}
		fmt.Fprintf(stderr, "manifold help: unknown command %q%s\nRun \"manifold --help\" for the commands.\n", args[0], suggestCommand(args[0]))
	default:
		fmt.Fprintf(stderr, "manifold help: unexpected argument %q\nRun \"manifold help --help\" for usage.\n", args[1])
	}
	return 2
}

// source is where the config file name came from, so that a missing file
// can be reported with where Manifold looked.
type source struct {
	path string
	from string // "-c", "MANIFOLD_CONFIG" or "default"
}

// configSource picks the config file: -c, else $MANIFOLD_CONFIG, else
// ./config.yaml.
func configSource(flag string) source {
	if flag != "" {
		return source{flag, "-c"}
	}
	if env := os.Getenv("MANIFOLD_CONFIG"); env != "" {
		return source{env, "MANIFOLD_CONFIG"}
	}
	return source{"config.yaml", "default"}
}

// notFound explains a missing config file: the file Manifold read, where
// that name came from, and how to name another.
func (s source) notFound(err error) string {
	var b strings.Builder
	reason := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		reason = pe.Err
	}
	fmt.Fprintf(&b, "%s: cannot read the config file: %v\n", s.path, reason)
	b.WriteString("  Manifold reads the first of:\n")
	mark := func(from, what, state string) {
		arrow := "  "
		if s.from == from {
			arrow = "->"
		}
		fmt.Fprintf(&b, "  %s %-18s %s\n", arrow, what, state)
	}
	switch s.from {
	case "-c":
		mark("-c", "-c/--config FILE", s.path+": not found")
		mark("", "$MANIFOLD_CONFIG", "not read: -c wins")
		mark("", "./config.yaml", "not read: -c wins")
	case "MANIFOLD_CONFIG":
		mark("", "-c/--config FILE", "not given")
		mark("MANIFOLD_CONFIG", "$MANIFOLD_CONFIG", s.path+": not found")
		mark("", "./config.yaml", "not read: $MANIFOLD_CONFIG wins")
	default:
		mark("", "-c/--config FILE", "not given")
		mark("", "$MANIFOLD_CONFIG", "not set")
		mark("default", "./config.yaml", "not found in "+workDir())
	}
	b.WriteString("  Name the file with -c FILE or MANIFOLD_CONFIG=FILE; \"manifold --help\" shows an example.\n")
	return b.String()
}

// workDir is the working directory for messages, or "." when unknown.
func workDir() string {
	if wd, err := os.Getwd(); err == nil {
		return wd
	}
	return "."
}

// suggestCommand is ", did you mean X?" for a near miss, else "".
func suggestCommand(name string) string {
	best, bestD := "", 3
	for _, c := range commands {
		if d := config.EditDistance(name, c.name); d < bestD {
			best, bestD = c.name, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// load reads the config, printing every problem (one per line) on failure.
//
// Warnings (a MANIFOLD_* variable that names no key) are printed as
// "FILE: warning: ..." when the file is refused, or when quiet is false;
// run passes quiet so that they go to the log instead, once it exists.
func load(src source, stderr io.Writer, quiet bool) (*config.Config, bool) {
	path := src.path
	cfg, err := config.Load(path, nil)
	if err == nil {
		// The key set of auth.jwt.jwks_file, as the Gateway will load it:
		// a set with no key it can use is refused here, not by run alone.
		err = handlers.CheckKeys(cfg)
	}
	if err != nil || !quiet {
		for _, w := range config.Warnings(cfg, err) {
			fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
		}
	}
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		return nil, false
	case errors.Is(err, fs.ErrNotExist):
		io.WriteString(stderr, src.notFound(err))
		return nil, false
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return nil, false
	}
	return cfg, true
}

// health probes /__health once and exits 0 only on a 200: a HEALTHCHECK
// for images that have no shell or curl.
func health(url, path string, stdout, stderr io.Writer) int {
	client := &http.Client{Timeout: 3 * time.Second}
	if url == "" {
		addr, scheme := ":8080", "http"
		if cfg, err := config.Load(path, nil); err == nil {
			addr = cfg.Server.Address
			if cfg.Server.TLS.Enabled() {
				// The probe asks this process whether it is alive, over
				// loopback: the certificate names the public host, not
				// 127.0.0.1, so it is not verified here.
				scheme = "https"
				client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
			}
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			fmt.Fprintf(stderr, "manifold health: %v\n", err)
			return 1
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		url = scheme + "://" + net.JoinHostPort(host, port) + "/__health"
	}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "manifold health: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "manifold health: %s answered %d %s\n", url, resp.StatusCode, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", body)
	return 0
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
