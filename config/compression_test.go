package config_test

import (
	"testing"

	"github.com/manifold-gw/manifold/config"
)

// An upstream asks for gzip unless compression: false says otherwise; an
// environment override applies too.
func TestUpstreamCompression(t *testing.T) {
	cfg := mustLoad(t, withUpstream(`url: "http://users.test"`), nil)
	if !cfg.Upstreams["users"].Compression || !cfg.Upstreams["orders"].Compression {
		t.Errorf("compression default: users %v, orders %v, want true", cfg.Upstreams["users"].Compression, cfg.Upstreams["orders"].Compression)
	}
	cfg = mustLoad(t, withUpstream(`url: "http://users.test", compression: false`), nil)
	if cfg.Upstreams["users"].Compression {
		t.Error("compression: false loaded as true")
	}
	if !cfg.Upstreams["orders"].Compression {
		t.Error("orders lost its default compression: true")
	}
	cfg = mustLoad(t, withUpstream(`url: "http://users.test"`), map[string]string{"MANIFOLD_UPSTREAMS_USERS_COMPRESSION": "false"})
	if cfg.Upstreams["users"].Compression {
		t.Error("MANIFOLD_UPSTREAMS_USERS_COMPRESSION=false ignored")
	}
	if _, err := config.Parse("test.yaml", []byte(withUpstream(`url: "http://users.test", compression: "maybe"`)), envOf(nil)); err == nil {
		t.Error(`compression: "maybe" accepted`)
	}
}
