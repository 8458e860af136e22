package config

import (
	"math"
	"net/url"
	"strings"
)

// tracesPath is where an OTLP/HTTP collector takes spans, under its base
// URL (the OTLP specification's default path for traces).
const tracesPath = "/v1/traces"

// Enabled reports whether spans are exported: otlp_endpoint is set. Off,
// nothing of tracing is built and the request path does no span work.
func (t Tracing) Enabled() bool { return t.OTLPEndpoint != "" }

// TracesURL is the URL the exporter posts spans to: otlp_endpoint with
// /v1/traces appended (so http://otel-collector:4318 posts to
// http://otel-collector:4318/v1/traces, as every OTLP/HTTP collector
// expects). "" when tracing is off.
func (t Tracing) TracesURL() string {
	if !t.Enabled() {
		return ""
	}
	return strings.TrimSuffix(t.OTLPEndpoint, "/") + tracesPath
}

// validateTracing checks the tracing block: otlp_endpoint is "" or an
// http(s) base URL (the exporter adds /v1/traces itself), sample_ratio is a
// share in [0, 1], and service_name names the service when tracing is on.
func validateTracing(cfg *Config, c *collector) {
	t := cfg.Tracing
	if t.OTLPEndpoint != "" {
		const example = `e.g. "http://otel-collector:4318" (the collector's OTLP/HTTP port; spans are posted to /v1/traces under it), or "" for no tracing`
		u, err := url.Parse(t.OTLPEndpoint)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "":
			c.add("tracing.otlp_endpoint", "%q is not an http(s) URL: %s", t.OTLPEndpoint, example)
		case u.User != nil:
			c.add("tracing.otlp_endpoint", "credentials in the URL are not supported (the URL is logged): write the collector's base URL without user:password@, e.g. %q",
				(&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String())
		case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(t.OTLPEndpoint, "?") || strings.HasSuffix(t.OTLPEndpoint, "#"):
			c.add("tracing.otlp_endpoint", "%q: a base URL takes no query or fragment, %s", t.OTLPEndpoint, example)
		case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), tracesPath):
			c.add("tracing.otlp_endpoint", "%q: write the collector's base URL without %s, which the exporter adds itself (%q)",
				t.OTLPEndpoint, tracesPath, strings.TrimSuffix(strings.TrimSuffix(t.OTLPEndpoint, "/"), tracesPath))
		}
	}
	if math.IsNaN(t.SampleRatio) || t.SampleRatio < 0 || t.SampleRatio > 1 {
		c.add("tracing.sample_ratio", "must be a share from 0 to 1 (0.1 samples one new trace in ten; an incoming sampled traceparent is always honoured), got %v", t.SampleRatio)
	}
	if t.Enabled() && strings.TrimSpace(t.ServiceName) == "" {
		c.add("tracing.service_name", `must not be empty while tracing is on: it names this service in the trace backend, e.g. "manifold"`)
	}
}
