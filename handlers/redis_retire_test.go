package handlers

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

type nopCloser struct{ closed *atomic.Int32 }

func (c nopCloser) Close() error { c.closed.Add(1); return nil }

// TestRetireRedisRace: a request that enters a Gateway while a reload
// retires it either is admitted and finds the Redis client open for its
// decision, or is sent to the successor; and the client is closed exactly
// once, after the last request left. (With the count and the retired mark
// in two words, an admitted request could find the client closed.)
func TestRetireRedisRace(t *testing.T) {
	t.Parallel()
	for round := range 20000 {
		var closed atomic.Int32
		r := &sharedRedis{client: nopCloser{&closed}}
		r.refs.Store(1)
		g := &Gateway{redis: r}
		g.redisHeld.Store(true)
		next := &Gateway{}
		start := make(chan struct{})
		var admitted, open atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() {
			<-start
			g.retireRedis(next)
		})
		wg.Go(func() {
			<-start
			if !g.enter() {
				return
			}
			admitted.Store(true)
			runtime.Gosched() // the request's work before its limit (auth, ...)
			if r.acquire() {  // what decide does
				open.Store(true)
				r.release()
			}
			g.leave()
		})
		close(start)
		wg.Wait()
		if admitted.Load() && !open.Load() {
			t.Fatalf("round %d: a request admitted into the retiring Gateway found its Redis closed", round)
		}
		if n := closed.Load(); n != 1 || r.refs.Load() != 0 {
			t.Fatalf("round %d: client closed %d times, %d references left; want once, none", round, n, r.refs.Load())
		}
	}
}
