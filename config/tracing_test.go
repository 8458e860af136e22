package config_test

import (
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// withTracing is a valid file with a tracing block of the given
// flow-mapping body.
func withTracing(body string) string {
	return withTop("tracing: {" + body + "}\n")
}

// Without a tracing block, tracing is off and the defaults are filled in.
func TestTracingDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withTop(""), nil)
	want := config.Tracing{SampleRatio: 0.1, ServiceName: "manifold"}
	if cfg.Tracing != want {
		t.Errorf("Tracing = %+v, want %+v", cfg.Tracing, want)
	}
	if cfg.Tracing.Enabled() || cfg.Tracing.TracesURL() != "" {
		t.Errorf("Enabled %v, TracesURL %q; want off", cfg.Tracing.Enabled(), cfg.Tracing.TracesURL())
	}
	d := config.Defaults()
	for path, v := range map[string]any{"tracing.otlp_endpoint": "", "tracing.sample_ratio": 0.1, "tracing.service_name": "manifold"} {
		if d[path] != v {
			t.Errorf("Defaults()[%q] = %#v, want %#v", path, d[path], v)
		}
	}
}

func TestTracingValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       config.Tracing
		url        string
	}{
		{"base URL", withTracing(`otlp_endpoint: "http://otel-collector:4318"`), nil,
			config.Tracing{OTLPEndpoint: "http://otel-collector:4318", SampleRatio: 0.1, ServiceName: "manifold"},
			"http://otel-collector:4318/v1/traces"},
		{"trailing slash and a path prefix", withTracing(`otlp_endpoint: "https://gw.example/otlp/", sample_ratio: 1, service_name: edge`), nil,
			config.Tracing{OTLPEndpoint: "https://gw.example/otlp/", SampleRatio: 1, ServiceName: "edge"},
			"https://gw.example/otlp/v1/traces"},
		{"from variables", withTop(""), map[string]string{"MANIFOLD_TRACING_OTLP_ENDPOINT": "http://127.0.0.1:4318", "MANIFOLD_TRACING_SAMPLE_RATIO": "0"},
			config.Tracing{OTLPEndpoint: "http://127.0.0.1:4318", SampleRatio: 0, ServiceName: "manifold"},
			"http://127.0.0.1:4318/v1/traces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, tc.yaml, tc.env)
			if cfg.Tracing != tc.want {
				t.Errorf("Tracing = %+v, want %+v", cfg.Tracing, tc.want)
			}
			if !cfg.Tracing.Enabled() || cfg.Tracing.TracesURL() != tc.url {
				t.Errorf("Enabled %v, TracesURL %q; want on, %q", cfg.Tracing.Enabled(), cfg.Tracing.TracesURL(), tc.url)
			}
		})
	}
}

func TestTracingProblems(t *testing.T) {
	t.Parallel()
	on := `otlp_endpoint: "http://otel-collector:4318"`
	runProblemCases(t, []problemCase{
		{name: "no scheme", yaml: withTracing(`otlp_endpoint: "otel-collector:4318"`),
			path: "tracing.otlp_endpoint", words: []string{`"otel-collector:4318"`, "http(s) URL", "http://otel-collector:4318", "/v1/traces"}},
		{name: "grpc scheme", yaml: withTracing(`otlp_endpoint: "grpc://otel-collector:4317"`),
			path: "tracing.otlp_endpoint", words: []string{"http(s) URL"}},
		{name: "no host", yaml: withTracing(`otlp_endpoint: "http:///v1"`),
			path: "tracing.otlp_endpoint", words: []string{"http(s) URL"}},
		{name: "the traces path written out", yaml: withTracing(`otlp_endpoint: "http://otel-collector:4318/v1/traces"`),
			path: "tracing.otlp_endpoint", words: []string{"without /v1/traces", `"http://otel-collector:4318"`}},
		{name: "a query", yaml: withTracing(`otlp_endpoint: "http://otel-collector:4318?x=1"`),
			path: "tracing.otlp_endpoint", words: []string{"no query"}},
		{name: "credentials", yaml: withTracing(`otlp_endpoint: "http://u:p@otel-collector:4318"`),
			path: "tracing.otlp_endpoint", words: []string{"credentials"}, not: []string{"u:p"}},
		{name: "ratio above 1", yaml: withTracing(on + ", sample_ratio: 1.5"),
			path: "tracing.sample_ratio", words: []string{"0 to 1", "1.5"}},
		{name: "ratio negative", yaml: withTracing("sample_ratio: -0.1"),
			path: "tracing.sample_ratio", words: []string{"0 to 1"}},
		{name: "ratio from a variable", yaml: withTop(""), env: map[string]string{"MANIFOLD_TRACING_SAMPLE_RATIO": "2"},
			path: "tracing.sample_ratio", words: []string{"from $MANIFOLD_TRACING_SAMPLE_RATIO", "0 to 1"}},
		{name: "empty service name while on", yaml: withTracing(on + `, service_name: ""`),
			path: "tracing.service_name", words: []string{"must not be empty", "manifold"}},
		{name: "unknown key", yaml: withTracing(on + ", sample_rate: 0.5"),
			path: "tracing.sample_rate", words: []string{"sample_ratio"}},
	})
}

// With tracing off, service_name may be empty: nothing uses it.
func TestTracingOffAllowsEmptyServiceName(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withTracing(`service_name: ""`), nil)
	if cfg.Tracing.Enabled() {
		t.Error("tracing on without otlp_endpoint")
	}
}
