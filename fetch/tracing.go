package fetch

import (
	"context"
	"errors"
	"net/http"

	"github.com/tidwall/gjson"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing of backend calls (SPEC §10). Only the OpenTelemetry API is used
// here: the process builds the tracer (SDK, sampler, exporter) and hands it
// to Trace. An endpoint that was never given one, the default, does no span
// work at all: every hook below is behind a nil check of Backend.trace.
//
// The span tree of one request, under the handler's server span:
//   - one span per backend, around the whole call: its retries, hedges and
//     coalescing are tries inside it. It is a client span, except for a
//     foreach backend, whose span (internal) holds one client span per
//     element call.
//   - a backend that was not called (a dependency failed, a reference found
//     nothing) still has its span, with outcome skipped, so a trace shows
//     why it is missing from the answer.
//
// The traceparent each call sends upstream names the call's own span as the
// parent (a try of a coalesced call sends its leader's), with the sampling
// decision of the trace.

// Span attribute keys of backend calls. The http.* and url.* keys are the
// OpenTelemetry semantic conventions'; the manifold.* keys are Manifold's.
const (
	attrEndpoint = "manifold.endpoint"      // the endpoint's path template
	attrUpstream = "manifold.upstream"      // the upstream's name
	attrBackend  = "manifold.backend"       // the backend's label (group, else upstream)
	attrInstance = "manifold.instance"      // host:port of the last try's instance
	attrOutcome  = "manifold.outcome"       // as manifold_backend_requests_total's outcome label
	attrReason   = "manifold.reason"        // the client-safe failure reason (Reason)
	attrIndex    = "manifold.foreach.index" // a foreach element call's index
	attrItems    = "manifold.foreach.items" // how many element calls a foreach backend started
	attrMethod   = "http.request.method"    // the backend call's method
	attrTemplate = "url.template"           // the backend's path template
	attrStatus   = "http.response.status_code"
)

// Trace makes the calls of e's backends spans of tracer, children of the
// span in the context Fetch or Relay is given, and sends their traceparent
// upstream. Call it once, before e serves. A nil tracer leaves e untraced,
// which costs nothing on the request path.
func (e *Endpoint) Trace(tracer trace.Tracer) {
	if tracer == nil {
		return
	}
	for _, b := range e.Backends {
		b.trace = newBackendTrace(tracer, e, b)
	}
}

// backendTrace is what a traced backend's spans share, built once.
type backendTrace struct {
	tracer trace.Tracer
	name   string                  // METHOD path template, as the HTTP client conventions name spans
	start  []trace.SpanStartOption // the backend's span: kind and fixed attributes
	fixed  []attribute.KeyValue    // for element spans, with their index
}

func newBackendTrace(tracer trace.Tracer, e *Endpoint, b *Backend) *backendTrace {
	fixed := []attribute.KeyValue{
		attribute.String(attrEndpoint, e.Config.Path),
		attribute.String(attrUpstream, b.Upstream.Name),
		attribute.String(attrBackend, b.Label),
		attribute.String(attrMethod, b.Config.Method),
		attribute.String(attrTemplate, b.Config.Path),
	}
	kind := trace.SpanKindClient
	if b.Config.ForeachRef != nil {
		kind = trace.SpanKindInternal // its element calls are the client spans
	}
	return &backendTrace{
		tracer: tracer,
		name:   b.Config.Method + " " + b.Config.Path,
		start:  []trace.SpanStartOption{trace.WithSpanKind(kind), trace.WithAttributes(fixed...)},
		fixed:  fixed,
	}
}

// traced runs fn, the backend's call, inside the backend's span.
func (b *Backend) traced(ctx context.Context, fn func(context.Context) Result) Result {
	return b.trace.spanned(ctx, b.trace.start, fn)
}

// tracedItem is item, the call of foreach element k, inside a client span
// of its own, under the backend's.
func (b *Backend) tracedItem(ctx context.Context, in *Inbound, results []Result, item gjson.Result, k int) Result {
	t := b.trace
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(t.fixed...), trace.WithAttributes(attribute.Int(attrIndex, k))}
	return t.spanned(ctx, opts, func(ctx context.Context) Result { return b.item(ctx, in, results, item) })
}

