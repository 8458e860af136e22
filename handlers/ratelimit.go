package handlers

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/limiter"
)

// rateLimit is an endpoint's limiter with the rule that picks a request's
// bucket.
type rateLimit struct {
	cfg *config.RateLimit
	lim limiter.Limiter // the local buckets; nil with store: redis
	// shared is the limit kept in Redis (store: redis), else nil.
	shared *sharedLimit
	// limitHeader is RateLimit-Limit, formatted once.
	limitHeader []string
}

// newRateLimit builds the limiter of an endpoint, or nil when it has none;
// a store: redis limit takes its tokens through conn (see newSharedLimit).
func newRateLimit(ec *config.Endpoint, conn *sharedRedis) (*rateLimit, error) {
	rl := ec.RateLimit
	if rl == nil {
		return nil, nil
	}
	// Config validation refuses such values; checking again here turns
	// one that got past it into a refused config (a refused reload) rather
	// than the limiter constructors' panic.
	if err := limiter.Validate(rl.RPS, rl.Burst); err != nil {
		return nil, fmt.Errorf("endpoint %s: rate_limit: %w", ec.Path, err)
	}
	if rl.Store == config.StoreRedis {
		shared, err := newSharedLimit(ec, conn)
		if err != nil {
			return nil, err
		}
		return &rateLimit{cfg: rl, shared: shared, limitHeader: []string{strconv.Itoa(rl.Burst)}}, nil
	}
	var lim limiter.Limiter
	if rl.Per == "client" {
		lim = limiter.NewPerKey(rl.RPS, rl.Burst)
	} else {
		lim = limiter.NewGlobal(rl.RPS, rl.Burst)
	}
	return &rateLimit{cfg: rl, lim: lim, limitHeader: []string{strconv.Itoa(rl.Burst)}}, nil
}

// key is the client's bucket key: the validated token's claim
// (claim:NAME), the configured header's value, or the client IP (the peer,
// or the right-most untrusted X-Forwarded-For entry when the peer is a
// trusted proxy); without the claim (no token, or a token without it) or
// the header, the IP. Claim and header keys are prefixed so that neither
// can ever name another kind's bucket.
func (rl *rateLimit) key(c *gin.Context, who *identity) string {
	if rl.cfg.Per != "client" {
		return ""
	}
	if name := rl.cfg.KeyClaim; name != "" {
		if v, ok := who.claim(name); ok {
			return "c\x00" + v
		}
		return ipKey(c.ClientIP())
	}
	if h := rl.cfg.KeyHeader; h != "" {
		if v := c.Request.Header.Get(h); v != "" {
			return "h\x00" + v
		}
	}
	return ipKey(c.ClientIP())
}

// ipKey is a client IP's bucket key: an IPv4 address as it is (an
// IPv4-mapped IPv6 one unmapped), an IPv6 address by its /64, which one host
// normally holds whole and may take a new source address from for every
// request: keyed by the full address, such a client would dodge its limit
// and grow a bucket per request.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a.Is4In6() {
		return a.Unmap().String()
	}
	if a.Is6() {
		return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
	}
	return ip
}

// allow takes a token for the request, sets the RateLimit-* headers, and
// answers 429 with Retry-After when refused. It reports whether to go on.
// who is the request's validated token (nil without auth).
func (rl *rateLimit) allow(c *gin.Context, who *identity) bool {
	if rl.shared != nil {
		return rl.allowShared(c, who)
	}
	return rl.answer(c, rl.lim.Allow(rl.key(c, who)))
}

// answer applies a bucket's decision d: the RateLimit-* headers, and when
// refused the 429 with Retry-After. It reports whether to go on.
func (rl *rateLimit) answer(c *gin.Context, d limiter.Decision) bool {
	h := c.Writer.Header()
	h["Ratelimit-Limit"] = rl.limitHeader
	h["Ratelimit-Remaining"] = []string{strconv.Itoa(d.Remaining)}
	h["Ratelimit-Reset"] = []string{strconv.Itoa(ceilSeconds(d.Reset))}
	if d.Allowed {
		return true
	}
	h["Retry-After"] = []string{strconv.Itoa(max(1, ceilSeconds(d.RetryAfter)))}
	writeError(c, http.StatusTooManyRequests, "rate limit exceeded", nil)
	return false
}

func ceilSeconds(d time.Duration) int {
	return int(math.Ceil(d.Seconds()))
}
