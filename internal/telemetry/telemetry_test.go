package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/internal/otlptest"
	"github.com/manifold-gw/manifold/internal/telemetry"
)

// Off: no provider, no tracer, and a Shutdown that does nothing.
func TestOff(t *testing.T) {
	t.Parallel()
	p, err := telemetry.New(config.Tracing{SampleRatio: 0.1, ServiceName: "manifold"}, telemetry.Options{})
	if err != nil || p != nil {
		t.Fatalf("New = %v, %v; want nil, nil with otlp_endpoint \"\"", p, err)
	}
	if p.Tracer() != nil {
		t.Error("a tracer with tracing off")
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// Spans go to /v1/traces under otlp_endpoint, its path included, with the
// service's resource attributes; Shutdown exports what is queued.
func TestExportsUnderTheBaseURL(t *testing.T) {
	t.Parallel()
	rcv := otlptest.Start(t)
	for _, base := range []string{rcv.URL(), rcv.URL() + "/"} {
		p, err := telemetry.New(config.Tracing{OTLPEndpoint: base, SampleRatio: 1, ServiceName: "svc"}, telemetry.Options{Version: "1.2.3"})
		if err != nil {
			t.Fatal(err)
		}
		_, span := p.Tracer().Start(context.Background(), "op")
		span.End()
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
	}
	spans := rcv.Spans()
	if len(spans) != 2 || rcv.WrongPaths() != nil {
		t.Fatalf("%d spans, wrong paths %v; want 2 on /v1/traces", len(spans), rcv.WrongPaths())
	}
	for _, s := range spans {
		if s.Resource["service.name"] != "svc" || s.Resource["service.version"] != "1.2.3" || s.Scope != telemetry.ScopeName {
			t.Errorf("resource %v scope %q", s.Resource, s.Scope)
		}
	}
}

// The sampler: a new trace is sampled at sample_ratio (0 and 1 here, the
// exact cases), a remote parent's decision is kept whatever the ratio.
func TestParentBasedSampling(t *testing.T) {
	t.Parallel()
	sampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{1}, SpanID: [8]byte{1}, TraceFlags: trace.FlagsSampled, Remote: true})
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: [16]byte{2}, SpanID: [8]byte{2}, Remote: true})
	for _, tc := range []struct {
		ratio  float64
		parent trace.SpanContext
		want   bool
	}{
		{0, trace.SpanContext{}, false},
		{1, trace.SpanContext{}, true},
		{0, sampled, true},
		{1, unsampled, false},
	} {
		rcv := otlptest.Start(t)
		p, err := telemetry.New(config.Tracing{OTLPEndpoint: rcv.URL(), SampleRatio: tc.ratio, ServiceName: "svc"}, telemetry.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), tc.parent)
		_, span := p.Tracer().Start(ctx, "op")
		got := span.SpanContext().IsSampled()
		span.End()
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got != tc.want || (len(rcv.Spans()) == 1) != tc.want {
			t.Errorf("ratio %v, parent sampled %v (valid %v): sampled %v, %d exported; want %v",
				tc.ratio, tc.parent.IsSampled(), tc.parent.IsValid(), got, len(rcv.Spans()), tc.want)
		}
	}
}

// syncLog is a log buffer safe for the exporter's goroutine.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// A collector that is not there: spans are dropped and the failure is
// logged, through OpenTelemetry's error handler, which New points at the
// logger. Not parallel: that handler is the process's, and the last New
// sets it.
func TestCollectorDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	logs := &syncLog{}
	p, err := telemetry.New(config.Tracing{OTLPEndpoint: "http://" + addr, SampleRatio: 1, ServiceName: "svc"},
		telemetry.Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), BatchTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, span := p.Tracer().Start(context.Background(), "op")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = p.Shutdown(ctx)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Shutdown took %v with a 300ms context", took)
	}
	if err != nil {
		t.Errorf("Shutdown: %v (a refused connection is not retried)", err)
	}
	if !strings.Contains(logs.String(), "tracing: spans not exported") || !strings.Contains(logs.String(), addr) {
		t.Errorf("log %q, want the export failure, naming the collector", logs.String())
	}
}
