package limiter_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/manifold-gw/manifold/internal/redistest"
	"github.com/manifold-gw/manifold/limiter"
)

// redisServer is a real redis-server child process (internal/redistest)
// with the limiter tests' helpers: clients built as the limiter builds
// them, and typed administrative commands.
type redisServer struct{ *redistest.Server }

// startRedis starts a redis-server with extra arguments and waits until it
// answers. It is stopped (by PID) when tb ends.
func startRedis(tb testing.TB, extra ...string) *redisServer {
	tb.Helper()
	// Registered first, so it runs last: after the test's clients are
	// closed and the server is stopped.
	tb.Cleanup(func() { redistest.WaitClientGoroutines(tb) })
	return &redisServer{redistest.Start(tb, extra...)}
}

// client returns a limiter client for the server, closed when tb ends.
func (s *redisServer) client(tb testing.TB, o limiter.RedisClientOptions) *redis.Client {
	tb.Helper()
	o.Addr = s.Addr()
	return closeOnCleanup(tb, limiter.NewRedisClient(o))
}

func closeOnCleanup(tb testing.TB, c *redis.Client) *redis.Client {
	tb.Helper()
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("close redis client: %v", err)
		}
	})
	return c
}

// do runs one administrative command on its own short-lived client and
// returns its typed reply (redistest's Do gives only the first line).
func (s *redisServer) do(tb testing.TB, args ...any) any {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Do(ctx, args...).Result()
	if err != nil && err != redis.Nil {
		tb.Fatalf("redis %v: %v", args, err)
	}
	return v
}
