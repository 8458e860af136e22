package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/manifold-gw/manifold/config"
)

// ShadowOutcome is how one shadow call ended, the outcome label of
// manifold_shadow_requests_total.
type ShadowOutcome string

// The outcomes of a shadow call.
const (
	// ShadowOK: the upstream answered 2xx with a body within
	// max_response_bytes (read, then discarded).
	ShadowOK ShadowOutcome = "ok"
	// ShadowError: the call was made and failed as a merged backend's
	// would: connect error, timeout, non-2xx, body over
	// max_response_bytes, open breaker, full bulkhead, no healthy instance.
	ShadowError ShadowOutcome = "error"
	// ShadowDropped: the call was never made, or not finished: the queue
	// was full, the pool was stopping, or shutdown_timeout ran out.
	ShadowDropped ShadowOutcome = "dropped"
)

// ShadowHooks are the shadow pool's metrics. Every field may be nil.
type ShadowHooks struct {
	// Done is called once per shadow call, from the request's goroutine
	// for a call dropped at enqueue, else from a worker. It must be fast.
	Done func(upstream string, outcome ShadowOutcome)
}

// ShadowPool sends the copies of shadow backends' calls off the request
// path: a fixed number of worker goroutines fed by one bounded queue.
// Enqueueing never blocks: with the queue full the call is dropped and
// counted. There is no goroutine per call, and Stop waits for every worker
// to end. The process builds one at start-up (server.shadow) and hands it
// to every Gateway, so a reload neither loses queued calls nor resizes it.
//
// A queued call holds everything it needs by value (method, request-target,
// its own copy of the headers, the request body, which nothing writes once
// read) and the compiled backend it belongs to; never the client's request
// or its context. It runs under the pool's context with the upstream's
// timeout, so neither the client leaving nor the endpoint's deadline ends
// it, and it can never delay, change or fail the client's answer.
type ShadowPool struct {
	workers int
	jobs    chan shadowJob
	hooks   ShadowHooks
	logger  *slog.Logger

	// ctx ends the calls in flight when Stop's deadline passes; the
	// workers then count what is left in the queue as dropped.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.RWMutex // held for reading while enqueueing
	started bool
	stopped bool // jobs is closed; enqueue drops
	wg      sync.WaitGroup

	ok, failed, dropped atomic.Int64 // totals, for Stop's log line
}

// shadowJob is one queued shadow call.
type shadowJob struct {
	b *Backend
	o outbound
}

// NewShadowPool builds the pool of cfg (server.shadow, which Load
// validated: workers >= 1, queue >= 0). Calls are queued from the start;
// Start starts the workers. logger receives failures at debug and the
// drain at Stop (nil = discard).
func NewShadowPool(cfg config.Shadow, hooks ShadowHooks, logger *slog.Logger) *ShadowPool {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &ShadowPool{
		workers: max(cfg.Workers, 1),
		jobs:    make(chan shadowJob, max(cfg.Queue, 0)),
		hooks:   hooks,
		logger:  logger,
		ctx:     ctx,
		cancel:  cancel,
	}
}

// Start starts the workers. It does nothing the second time, or after Stop.
func (p *ShadowPool) Start() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.stopped {
		return
	}
	p.started = true
	for range p.workers {
		p.wg.Go(p.work)
	}
}

// Stop stops taking calls (from now on they are dropped and counted),
// lets the workers send what is queued until ctx ends, then cancels the
// calls in flight and counts what is still queued as dropped. It returns
// once every worker has ended. It is safe to call more than once and
// concurrently: every call waits for the workers, and the first ctx to
// end cuts the drain short.
func (p *ShadowPool) Stop(ctx context.Context) {
	p.mu.Lock()
	first := !p.stopped
	queued := len(p.jobs)
	if first {
		p.stopped = true
		close(p.jobs) // no enqueue can be sending: they hold the read lock
	}
	started := p.started
	p.mu.Unlock()
	ok, failed, dropped := p.ok.Load(), p.failed.Load(), p.dropped.Load()
	if !started && first {
		for j := range p.jobs {
			p.finish(j.b, ShadowDropped)
		}
	}
	stop := context.AfterFunc(ctx, p.cancel)
	p.wg.Wait()
	stop()
	p.cancel()
	if first && queued+int(p.dropped.Load()-dropped) > 0 {
		p.logger.Info("shadow calls drained", "queued", queued,
			"ok", p.ok.Load()-ok, "error", p.failed.Load()-failed, "dropped", p.dropped.Load()-dropped)
	}
}

// enqueue queues a copy of b's call for in, or drops and counts it when
// the queue is full or the pool stopped. It never blocks.
func (p *ShadowPool) enqueue(b *Backend, in *Inbound) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.stopped || (cap(p.jobs) > 0 && len(p.jobs) == cap(p.jobs)) {
		p.finish(b, ShadowDropped) // full: not worth preparing
		return
	}
	o := b.prepare(in, nil)
	o.header = o.header.Clone() // its own: in's values belong to the request
	select {
	case p.jobs <- shadowJob{b: b, o: *o}:
	default:
		p.finish(b, ShadowDropped)
	}
}

