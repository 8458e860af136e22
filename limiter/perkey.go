package limiter

import (
	"crypto/sha256"
	"hash/maphash"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// MaxKeyLen is the longest client key stored as is. Longer keys are replaced
// by a fixed-size SHA-256 digest (41 bytes) before use, so a hostile header
// cannot make the limiter hold megabytes per client, while distinct long keys
// still get distinct buckets (truncation would make clients that share a
// prefix share a bucket). Hashing costs one allocation per call for such
// keys; ordinary keys (IPs, API keys) never pay it.
const MaxKeyLen = 256

// hashedKeyPrefix marks digested keys. It starts with a NUL byte, which no
// IP address or API key contains, so a digest does not collide with a short
// key by accident.
const hashedKeyPrefix = "\x00sha256:"

// MinIdle is the default idle period (see [NewPerKey]): below it,
// fast-refilling endpoints would evict and re-create the buckets of regular
// clients between two of their requests, trading memory for allocations
// badly.
const MinIdle = time.Minute

// minSweepEvery bounds how often one shard may sweep itself, whatever the
// idle period, so that a tiny WithIdle cannot turn every Allow into a scan.
const minSweepEvery = time.Second

// numShards is the number of independently locked parts of a PerKey map: 64
// makes lock collisions rare on any realistic core count while keeping
// Len and Sweep cheap. It must be a power of two.
const numShards = 64

// shardRebuildMin is the high-water size below which a shard's map is never
// rebuilt after eviction (Go maps do not give memory back when entries are
// deleted; rebuilding a small map is not worth it).
const shardRebuildMin = 1024

// Option adjusts a [PerKey] limiter at construction. Options exist so that
// new knobs can be added without changing NewPerKey's signature.
type Option func(*PerKey)

// WithIdle sets how long a bucket must have been unused, in addition to
// being full, before it may be evicted. Shorter saves memory, longer saves
// re-allocation for clients that come back; correctness does not depend on
// it, because only full buckets are evicted. d <= 0 keeps the default.
func WithIdle(d time.Duration) Option {
	return func(p *PerKey) {
		if d > 0 {
			p.idle = d
		}
	}
}

// PerKey is a per-client limiter: one bucket per client key (an IP, an API
// key, ...), so that one noisy client cannot eat another's allowance.
//
// Memory stays bounded by the number of clients seen within the last idle
// period (or refill time, if longer) plus one sweep interval: buckets that
// are full and unused for the idle period are evicted lazily, by the shard
// they live in, during Allow calls at most once per sweep interval (half the
// idle period, at least a second). A lazy sweep scans its whole shard (1/64
// of the buckets) inside the Allow call that triggers it, and re-makes the
// shard's map once it has shrunk to a quarter of its peak, because Go maps
// do not release their table on delete. A shard that receives no calls at all
// does not sweep; call [PerKey.Sweep] to force it (for instance from an
// existing maintenance loop), but nothing requires it.
//
// Every distinct key gets its own bucket, including the empty string: the
// caller decides which requests share a key.
type PerKey struct {
	rps        float64
	burst      int
	idle       time.Duration
	sweepEvery time.Duration
	seed       maphash.Seed
	shards     [numShards]shard
}

// shard is one independently locked part of the per-key map, padded to two
// cache lines so that neighbouring shards' mutexes do not false-share.
type shard struct {
	mu        sync.Mutex
	buckets   map[string]*bucket
	peak      int       // high-water len(buckets) since the map was made
	lastSweep time.Time // when this shard last swept itself
	_         [128 - 48]byte
}

// Fails to compile if the padding above no longer fills whole cache lines.
var _ = [1]struct{}{}[unsafe.Sizeof(shard{})%64]

// NewPerKey returns a per-client limiter whose buckets have size burst and
// refill at rps tokens per second; a key seen for the first time starts with
// a full bucket. The idle period defaults to [MinIdle]; see [WithIdle].
// Only full buckets are evicted, and a full bucket is a fresh one, so the
// time a bucket takes to refill from empty (days on a slow endpoint) does
// not lengthen it: keys that anyone can mint (a header's value, rotating
// addresses) are forgotten a minute after their buckets are full again. It
// panics if [Validate] rejects rps or burst.
func NewPerKey(rps float64, burst int, opts ...Option) *PerKey {
	mustValidate(rps, burst)
	p := &PerKey{
		rps:   rps,
		burst: burst,
		idle:  MinIdle,
		seed:  maphash.MakeSeed(),
	}
	for _, o := range opts {
		o(p)
	}
	p.sweepEvery = max(p.idle/2, minSweepEvery)
	for i := range p.shards {
		p.shards[i].buckets = make(map[string]*bucket)
	}
	return p
}

// Idle returns the idle period in effect, so that callers and tests can
// reason about when buckets go away.
func (p *PerKey) Idle() time.Duration { return p.idle }

// Allow decides one request for key at the current time. See [Limiter].
func (p *PerKey) Allow(key string) Decision {
	return p.AllowAt(key, time.Now())
}

// AllowAt decides one request for key at time now; see [Limiter.AllowAt].
// Keys longer than [MaxKeyLen] are digested first. If the key's shard is due
// for a sweep (now is more than the sweep interval past its last one), the
// sweep runs inside this call, after the decision has been made.
func (p *PerKey) AllowAt(key string, now time.Time) Decision {
	owned := false
	if len(key) > MaxKeyLen {
		key, owned = digestKey(key), true
	}
	s := &p.shards[maphash.String(p.seed, key)&(numShards-1)]
	s.mu.Lock()
	b := s.buckets[key]
	if b == nil {
		if !owned {
			// Do not keep the caller's backing array (often a whole
			// request header block) alive for the bucket's lifetime.
			key = strings.Clone(key)
		}
		b = newBucket(p.rps, p.burst)
		s.buckets[key] = b
		s.peak = max(s.peak, len(s.buckets))
	}
	d := b.take(now, p.rps, p.burst)
	if now.Sub(s.lastSweep) > p.sweepEvery {
		p.sweepLocked(s, now)
	}
	s.mu.Unlock()
	return d
}

// Len returns the number of buckets currently tracked, for metrics and for
// tests of eviction. Shards are counted one after the other, so under
// concurrent use the total is approximate.
func (p *PerKey) Len() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// Sweep evicts, in every shard, the buckets that are full at now and have
// been unused for at least the idle period, and returns how many it evicted.
// Calling it is never required (shards sweep themselves during Allow); it
// exists for deterministic tests and for callers that want memory back while
// traffic is quiet.
func (p *PerKey) Sweep(now time.Time) int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		n += p.sweepLocked(s, now)
		s.mu.Unlock()
	}
	return n
}

// sweepLocked evicts s's idle full buckets; s.mu must be held. Only full
// buckets go: a bucket that is not full carries debt that a fresh bucket
// would forgive.
func (p *PerKey) sweepLocked(s *shard, now time.Time) int {
	s.lastSweep = now
	full := float64(p.burst)
	n := 0
	for k, b := range s.buckets {
		if now.Sub(b.last) >= p.idle && b.lim.TokensAt(now) >= full {
			delete(s.buckets, k)
			n++
		}
	}
	// Go maps keep their peak capacity after deletes; after a large wave of
	// clients has gone, copy the survivors into a right-sized map so that
	// the table itself is freed too.
	if s.peak >= shardRebuildMin && len(s.buckets) <= s.peak/4 {
		m := make(map[string]*bucket, len(s.buckets))
		for k, b := range s.buckets {
			m[k] = b
		}
		s.buckets = m
		s.peak = len(m)
	}
	return n
}

// digestKey maps a key longer than MaxKeyLen to a short, collision-resistant
// stand-in.
func digestKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hashedKeyPrefix + string(sum[:])
}
