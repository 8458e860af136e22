package demo

import (
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// SlowHost is the address whose demo instance is the slow one of an
// upstream pool: the shipped config lists 127.0.0.1, 127.0.0.2 and
// 127.0.0.3 (all on the gateway's own listener) as three instances of one
// upstream, and the gateway sends each instance's host:port as Host, so
// calls arriving with this host play the instance that sets the tail.
const SlowHost = "127.0.0.3"

// Every slowEvery-th call to SlowHost is slow, by one of slowDelays in
// turn: 25 % of that instance's calls, 50 to 80 ms extra. Counting (not
// chance) makes a demo run show the same picture every time.
const slowEvery = 4

var slowDelays = [...]time.Duration{50 * time.Millisecond, 60 * time.Millisecond, 70 * time.Millisecond, 80 * time.Millisecond}

// delayFunc returns how long a call that arrived with host (the request's
// Host, host or host:port) waits before it is served. Tests inject their
// own to see the choice without timing it.
type delayFunc func(host string) time.Duration

// slowInstance returns the demo's delayFunc: calls to SlowHost, on any
// port, are numbered from 1, and each slowEvery-th waits the next of
// slowDelays; calls to any other host never wait. Each handler counts its
// own calls, and the count is safe for concurrent use.
func slowInstance() delayFunc {
	var calls, slow atomic.Uint64
	return func(host string) time.Duration {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host != SlowHost || calls.Add(1)%slowEvery != 0 {
			return 0
		}
		return slowDelays[(slow.Add(1)-1)%uint64(len(slowDelays))]
	}
}

// withInstanceDelay makes each request wait delay(r.Host) before next
// serves it, on top of any ?delay= knob, and gives up as soon as the
// request context ends: a hedged call's losing try is cancelled by the
// gateway, and nobody reads its answer.
func withInstanceDelay(next http.Handler, delay delayFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := delay(r.Host); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
