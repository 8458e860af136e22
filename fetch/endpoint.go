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
	"unicode/utf8"

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
	// perElement: a foreach backend; its answers, one per element, go into
	// an array (valid.go)
	perElement bool
	// coalesce: identical tries in flight share one (a GET/HEAD backend of
	// an upstream with coalesce: true).
	coalesce bool
	// hedge: the backend's hedging, nil without hedge.
	hedge *hedging
	// trace makes its calls spans (tracing.go); nil, the default: no span
	// work at all.
	trace *backendTrace
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

	// shadows are the shadow backends, sent through pool and never part
	// of the results; nil when there are none (shadow.go).
	shadows []*Backend
	pool    *ShadowPool
	// nodes: a graph endpoint with shadow backends runs over its backends
	// in config order, nil where a shadow is; else nil.
	nodes []*Backend
}

// EndpointOption adjusts an Endpoint at construction.
type EndpointOption func(*Endpoint)

// NewEndpoint compiles cfg against the upstream runtimes (by name). It fails
// only on a configuration that Load would have refused.
func NewEndpoint(cfg *config.Endpoint, upstreams map[string]*Upstream, opts ...EndpointOption) (*Endpoint, error) {
	e := &Endpoint{Config: cfg}
	for _, o := range opts {
		o(e)
	}
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
			Config:     bc,
			Upstream:   u,
			Plan:       plan,
			Label:      bc.Label,
			sendsBody:  bc.Method != http.MethodGet && bc.Method != http.MethodHead,
			shadowed:   shadowedHeaders(cfg.ForwardHeaderKeys, u.cfg.Headers),
			nested:     bc.Target == "" && bc.Group != "",
			perElement: bc.ForeachRef != nil,
			keepRaw:    bc.Referenced,
			hedge:      newHedging(bc.Hedge),
		}
		b.coalesce = u.cfg.Coalesce && !b.sendsBody && !bc.Passthrough
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
	e.splitShadows()
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
	// Instance is the host:port of the instance the last try went to, ""
	// if none was picked (the call's span names it).
	Instance string
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
// Shadow backends are not among them: their copies are queued first, to
// the shadow pool, and never waited for.
func (e *Endpoint) Fetch(ctx context.Context, in *Inbound) []Result {
	if e.shadows != nil {
		e.sendShadows(in)
	}
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
		wg.Go(func() {
			growStack()
			results[i+1] = b.call(ctx, in)
		})
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
	outcome error      // what the breaker is told when the body ends cleanly
	span    *relaySpan // the call's span, ended by Close; nil untraced
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
	r.span.end(outcome)
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
// nothing has been relayed yet; each goes to another instance when there
// is one. relay is Relay (tracing.go) less the call's span; it also
// returns the host:port of the instance of the last try ("" if none).
func (e *Endpoint) relay(ctx context.Context, in *Inbound) (*Relayed, string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.Config.Timeout)
	b := e.Backends[0]
	u := b.Upstream
	o := b.prepare(in, nil)
	if b.trace != nil {
		b.trace.inject(ctx, o.header)
	}
	var last *instance
	for try := 0; ; try++ {
		var resp *http.Response
		var callCtx context.Context
		var t ticket
		var err error
		release := noRelease
		if b.hedge != nil {
			var s sent
			s, release = b.attemptHedged(ctx, o, last)
			resp, callCtx, t, err = s.resp, s.callCtx, s.t, s.err
		} else {
			resp, callCtx, t, err = b.attempt(ctx, o, last)
		}
		last = t.in
		if err == nil && resp.StatusCode >= 500 && try < u.cfg.Retry.Attempts && retryable(b.Config.Method, &StatusError{Code: resp.StatusCode}) {
			// Retry a 5xx only if the retry can really start; otherwise the
			// answer is relayed as it is (the breaker hears of it on Close).
			if d, ok := u.retryDelay(ctx, try); ok {
				err = &StatusError{Code: resp.StatusCode}
				resp.Body.Close()
				t.done(err)
				release()
				if !sleep(ctx, d) {
					cancel()
					return nil, last.address(), classify(ctx, ctx, ctx.Err())
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
				t.done(err)
				release()
				cancel()
				return nil, last.address(), err
			}
			body := &cappedReader{r: resp.Body, left: limit}
			end := cancel
			if b.hedge != nil {
				end = func() { release(); cancel() }
			}
			rel := &Relayed{Response: resp, Body: body, body: body, ctx: ctx, callCtx: callCtx, cancel: end, finish: t.done}
			if resp.StatusCode >= 500 {
				rel.outcome = &StatusError{Code: resp.StatusCode}
			}
			return rel, last.address(), nil
		}
		release()
		if try >= u.cfg.Retry.Attempts || !retryable(b.Config.Method, err) || !u.backoff(ctx, try) {
			cancel()
			return nil, last.address(), err
		}
	}
}

func noRelease() {}

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
	if b.trace != nil {
		return b.traced(ctx, func(ctx context.Context) Result { return b.callWith(ctx, in, nil) })
	}
	return b.callWith(ctx, in, nil)
}

