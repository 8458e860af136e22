// Command manifold is an API aggregation gateway: one client request fans
// out to several upstream services in parallel, and their answers are
// reshaped and merged into one JSON response.
//
// Usage:
//
//	manifold [run] [-c FILE]   serve (config: -c, else $MANIFOLD_CONFIG, else ./config.yaml)
//	manifold check [-c FILE]   validate the config and exit
//	manifold version           print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
	"github.com/manifold-gw/manifold/handlers"
	"github.com/manifold-gw/manifold/internal/demo"
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
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: manifold [run|check|version] [-c FILE]\n\nFlags:\n%s", fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
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
		fmt.Fprintf(stdout, "%s: ok: %d upstreams, %d endpoints, listening on %s\n",
			path, len(cfg.Upstreams), len(cfg.Endpoints), cfg.Server.Address)
		return 0
	case "run":
		cfg, ok := load(path, stderr)
		if !ok {
			return 1
		}
		if err := serve(cfg, stderr); err != nil {
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
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return nil, false
	}
	return cfg, true
}

func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serve runs the gateway until SIGTERM or SIGINT, then drains: readiness
// goes 503, drain_delay passes, the listener closes and in-flight requests
// get shutdown_timeout to finish.
func serve(cfg *config.Config, logw io.Writer) error {
	logger := newLogger(cfg.Log, logw)
	fetch.UserAgent = "manifold/" + version
	ready := &atomic.Bool{}
	ready.Store(true)

	gw, err := handlers.New(cfg, handlers.Options{Logger: logger, Ready: ready, Demo: demo.Handler()})
	if err != nil {
		return err
	}
	defer gw.Close()

	s := cfg.Server
	ln, err := net.Listen("tcp", s.Address)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.Address, err)
	}
	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      s.WriteTimeout,
		IdleTimeout:       s.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "address", ln.Addr().String(), "version", version, "endpoints", len(cfg.Endpoints))

	if cfg.Admin.Address != "" {
		aln, err := net.Listen("tcp", cfg.Admin.Address)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("listen admin %s: %w", cfg.Admin.Address, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /__health", handlers.Health)
		mux.Handle("GET /__ready", handlers.Readiness(ready))
		admin := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, admin)
		go func() { errc <- admin.Serve(aln) }()
		logger.Info("admin listening", "address", aln.Addr().String())
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	select {
	case err := <-errc:
		for _, s := range servers {
			_ = s.Close()
		}
		return err
	case sig := <-sigs:
		logger.Info("draining", "signal", sig.String(), "drain_delay", s.DrainDelay)
	}
	ready.Store(false)
	select {
	case <-time.After(s.DrainDelay):
	case sig := <-sigs:
		logger.Warn("second signal: exiting at once", "signal", sig.String())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var first error
		for _, s := range servers {
			if err := s.Shutdown(ctx); err != nil && first == nil {
				first = err
			}
		}
		done <- first
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
	case sig := <-sigs:
		logger.Warn("second signal: exiting at once", "signal", sig.String())
		return nil
	}
	logger.Info("stopped")
	return nil
}
