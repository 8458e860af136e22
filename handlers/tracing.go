package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Server span attribute keys: the OpenTelemetry HTTP server conventions'
// and Manifold's.
const (
	attrHTTPMethod = "http.request.method"
	attrHTTPRoute  = "http.route"
	attrHTTPStatus = "http.response.status_code"
	attrEndpoint   = "manifold.endpoint"
	attrRequestID  = "manifold.request_id"
)

// traceRequest makes a request to an endpoint one server span, named
// "METHOD /route/{template}" (the template, never the raw path, so that
// names do not carry client input). An incoming W3C traceparent is its
// parent, and the sampler honours its sampled flag; the backend calls'
// spans are its children (fetch starts them from the request's context).
// The operations routes (/__health, /__ready, /__demo/) and requests
// that match no route have no span: a balancer's checks would drown the
// traces. It is only installed when tracing is on.
func (g *Gateway) traceRequest(c *gin.Context) {
	route, ok := g.routes[c.FullPath()]
	if !ok {
		c.Next()
		return
	}
	r := c.Request
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := g.tracer.Start(ctx, r.Method+" "+route,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String(attrHTTPMethod, r.Method),
			attribute.String(attrHTTPRoute, route),
			attribute.String(attrEndpoint, route),
			attribute.String(attrRequestID, requestIDOf(c)),
		))
	c.Request = r.WithContext(ctx)
	defer func() {
		p := recover()
		status := c.Writer.Status()
		if p != nil && p != http.ErrAbortHandler && !c.Writer.Written() {
			status = http.StatusInternalServerError // what recoverer will answer
		}
		span.SetAttributes(attribute.Int(attrHTTPStatus, status))
		switch {
		case p != nil:
			// A passthrough answer cut short, or a panic.
			span.SetStatus(codes.Error, "response not completed")
		case status >= 500:
			span.SetStatus(codes.Error, http.StatusText(status))
		}
		span.End()
		if p != nil {
			panic(p)
		}
	}()
	c.Next()
}
