// Package otlptest is an in-process OTLP/HTTP trace receiver for tests: a
// real loopback server that takes POST /v1/traces as a collector does,
// decodes each protobuf ExportTraceServiceRequest with the OpenTelemetry
// proto types and keeps the spans, flattened, for assertions on the span
// tree (parents, names, attributes).
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, its IDs in lower-case hex as in a traceparent
// ("" for no parent).
type Span struct {
	TraceID, SpanID, ParentID string
	Name                      string
	Kind                      tracepb.Span_SpanKind
	// Attrs are the span's attributes: string, int64, float64 or bool.
	Attrs map[string]any
	// Status is the span's status code; StatusMessage its description.
	Status        tracepb.Status_StatusCode
	StatusMessage string
	// Resource holds the resource's string attributes (service.name...).
	Resource map[string]string
	// Scope is the instrumentation scope's name.
	Scope string
	// Start and End are the span's times.
	Start, End time.Time
}

// String is a one-line description for failure messages.
func (s Span) String() string {
	keys := make([]string, 0, len(s.Attrs))
	for k := range s.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%q %s span=%s parent=%s", s.Name, s.Kind, s.SpanID, s.ParentID)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, s.Attrs[k])
	}
	return b.String()
}

// Receiver is the OTLP/HTTP endpoint. Its methods are safe for concurrent
// use.
type Receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	spans    []Span
	requests int      // export requests received on /v1/traces
	wrong    []string // other paths that were posted to
	changed  chan struct{}
}

// Start runs a receiver on 127.0.0.1 until the test ends.
func Start(tb testing.TB) *Receiver {
	tb.Helper()
	r := &Receiver{changed: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	tb.Cleanup(r.srv.Close)
	return r
}

// URL is the receiver's base URL, what tracing.otlp_endpoint takes.
func (r *Receiver) URL() string { return r.srv.URL }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Method != http.MethodPost {
		r.mu.Lock()
		r.wrong = append(r.wrong, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		http.NotFound(w, req)
		return
	}
	var body io.Reader = http.MaxBytesReader(w, req.Body, 32<<20)
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer zr.Close()
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export coltracepb.ExportTraceServiceRequest
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		http.Error(w, "content type "+ct+", want application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	if err := proto.Unmarshal(raw, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	spans := flatten(&export)
	r.mu.Lock()
	r.requests++
	r.spans = append(r.spans, spans...)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// flatten turns an export request into its spans, each with its resource
// and scope.
func flatten(export *coltracepb.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range export.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			if s, ok := value(kv.GetValue()).(string); ok {
				res[kv.GetKey()] = s
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{
					TraceID:       hex.EncodeToString(sp.GetTraceId()),
					SpanID:        hex.EncodeToString(sp.GetSpanId()),
					ParentID:      hex.EncodeToString(sp.GetParentSpanId()),
					Name:          sp.GetName(),
					Kind:          sp.GetKind(),
					Attrs:         map[string]any{},
					Status:        sp.GetStatus().GetCode(),
					StatusMessage: sp.GetStatus().GetMessage(),
					Resource:      res,
					Scope:         ss.GetScope().GetName(),
					Start:         time.Unix(0, int64(sp.GetStartTimeUnixNano())),
					End:           time.Unix(0, int64(sp.GetEndTimeUnixNano())),
				}
				for _, kv := range sp.GetAttributes() {
					s.Attrs[kv.GetKey()] = value(kv.GetValue())
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func value(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	}
	return fmt.Sprint(v)
}

// Spans returns every span received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Requests is how many export requests arrived on /v1/traces.
func (r *Receiver) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

// WrongPaths lists the requests that went anywhere but POST /v1/traces.
func (r *Receiver) WrongPaths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.wrong...)
}

// WaitFor waits until ok holds for the spans received, or fails the test
// after timeout; it returns the spans it saw last.
func (r *Receiver) WaitFor(tb testing.TB, timeout time.Duration, ok func([]Span) bool) []Span {
	tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		spans := append([]Span(nil), r.spans...)
		changed := r.changed
		r.mu.Unlock()
		if ok(spans) {
			return spans
		}
		select {
		case <-changed:
		case <-deadline.C:
			tb.Fatalf("otlptest: condition not met within %v; %d spans received:\n%s", timeout, len(spans), list(spans))
			return spans
		}
	}
}

// Named returns the spans called name.
func Named(spans []Span, name string) []Span {
	var out []Span
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// ChildrenOf returns the spans whose parent is the span with id.
func ChildrenOf(spans []Span, id string) []Span {
	var out []Span
	for _, s := range spans {
		if s.ParentID == id {
			out = append(out, s)
		}
	}
	return out
}

// List renders spans one a line, for failure messages.
func List(spans []Span) string { return list(spans) }

func list(spans []Span) string {
	var b strings.Builder
	for _, s := range spans {
		b.WriteString("  ")
		b.WriteString(s.String())
		b.WriteByte('\n')
	}
	return b.String()
}
