package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/internal/h1"
)

// ErrNoHealthyInstance: every instance of the upstream was ejected or
// failed its health checks, so the call failed at once, never sent.
var ErrNoHealthyInstance = errors.New("no healthy instance")

// instance is one instance of an upstream: its own connection pool (in the
// upstream's client) and its rotation state. An instance that a reload
// leaves unchanged is carried over to the new Upstream with its pool,
// health and ejection state (see adopt).
type instance struct {
	addr   string // host:port: dialled, and the metrics' instance label
	host   string // the Host header
	origin string // scheme://host, for the stdlib client's URLs
	// key identifies what the connection pool was built from; an instance
	// is carried over a reload only to an upstream with the same key.
	key string

	lean      *h1.Client      // exactly one of lean and transport
	transport *http.Transport // (by the upstream's client)
	// With max_connections, health checks go through a client of their own
	// (one connection, outside the limit, the same client kind), so that a
	// check asks whether the instance answers rather than waiting behind
	// the calls holding every allowed connection. Nil without the limit.
	checkLean      *h1.Client
	checkTransport *http.Transport

	inflight atomic.Int64 // calls in flight, for least_inflight
	refs     atomic.Int32 // upstreams holding it; the pool is closed at 0

	// healthy is false while active health checks fail (see health.go).
	healthy atomic.Bool
	// ejectedUntil is when a passive ejection ends (unix ns; 0: not
	// ejected). The readmission timer clears it.
	ejectedUntil atomic.Int64
	failures     atomic.Int32 // failed calls in a row

	mu        sync.Mutex  // guards what follows (ejection bookkeeping)
	ejections int         // back-off exponent: ejections in the current streak
	lastOut   time.Time   // when the last ejection ended
	readmit   *time.Timer // ends the current ejection; nil when none
	closed    bool        // no more timers once the pool is closed

	// hooks reports state changes to the metrics of the upstream that
	// holds the instance (the newest, after a reload).
	hooks atomic.Pointer[instanceHooks]
}

// instanceHooks are an instance's metric callbacks (nil fields: none).
type instanceHooks struct {
	logger  *slog.Logger
	state   func(healthy bool) // in rotation or not
	ejected func()
}

// available reports whether the instance may take calls at now (unix ns).
func (in *instance) available(now int64) bool {
	until := in.ejectedUntil.Load()
	return (until == 0 || now >= until) && in.healthy.Load()
}

// inRotation is available at the current time.
func (in *instance) inRotation() bool { return in.available(time.Now().UnixNano()) }

func (in *instance) report() {
	if h := in.hooks.Load(); h != nil && h.state != nil {
		h.state(in.inRotation())
	}
}

// closeIfUnused drops one reference and closes the pool when it was the
// last: idle connections at once, those in use when their call ends.
func (in *instance) closeIfUnused() {
	if in.refs.Add(-1) > 0 {
		return
	}
	in.mu.Lock()
	in.closed = true
	if in.readmit != nil {
		in.readmit.Stop()
		in.readmit = nil
	}
	in.mu.Unlock()
	if in.lean != nil {
		in.lean.Close()
	}
	if in.transport != nil {
		in.transport.CloseIdleConnections()
	}
	if in.checkLean != nil {
		in.checkLean.Close()
	}
	if in.checkTransport != nil {
		in.checkTransport.CloseIdleConnections()
	}
}

// PoolHooks are the upstream's pool metrics, called on events only (never
// per ordinary call). Every field may be nil.
type PoolHooks struct {
	// HedgeWon and HedgeLost count hedges by which try answered first.
	HedgeWon, HedgeLost func()
	// Coalesced counts calls that joined another identical call in flight.
	Coalesced func()
	// Ejected counts passive ejections of instance (host:port).
	Ejected func(instance string)
	// InstanceState reports whether instance is in rotation (neither
	// ejected nor failing its health checks). It is called for every
	// instance when the upstream is built, then on every change.
	InstanceState func(instance string, healthy bool)
}

// WithPoolHooks sets the upstream's pool metrics.
func WithPoolHooks(h PoolHooks) Option {
	return func(u *Upstream) { u.hooks = h }
}

// WithPrevious lets a rebuilt upstream carry over the instances of prev
// (the same upstream in the configuration being replaced) whose connection
// settings did not change, with their pools, health and ejection state.
// Instances it does not take are closed when prev is.
func WithPrevious(prev *Upstream) Option {
	return func(u *Upstream) { u.prev = prev }
}

