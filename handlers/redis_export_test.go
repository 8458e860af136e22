package handlers

// SameRedis reports whether a and b use one Redis client (a reload that
// left the redis block as it was carried it over).
func SameRedis(a, b *Gateway) bool { return a.redis != nil && a.redis == b.redis }

// HasRedis reports whether g has a Redis client at all.
func HasRedis(g *Gateway) bool { return g.redis != nil }

// RedisRefs is how many holders g's Redis client has: Gateways plus
// decisions in flight; 0 once it is closed.
func RedisRefs(g *Gateway) int64 { return g.redis.refs.Load() }
