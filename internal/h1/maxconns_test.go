package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slots reports the MaxConns slots in use (for tests).
func (c *Client) slots() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns
}

// gatedServer answers every request once gate is closed, counting the
// requests it holds.
type gatedServer struct {
	*rawServer
	gate    chan struct{}
	held    atomic.Int32 // requests read and not yet answered
	maxHeld atomic.Int32
}

func newGatedServer(t *testing.T, resp string) *gatedServer {
	g := &gatedServer{gate: make(chan struct{})}
	g.rawServer = newRawServer(t, func(rc *rawConn) {
		for {
			if _, _, err := rc.readRequest(); err != nil {
				return
			}
			n := g.held.Add(1)
			for m := g.maxHeld.Load(); n > m && !g.maxHeld.CompareAndSwap(m, n); m = g.maxHeld.Load() {
			}
			<-g.gate
			g.held.Add(-1)
			rc.write(resp)
		}
	})
	return g
}

func TestMaxConns(t *testing.T) {
	t.Parallel()

	t.Run("calls beyond the limit wait for a released connection", func(t *testing.T) {
		t.Parallel()
		s := newGatedServer(t, okResponse)
		c := s.client(t, Options{MaxConns: 2})
		const calls = 6
		errs := make(chan error, calls)
		for range calls {
			go func() {
				_, body, err := get(t, c, "/")
				if err == nil && body != "ok" {
					err = fmt.Errorf("body %q", body)
				}
				errs <- err
			}()
		}
		waitFor(t, func() bool { return s.held.Load() == 2 })
		// The other four wait in the client: no dial for them.
		waitFor(t, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.waiters.n == calls-2
		})
		if n := s.accepted.Load(); n != 2 {
			t.Fatalf("%d connections accepted with MaxConns 2", n)
		}
		close(s.gate)
		for range calls {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if n := s.accepted.Load(); n != 2 {
			t.Errorf("%d connections accepted for %d calls with MaxConns 2, want 2 (released ones reused)", n, calls)
		}
		if m := s.maxHeld.Load(); m > 2 {
			t.Errorf("the server held %d requests at once, want at most 2", m)
		}
		c.CloseIdleConnections()
		if n := c.slots(); n != 0 {
			t.Errorf("%d slots in use after every connection closed", n)
		}
	})

	t.Run("a closed connection frees its slot for a waiting call", func(t *testing.T) {
		t.Parallel()
		// Every answer closes its connection, so no call can be served by
		// a released one: each waiting call needs the slot back to dial.
		var busy, maxBusy atomic.Int32
		s := newRawServer(t, func(rc *rawConn) {
			if _, _, err := rc.readRequest(); err != nil {
				return
			}
			n := busy.Add(1)
			for m := maxBusy.Load(); n > m && !maxBusy.CompareAndSwap(m, n); m = maxBusy.Load() {
			}
			busy.Add(-1)
			rc.write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
		})
		c := s.client(t, Options{MaxConns: 1})
		const calls = 5
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				if _, body, err := get(t, c, "/"); err != nil || body != "ok" {
					t.Errorf("call: %q, %v", body, err)
				}
			})
		}
		wg.Wait()
		if n := s.accepted.Load(); n != calls {
			t.Errorf("%d connections for %d calls whose answers close them, want %d", n, calls, calls)
		}
		if m := maxBusy.Load(); m > 1 {
			t.Errorf("the server served %d requests at once with MaxConns 1", m)
		}
		if n := c.slots(); n != 0 {
			t.Errorf("%d slots in use after the calls", n)
		}
	})

	t.Run("a call waiting at the limit ends with its context", func(t *testing.T) {
		t.Parallel()
		s := newGatedServer(t, okResponse)
		c := s.client(t, Options{MaxConns: 1})
		first := make(chan error, 1)
		go func() {
			_, _, err := get(t, c, "/first")
			first <- err
		}()
		waitFor(t, func() bool { return s.held.Load() == 1 })

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/second"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("queued call: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("queued call took %v to end after a 100ms deadline", d)
		}
		if n := s.accepted.Load(); n != 1 {
			t.Errorf("%d connections accepted with MaxConns 1", n)
		}
		close(s.gate)
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		// The gone call left no waiter behind: the released connection was
		// pooled, and the next call reuses it.
		if got := c.idleCount(); got != 1 {
			t.Errorf("idle connections after the first call: %d, want 1", got)
		}
		if _, _, err := get(t, c, "/third"); err != nil {
			t.Fatal(err)
		}
		if n := s.accepted.Load(); n != 1 {
			t.Errorf("%d connections accepted, want 1", n)
		}
	})

	t.Run("a failed dial frees its slot and every waiting call hears of the failure", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens: dials are refused
		c := New(Options{Addr: addr, MaxConns: 1})
		t.Cleanup(c.CloseIdleConnections)
		const calls = 4
		errs := make(chan error, calls)
		for range calls {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
				errs <- err
			}()
		}
		for range calls {
			err := <-errs
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("call to a refusing address: %v, want the dial's error", err)
			}
		}
		if n := c.slots(); n != 0 {
			t.Errorf("%d slots in use after the failed dials", n)
		}
	})

	t.Run("a stale connection's replay waits for a slot", func(t *testing.T) {
		t.Parallel()
		// The first connection answers once and is then closed by the
		// server without a word; the replay of the second call must not
		// open a second connection while another call holds the only slot.
		var conns atomic.Int32
		s := newRawServer(t, func(rc *rawConn) {
			n := conns.Add(1)
			for i := 0; ; i++ {
				if _, _, err := rc.readRequest(); err != nil {
					return
				}
				if n == 1 && i == 1 {
					return // a stale keep-alive connection
				}
				rc.write(okResponse)
			}
		})
		c := s.client(t, Options{MaxConns: 1})
		if _, _, err := get(t, c, "/a"); err != nil {
			t.Fatal(err)
		}
		// The pooled connection looks alive; its request meets the close.
		if _, body, err := get(t, c, "/b"); err != nil || body != "ok" {
			t.Fatalf("replayed call: %q, %v", body, err)
		}
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2 (the stale one and the replay's)", n)
		}
		c.CloseIdleConnections()
		if n := c.slots(); n != 0 {
			t.Errorf("%d slots in use after every connection closed", n)
		}
	})

	t.Run("no limit: calls dial at once", func(t *testing.T) {
		t.Parallel()
		s := newGatedServer(t, okResponse)
		c := s.client(t, Options{})
		const calls = 5
		var wg sync.WaitGroup
		for range calls {
			wg.Go(func() {
				resp, _, err := get(t, c, "/")
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Errorf("call: %v", err)
				}
			})
		}
		waitFor(t, func() bool { return s.held.Load() == calls })
		close(s.gate)
		wg.Wait()
		if n := c.slots(); n != 0 {
			t.Errorf("slots counted without MaxConns: %d", n)
		}
	})
}

