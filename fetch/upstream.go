package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/manifold-gw/manifold/config"
)

// UserAgent identifies Manifold to upstreams. Set it (before building any
// Upstream) to stamp the version.
var UserAgent = "manifold"

// Upstream is the runtime of one configured upstream service: a tuned HTTP
// client whose connection pool is shared by every backend and endpoint that
// names it. It is built once per configuration and safe for concurrent use.
type Upstream struct {
	// Name is the upstream's name as written in the configuration.
	Name string

	cfg        *config.Upstream
	pathPrefix string      // the URL's path prefix, escaped, no trailing slash
	headers    http.Header // static headers, names as written (User-Agent aside, see NewUpstream)
	// hasUserAgent: a static header sets User-Agent, so Manifold's is not sent.
	hasUserAgent bool
	// stdlib: the instances use Go's http.Transport (through RoundTrip,
	// not an http.Client: no redirect is ever followed and no per-call
	// header copy is made), else the lean client.
	stdlib bool
	// instances are the upstream's instances in config order, each with
	// its own connection pool (pool.go).
	instances []*instance
	// single: one instance that nothing takes out of rotation, so pick
	// costs nothing.
	single     bool
	maxEjected int           // instances passive ejection may take out at once
	rr         atomic.Uint64 // round_robin's position
	ejectMu    sync.Mutex    // serialises ejection decisions
	hooks      PoolHooks
	prev       *Upstream // during construction only (WithPrevious)
	checks     *healthChecker
	flights    flights[tryOut] // coalesce: identical tries in flight
	// userAgent is UserAgent when the upstream was built, as a header value.
	userAgent []string
	logger    *slog.Logger

	breaker       *gobreaker.TwoStepCircuitBreaker[struct{}] // nil: disabled
	slots         chan struct{}                              // bulkhead; nil: unlimited
	onStateChange func(upstream string, to BreakerState)
	closed        atomic.Bool
}

// Option adjusts an Upstream at construction.
type Option func(*Upstream)

// WithStateChange calls f whenever the upstream's circuit breaker changes
// state, e.g. to update a metric. f must be fast and must not block.
func WithStateChange(f func(upstream string, to BreakerState)) Option {
	return func(u *Upstream) { u.onStateChange = f }
}

// NewUpstream builds the runtime of cfg (which Load validated): a client
// that never follows redirects, never uses environment proxies and keeps
// enough idle connections per host for the upstream's concurrency, plus the
// upstream's circuit breaker and bulkhead, shared by every backend naming it.
func NewUpstream(cfg *config.Upstream, logger *slog.Logger, opts ...Option) *Upstream {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	idle := 512
	if cfg.MaxConcurrent > 0 {
		idle = cfg.MaxConcurrent
	}
	if cfg.MaxConnections > 0 {
		idle = min(idle, cfg.MaxConnections) // no more can be open
	}
	dialTimeout := min(cfg.Timeout, 5*time.Second)
	h := make(http.Header, len(cfg.Headers))
	hasUA := false
	for k, v := range cfg.Headers {
		if http.CanonicalHeaderKey(k) == "User-Agent" {
			hasUA = true
			if cfg.Client == "stdlib" {
				// http.Transport writes User-Agent itself, read from the
				// canonical key only: under any other spelling it would
				// send its own Go-http-client/1.1 beside this one.
				k = "User-Agent"
			}
		}
		h[k] = []string{v} // as written: both clients send map keys verbatim
	}
	u := &Upstream{
		Name:         cfg.Name,
		cfg:          cfg,
		pathPrefix:   cfg.BaseURL.EscapedPath(),
		headers:      h,
		hasUserAgent: hasUA,
		userAgent:    []string{UserAgent},
		logger:       logger.With("upstream", cfg.Name),
	}
	for _, o := range opts {
		o(u)
	}
	if cfg.MaxConcurrent > 0 {
		u.slots = make(chan struct{}, cfg.MaxConcurrent)
	}
	u.breaker = u.newBreaker(cfg.CircuitBreaker)
	u.stdlib = cfg.Client == "stdlib"
	u.buildInstances(idle, dialTimeout)
	if cfg.HealthCheck != nil {
		u.checks = startHealthChecks(u)
	}
	return u
}

// Config returns the configuration this upstream was built from.
func (u *Upstream) Config() *config.Upstream { return u.cfg }

// Close stops the upstream's health checks (waiting for the checker to
// end) and closes the pools of its instances that no successor carried
// over: idle connections at once, those of calls in flight when they end.
// A reload calls it for upstreams that were removed or changed; from then on
// the upstream's breaker no longer reports state changes, so a call still in
// flight on it cannot overwrite what its successor reports. Close is
// idempotent.
func (u *Upstream) Close() {
	if u.closed.Swap(true) {
		return
	}
	if u.checks != nil {
		u.checks.stop()
	}
	for _, in := range u.instances {
		in.closeIfUnused()
	}
}

// classify maps a transport or body-read error onto the failure classes.
// parent is the request's context, so a client that left is told from a
// deadline; callCtx is the call's, whose cause says which deadline passed.
func classify(parent, callCtx context.Context, err error) error {
	if errors.Is(parent.Err(), context.Canceled) {
		return fmt.Errorf("%w: %w", ErrCanceled, err)
	}
	if errors.Is(err, errConnLimit) {
		// A timeout to the caller, but kept apart for the breaker and
		// ejection: the call never reached the upstream.
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	if callCtx.Err() == nil && (isTimeout(err) || errors.Is(err, context.DeadlineExceeded)) {
		// A connection deadline set to the call's deadline can fire a hair
		// before the context's own timer; wait for it (it is due) so the
		// cause below says which deadline it was.
		if dl, ok := callCtx.Deadline(); ok && time.Until(dl) < time.Millisecond {
			<-callCtx.Done()
		}
	}
	switch {
	case callCtx.Err() != nil:
		if cause := context.Cause(callCtx); cause != errOwnTimeout {
			return fmt.Errorf("%w: %w", ErrTimeout, errEndpointClipped)
		}
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return fmt.Errorf("%w: %w", ErrConnect, err)
}

// shadowedHeaders returns the forwarded header keys that a static header
// names too (header names compare case-insensitively), or nil.
func shadowedHeaders(forward []string, static map[string]string) []string {
	var out []string
	for _, k := range forward {
		for name := range static {
			if strings.EqualFold(name, k) {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

// containsFold reports whether list holds name, compared case-insensitively.
func containsFold(list []string, name string) bool {
	for _, s := range list {
		if strings.EqualFold(s, name) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readBody reads at most limit bytes of body, failing with ErrTooLarge past
// it. The limit applies to the decoded size (the transport decompresses).
func readBody(body io.Reader, limit int64, sizeHint int64) ([]byte, error) {
	capacity := int64(512)
	if sizeHint > 0 && sizeHint <= limit {
		capacity = sizeHint + 1
	}
	buf := make([]byte, 0, capacity)
	lr := &io.LimitedReader{R: body, N: limit + 1}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
