// Package freeport hands tests loopback ports that nothing else on the
// machine is about to take.
//
// The usual trick, listening on port 0 and closing the listener, returns a
// port from the kernel's ephemeral range, and that range is also where every
// outgoing connection takes its source port. A test that closes such a
// listener and starts a process meant to bind the port races every
// connection the machine opens meanwhile; with many tests running in
// parallel, one of them sometimes wins and the process fails with "address
// already in use". Ports below (or above) the ephemeral range are never
// given to outgoing connections nor to port-0 listeners, so a port from
// there, checked bindable and handed out once per process, stays free
// until the test binds it.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Linux's default ephemeral range, used when /proc cannot be read.
const (
	defaultLo = 32768
	defaultHi = 60999
)

var (
	mu     sync.Mutex
	next   int          // the next candidate in [lo, hi]
	lo, hi int          // the range ports are taken from
	given  map[int]bool // ports handed out by this process
)

// EphemeralRange returns the kernel's range of ports for outgoing
// connections and port-0 listeners (Linux's
// /proc/sys/net/ipv4/ip_local_port_range, or its default).
func EphemeralRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultLo, defaultHi
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return defaultLo, defaultHi
	}
	l, err1 := strconv.Atoi(f[0])
	h, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || l > h {
		return defaultLo, defaultHi
	}
	return l, h
}

// candidates picks the widest span outside the ephemeral range, keeping
// clear of the well-known ports below 10000 where a machine's own servers
// listen.
func candidates() (int, int) {
	el, eh := EphemeralRange()
	below := [2]int{10000, el - 1}
	above := [2]int{eh + 1, 65535}
	if below[1]-below[0] >= above[1]-above[0] {
		return below[0], below[1]
	}
	return above[0], above[1]
}

// Port returns a port on 127.0.0.1 outside the ephemeral range that could
// be bound a moment ago and that this process has not handed out before.
func Port(tb testing.TB) int {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if given == nil {
		given = map[int]bool{}
		lo, hi = candidates()
		if hi < lo {
			tb.Fatalf("freeport: no ports outside the ephemeral range %d-%d", lo, hi)
		}
		// Test binaries of different packages run at once: each starts
		// at its own random point, so they rarely probe the same ports.
		next = lo + rand.IntN(hi-lo+1)
	}
	for range hi - lo + 1 {
		p := next
		next++
		if next > hi {
			next = lo
		}
		if given[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = ln.Close()
		given[p] = true
		return p
	}
	tb.Fatalf("freeport: no free port in %d-%d", lo, hi)
	return 0
}

// Addr is Port as "127.0.0.1:port".
func Addr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(tb)))
}
