// Command manifold is an API aggregation gateway: one client request fans
// out to several upstream services in parallel, and their answers are
// reshaped and merged into one JSON response.
//
// Usage:
//
//	manifold [run] [-c FILE]   serve (config: -c, else $MANIFOLD_CONFIG, else ./config.yaml)
//	manifold check [-c FILE]   validate the config and exit
//	manifold health [-c FILE] [--url URL]  probe /__health (for container health checks)
//	manifold version           print the version
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/manifold-gw/manifold/config"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole CLI; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("manifold", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.StringP("config", "c", "", "config file (default $MANIFOLD_CONFIG, else ./config.yaml)")
	healthURL := fs.String("url", "", "health: the URL to probe (default: /__health on the configured server.address)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: manifold [run|check|health|version] [-c FILE]\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "manifold: %v\n", err)
		fs.Usage()
		return 2
	}
	cmd := "run"
	if fs.NArg() > 0 {
		cmd = fs.Arg(0)
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "manifold: unexpected argument %q\n", fs.Arg(1))
		return 2
	}
	path := *cfgPath
	if path == "" {
		path = os.Getenv("MANIFOLD_CONFIG")
	}
	if path == "" {
		path = "config.yaml"
	}

	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "manifold %s\n", version)
		return 0
	case "check":
		cfg, ok := load(path, stderr)
		if !ok {
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok: %s, %s, listening on %s\n",
			path, plural(len(cfg.Upstreams), "upstream"), plural(len(cfg.Endpoints), "endpoint"), cfg.Server.Address)
		return 0
	case "health":
		return health(*healthURL, path, stdout, stderr)
	case "run":
		cfg, ok := load(path, stderr)
		if !ok {
			return 1
		}
		if err := serve(path, cfg, stderr); err != nil {
			fmt.Fprintf(stderr, "manifold: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "manifold: unknown command %q\n", cmd)
	fs.Usage()
	return 2
}

// load reads the config, printing every problem (one per line) on failure.
func load(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path, nil)
	var problems config.Problems
	switch {
	case errors.As(err, &problems):
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		return nil, false
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stderr, "%s: %v (write a config there, or name yours with -c FILE or MANIFOLD_CONFIG)\n", path, err)
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
	if url == "" {
		addr := ":8080"
		if cfg, err := config.Load(path, nil); err == nil {
			addr = cfg.Server.Address
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			fmt.Fprintf(stderr, "manifold health: %v\n", err)
			return 1
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		url = "http://" + net.JoinHostPort(host, port) + "/__health"
	}
	client := &http.Client{Timeout: 3 * time.Second}
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
