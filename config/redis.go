package config

import (
	"net"
	"strconv"
)

// Stores of endpoints[].rate_limit.store.
const (
	// StoreLocal keeps an endpoint's buckets in the process (the default):
	// every replica has its own budget, so N replicas allow N times the
	// limit.
	StoreLocal = "local"
	// StoreRedis keeps them in the redis block's server: every replica on
	// the same Redis takes from one budget.
	StoreRedis = "redis"
)

// Policies of endpoints[].rate_limit.on_error: what a store: redis limit
// decides while Redis does not answer within redis.timeout.
const (
	// OnErrorAllow serves the request (the default): the limit is off
	// while Redis is down, the endpoint stays up.
	OnErrorAllow = "allow"
	// OnErrorDeny refuses it with 429: the endpoint is down while Redis is.
	OnErrorDeny = "deny"
)

// defaultRedisTimeout is redis.timeout when the block leaves it out.
const defaultRedisTimeout = "50ms"

// applyRedisDefaults fills the redis block's defaults, only when the file
// (or a MANIFOLD_REDIS_* variable) has the block: its presence is what
// makes a Redis configured at all. The rate_limit keys store and on_error
// are defaulted with the rest of rate_limit, in applyListDefaults.
func applyRedisDefaults(settings map[string]any) {
	r, ok := settings["redis"].(map[string]any)
	if !ok {
		return
	}
	setIfAbsent(r, "username", "")
	setIfAbsent(r, "password", "")
	setIfAbsent(r, "db", 0)
	setIfAbsent(r, "timeout", defaultRedisTimeout)
	setIfAbsent(r, "tls", false)
}

// validateRedis checks the redis block: address is host:port, timeout is
// positive, db is not negative.
func validateRedis(cfg *Config, c *collector) {
	r := cfg.Redis
	if r == nil {
		return
	}
	switch host, port, err := net.SplitHostPort(r.Address); {
	case r.Address == "":
		c.add("redis.address", `is required: the Redis server's host:port, e.g. "127.0.0.1:6379" or "redis:6379"`)
	case err != nil:
		c.add("redis.address", `%q is not host:port, e.g. "127.0.0.1:6379" or "redis:6379"`, r.Address)
	case host == "":
		c.add("redis.address", `%q has no host: write it, e.g. "127.0.0.1%s"`, r.Address, r.Address)
	case !validPort(port):
		c.add("redis.address", "%q: the port must be a number from 1 to 65535", r.Address)
	}
	if r.Timeout <= 0 {
		c.add("redis.timeout", "must be positive, e.g. \"50ms\": Redis's p99 round trip on your network plus a margin, "+
			"well under the endpoints' timeouts (while Redis is down, every limited request waits up to this long)")
	}
	if r.DB < 0 {
		c.add("redis.db", "must not be negative (0 is the default database), got %d", r.DB)
	}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && strconv.Itoa(n) == s
}

// validateRateLimitStore checks rate_limit.store and on_error of the limit
// rl at YAML path rp. on_error on a local limit is refused rather than
// ignored: a local limit never fails, so the key would do nothing, and
// whoever wrote it most likely believed the budget was shared by the
// replicas (it is not, without store: redis).
func validateRateLimitStore(cfg *Config, rl *RateLimit, rp string, c *collector) {
	switch rl.Store {
	case StoreLocal:
		if c.inFile(rp+".on_error") || c.env[rp+".on_error"] != "" {
			c.add(rp+".on_error", "applies only to store: redis (a local limit, one budget per replica, never fails): "+
				"add store: redis for one budget across replicas, or remove on_error")
		}
	case StoreRedis:
		if cfg.Redis == nil {
			c.add(rp+".store", "redis needs a Redis to keep the budget in: add a top-level redis: {address: \"127.0.0.1:6379\"}, or use store: local")
		}
	default:
		c.add(rp+".store", "%q: use local (a budget per replica, the default) or redis (one budget shared by every replica on the redis block's server)", rl.Store)
	}
	if rl.OnError != OnErrorAllow && rl.OnError != OnErrorDeny {
		c.add(rp+".on_error", "%q: use allow (serve while Redis is down, the default) or deny (answer 429 while Redis is down)", rl.OnError)
	}
}
