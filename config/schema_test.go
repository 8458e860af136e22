package config_test

import (
	"reflect"
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// Defaults lists what Load fills in, by YAML path: the top-level and
// upstream tables, and the defaults of list entries and of blocks that
// exist only when written.
func TestDefaultsByPath(t *testing.T) {
	t.Parallel()
	d := config.Defaults()
	for path, want := range map[string]any{
		"server.address":                   ":8080",
		"server.read_header_timeout":       "5s",
		"server.cors.max_age":              "10m",
		"auth.jwt.leeway":                  "30s",
		"upstreams.*.timeout":              "1s",
		"upstreams.*.retry.backoff":        "25ms",
		"endpoints[].method":               "GET",
		"endpoints[].timeout":              "3s",
		"endpoints[].auth.required":        true,
		"endpoints[].rate_limit.burst":     20,
		"endpoints[].backends[].max_items": 100,
	} {
		if got, ok := d[path]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("Defaults()[%q] = %#v (present %v), want %#v", path, got, ok, want)
		}
	}
	for path, v := range d {
		if _, isMap := v.(map[string]any); isMap {
			t.Errorf("Defaults()[%q] is a block, not a value: %v", path, v)
		}
	}
}