// callWith is call with the request-target and headers of env, when a graph
// backend's references were filled in (nil: built from in alone). A retry
// goes to another instance than the try before it when there is one.
func (b *Backend) callWith(ctx context.Context, in *Inbound, env *callEnv) Result {
	start := time.Now()
	res := Result{Backend: b}
	u := b.Upstream
	o := b.prepare(in, env)
	if b.trace != nil {
		b.trace.inject(ctx, o.header) // ctx holds the call's span
	}
	var last *instance
	for try := 0; ; try++ {
		out := b.try(ctx, o, last)
		last = out.in
		res.Status = out.status
		if out.err == nil {
			if b.keepRaw {
				res.raw = out.body // as the upstream sent it, for references
			}
			body := out.body
			if out.notUTF8 {
				body = toValidUTF8(body)
			}
			res.Body, res.Err = b.reshape(body)
			break
		}
		if try >= u.cfg.Retry.Attempts || !retryable(b.Config.Method, out.err) || !u.backoff(ctx, try) {
			res.Err = out.err
			break
		}
	}
	res.Instance = last.address()
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

// tryOut is the outcome of one try of a merged backend: the answer's JSON
// body (read-only: a coalesced answer is shared), its status, the failure,
// and the instance it went to (nil if none was picked).
type tryOut struct {
	body   []byte
	status int
	err    error
	in     *instance
	// notUTF8: body holds invalid UTF-8 (inside strings, as it is valid
	// JSON); the client's answer gets it replaced, references read it as
	// the upstream sent it.
	notUTF8 bool
}

// try makes one try of the call, coalesced with identical tries in flight
// and hedged when the upstream and backend say so.
func (b *Backend) try(ctx context.Context, o *outbound, avoid *instance) tryOut {
	if b.coalesce {
		return b.coalesced(ctx, o, avoid)
	}
	if b.hedge != nil {
		return b.hedged(ctx, o, avoid)
	}
	return b.fetchJSON(ctx, o, avoid)
}

// fetchJSON makes one try on an instance other than avoid when there is
// one, and reads a 2xx JSON answer.
func (b *Backend) fetchJSON(ctx context.Context, o *outbound, avoid *instance) tryOut {
	in, err := b.Upstream.pick(avoid)
	if err != nil {
		return tryOut{err: err}
	}
	return b.fetchOn(ctx, o, in)
}

// fetchOn makes one try on instance in and reads a 2xx JSON answer. The
// whole try, body included, passes through the upstream's bulkhead and
// breaker.
func (b *Backend) fetchOn(ctx context.Context, o *outbound, in *instance) (out tryOut) {
	out.in = in
	resp, callCtx, t, err := b.send(ctx, o, in)
	if err != nil {
		out.err = err
		return out
	}
	defer func() { t.done(out.err) }()
	defer resp.Body.Close()
	out.status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		out.err = &StatusError{Code: resp.StatusCode}
		return out
	}
	// The declared length sizes the read buffer, when there is a body: a
	// HEAD answer declares the GET body's length and carries none.
	hint := int64(0)
	if hasBody(b.Config.Method, resp.StatusCode) {
		hint = resp.ContentLength
	}
	body, err := readBody(resp.Body, b.Upstream.cfg.MaxResponseBytes, hint)
	switch {
	case err != nil:
		if !errors.Is(err, ErrTooLarge) {
			err = classify(ctx, callCtx, err)
		}
		out.err = err
	case len(bytes.TrimSpace(body)) == 0:
		out.body = emptyObject
	case !validJSONDepth(body, b.depthLimit(body)):
		out.err = ErrNotJSON
	default:
		out.body = body
		out.notUTF8 = !utf8.Valid(body)
	}
	return out
}

