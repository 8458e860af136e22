// Package telemetry builds the process's OpenTelemetry tracing from the
// config's tracing block: a tracer provider with parent-based sampling, a
// batch span processor and the OTLP/HTTP exporter, and its shutdown, which
// flushes the spans still queued.
//
// It is the only package that knows the SDK. handlers and fetch use the
// tracer it hands out through the OpenTelemetry API alone, and with tracing
// off there is no provider and no tracer: nothing of tracing runs.
package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/manifold-gw/manifold/config"
)

// ScopeName names the instrumentation scope of Manifold's spans.
const ScopeName = "github.com/manifold-gw/manifold"

// exportTimeout bounds one POST of a batch to the collector.
const exportTimeout = 10 * time.Second

// Options are what the process supplies beyond the config.
type Options struct {
	// Logger receives export failures (nil = discard). OpenTelemetry
	// reports them through its process-wide error handler, which New
	// points here.
	Logger *slog.Logger
	// Version is the service.version resource attribute ("" = none).
	Version string
	// BatchTimeout is how long a span may wait in the queue before it is
	// sent (0 = the SDK's 5s, or OTEL_BSP_SCHEDULE_DELAY). Tests shorten it.
	BatchTimeout time.Duration
}

// Provider is the tracing of one process: a tracer provider whose batch
// span processor owns one goroutine, ended by Shutdown. A nil *Provider is
// tracing off: its Tracer is nil and its Shutdown does nothing.
type Provider struct {
	tp        *sdktrace.TracerProvider
	transport *http.Transport
	tracer    trace.Tracer
}

// New builds the tracing that cfg asks for, or returns nil when
// otlp_endpoint is "" (tracing off). Nothing is dialled here: the exporter
// connects when the first batch is sent, so a collector that is down never
// delays start-up; its spans are dropped once the queue (2048) is full,
// never waited for on the request path.
func New(cfg config.Tracing, opts Options) (*Provider, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Its own transport, so that Shutdown can close the idle connections
	// (the exporter's default transport is shared and never closed).
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(cfg.TracesURL()),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: transport, Timeout: exportTimeout}),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.TracesURL(), err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName)}
	if opts.Version != "" {
		attrs = append(attrs, attribute.String("service.version", opts.Version))
	}
	// The config's service name wins over OTEL_SERVICE_NAME; other
	// OTEL_RESOURCE_ATTRIBUTES are kept.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	var batch []sdktrace.BatchSpanProcessorOption
	if opts.BatchTimeout > 0 {
		batch = append(batch, sdktrace.WithBatchTimeout(opts.BatchTimeout))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, batch...),
		sdktrace.WithResource(res),
		// An incoming traceparent decides (sampled or not); a new trace is
		// sampled at sample_ratio, by its trace ID, so every replica that
		// sees it decides the same.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: spans not exported", "error", err)
	}))
	return &Provider{tp: tp, transport: transport, tracer: tp.Tracer(ScopeName)}, nil
}

// Tracer is the tracer of Manifold's spans; nil when tracing is off, which
// is how handlers and fetch know to do no span work.
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tracer
}

// Shutdown exports the spans still queued and stops the batch processor's
// goroutine, within ctx (the process gives it what is left of
// server.shutdown_timeout). Spans that end after it are dropped. It may
// be called more than once; only the first call does anything.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	err := p.tp.Shutdown(ctx)
	p.transport.CloseIdleConnections()
	if err != nil {
		// errors.Is(err, context.DeadlineExceeded) when ctx ended first:
		// the spans still queued are dropped.
		return fmt.Errorf("tracing: flushing spans: %w", err)
	}
	return nil
}
