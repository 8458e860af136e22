package limiter_test

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/manifold-gw/manifold/limiter"
)

// One client and one store per Redis, one limit per endpoint; the request
// path asks the limit with the request's context. (Not run: it needs a
// Redis.)
func ExampleRedisStore_NewLimiter() {
	client := limiter.NewRedisClient(limiter.RedisClientOptions{Addr: "127.0.0.1:6379", Timeout: 50 * time.Millisecond})
	defer client.Close()
	store, err := limiter.NewRedisStore(limiter.RedisStoreOptions{
		Client:  client,
		Timeout: 50 * time.Millisecond,
		OnTransition: func(down bool, err error) {
			if down {
				slog.Warn("redis rate limits unavailable, on_error applies", "err", err)
			} else {
				slog.Info("redis rate limits available again")
			}
		},
		OnError: func(error) { /* manifold_redis_errors_total.Inc() */ },
	})
	if err != nil {
		panic(err)
	}
	orders, err := store.NewLimiter(limiter.RedisLimit{Prefix: "manifold:rl:orders:", RPS: 100, Burst: 20, OnError: limiter.FailOpen})
	if err != nil {
		panic(err)
	}

	// In the handler:
	d, err := orders.AllowContext(context.Background(), "203.0.113.7")
	if err != nil && !errors.Is(err, limiter.ErrStoreUnavailable) {
		return // the client went away
	}
	if !d.Allowed {
		_ = d.RetryAfter // 429 with Retry-After and RateLimit-* headers, as for local limits
	}
}
