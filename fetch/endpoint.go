package fetch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// headroomMax is the most a backend call's deadline is kept short of the
// endpoint's, so that a timed-out call still leaves time to merge and write
// the answer before the endpoint's own deadline.
const headroomMax = 10 * time.Millisecond

// Backend is one compiled backend of an endpoint: its upstream, URL template
// and reshaping plan, all built at config load.
type Backend struct {
	// Config is the backend's configuration.
	Config *config.Backend
	// Upstream is the shared runtime of the upstream it calls.
	Upstream *Upstream
	// Plan reshapes a successful answer (target, allow/deny, rename).
	Plan *Plan
	// Label names the backend in errors: its group, else its upstream.
	Label string

	sendsBody bool
}

// Endpoint is one configured endpoint compiled for serving: it fans a request
// out to its backends and collects one Result per backend, in config order.
type Endpoint struct {
	// Config is the endpoint's configuration.
	Config *config.Endpoint
	// Backends are the compiled backends in config (merge) order.
	Backends []*Backend
	// Passthrough is true when the only backend relays its answer unchanged.
	Passthrough bool
	// NeedsBody is true when some backend forwards the request body.
	NeedsBody bool
}

// NewEndpoint compiles cfg against the upstream runtimes (by name). It fails
// only on a configuration that Load would have refused.
func NewEndpoint(cfg *config.Endpoint, upstreams map[string]*Upstream) (*Endpoint, error) {
	e := &Endpoint{Config: cfg}
	for _, bc := range cfg.Backends {
		u := upstreams[bc.Upstream]
		if u == nil {
			return nil, fmt.Errorf("endpoint %s: unknown upstream %q", cfg.Path, bc.Upstream)
		}
		plan, err := NewPlan(bc.Target, bc.Allow, bc.Deny, bc.Rename)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s backend %d: %w", cfg.Path, bc.Index, err)
		}
		b := &Backend{
			Config:    bc,
			Upstream:  u,
			Plan:      plan,
			Label:     bc.Label,
			sendsBody: bc.Method != http.MethodGet && bc.Method != http.MethodHead,
		}
		e.NeedsBody = e.NeedsBody || b.sendsBody
		e.Passthrough = bc.Passthrough
		e.Backends = append(e.Backends, b)
	}
	return e, nil
}

// Inbound is what a handler extracted from the client's request for the
// backend calls: already filtered by the endpoint's forwarding rules.
type Inbound struct {
	// Params are the path parameter values, aligned with Config.Params.
	Params []string
	// Query is the forwarded part of the client's query, encoded, or "".
	Query string
	// Header holds the headers every call sends (forwarded headers,
	// X-Request-ID, X-Forwarded-*, traceparent). Read-only: shared by calls.
	Header http.Header
	// Body is the request body, read once, replayed to each backend whose
	// method carries one.
	Body []byte
	// ContentType describes Body.
	ContentType string
}

// Result is the outcome of one backend call.
type Result struct {
	// Backend is the backend that was called.
	Backend *Backend
	// Body is the reshaped raw JSON answer on success.
	Body []byte
	// Status is the upstream's HTTP status, 0 if none arrived.
	Status int
	// Err is nil on success, else a classified failure (see ErrTimeout and
	// friends, and StatusError).
	Err error
	// Duration is how long the call took.
	Duration time.Duration
}

// Fetch calls every backend at once, each in its own goroutine, under a
// context that ends at the endpoint's timeout or when ctx (the client's
// request) ends, and returns one result per backend in config order. It
// returns only when every call has finished, so nothing outlives it.
func (e *Endpoint) Fetch(ctx context.Context, in *Inbound) []Result {
	ctx, cancel := context.WithTimeout(ctx, e.Config.Timeout)
	defer cancel()
	results := make([]Result, len(e.Backends))
	if len(e.Backends) == 1 {
		results[0] = e.Backends[0].call(ctx, in)
		return results
	}
	var wg sync.WaitGroup
	for i, b := range e.Backends[1:] {
		wg.Go(func() { results[i+1] = b.call(ctx, in) })
	}
	results[0] = e.Backends[0].call(ctx, in)
	wg.Wait()
	return results
}

// Relayed is an upstream answer being relayed unchanged by a passthrough
// endpoint. The caller copies Response's status and headers, streams Body,
// and must call Close.
type Relayed struct {
	// Response is the upstream's answer; read Body, not Response.Body.
	Response *http.Response
	// Body yields the answer's body and fails with ErrTooLarge past
	// max_response_bytes.
	Body io.Reader

	cancel context.CancelFunc
}

