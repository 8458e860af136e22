package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	// shadowed are the endpoint's forward_headers (canonical) that a static
	// header of the upstream also names, in any spelling: send skips them,
	// so the static value is the only one that goes out. Usually nil.
	shadowed []string
	// headers are the backend's own static headers when none holds a
	// reference (those are rendered per call); usually nil.
	headers http.Header
	// keepRaw: another backend of the endpoint's graph reads this one's
	// answer, so the call keeps it as the upstream sent it.
	keepRaw bool
	// nested: the answer goes one level deeper into the merged response
	// (under its group; or under "collection" when it is not an object),
	// unless a target takes at least one level off first.
	nested bool
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
			shadowed:  shadowedHeaders(cfg.ForwardHeaderKeys, u.cfg.Headers),
			nested:    bc.Target == "" && bc.Group != "",
			keepRaw:   bc.Referenced,
		}
		if len(bc.HeaderTemplates) > 0 && len(bc.Refs) == 0 {
			// Static headers of the backend's own: rendered once here.
			b.headers = make(http.Header, len(bc.HeaderTemplates))
			for _, h := range bc.HeaderTemplates {
				v, _ := h.Render(nil)
				b.headers[h.Name] = []string{v}
			}
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
	// Items are the calls of a foreach backend, one per element started, in
	// element order; nil for any other backend. Metrics count each of them.
	Items []Result

	// raw is the answer as the upstream sent it, before reshaping, kept
	// when another backend of a graph reads it.
	raw []byte
}

// Fetch calls every backend at once, each in its own goroutine, under a
// context that ends at the endpoint's timeout or when ctx (the client's
// request) ends, and returns one result per backend in config order. It
// returns only when every call has finished, so nothing outlives it.
func (e *Endpoint) Fetch(ctx context.Context, in *Inbound) []Result {
	ctx, cancel := context.WithTimeout(ctx, e.Config.Timeout)
	defer cancel()
	if e.Config.Graph {
		return e.fetchGraph(ctx, in)
	}
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

	body    *cappedReader
	ctx     context.Context
	callCtx context.Context
	cancel  context.CancelFunc
	finish  func(error)
	outcome error // what the breaker is told when the body ends cleanly
}

// Close releases the upstream connection, the bulkhead slot and the call's
// context, and reports the call's outcome to the breaker (a 5xx answer or a
// body that broke off counts as a failure).
func (r *Relayed) Close() {
	outcome := r.outcome
	if err := r.Err(); err != nil {
		outcome = err
	}
	r.Response.Body.Close()
	r.finish(outcome)
	r.cancel()
}

// Err classifies why reading Body stopped before its end: ErrTimeout,
// ErrCanceled (the client left), ErrTooLarge or ErrConnect (the upstream
// broke off). It is nil while the body reads cleanly and after it ended.
func (r *Relayed) Err() error {
	switch err := r.body.err; {
	case err == nil, err == io.EOF:
		return nil
	case errors.Is(err, ErrTooLarge):
		return err
	default:
		return classify(r.ctx, r.callCtx, err)
	}
}