// instanceKey fingerprints what an instance's client is built from, so
// that a reload carries an instance over only if its pool would be built
// the same way.
func instanceKey(cfg *config.Upstream, inst config.Instance, idle int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|%s|%v|%d|%d|%d|%s|%v|", cfg.Client, inst.URL.Scheme, inst.URL.Host, inst.Addr,
		cfg.Compression, idle, cfg.MaxConnections, min(cfg.Timeout, 5*time.Second), cfg.TLS.ServerName, cfg.TLS.InsecureSkipVerify)
	for _, b := range [][]byte{cfg.TLS.CAPEM, cfg.TLS.CertPEM, cfg.TLS.KeyPEM} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// buildInstances makes (or carries over from u.prev) one instance per
// configured instance.
func (u *Upstream) buildInstances(idle int, dialTimeout time.Duration) {
	cfg := u.cfg
	var old map[string]*instance
	if u.prev != nil {
		old = make(map[string]*instance, len(u.prev.instances))
		for _, in := range u.prev.instances {
			old[in.key] = in
		}
	}
	u.instances = make([]*instance, 0, len(cfg.Instances))
	for _, ci := range cfg.Instances {
		key := instanceKey(cfg, ci, idle)
		in := old[key]
		if in != nil {
			delete(old, key) // taken once
		} else {
			in = &instance{addr: ci.Addr, host: ci.URL.Host, origin: ci.URL.Scheme + "://" + ci.URL.Host, key: key}
			in.healthy.Store(true)
			if cfg.Client == "stdlib" {
				in.transport = newTransport(cfg, idle, cfg.MaxConnections, dialTimeout)
				if cfg.MaxConnections > 0 {
					in.checkTransport = newTransport(cfg, 1, 0, dialTimeout)
				}
			} else {
				in.lean = newLeanClient(cfg, ci, idle, cfg.MaxConnections, dialTimeout)
				if cfg.MaxConnections > 0 {
					in.checkLean = newLeanClient(cfg, ci, 1, 0, dialTimeout)
				}
			}
		}
		if cfg.HealthCheck == nil {
			// No checker here to bring back one that failed its checks
			// under the previous configuration.
			in.healthy.Store(true)
		}
		in.refs.Add(1)
		h := &instanceHooks{logger: u.logger.With("instance", in.addr)}
		if f := u.hooks.InstanceState; f != nil {
			addr := in.addr
			h.state = func(healthy bool) { f(addr, healthy) }
		}
		if f := u.hooks.Ejected; f != nil {
			addr := in.addr
			h.ejected = func() { f(addr) }
		}
		in.hooks.Store(h)
		u.instances = append(u.instances, in)
	}
	u.prev = nil // not kept: the old upstream must be collectable
	for _, in := range u.instances {
		in.report()
	}
	n := len(u.instances)
	o := cfg.Outlier
	if o.ConsecutiveFailures > 0 {
		u.maxEjected = n * o.MaxEjectedPercent / 100
	}
	// One instance that nothing can take out of rotation: pick is free.
	u.single = n == 1 && u.maxEjected == 0 && cfg.HealthCheck == nil
}

// pick chooses the instance for one try, avoiding avoid (the instance of
// the previous try, for a retry or a hedge) when another is in rotation.
// It fails with ErrNoHealthyInstance when none is.
func (u *Upstream) pick(avoid *instance) (*instance, error) {
	if u.single {
		return u.instances[0], nil
	}
	now := time.Now().UnixNano()
	ins := u.instances
	n := len(ins)
	ok := func(in *instance) bool { return in != avoid && in.available(now) }
	if n > 1 {
		if u.cfg.Balance == config.BalanceRoundRobin {
			start := int(u.rr.Add(1) % uint64(n))
			for k := range n {
				if in := ins[(start+k)%n]; ok(in) {
					return in, nil
				}
			}
		} else {
			// Power of two random choices: the fewer calls in flight.
			i := rand.N(n)
			j := rand.N(n - 1)
			if j >= i {
				j++
			}
			a, b := ins[i], ins[j]
			okA, okB := ok(a), ok(b)
			switch {
			case okA && okB:
				if b.inflight.Load() < a.inflight.Load() {
					return b, nil
				}
				return a, nil
			case okA:
				return a, nil
			case okB:
				return b, nil
			}
			start := rand.N(n)
			for k := range n {
				if in := ins[(start+k)%n]; ok(in) {
					return in, nil
				}
			}
		}
	}
	if avoid != nil && avoid.available(now) {
		return avoid, nil // the only one in rotation
	}
	if n == 1 && ins[0].available(now) {
		return ins[0], nil
	}
	return nil, fmt.Errorf("%w: %d instances, none in rotation", ErrNoHealthyInstance, n)
}