// work is one worker: it sends queued calls one at a time until the queue
// is closed and empty. Once Stop's deadline has passed, what it takes is
// counted as dropped, unsent.
func (p *ShadowPool) work() {
	buf := make([]byte, 16<<10) // the discarded answers' reads, reused
	for j := range p.jobs {
		if p.ctx.Err() != nil {
			p.finish(j.b, ShadowDropped)
			continue
		}
		p.finish(j.b, p.send(j, buf))
	}
}

func (p *ShadowPool) finish(b *Backend, outcome ShadowOutcome) {
	switch outcome {
	case ShadowOK:
		p.ok.Add(1)
	case ShadowError:
		p.failed.Add(1)
	default:
		p.dropped.Add(1)
	}
	if p.hooks.Done != nil {
		p.hooks.Done(b.Upstream.Name, outcome)
	}
}

// send makes the shadow call: one try (no retry, hedge or coalescing:
// the answer is not needed, only the upstream's behaviour), on an instance
// picked as for any call, through the upstream's bulkhead and breaker, so
// a shadow upstream failing opens its own breaker as it would under real
// traffic. The answer is read up to max_response_bytes and discarded.
func (p *ShadowPool) send(j shadowJob, buf []byte) ShadowOutcome {
	b := j.b
	err := p.try(j, buf)
	switch {
	case err == nil:
		return ShadowOK
	case errors.Is(err, ErrCanceled):
		return ShadowDropped // cut by Stop's deadline
	}
	p.logger.Debug("shadow call failed", "upstream", b.Upstream.Name, "backend", b.Label, "reason", Reason(err), "error", err.Error())
	return ShadowError
}

func (p *ShadowPool) try(j shadowJob, buf []byte) (err error) {
	b := j.b
	in, err := b.Upstream.pick(nil)
	if err != nil {
		return err
	}
	resp, callCtx, t, err := b.send(p.ctx, &j.o, in)
	if err != nil {
		return err
	}
	defer func() { t.done(err) }()
	defer resp.Body.Close()
	limit := b.Upstream.cfg.MaxResponseBytes
	if !hasBody(b.Config.Method, resp.StatusCode) {
		// Nothing to read (a HEAD answer declares a length it does not carry).
	} else if resp.ContentLength > limit {
		return fmt.Errorf("%w: Content-Length %d over %d bytes", ErrTooLarge, resp.ContentLength, limit)
	} else if err := discard(&cappedReader{r: resp.Body, left: limit}, buf); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)
		}
		return classify(p.ctx, callCtx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Code: resp.StatusCode}
	}
	return nil
}

// discard reads r to its end into buf, keeping nothing.
func discard(r io.Reader, buf []byte) error {
	for {
		_, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// WithShadowPool sends the copies of the endpoint's shadow backends'
// calls through p. Without it (or with nil) an endpoint with shadow
// backends sends no copy at all.
func WithShadowPool(p *ShadowPool) EndpointOption {
	return func(e *Endpoint) { e.pool = p }
}

// splitShadows takes the shadow backends out of e.Backends, which NewEndpoint
// filled in config order, so that Fetch's results, one per backend, hold
// the answering backends only. A call graph's dependencies are config
// indexes: a graph endpoint keeps its backends in config order in nodes,
// with nil where a shadow backend is (nothing depends on one).
func (e *Endpoint) splitShadows() {
	n := 0
	for _, b := range e.Backends {
		if b.Config.Shadow {
			n++
		}
	}
	if n == 0 {
		return
	}
	all := e.Backends
	e.Backends = make([]*Backend, 0, len(all)-n)
	e.shadows = make([]*Backend, 0, n)
	if e.Config.Graph {
		e.nodes = make([]*Backend, len(all))
	}
	for i, b := range all {
		if b.Config.Shadow {
			e.shadows = append(e.shadows, b)
			continue
		}
		e.Backends = append(e.Backends, b)
		if e.nodes != nil {
			e.nodes[i] = b
		}
	}
}

// sendShadows queues a copy of the call of each shadow backend.
func (e *Endpoint) sendShadows(in *Inbound) {
	if e.pool == nil {
		return
	}
	for _, b := range e.shadows {
		e.pool.enqueue(b, in)
	}
}

// graphSize is the number of places of a graph run: the backends in
// config order, shadow backends' places included (Deps are config indexes).
func (e *Endpoint) graphSize() int {
	if e.nodes != nil {
		return len(e.nodes)
	}
	return len(e.Backends)
}

// graphNode is the backend at config index i of a graph run, nil for a
// shadow backend's place (sent apart; nothing depends on it).
func (e *Endpoint) graphNode(i int) *Backend {
	if e.nodes != nil {
		return e.nodes[i]
	}
	return e.Backends[i]
}

// dropShadowSlots removes the places of shadow backends (nil in nodes)
// from a graph's results, in place, keeping config order.
func dropShadowSlots(results []Result, nodes []*Backend) []Result {
	out := results[:0]
	for i := range results {
		if nodes[i] != nil {
			out = append(out, results[i])
		}
	}
	return out
}

// Queued is how many shadow calls are waiting for a worker, for tests and
// status pages.
func (p *ShadowPool) Queued() int { return len(p.jobs) }
