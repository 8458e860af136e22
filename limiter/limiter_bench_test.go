package limiter_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/manifold-gw/manifold/limiter"
)

// benchKeys are 100k client keys shaped like IPv4 addresses, generated once.
var benchKeys = func() []string {
	ks := make([]string, 100_000)
	for i := range ks {
		ks[i] = "10." + strconv.Itoa(i>>16&255) + "." + strconv.Itoa(i>>8&255) + "." + strconv.Itoa(i&255)
	}
	return ks
}()

// Many clients from all cores: the gateway's common case. Keys are
// pre-warmed so that this measures the existing-key path.
func BenchmarkLimiterAllowParallel(b *testing.B) {
	p := limiter.NewPerKey(1000, 100)
	for _, k := range benchKeys {
		p.Allow(k)
	}
	var seq atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(1) * 7919)
		for pb.Next() {
			p.Allow(benchKeys[i%len(benchKeys)])
			i++
		}
	})
}

// One client, one goroutine: the cost of a decision without contention.
func BenchmarkLimiterAllowSameKey(b *testing.B) {
	p := limiter.NewPerKey(1000, 100)
	b.ReportAllocs()
	for b.Loop() {
		p.Allow("203.0.113.7")
	}
}

// One hot client hammered from all cores: worst-case contention on one shard.
func BenchmarkLimiterAllowSameKeyParallel(b *testing.B) {
	p := limiter.NewPerKey(1000, 100)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Allow("203.0.113.7")
		}
	})
}

// A stream of never-seen clients: the allocation cost of a new bucket.
func BenchmarkLimiterAllowNewKey(b *testing.B) {
	p := limiter.NewPerKey(1000, 100)
	keys := make([]string, b.N)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p.Allow(keys[i])
	}
}

func BenchmarkGlobalAllow(b *testing.B) {
	g := limiter.NewGlobal(1000, 100)
	b.ReportAllocs()
	for b.Loop() {
		g.Allow("ignored")
	}
}

func BenchmarkGlobalAllowParallel(b *testing.B) {
	g := limiter.NewGlobal(1000, 100)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			g.Allow("ignored")
		}
	})
}
