package handlers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/gin-gonic/gin"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/limiter"
)

// sharedRedis is the process's one connection to the redis block's
// server: the client (its pool) and the limiter store whose health the
// transition log lines report, once per Redis rather than per endpoint.
// A reload that leaves the redis block as it was hands it to the new
// Gateway; a changed block gets a new one, and the old one closes once no
// Gateway holds it (a retired Gateway holds it until its last request has
// left) and no decision is in flight on it, so that requests finishing on
// the old Gateway are not failed (and logged as an outage) by a client
// closed under them.
type sharedRedis struct {
	cfg    config.Redis
	client io.Closer
	store  *limiter.RedisStore
	// refs counts the Gateways holding it plus the decisions in flight;
	// the client is closed when it drops to 0, and never reopens.
	refs atomic.Int64
}

// needsRedis reports whether some endpoint of cfg keeps its limit in Redis.
func needsRedis(cfg *config.Config) bool {
	for _, ec := range cfg.Endpoints {
		if ec.RateLimit != nil && ec.RateLimit.Store == config.StoreRedis {
			return true
		}
	}
	return false
}

// newRedis gives g the Redis of its limits: prev's when the redis block
// did not change, else a new client. A config whose limits are all local
// gets none (a redis block alone connects to nothing). g holds one
// reference, given back by Retire or Close.
func (g *Gateway) newRedis(prev *Gateway, metrics *Metrics) error {
	if !needsRedis(g.cfg) {
		return nil
	}
	rc := *g.cfg.Redis
	if prev != nil && prev.redis != nil && prev.redis.cfg == rc && prev.redis.acquire() {
		g.redis = prev.redis
		return nil
	}
	var tlsConf *tls.Config
	if rc.TLS {
		host, _, _ := net.SplitHostPort(rc.Address) // validated host:port
		tlsConf = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	client := limiter.NewRedisClient(limiter.RedisClientOptions{
		Addr:     rc.Address,
		Username: rc.Username,
		Password: rc.Password,
		DB:       rc.DB,
		TLS:      tlsConf,
		Timeout:  rc.Timeout,
	})
	logger := g.logger
	store, err := limiter.NewRedisStore(limiter.RedisStoreOptions{
		Client:  client,
		Timeout: rc.Timeout,
		OnTransition: func(down bool, err error) {
			if down {
				logger.Warn("redis unavailable; rate limits with store: redis follow on_error",
					"address", rc.Address, "timeout", rc.Timeout.String(), "error", err.Error())
				return
			}
			logger.Info("redis available again; rate limits with store: redis share one budget", "address", rc.Address)
		},
		OnError: func(error) { metrics.redisError() },
	})
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("redis: %w", err)
	}
	r := &sharedRedis{cfg: rc, client: client, store: store}
	r.refs.Store(1)
	g.redis = r
	return nil
}

