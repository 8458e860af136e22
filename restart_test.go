package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// The settings a reload applies (it rebuilds the Gateway with them) are
// not reported as waiting for a restart; the listener's are.
func TestRestartOnly(t *testing.T) {
	t.Parallel()
	base := func() *config.Config {
		return &config.Config{Server: config.Server{Address: ":8080", MaxBodyBytes: 1 << 20, CacheBytes: 64 << 20,
			Compression: config.Compression{Enabled: true, MinBytes: 1024}}}
	}
	applied := map[string]func(*config.Config){
		"cors":                            func(c *config.Config) { c.Server.CORS = &config.CORS{AllowOrigins: []string{"https://a.example"}} },
		"compression":                     func(c *config.Config) { c.Server.Compression = config.Compression{} },
		"cache_bytes":                     func(c *config.Config) { c.Server.CacheBytes = 1 },
		"max_body_bytes":                  func(c *config.Config) { c.Server.MaxBodyBytes = 1 },
		"trusted_proxies":                 func(c *config.Config) { c.Server.TrustedProxies = []string{"10.0.0.1"} },
		"log.backend_failures_per_second": func(c *config.Config) { c.Log.BackendFailuresPerSecond = 1 },
	}
	for name, change := range applied {
		c := base()
		change(c)
		if !reflect.DeepEqual(restartOnly(c), restartOnly(base())) {
			t.Errorf("%s is applied on reload, but restartOnly reports it as waiting for a restart", name)
		}
	}
	restart := map[string]func(*config.Config){
		"address":       func(c *config.Config) { c.Server.Address = ":9090" },
		"tls":           func(c *config.Config) { c.Server.TLS.CertFile = "/x.pem" },
		"h2c":           func(c *config.Config) { c.Server.H2C = true },
		"write_timeout": func(c *config.Config) { c.Server.WriteTimeout = time.Second },
		"log":           func(c *config.Config) { c.Log.Level = "debug" },
		"shadow":        func(c *config.Config) { c.Server.Shadow.Workers = 2 },
	}
	for name, change := range restart {
		c := base()
		change(c)
		if reflect.DeepEqual(restartOnly(c), restartOnly(base())) {
			t.Errorf("%s applies only at restart, but restartOnly does not report it", name)
		}
	}
}