// TestWantQueue: the waiting calls come out oldest first, a call that
// leaves is taken out wherever it is, and the two queues a want can be in
// do not disturb each other.
func TestWantQueue(t *testing.T) {
	t.Parallel()
	all, some := wantQueue{}, wantQueue{k: 1}
	ws := make([]*want, 10)
	for i := range ws {
		ws[i] = &want{}
		all.push(ws[i])
		if i%2 == 0 {
			some.push(ws[i])
		}
	}
	for _, i := range []int{0, 5, 9, 4} { // head, middle, tail, and one in both
		if !all.remove(ws[i]) {
			t.Fatalf("remove %d: not found", i)
		}
		if all.remove(ws[i]) {
			t.Fatalf("remove %d twice: found", i)
		}
	}
	var got []int
	for w := all.head; w != nil; w = w.q[0].next {
		for i, x := range ws {
			if x == w {
				got = append(got, i)
			}
		}
	}
	if fmt.Sprint(got) != "[1 2 3 6 7 8]" || all.n != 6 {
		t.Errorf("all: %v (n %d), want [1 2 3 6 7 8]", got, all.n)
	}
	got = nil
	for w := some.head; w != nil; w = w.q[1].next {
		for i, x := range ws {
			if x == w {
				got = append(got, i)
			}
		}
	}
	if fmt.Sprint(got) != "[0 2 4 6 8]" || some.n != 5 {
		t.Errorf("some: %v (n %d), want [0 2 4 6 8]", got, some.n)
	}
	for all.head != nil {
		all.remove(all.head)
	}
	if all.n != 0 || all.tail != nil {
		t.Errorf("emptied: n %d, tail %v", all.n, all.tail)
	}
}

// BenchmarkWantQueue: taking the oldest waiting call and queueing one costs
// the same however many wait (at MaxConns thousands may).
func BenchmarkWantQueue(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			c := New(Options{Addr: "127.0.0.1:1", MaxConns: 1})
			for range n {
				w := &want{}
				c.waiters.push(w)
				c.needDial.push(w)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := c.popWaiter()
				c.waiters.push(w)
				c.needDial.push(w)
			}
		})
	}
}

// TestMaxConnsIdleRace: with MaxConns 1, two calls start together, over and
// over. One holds the only connection; the other finds the pool empty, and
// before it queues the first releases its connection into the pool (no call
// waits yet). The second must take that connection, not queue at the limit
// while it sits idle (nothing would wake it before its deadline).
func TestMaxConnsIdleRace(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
	c := s.client(t, Options{MaxConns: 1})
	one := func(uri string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: uri})
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for round := 0; round < 5000 && time.Now().Before(deadline); round++ {
		start := make(chan struct{})
		errs := make(chan error, 2)
		for _, u := range []string{"/a", "/b"} {
			go func() { <-start; errs <- one(u) }()
		}
		close(start)
		if e1, e2 := <-errs, <-errs; e1 != nil || e2 != nil {
			c.mu.Lock()
			idle, waiters, conns := len(c.idle), c.waiters.n, c.conns
			c.mu.Unlock()
			t.Fatalf("round %d: %v / %v (then %d idle, %d waiting, %d slots)", round, e1, e2, idle, waiters, conns)
		}
	}
}

// TestMaxConnsBodyAbandonedWithoutClose: ending the context of a call
// whose body was dropped without Close closes its connection (as the
// package promises) and gives back its MaxConns slot; otherwise each such
// body would hold a slot for good, and at MaxConns of them every call
// would wait out its deadline.
func TestMaxConnsBodyAbandonedWithoutClose(t *testing.T) {
	t.Parallel()
	s := newRawServer(t, serveEach(func(i int, _ *http.Request) string {
		if i == 0 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello" // the rest never comes
		}
		return okResponse
	}))
	c := s.client(t, Options{MaxConns: 1})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/a"}); err != nil {
		t.Fatal(err)
	}
	// The body is dropped, never read to its end nor closed.
	cancel()
	waitFor(t, func() bool { return c.slots() == 0 })
	if _, body, err := get(t, c, "/b"); err != nil || body != "ok" {
		t.Fatalf("next call: %q, %v", body, err)
	}
}
