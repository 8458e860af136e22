package freeport

import (
	"net"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The ports handed out lie outside the range the kernel gives outgoing
// connections and port-0 listeners, are bindable, and are never handed out
// twice, even while the earlier ones are taken.
func TestPortOutsideEphemeralRangeAndUnique(t *testing.T) {
	el, eh := EphemeralRange()
	seen := map[int]bool{}
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for i := range 200 {
		p := Port(t)
		if p >= el && p <= eh {
			t.Fatalf("port %d is inside the ephemeral range %d-%d", p, el, eh)
		}
		if p < 1024 || p > 65535 {
			t.Fatalf("port %d out of bounds", p)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if i%2 == 0 { // bind half of them: the next call must skip past them
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				t.Fatalf("port %d not bindable: %v", p, err)
			}
			held = append(held, ln)
		}
	}
}

// A port-0 listener, the kind every httptest.Server uses, and an outgoing
// connection's source port both come from the ephemeral range, which is
// why Port stays out of it.
func TestEphemeralRangeIsWhatTheKernelUses(t *testing.T) {
	el, eh := EphemeralRange()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if p := ln.Addr().(*net.TCPAddr).Port; p < el || p > eh {
		t.Fatalf("port-0 listener got %d, outside %d-%d", p, el, eh)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.LocalAddr().(*net.TCPAddr).Port; p < el || p > eh {
		t.Fatalf("outgoing connection's source port %d, outside %d-%d", p, el, eh)
	}
}
