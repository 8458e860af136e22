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
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
	"github.com/manifold-gw/manifold/handlers"
	"github.com/manifold-gw/manifold/internal/demo"
	"github.com/manifold-gw/manifold/internal/telemetry"
)

// errForced is returned when a second signal cut the drain short.
var errForced = errors.New("second signal: exited without finishing in-flight requests")

// liveGateway serves through whichever Gateway is current; a reload swaps
// the pointer, and requests already inside the old Gateway finish there.
type liveGateway struct {
	p     atomic.Pointer[handlers.Gateway]
	ready *atomic.Bool
}

// ServeHTTP serves through the current Gateway. While draining, every answer
// says Connection: close, so the balancer's pooled connections end one by one
// after a served request instead of being cut while a request may be on its
// way; the listener itself stays open for drain_delay.
func (l *liveGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !l.ready.Load() {
		w.Header()["Connection"] = []string{"close"}
	}
	l.p.Load().ServeHTTP(w, r)
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

// redisLog routes go-redis's own log lines to the process log at debug:
// they come one per failed dial while Redis is down, and the gateway
// already logs each outage once, at warn, when it begins (and at info
// when it ends).
type redisLog struct{ l *slog.Logger }

// Printf logs one go-redis line.
func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	if r.l.Enabled(ctx, slog.LevelDebug) {
		r.l.DebugContext(ctx, fmt.Sprintf(format, v...), "source", "go-redis")
	}
}

// redisLogOnce sets go-redis's logger, a package global, once per process,
// before any Redis client of it exists.
var redisLogOnce sync.Once

// serve runs the gateway until SIGTERM or SIGINT, reloading the config on
// SIGHUP or when the file changes, then drains: readiness goes 503 and
// keep-alive stops at once, drain_delay passes, the listener closes and
// in-flight requests get shutdown_timeout to finish.
func serve(path string, cfg *config.Config, logw io.Writer) error {
	logger := newLogger(cfg.Log, logw)
	for _, w := range cfg.Warnings {
		logger.Warn(w)
	}
	fetch.UserAgent = "manifold/" + version
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{logger}) })
	ready := &atomic.Bool{}
	ready.Store(true)
	metrics := handlers.NewMetrics()
	// The shadow pool is the process's: reloads keep it, and server.shadow
	// applies at restart. The drain gives what it has queued what is left
	// of shutdown_timeout; every other way out drops it, counted.
	shadows := fetch.NewShadowPool(cfg.Server.Shadow, metrics.ShadowHooks(), logger)
	shadows.Start()
	defer func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		shadows.Stop(ctx)
	}()
	opts := handlers.Options{Logger: logger, Ready: ready, Demo: demo.Handler(), Metrics: metrics, Shadow: shadows}
	// Tracing is the process's, built once: its keys apply at restart.
	traces, err := telemetry.New(cfg.Tracing, telemetry.Options{Logger: logger, Version: version})
	if err != nil {
		return err
	}
	defer func() {
		// The drain below flushes within shutdown_timeout; this is for
		// the other ways out.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = traces.Shutdown(ctx)
	}()
	if traces != nil {
		logger.Info("tracing on", "traces_url", cfg.Tracing.TracesURL(), "sample_ratio", cfg.Tracing.SampleRatio, "service_name", cfg.Tracing.ServiceName)
	}
	opts.Tracer = traces.Tracer()

	gw, err := handlers.New(cfg, opts)
	if err != nil {
		return err
	}
	live := &liveGateway{ready: ready}
	live.p.Store(gw)
	defer func() { live.p.Load().Close() }()

	// The watcher is owned here and ends when serve returns. It starts before
	// the listener so that no edit made after start-up can go unseen.
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var watchers sync.WaitGroup
	defer func() {
		stopWatch()
		watchers.Wait()
	}()
	changed := make(chan struct{}, 1)
	watchers.Go(func() {
		err := config.Watch(watchCtx, path, cfg.Digest, 200*time.Millisecond, func() {
			select {
			case changed <- struct{}{}:
			default: // a reload is already pending
			}
		})
		if err != nil {
			logger.Warn("config file not watched; reload with SIGHUP", "error", err)
		}
	})

	// Signals are caught before the listener opens, so a SIGTERM that follows
	// the first answered request always drains rather than killing.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	s := cfg.Server
	ln, err := net.Listen("tcp", s.Address)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.Address, err)
	}
	srv := &http.Server{
		Handler:           live,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      s.WriteTimeout,
		IdleTimeout:       s.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	certs, err := configureProtocols(srv, s)
	if err != nil {
		ln.Close()
		return err
	}
	// Both listeners are bound before either serves: with the admin
	// address taken, run fails before the main listener has answered (or
	// said ready to) anyone.
	var aln net.Listener
	if cfg.Admin.Address != "" {
		aln, err = net.Listen("tcp", cfg.Admin.Address)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen admin %s: %w", cfg.Admin.Address, err)
		}
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	scheme := "http"
	if certs != nil {
		scheme = "https"
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	logger.Info("listening", "address", ln.Addr().String(), "scheme", scheme, "h2c", s.H2C, "version", version, "endpoints", len(cfg.Endpoints))

	if aln != nil {
		admin := newAdminServer(cfg, metrics, ready, logger)
		servers = append(servers, admin)
		go func() { errc <- admin.Serve(aln) }()
		logger.Info("admin listening", "address", aln.Addr().String())
	}

	reload := func(why string) {
		next, err := reloadGateway(path, cfg, live.p.Load(), opts, logger)
		metrics.Reloaded(err == nil)
		if err != nil {
			return
		}
		old := live.p.Swap(next)
		old.Retire(next)
		logger.Info("config reloaded", "trigger", why, "endpoints", len(next.Config().Endpoints))
	}
wait:
	for {
		select {
		case err := <-errc:
			for _, s := range servers {
				_ = s.Close()
			}
			return err
		case <-changed:
			reload("file changed")
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if certs != nil {
					if err := certs.reload(); err != nil {
						logger.Error("certificate reload failed; keeping the one in use", "error", err)
					} else {
						logger.Info("certificate reloaded", "cert_file", certs.cfg.CertFile)
					}
				}
				reload("SIGHUP")
				continue
			}
			logger.Info("draining", "signal", sig.String(), "drain_delay", s.DrainDelay, "shutdown_timeout", s.ShutdownTimeout)
			break wait
		}
	}

	ready.Store(false) // from now on answers say Connection: close
	if _, ok := waitOrStop(time.After(s.DrainDelay), sigs); !ok {
		logger.Warn(errForced.Error())
		return errForced
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
		shadows.Stop(ctx) // what is left of shutdown_timeout, for the queued shadow calls
		done <- first
	}()
	err, ok := waitOrStop(done, sigs)
	if !ok {
		for _, s := range servers {
			_ = s.Close()
		}
		cancel() // and the shadow drain
		<-done
		logger.Warn(errForced.Error())
		return errForced
	}
	// The spans of the requests just drained, within what is left.
	if ferr := traces.Shutdown(ctx); ferr != nil {
		logger.Warn("tracing: spans still queued were dropped", "error", ferr)
	}
	if err != nil {
		return fmt.Errorf("in-flight requests did not finish within shutdown_timeout (%v): %w", s.ShutdownTimeout, err)
	}
	logger.Info("stopped")
	return nil
}