// toValidUTF8 returns body with each byte that is not part of valid UTF-8
// replaced by U+FFFD, as encoding/json decodes it. The answer goes out as
// application/json; charset=utf-8, and strict clients refuse invalid
// bytes; in valid JSON they can only be inside strings, where U+FFFD is
// valid too. References to the answer read the upstream's own bytes, so a
// dependent call asks the same system for what it named.
func toValidUTF8(body []byte) []byte {
	out := make([]byte, 0, len(body)+16)
	for i := 0; i < len(body); {
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, body[i:i+n]...)
		}
		i += n
	}
	return out
}

// attempt picks an instance other than avoid when there is one, admits one
// try through the bulkhead and breaker and sends it. On success the caller
// owns resp.Body and must call t.done with the try's outcome; on failure
// both are already settled. t.in is the instance, also on failure (nil if
// none was picked).
func (b *Backend) attempt(ctx context.Context, o *outbound, avoid *instance) (*http.Response, context.Context, ticket, error) {
	in, err := b.Upstream.pick(avoid)
	if err != nil {
		return nil, nil, ticket{}, err
	}
	resp, callCtx, t, err := b.send(ctx, o, in)
	t.in = in
	return resp, callCtx, t, err
}

// outbound is a call's request as every try sends it, built once per call.
type outbound struct {
	uri    string
	header http.Header // shared by concurrent tries (hedges): read-only
	body   []byte
}

// prepare builds the request of a call: the request-target and every
// header, in, the upstream's, the backend's own (rendered in env for a
// graph backend) and Manifold's.
func (b *Backend) prepare(in *Inbound, env *callEnv) *outbound {
	u := b.Upstream
	o := &outbound{}
	if b.sendsBody && len(in.Body) > 0 {
		o.body = in.Body
	}
	header := make(http.Header, len(in.Header)+len(u.headers)+3)
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
	if env != nil {
		own, o.uri = env.header, env.uri
	} else {
		o.uri = b.requestURI(in)
	}
	if !u.hasUserAgent {
		header["User-Agent"] = u.userAgent
	}
	for k, v := range own {
		// The backend's own headers win over the upstream's, the forwarded
		// ones and Manifold's User-Agent, whatever the spelling of the name.
		if u.stdlib && strings.EqualFold(k, "User-Agent") {
			k = "User-Agent" // http.Transport reads only the canonical key (see NewUpstream)
		}
		for old := range header {
			if old != k && strings.EqualFold(old, k) {
				delete(header, old)
			}
		}
		header[k] = v
	}
	if o.body != nil && in.ContentType != "" {
		header["Content-Type"] = []string{in.ContentType}
	}
	if !u.stdlib && u.cfg.Compression && b.Config.Method != http.MethodHead && !hasRange(header) {
		// As http.Transport does: ask for gzip (h1 decodes it; the caps
		// apply to the decoded body), but not on HEAD, nor for a byte
		// range, whose gzip slice could not be decoded. No forwarded or
		// static header is Accept-Encoding (config refuses it).
		header["Accept-Encoding"] = acceptGzip
	}
	o.header = header
	return o
}

// send admits one try on instance in through the bulkhead and breaker and
// sends it under the call's own deadline. On success the response body is
// open and bound to that deadline (the returned context, for classifying
// body-read errors; its timer is released when the body is closed), and
// the caller must call t.done with the try's outcome; on failure it has
// been called.
func (b *Backend) send(ctx context.Context, o *outbound, in *instance) (*http.Response, context.Context, ticket, error) {
	u := b.Upstream
	t, err := u.admit(in)
	if err != nil {
		return nil, nil, t, err
	}
	timeout, cause := u.cfg.Timeout, errOwnTimeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		left -= min(headroomMax, left/20)
		if left < timeout {
			timeout, cause = left, errEndpointClipped
		}
	}
	if timeout <= 0 {
		err := fmt.Errorf("%w: %w", ErrTimeout, errNoTimeLeft)
		t.done(err)
		return nil, nil, t, err
	}
	callCtx, cancel := context.WithTimeoutCause(ctx, timeout, cause)
	var resp *http.Response
	if u.stdlib {
		resp, err = u.stdRoundTrip(callCtx, in, b.Config.Method, o.uri, o.header, o.body)
	} else {
		resp, err = u.leanRoundTrip(callCtx, in, b.Config.Method, o.uri, o.header, o.body)
	}
	if err != nil {
		err = classify(ctx, callCtx, err)
		cancel()
		t.done(err)
		return nil, nil, t, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, callCtx, t, nil
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