// traceSkipped records res, a backend that was not called, as a span of
// its own: it shows in the trace, with outcome skipped.
func (b *Backend) traceSkipped(ctx context.Context, res *Result) {
	_, span := b.trace.tracer.Start(ctx, b.trace.name, b.trace.start...)
	b.trace.end(span, res)
}

// spanned runs fn under a new span started with opts, and ends the span
// with fn's result. A panic in fn ends the span as failed and goes on.
func (t *backendTrace) spanned(ctx context.Context, opts []trace.SpanStartOption, fn func(context.Context) Result) Result {
	ctx, span := t.tracer.Start(ctx, t.name, opts...)
	ended := false
	defer func() {
		if !ended {
			span.SetStatus(codes.Error, "panicked")
			span.End()
		}
	}()
	res := fn(ctx)
	ended = true
	t.end(span, &res)
	return res
}

// end sets what the call came to on span and ends it. An unsampled span
// records nothing, so its attributes are not built.
func (t *backendTrace) end(span trace.Span, res *Result) {
	if span.IsRecording() {
		out := Outcome(res.Err)
		attrs := make([]attribute.KeyValue, 0, 5)
		attrs = append(attrs, attribute.String(attrOutcome, out))
		if res.Instance != "" {
			attrs = append(attrs, attribute.String(attrInstance, res.Instance))
		}
		if res.Status != 0 {
			attrs = append(attrs, attribute.Int(attrStatus, res.Status))
		}
		if res.Items != nil {
			attrs = append(attrs, attribute.Int(attrItems, len(res.Items)))
		}
		if res.Err != nil {
			reason := Reason(res.Err)
			attrs = append(attrs, attribute.String(attrReason, reason))
			if out != outcomeSkipped {
				span.SetStatus(codes.Error, reason)
			}
		}
		span.SetAttributes(attrs...)
	}
	span.End()
}

// inject sets the traceparent (and tracestate, when the trace has one) of
// the span in ctx on a call's headers, replacing the client's copy that
// the handler forwarded.
func (t *backendTrace) inject(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

// Relay is relay (the passthrough call) inside the backend's span, which
// ends when the Relayed is closed: the span covers the streamed body.
func (e *Endpoint) Relay(ctx context.Context, in *Inbound) (*Relayed, error) {
	b := e.Backends[0]
	if b.trace == nil {
		rel, _, err := e.relay(ctx, in)
		return rel, err
	}
	ctx, span := b.trace.tracer.Start(ctx, b.trace.name, b.trace.start...)
	rel, instance, err := e.relay(ctx, in)
	if err != nil {
		b.trace.end(span, &Result{Err: err, Instance: instance})
		return nil, err
	}
	rel.span = &relaySpan{t: b.trace, span: span, instance: instance, status: rel.Response.StatusCode}
	return rel, nil
}

// relaySpan is a passthrough call's span, open while its answer streams.
type relaySpan struct {
	t        *backendTrace
	span     trace.Span
	instance string
	status   int
}

// end ends the span with the call's outcome (nil: none, untraced).
func (s *relaySpan) end(outcome error) {
	if s == nil {
		return
	}
	s.t.end(s.span, &Result{Err: outcome, Instance: s.instance, Status: s.status})
}

// address is the instance's host:port, "" for none.
func (in *instance) address() string {
	if in == nil {
		return ""
	}
	return in.addr
}

// Outcomes of a backend call, the same words in span attributes and in the
// outcome label of manifold_backend_requests_total.
const (
	outcomeOK          = "ok"
	outcomeError       = "error"
	outcomeTimeout     = "timeout"
	outcomeCircuitOpen = "circuit_open"
	outcomeRejected    = "rejected"
	outcomeSkipped     = "skipped"
)

// Outcome classifies a backend call's error for spans and metrics: ok,
// timeout, circuit_open, rejected, skipped (never called: a dependency
// failed, the call could not be built from a dependency's answer, or a
// foreach had more elements than max_items), else error (a client that
// left and no healthy instance included).
func Outcome(err error) string {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, ErrSkipped), errors.Is(err, ErrReference), errors.Is(err, ErrTooManyItems):
		return outcomeSkipped
	case errors.Is(err, ErrTimeout):
		return outcomeTimeout
	case errors.Is(err, ErrCircuitOpen):
		return outcomeCircuitOpen
	case errors.Is(err, ErrRejected):
		return outcomeRejected
	}
	return outcomeError
}