// newAdminServer builds the operations server (/metrics, /__health,
// /__ready). It has the main listener's guards, server.read_header_timeout,
// read_timeout, write_timeout and idle_timeout: the listener has no
// authentication, so it must not hold idle or slow connections for ever.
func newAdminServer(cfg *config.Config, metrics *handlers.Metrics, ready *atomic.Bool, logger *slog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /__health", handlers.Health)
	mux.Handle("GET /__ready", handlers.Readiness(ready))
	s := cfg.Server
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		ReadTimeout:       s.ReadTimeout,
		WriteTimeout:      s.WriteTimeout,
		IdleTimeout:       s.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// waitOrStop waits for a value from c; it reports false if a stop signal
// (SIGTERM, SIGINT) came first. A SIGHUP is ignored: nothing reloads while
// draining.
func waitOrStop[T any](c <-chan T, sigs <-chan os.Signal) (T, bool) {
	for {
		select {
		case v := <-c:
			return v, true
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				var zero T
				return zero, false
			}
		}
	}
}

// reloadGateway loads the file again and builds the Gateway that replaces
// cur. An invalid file leaves cur serving and logs every problem. Settings
// that only a restart can apply (listeners, server timeouts, logging) are
// reported, not applied.
func reloadGateway(path string, started *config.Config, cur *handlers.Gateway, opts handlers.Options, logger *slog.Logger) (*handlers.Gateway, error) {
	cfg, err := config.Load(path, nil)
	if err == nil {
		err = config.CheckReload(cfg, started, path)
	}
	if err != nil {
		var problems config.Problems
		if errors.As(err, &problems) {
			for _, p := range problems {
				logger.Error("config reload refused; keeping the running config", "problem", p.String())
			}
		} else {
			logger.Error("config reload failed; keeping the running config", "error", err)
		}
		return nil, err
	}
	if !reflect.DeepEqual(restartOnly(cfg), restartOnly(started)) {
		logger.Warn("listener, timeout, admin, log or tracing settings changed in the file; they apply at the next restart")
	}
	opts.Previous = cur
	next, err := handlers.New(cfg, opts)
	if err != nil {
		logger.Error("config reload failed; keeping the running config", "error", err)
		return nil, err
	}
	return next, nil
}

// restartSettings are what a reload cannot apply: they belong to the
// listeners, the process log, the shutdown sequence and the process's
// tracer provider.
type restartSettings struct {
	server  config.Server
	admin   config.Admin
	log     config.Log
	tracing config.Tracing
}

func restartOnly(cfg *config.Config) restartSettings {
	s := cfg.Server
	// Applied on reload: the Gateway is rebuilt with them.
	s.TrustedProxies, s.TrustedPrefixes, s.MaxBodyBytes = nil, nil, 0
	s.CORS, s.Compression, s.CacheBytes = nil, config.Compression{}, 0
	l := cfg.Log
	l.BackendFailuresPerSecond = 0 // the Gateway's, applied on reload
	return restartSettings{server: s, admin: cfg.Admin, log: l, tracing: cfg.Tracing}
}
