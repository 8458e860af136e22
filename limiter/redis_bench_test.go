package limiter_test

import (
	"context"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/limiter"
)

// benchRedis returns a Redis limit on a fresh real redis-server (skipped
// when the binary is absent, unless CI is set), with a budget no benchmark
// exhausts, so that every call takes the allow path (GET, TIME, SET).
func benchRedis(b *testing.B) *limiter.Redis {
	b.Helper()
	srv := startRedis(b)
	c := srv.client(b, limiter.RedisClientOptions{Timeout: time.Second})
	s, err := limiter.NewRedisStore(limiter.RedisStoreOptions{Client: c, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	r, err := s.NewLimiter(limiter.RedisLimit{Prefix: "bench:", RPS: 1e6, Burst: 1_000_000_000})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// One decision, one goroutine: a localhost round trip plus the script.
// Compare with BenchmarkGlobalAllow, the local bucket.
func BenchmarkRedisAllow(b *testing.B) {
	r := benchRedis(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.AllowContext(ctx, "203.0.113.7"); err != nil {
			b.Fatal(err)
		}
	}
}

// Decisions from all cores on distinct keys: how far the pool and the
// single-threaded server scale. Compare with BenchmarkLimiterAllowParallel.
func BenchmarkRedisAllowParallel(b *testing.B) {
	r := benchRedis(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := r.AllowContext(ctx, benchKeys[i%len(benchKeys)]); err != nil {
				b.Error(err)
				return
			}
			i += 7919
		}
	})
}