// acquire takes a reference; it fails once the client is closed.
func (r *sharedRedis) acquire() bool {
	for {
		n := r.refs.Load()
		if n <= 0 {
			return false
		}
		if r.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release gives a reference back, closing the client with the last one.
// Close ends the pool's connections and, once they notice, go-redis's
// background goroutines.
func (r *sharedRedis) release() {
	if r.refs.Add(-1) == 0 {
		_ = r.client.Close()
	}
}

// retireRedis marks g retired, with next as its successor (nil on Close),
// and gives back g's Redis reference at once if no request is in flight on
// g, else when the last one leaves. The count of requests and the retired
// mark share one atomic word (g.inflight, retiredBit), so that exactly one
// party sees "retired and nothing in flight" and gives the reference back,
// and a request that enters after that sees it and goes to next instead.
func (g *Gateway) retireRedis(next *Gateway) {
	if g.redis == nil {
		return
	}
	if next != nil {
		g.next.Store(next)
	}
	if g.inflight.Or(retiredBit) == 0 {
		g.releaseRedis()
	}
}

// retiredBit marks g.inflight once g is retired; the bits below count the
// requests in flight.
const retiredBit = 1 << 62

// enter counts a request in on g (one with a Redis). It reports false,
// counting nothing, when g is retired with nothing in flight (its Redis is
// given back or about to be) and a successor is known: the request should
// be served there.
func (g *Gateway) enter() bool {
	for {
		n := g.inflight.Load()
		if n == retiredBit && g.next.Load() != nil {
			return false
		}
		if g.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// leave counts a request out of g, and gives back g's Redis reference if
// it was the last request of a retired g.
func (g *Gateway) leave() {
	if g.inflight.Add(-1) == retiredBit {
		g.releaseRedis()
	}
}

// releaseRedis gives back g's reference, once however often g is retired.
func (g *Gateway) releaseRedis() {
	if g.redis != nil && g.redisHeld.CompareAndSwap(true, false) {
		g.redis.release()
	}
}

// redisKeyPrefix is the Redis key prefix of an endpoint's buckets:
// method and path template, as written, so that endpoints never share a
// budget and every replica (and every reload) with the same endpoint
// finds the same keys. Neither a method nor a path can contain ':', so
// the prefix ends unambiguously before the client key.
func redisKeyPrefix(ec *config.Endpoint) string {
	return "manifold:rl:" + ec.Method + ":" + ec.Path + ":"
}

// sharedLimit is an endpoint's limit kept in Redis.
type sharedLimit struct {
	conn *sharedRedis
	lim  *limiter.Redis
}

func newSharedLimit(ec *config.Endpoint, conn *sharedRedis) (*sharedLimit, error) {
	rl := ec.RateLimit
	policy, err := limiter.ParseErrorPolicy(rl.OnError)
	if err != nil {
		return nil, err
	}
	lim, err := conn.store.NewLimiter(limiter.RedisLimit{
		Prefix:  redisKeyPrefix(ec),
		RPS:     rl.RPS,
		Burst:   rl.Burst,
		OnError: policy,
	})
	if err != nil {
		return nil, fmt.Errorf("endpoint %s %s: rate limit: %w", ec.Method, ec.Path, err)
	}
	return &sharedLimit{conn: conn, lim: lim}, nil
}

// errRedisRetired is why a decision reaching a Gateway whose Redis was
// closed by a reload meanwhile is not taken: retiredCtx, already ended,
// makes the limiter answer with the endpoint's on_error policy at once,
// without a call and without counting a Redis error.
var errRedisRetired = errors.New("the redis client was retired by a reload")

var retiredCtx = func() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errRedisRetired)
	return ctx
}()

// decide takes a token for key from Redis, within redis.timeout. A non-nil
// error means Redis did not decide and d is the on_error policy's.
func (s *sharedLimit) decide(ctx context.Context, key string) (d limiter.Decision, err error) {
	if !s.conn.acquire() {
		return s.lim.AllowContext(retiredCtx, key)
	}
	defer s.conn.release()
	return s.lim.AllowContext(ctx, key)
}

// allowShared is allow for a limit in Redis. When Redis decides, the
// answer is exactly a local limit's: the same RateLimit-* headers, and the
// same 429 and Retry-After when refused. When it does not (down, slower
// than redis.timeout), on_error decides and no RateLimit-* header is
// sent: no bucket was read, and made-up numbers would mislead a client
// that paces itself by them. A denied request then gets a 429 saying the
// limit could not be checked, with the Retry-After of the policy (1s):
// a client's retry a moment later may find Redis back.
func (rl *rateLimit) allowShared(c *gin.Context, who *identity) bool {
	d, err := rl.shared.decide(c.Request.Context(), rl.key(c, who))
	if err == nil {
		return rl.answer(c, d)
	}
	if d.Allowed {
		return true
	}
	c.Writer.Header()["Retry-After"] = []string{strconv.Itoa(max(1, ceilSeconds(d.RetryAfter)))}
	writeError(c, http.StatusTooManyRequests, "rate limit could not be checked; retry later", nil)
	return false
}
