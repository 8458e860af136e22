package main

import (
	"reflect"
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// The tracing keys apply at the next restart: the tracer provider is the
// process's, built once, so a reload that changes them is reported.
func TestTracingIsRestartOnly(t *testing.T) {
	t.Parallel()
	base := func() *config.Config {
		return &config.Config{Tracing: config.Tracing{SampleRatio: 0.1, ServiceName: "manifold"}}
	}
	for name, change := range map[string]func(*config.Config){
		"otlp_endpoint": func(c *config.Config) { c.Tracing.OTLPEndpoint = "http://otel-collector:4318" },
		"sample_ratio":  func(c *config.Config) { c.Tracing.SampleRatio = 1 },
		"service_name":  func(c *config.Config) { c.Tracing.ServiceName = "edge" },
	} {
		c := base()
		change(c)
		if reflect.DeepEqual(restartOnly(c), restartOnly(base())) {
			t.Errorf("tracing.%s applies only at restart, but restartOnly does not report it", name)
		}
	}
}