// Relay makes the single passthrough call and returns the answer for
// streaming, whatever its status. Failures before an answer arrives (and a
// Content-Length over max_response_bytes) come back as classified errors.
// Retries apply as for merged backends, 5xx answers included, as long as
// nothing has been relayed yet.
func (e *Endpoint) Relay(ctx context.Context, in *Inbound) (*Relayed, error) {
	ctx, cancel := context.WithTimeout(ctx, e.Config.Timeout)
	b := e.Backends[0]
	u := b.Upstream
	for try := 0; ; try++ {
		resp, callCtx, finish, err := b.attempt(ctx, in, nil)
		if err == nil && resp.StatusCode >= 500 && try < u.cfg.Retry.Attempts && retryable(b.Config.Method, &StatusError{Code: resp.StatusCode}) {
			// Retry a 5xx only if the retry can really start; otherwise the
			// answer is relayed as it is (the breaker hears of it on Close).
			if d, ok := u.retryDelay(ctx, try); ok {
				err = &StatusError{Code: resp.StatusCode}
				resp.Body.Close()
				finish(err)
				if !sleep(ctx, d) {
					cancel()
					return nil, classify(ctx, ctx, ctx.Err())
				}
				continue
			}
		}
		if err == nil {
			// The declared length is checked only where a body follows: a
			// HEAD answer declares the length of a body it does not carry.
			limit := u.cfg.MaxResponseBytes
			if resp.ContentLength > limit && hasBody(b.Config.Method, resp.StatusCode) {
				err = fmt.Errorf("%w: Content-Length %d over %d bytes", ErrTooLarge, resp.ContentLength, limit)
				resp.Body.Close()
				finish(err)
				cancel()
				return nil, err
			}
			body := &cappedReader{r: resp.Body, left: limit}
			rel := &Relayed{Response: resp, Body: body, body: body, ctx: ctx, callCtx: callCtx, cancel: cancel, finish: finish}
			if resp.StatusCode >= 500 {
				rel.outcome = &StatusError{Code: resp.StatusCode}
			}
			return rel, nil
		}
		if try >= u.cfg.Retry.Attempts || !retryable(b.Config.Method, err) || !u.backoff(ctx, try) {
			cancel()
			return nil, err
		}
	}
}

// hasBody reports whether an answer to method with status carries a body
// (RFC 9112 §6.3): not to HEAD, and never with 1xx, 204 or 304.
func hasBody(method string, status int) bool {
	return method != http.MethodHead && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// cappedReader fails instead of silently truncating a body over its limit,
// and remembers the first error it saw.
type cappedReader struct {
	r    io.Reader
	left int64
	err  error
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		n += int(c.left) // never hand out bytes past the limit
		err = ErrTooLarge
	}
	c.err = err
	return n, err
}

// call makes one backend call, with retries, and turns its answer into a
// Result.
func (b *Backend) call(ctx context.Context, in *Inbound) Result {
	return b.callWith(ctx, in, nil)
}

// callWith is call with the request-target and headers of env, when a graph
// backend's references were filled in (nil: built from in alone).
func (b *Backend) callWith(ctx context.Context, in *Inbound, env *callEnv) Result {
	start := time.Now()
	res := Result{Backend: b}
	u := b.Upstream
	for try := 0; ; try++ {
		body, status, err := b.fetchJSON(ctx, in, env)
		res.Status = status
		if err == nil {
			if b.keepRaw {
				res.raw = body
			}
			res.Body, res.Err = b.reshape(body)
			break
		}
		if try >= u.cfg.Retry.Attempts || !retryable(b.Config.Method, err) || !u.backoff(ctx, try) {
			res.Err = err
			break
		}
	}
	res.Duration = time.Since(start)
	return res
}

func (b *Backend) reshape(body []byte) ([]byte, error) {
	if b.Plan.Identity() {
		return body, nil
	}
	shaped, err := b.Plan.Apply(nil, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReshape, err)
	}
	return shaped, nil
}

var emptyObject = []byte("{}")

// fetchJSON makes one try and reads a 2xx JSON answer. The whole try, body
// included, passes through the upstream's bulkhead and breaker.
func (b *Backend) fetchJSON(ctx context.Context, in *Inbound, env *callEnv) (body []byte, status int, err error) {
	resp, callCtx, finish, err := b.attempt(ctx, in, env)
	if err != nil {
		return nil, 0, err
	}
	defer func() { finish(err) }()
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.StatusCode, &StatusError{Code: resp.StatusCode}
	}
	body, err = readBody(resp.Body, b.Upstream.cfg.MaxResponseBytes, resp.ContentLength)
	if err != nil {
		if !errors.Is(err, ErrTooLarge) {
			err = classify(ctx, callCtx, err)
		}
		return nil, resp.StatusCode, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return emptyObject, resp.StatusCode, nil
	}
	if !validJSONDepth(body, b.depthLimit(body)) {
		return nil, resp.StatusCode, ErrNotJSON
	}
	return body, resp.StatusCode, nil
}