// outlierVerdict reports how a try's outcome counts for passive ejection:
// +1 a failure (connect error, timeout, 5xx), -1 a success (any other
// answer), 0 neither (the client left, the try was never sent or lost a
// hedge).
func outlierVerdict(err error) int {
	if err == nil {
		return -1
	}
	if code, ok := statusOf(err); ok {
		if code >= 500 {
			return 1
		}
		return -1
	}
	switch {
	case errors.Is(err, ErrCanceled), errors.Is(err, errNoTimeLeft), errors.Is(err, errConnLimit):
		return 0
	case errors.Is(err, ErrConnect), errors.Is(err, ErrTimeout):
		return 1
	}
	return -1 // it answered: too large, not JSON, unexpected shape
}

// observe records a try's outcome on its instance and ejects the instance
// when it has failed outlier.consecutive_failures times in a row.
func (u *Upstream) observe(in *instance, err error) {
	if u.maxEjected == 0 {
		return
	}
	switch outlierVerdict(err) {
	case -1:
		if in.failures.Load() != 0 {
			in.failures.Store(0)
		}
	case 1:
		if int(in.failures.Add(1)) >= u.cfg.Outlier.ConsecutiveFailures {
			u.eject(in)
		}
	}
}

// eject takes in out of rotation for outlier.eject_for, doubled for each
// ejection in a row up to ten times it, unless max_ejected_percent of the
// instances are out already (ejected or failing health checks). The streak ends when the instance has been
// back for ten times eject_for.
func (u *Upstream) eject(in *instance) {
	now := time.Now()
	if in.ejectedUntil.Load() != 0 {
		return // out already (a try sent before the ejection ended late)
	}
	// One decision at a time, so that two instances failing at once
	// cannot both see room under max_ejected_percent.
	u.ejectMu.Lock()
	defer u.ejectMu.Unlock()
	// Out of rotation for any reason counts: ejected, or failing its
	// health checks.
	out := 0
	for _, other := range u.instances {
		if other.ejectedUntil.Load() != 0 || !other.healthy.Load() {
			out++
		}
	}
	if out >= u.maxEjected {
		return // the failures keep counting; ejected once the cap allows
	}
	base := u.cfg.Outlier.EjectFor
	in.mu.Lock()
	if in.closed || in.ejectedUntil.Load() != 0 {
		in.mu.Unlock()
		return
	}
	if !in.lastOut.IsZero() && now.Sub(in.lastOut) > 10*base {
		in.ejections = 0
	}
	d := min(base<<min(in.ejections, 4), 10*base)
	in.ejections++
	in.failures.Store(0)
	in.ejectedUntil.Store(now.Add(d).UnixNano())
	in.readmit = time.AfterFunc(d, func() { u.readmit(in) })
	in.mu.Unlock()
	h := in.hooks.Load()
	h.logger.Warn("upstream instance ejected", "for", d.Seconds(), "consecutive_failures", u.cfg.Outlier.ConsecutiveFailures)
	if h.ejected != nil {
		h.ejected()
	}
	in.report()
}

// readmit ends in's ejection.
func (u *Upstream) readmit(in *instance) {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.ejectedUntil.Store(0)
	in.failures.Store(0)
	in.lastOut = time.Now()
	in.readmit = nil
	in.mu.Unlock()
	in.hooks.Load().logger.Info("upstream instance back in rotation after ejection")
	in.report()
}

// ReportInstances reports every instance's state to the pool hooks again.
// Each build reports its instances when it is made, so a reload whose
// build failed afterwards has overwritten the running upstream's gauges
// with those of instances it built; Retire restores them with this.
func (u *Upstream) ReportInstances() {
	for _, in := range u.instances {
		in.report()
	}
}

// InstanceStatus is one instance's state, for status pages and tests.
type InstanceStatus struct {
	// Addr is the instance's host:port.
	Addr string
	// InRotation is false while it is ejected or failing health checks.
	InRotation bool
	// InFlight is its number of calls in flight.
	InFlight int64
}

// Instances reports the state of every instance, in configuration order.
func (u *Upstream) Instances() []InstanceStatus {
	out := make([]InstanceStatus, len(u.instances))
	for i, in := range u.instances {
		out[i] = InstanceStatus{Addr: in.addr, InRotation: in.inRotation(), InFlight: in.inflight.Load()}
	}
	return out
}

// ticket is one admitted try: the bulkhead slot and breaker report taken
// by admit, and the instance it goes to. done must be called exactly once.
type ticket struct {
	u       *Upstream
	in      *instance
	breaker func(error) // nil without a breaker
	slot    bool
}

// done reports the try's outcome to the breaker and the instance's outlier
// state, and releases the slot and the instance's in-flight count.
func (t ticket) done(outcome error) {
	if t.breaker != nil {
		t.breaker(breakerVerdict(outcome))
	}
	if t.in != nil && !t.u.single {
		t.in.inflight.Add(-1)
		t.u.observe(t.in, outcome)
	}
	if t.slot {
		<-t.u.slots
	}
}