// Close releases the upstream connection and the call's context.
func (r *Relayed) Close() {
	r.Response.Body.Close()
	r.cancel()
}

// Relay makes the single passthrough call and returns the answer for
// streaming, whatever its status. Failures before an answer arrives come
// back as a Result-style classified error.
func (e *Endpoint) Relay(ctx context.Context, in *Inbound) (*Relayed, error) {
	ctx, cancel := context.WithTimeout(ctx, e.Config.Timeout)
	b := e.Backends[0]
	resp, err := b.send(ctx, in)
	if err != nil {
		cancel()
		return nil, err
	}
	limit := b.Upstream.cfg.MaxResponseBytes
	if resp.ContentLength > limit {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("%w: Content-Length %d over %d bytes", ErrTooLarge, resp.ContentLength, limit)
	}
	return &Relayed{Response: resp, Body: &cappedReader{r: resp.Body, left: limit}, cancel: cancel}, nil
}

// cappedReader fails instead of silently truncating a body over its limit.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, ErrTooLarge
	}
	return n, err
}

// call makes one backend call and turns its answer into a Result.
func (b *Backend) call(ctx context.Context, in *Inbound) Result {
	start := time.Now()
	res := Result{Backend: b}
	body, status, err := b.fetchJSON(ctx, in)
	res.Status, res.Duration = status, time.Since(start)
	if err != nil {
		res.Err = err
		return res
	}
	if !b.Plan.Identity() {
		shaped, err := b.Plan.Apply(nil, body)
		if err != nil {
			res.Err = fmt.Errorf("%w: %w", ErrReshape, err)
			return res
		}
		body = shaped
	}
	res.Body = body
	return res
}

var emptyObject = []byte("{}")

// fetchJSON sends the call and reads a 2xx JSON answer.
func (b *Backend) fetchJSON(ctx context.Context, in *Inbound) ([]byte, int, error) {
	resp, err := b.send(ctx, in)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.StatusCode, &StatusError{Code: resp.StatusCode}
	}
	body, err := readBody(resp.Body, b.Upstream.cfg.MaxResponseBytes, resp.ContentLength)
	if err != nil {
		if !errors.Is(err, ErrTooLarge) {
			err = classify(ctx, resp.Request.Context(), err)
		}
		return nil, resp.StatusCode, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return emptyObject, resp.StatusCode, nil
	}
	if !json.Valid(body) {
		return nil, resp.StatusCode, ErrNotJSON
	}
	return body, resp.StatusCode, nil
}

// send builds the upstream request under the call's own deadline and sends
// it. On success the response body is open and bound to that deadline; the
// deadline's timer is released when the body is closed.
func (b *Backend) send(ctx context.Context, in *Inbound) (*http.Response, error) {
	u := b.Upstream
	timeout := u.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		left -= min(headroomMax, left/20)
		timeout = min(timeout, left)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: no time left before the endpoint deadline", ErrTimeout)
	}
	callCtx, cancel := context.WithTimeout(ctx, timeout)

	var body io.Reader
	if b.sendsBody && len(in.Body) > 0 {
		body = bytes.NewReader(in.Body)
	}
	req, err := http.NewRequestWithContext(callCtx, b.Config.Method, b.url(in), body)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%w: build request: %w", ErrConnect, err)
	}
	req.Header = make(http.Header, len(in.Header)+len(u.headers)+2)
	for k, v := range in.Header {
		req.Header[k] = v
	}
	for k, v := range u.headers {
		req.Header[k] = v
	}
	if body != nil && in.ContentType != "" {
		req.Header["Content-Type"] = []string{in.ContentType}
	}
	req.Header["User-Agent"] = []string{UserAgent}

	resp, err := u.roundTrip(ctx, req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// url renders the backend URL: upstream base + escaped path + the backend's
// own query + the forwarded query.
func (b *Backend) url(in *Inbound) string {
	t := b.Config.Template
	buf := make([]byte, 0, len(b.Upstream.base)+len(b.Config.Path)+len(in.Query)+32)
	buf = append(buf, b.Upstream.base...)
	buf = t.AppendPath(buf, in.Params)
	if t.HasQuery() || in.Query != "" {
		buf = append(buf, '?')
		buf = t.AppendQuery(buf, in.Params)
		if t.HasQuery() && in.Query != "" {
			buf = append(buf, '&')
		}
		buf = append(buf, in.Query...)
	}
	return string(buf)
}

// cancelOnClose ends a call's context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
