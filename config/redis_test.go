package config_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// withRedis is a valid file with a redis block of the given flow-mapping
// body and one endpoint whose rate_limit has the given body.
func withRedis(redis, rateLimit string) string {
	top := ""
	if redis != "" {
		top = "redis: {" + redis + "}\n"
	}
	return top + withEndpointKeys("    rate_limit: {"+rateLimit+"}\n")
}

// Without a redis block there is no Redis at all (the block's defaults
// are not filled in), and a rate limit is local, allowing on errors.
func TestRedisDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withRedis("", "rps: 5"), nil)
	if cfg.Redis != nil {
		t.Errorf("Redis = %+v, want nil without a redis block", *cfg.Redis)
	}
	rl := cfg.Endpoints[0].RateLimit
	if rl.Store != config.StoreLocal || rl.OnError != config.OnErrorAllow {
		t.Errorf("store %q, on_error %q; want local, allow", rl.Store, rl.OnError)
	}

	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
	}{
		{"block with address only", withRedis("address: 127.0.0.1:6379", "rps: 5, store: redis"), nil},
		{"block made by a variable", withRedis("", "rps: 5, store: redis"), map[string]string{"MANIFOLD_REDIS_ADDRESS": "127.0.0.1:6379"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, tc.yaml, tc.env)
			want := config.Redis{Address: "127.0.0.1:6379", Timeout: 50 * time.Millisecond}
			if cfg.Redis == nil || *cfg.Redis != want {
				t.Fatalf("Redis = %+v, want %+v", cfg.Redis, want)
			}
			if rl := cfg.Endpoints[0].RateLimit; rl.Store != config.StoreRedis || rl.OnError != config.OnErrorAllow {
				t.Errorf("store %q, on_error %q; want redis, allow", rl.Store, rl.OnError)
			}
		})
	}
}

func TestRedisExplicitValues(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withRedis(`address: "redis.internal:6380", username: gw, password: "${PW}", db: 3, timeout: 20ms, tls: true`,
		"rps: 5, store: redis, on_error: deny"), map[string]string{"PW": "s3cret"})
	want := config.Redis{Address: "redis.internal:6380", Username: "gw", Password: "s3cret", DB: 3, Timeout: 20 * time.Millisecond, TLS: true}
	if *cfg.Redis != want {
		t.Errorf("Redis = %+v, want %+v", *cfg.Redis, want)
	}
	if rl := cfg.Endpoints[0].RateLimit; rl.OnError != config.OnErrorDeny {
		t.Errorf("on_error %q, want deny", rl.OnError)
	}
	// A variable overrides a key the file wrote.
	cfg = mustLoad(t, withRedis("address: 127.0.0.1:6379", "rps: 5, store: redis"), map[string]string{
		"MANIFOLD_REDIS_TIMEOUT":                   "10ms",
		"MANIFOLD_ENDPOINTS_0_RATE_LIMIT_ON_ERROR": "deny",
	})
	if cfg.Redis.Timeout != 10*time.Millisecond || cfg.Endpoints[0].RateLimit.OnError != config.OnErrorDeny {
		t.Errorf("timeout %v, on_error %q; want the variables' 10ms and deny", cfg.Redis.Timeout, cfg.Endpoints[0].RateLimit.OnError)
	}
}