// attempt admits one try through the bulkhead and breaker and sends it. On
// success the caller owns resp.Body and must call finish with the try's
// outcome; on failure both are already settled.
func (b *Backend) attempt(ctx context.Context, in *Inbound, env *callEnv) (*http.Response, context.Context, func(error), error) {
	finish, err := b.Upstream.admit()
	if err != nil {
		return nil, nil, nil, err
	}
	resp, callCtx, err := b.send(ctx, in, env)
	if err != nil {
		finish(err)
		return nil, nil, nil, err
	}
	return resp, callCtx, finish, nil
}

// send builds the upstream request under the call's own deadline and sends
// it. On success the response body is open and bound to that deadline (the
// returned context, for classifying body-read errors); the deadline's timer
// is released when the body is closed.
func (b *Backend) send(ctx context.Context, in *Inbound, env *callEnv) (*http.Response, context.Context, error) {
	u := b.Upstream
	timeout, cause := u.cfg.Timeout, errOwnTimeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		left -= min(headroomMax, left/20)
		if left < timeout {
			timeout, cause = left, errEndpointClipped
		}
	}
	if timeout <= 0 {
		return nil, nil, fmt.Errorf("%w: %w", ErrTimeout, errNoTimeLeft)
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, timeout, cause)

	var body []byte
	if b.sendsBody && len(in.Body) > 0 {
		body = in.Body
	}
	header := make(http.Header, len(in.Header)+len(u.headers)+2)
	for k, v := range in.Header {
		if b.shadowed != nil && containsFold(b.shadowed, k) {
			continue // a static header of the same name wins
		}
		header[k] = v
	}
	for k, v := range u.headers {
		header[k] = v
	}
	own := b.headers
	var uri string
	if env != nil {
		own, uri = env.header, env.uri
	} else {
		uri = b.requestURI(in)
	}
	if !u.hasUserAgent {
		header["User-Agent"] = u.userAgent
	}
	for k, v := range own {
		// The backend's own headers win over the upstream's, the forwarded
		// ones and Manifold's User-Agent, whatever the spelling of the name.
		if u.lean == nil && strings.EqualFold(k, "User-Agent") {
			k = "User-Agent" // http.Transport reads only the canonical key (see NewUpstream)
		}
		for old := range header {
			if old != k && strings.EqualFold(old, k) {
				delete(header, old)
			}
		}
		header[k] = v
	}
	if body != nil && in.ContentType != "" {
		header["Content-Type"] = []string{in.ContentType}
	}

	var resp *http.Response
	var err error
	if u.lean != nil {
		resp, err = u.leanRoundTrip(callCtx, b.Config.Method, uri, header, body)
	} else {
		resp, err = u.stdRoundTrip(callCtx, b.Config.Method, uri, header, body)
	}
	if err != nil {
		err = classify(ctx, callCtx, err)
		cancel()
		return nil, nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, callCtx, nil
}

// requestURI renders the request-target: the upstream's path prefix +
// escaped path + the backend's own query + the forwarded query.
func (b *Backend) requestURI(in *Inbound) string {
	t := b.Config.Template
	buf := make([]byte, 0, len(b.Upstream.pathPrefix)+len(b.Config.Path)+len(in.Query)+32)
	buf = append(buf, b.Upstream.pathPrefix...)
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

// callEnv is what a graph backend's call sends instead of what the
// endpoint-wide Inbound would give: the request-target and static header
// values with its references filled in.
type callEnv struct {
	uri    string
	header http.Header // the backend's own headers, rendered; nil if none
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