func TestRedisProblems(t *testing.T) {
	t.Parallel()
	ok := "rps: 5, store: redis"
	runProblemCases(t, []problemCase{
		{name: "no address", yaml: withRedis("db: 1", ok), path: "redis.address", words: []string{"required", "host:port"}},
		{name: "address without port", yaml: withRedis("address: redis.internal", ok),
			path: "redis.address", words: []string{`"redis.internal"`, "host:port"}},
		{name: "address without host", yaml: withRedis(`address: ":6379"`, ok),
			path: "redis.address", words: []string{"no host", `127.0.0.1:6379`}},
		{name: "port out of range", yaml: withRedis("address: 127.0.0.1:70000", ok),
			path: "redis.address", words: []string{"1 to 65535"}},
		{name: "port not a number", yaml: withRedis("address: 127.0.0.1:redis", ok),
			path: "redis.address", words: []string{"1 to 65535"}},
		{name: "timeout zero", yaml: withRedis("address: 127.0.0.1:6379, timeout: 0s", ok),
			path: "redis.timeout", words: []string{"positive", "p99", "endpoints' timeouts"}},
		{name: "timeout negative", yaml: withRedis("address: 127.0.0.1:6379, timeout: -5ms", ok),
			path: "redis.timeout", words: []string{"positive"}},
		{name: "db negative", yaml: withRedis("address: 127.0.0.1:6379, db: -1", ok),
			path: "redis.db", words: []string{"negative", "-1"}},
		{name: "unknown key", yaml: withRedis("address: 127.0.0.1:6379, adress: x", ok),
			path: "redis.adress", words: []string{"address"}},
		{name: "store unknown", yaml: withRedis("address: 127.0.0.1:6379", "rps: 5, store: memcached"),
			path: "endpoints[0].rate_limit.store", words: []string{`"memcached"`, "local", "redis"}},
		{name: "store redis without a redis block", yaml: withRedis("", ok),
			path: "endpoints[0].rate_limit.store", words: []string{"redis: {address:", "store: local"}},
		{name: "on_error unknown", yaml: withRedis("address: 127.0.0.1:6379", ok+", on_error: retry"),
			path: "endpoints[0].rate_limit.on_error", words: []string{`"retry"`, "allow", "deny"}},
		{name: "on_error on a local limit", yaml: withRedis("", "rps: 5, on_error: deny"),
			path: "endpoints[0].rate_limit.on_error", words: []string{"only to store: redis", "remove on_error"}},
		{name: "on_error allow on an explicitly local limit", yaml: withRedis("", "rps: 5, store: local, on_error: allow"),
			path: "endpoints[0].rate_limit.on_error", words: []string{"only to store: redis"}},
		{name: "on_error from a variable on a local limit", yaml: withRedis("", "rps: 5"),
			env:  map[string]string{"MANIFOLD_ENDPOINTS_0_RATE_LIMIT_ON_ERROR": "deny"},
			path: "endpoints[0].rate_limit.on_error", words: []string{"from $MANIFOLD_ENDPOINTS_0_RATE_LIMIT_ON_ERROR", "only to store: redis"}},
		{name: "a variable turns a redis limit local", yaml: withRedis("address: 127.0.0.1:6379", ok+", on_error: deny"),
			env:  map[string]string{"MANIFOLD_ENDPOINTS_0_RATE_LIMIT_STORE": "local"},
			path: "endpoints[0].rate_limit.on_error", words: []string{"only to store: redis"}},
		{name: "a redis variable alone makes the block, which needs an address", yaml: withRedis("", ok),
			env:  map[string]string{"MANIFOLD_REDIS_PASSWORD": "pw"},
			path: "redis.address", words: []string{"required"}},
	})
}

// A redis block that no limit uses is valid: nothing connects to it.
func TestRedisBlockWithoutRedisLimits(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withRedis("address: 127.0.0.1:6379", "rps: 5"), nil)
	if cfg.Redis == nil || cfg.Endpoints[0].RateLimit.Store != config.StoreLocal {
		t.Errorf("Redis %+v, store %q", cfg.Redis, cfg.Endpoints[0].RateLimit.Store)
	}
}

// The schema's defaults (config.Defaults) include the redis block's and
// the two rate_limit keys'.
func TestRedisDefaultsByPath(t *testing.T) {
	t.Parallel()
	d := config.Defaults()
	for path, want := range map[string]any{
		"redis.timeout":                   "50ms",
		"redis.db":                        0,
		"redis.username":                  "",
		"redis.password":                  "",
		"redis.tls":                       false,
		"endpoints[].rate_limit.store":    "local",
		"endpoints[].rate_limit.on_error": "allow",
	} {
		if got, ok := d[path]; !ok || !reflect.DeepEqual(got, want) {
			t.Errorf("Defaults()[%q] = %#v (present %v), want %#v", path, got, ok, want)
		}
	}
	if _, ok := d["redis.address"]; ok {
		t.Error("redis.address has a default; it is required")
	}
}
