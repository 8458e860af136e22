package h1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowDials makes c's next dials block before connecting until the
// returned release is called (it is also called when the test ends, so no
// dial outlives the test). ControlContext sees each dial's context when it
// is let through: cancelled counts the dials that were given up meanwhile.
func slowDials(t *testing.T, c *Client) (started, cancelled *atomic.Int32, release func()) {
	t.Helper()
	gate := make(chan struct{})
	started, cancelled = new(atomic.Int32), new(atomic.Int32)
	c.dialer.ControlContext = func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
		started.Add(1)
		<-gate
		if ctx.Err() != nil {
			cancelled.Add(1)
			return ctx.Err()
		}
		return nil
	}
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	return started, cancelled, release
}

// asyncGet starts a GET under a timeout and reports its outcome.
func asyncGet(c *Client, timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	return done
}

// TestReleasedConnBeatsSlowDial: a call that finds the pool empty and
// starts a dial takes a connection released meanwhile instead of waiting
// for its own dial, and the dial, when it completes, pools its connection
// (issue #8 item 11: at a cold start on a CPU-starved machine, calls to a
// healthy upstream timed out after 300ms in their own dials while dozens of
// that upstream's connections sat idle).
func TestReleasedConnBeatsSlowDial(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
	c := srv.client(t, Options{})

	// A holds the only connection, its body unread.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	respA, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
	if err != nil {
		t.Fatal(err)
	}
	started, cancelled, release := slowDials(t, c)

	// B finds the pool empty and dials; the dial hangs.
	b := asyncGet(c, 3*time.Second)
	waitFor(t, func() bool { return started.Load() == 1 })

	// A's body ends: its connection is released while B's dial hangs.
	io.ReadAll(respA.Body)
	respA.Body.Close()
	select {
	case err := <-b:
		if err != nil {
			t.Fatalf("B: %v", err)
		}
	case <-time.After(time.Second):
		release()
		<-b
		t.Fatal("B waited for its own dial although A's connection was released")
	}
	if n := srv.accepted.Load(); n != 1 {
		t.Fatalf("%d connections accepted before B's dial went through, want 1", n)
	}

	// B's dial, no longer needed by B, completes and is pooled.
	release()
	waitFor(t, func() bool { return c.dialCount() == 0 && c.idleCount() == 2 })
	if n := cancelled.Load(); n != 0 {
		t.Fatalf("%d dials cancelled, want 0", n)
	}
	// Both pooled connections work.
	for range 2 {
		if _, body, err := get(t, c, "/"); err != nil || body != "ok" {
			t.Fatalf("GET = %q, %v", body, err)
		}
	}
	if n := srv.accepted.Load(); n != 2 {
		t.Fatalf("%d connections accepted, want 2", n)
	}
}

// TestSpareDialsBounded: a dial whose caller was served otherwise goes on
// only while its connection could still be pooled (spare dials plus idle
// connections at most MaxIdleConns); beyond that it is cancelled.
// CloseIdleConnections cancels the spare dials still in flight.
func TestSpareDialsBounded(t *testing.T) {
	t.Parallel()
	t.Run("MaxIdleConns", func(t *testing.T) {
		srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
		c := srv.client(t, Options{MaxIdleConns: 1})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		respA, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
		if err != nil {
			t.Fatal(err)
		}
		started, cancelled, release := slowDials(t, c)
		b := asyncGet(c, 3*time.Second)
		waitFor(t, func() bool { return started.Load() == 1 })
		cc := asyncGet(c, 3*time.Second)
		waitFor(t, func() bool { return started.Load() == 2 })

		// A's connection goes to B, then (B done) to C: B's dial is kept
		// (the pool has room for its connection), C's is not.
		io.ReadAll(respA.Body)
		respA.Body.Close()
		for name, ch := range map[string]<-chan error{"B": b, "C": cc} {
			select {
			case err := <-ch:
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			case <-time.After(time.Second):
				t.Fatalf("%s waited for its own dial although a connection was released", name)
			}
		}
		release()
		waitFor(t, func() bool { return c.dialCount() == 0 })
		if n := cancelled.Load(); n != 1 {
			t.Fatalf("%d dials cancelled, want 1 (the one beyond MaxIdleConns)", n)
		}
		if n := c.idleCount(); n != 1 {
			t.Fatalf("%d idle, want 1", n)
		}
	})
	t.Run("CloseIdleConnections", func(t *testing.T) {
		srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
		c := srv.client(t, Options{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		respA, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
		if err != nil {
			t.Fatal(err)
		}
		started, cancelled, release := slowDials(t, c)
		b := asyncGet(c, 3*time.Second)
		waitFor(t, func() bool { return started.Load() == 1 })
		io.ReadAll(respA.Body)
		respA.Body.Close()
		if err := <-b; err != nil {
			t.Fatalf("B: %v", err)
		}
		c.CloseIdleConnections() // a reload dropped the upstream
		release()
		waitFor(t, func() bool { return c.dialCount() == 0 })
		if n := cancelled.Load(); n != 1 {
			t.Fatalf("%d dials cancelled, want 1", n)
		}
		if n := c.idleCount(); n != 0 {
			t.Fatalf("%d idle after CloseIdleConnections, want 0", n)
		}
	})
}

// TestAbandonedDialCancelled: a caller whose context ends while it waits
// cancels its own dial (nobody else waits for it), so the upstream sees the
// attempt abandoned and no goroutine is left dialing.
func TestAbandonedDialCancelled(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
	c := srv.client(t, Options{})
	started, cancelled, release := slowDials(t, c)
	var err error
	select {
	case err = <-asyncGet(c, 100*time.Millisecond):
	case <-time.After(time.Second):
		release()
		t.Fatal("the call outlived its context by a second")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}
	if started.Load() != 1 {
		t.Fatalf("%d dials, want 1", started.Load())
	}
	release()
	waitFor(t, func() bool { return c.dialCount() == 0 })
	if n := cancelled.Load(); n != 1 {
		t.Fatalf("%d dials cancelled, want 1", n)
	}
	if n := c.idleCount(); n != 0 {
		t.Fatalf("%d idle, want 0", n)
	}
}

// TestDialServesItsOwnCallerFirst: a dial's connection goes to the call
// that started it while that call still waits, not to an older waiter, so
// every waiting call keeps a dial of its own in flight (a call whose dial
// went to another would be left waiting on someone else's dial, or on
// nothing once that one fails or is cancelled as a spare).
func TestDialServesItsOwnCallerFirst(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string { return okResponse }))
	c := srv.client(t, Options{})
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	var n atomic.Int32
	c.dialer.ControlContext = func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
		if n.Add(1) == 1 {
			<-gate // the first caller's dial hangs; later ones go through
		}
		return nil
	}
	// The first call, once answered, holds its connection until told.
	hold := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
		if err == nil {
			<-hold
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		first <- err
	}()
	waitFor(t, func() bool { return n.Load() == 1 })
	second := asyncGet(c, 3*time.Second)
	select {
	case err := <-second:
		if err != nil {
			t.Fatalf("second: %v", err)
		}
	case <-time.After(time.Second):
		release()
		close(hold)
		<-first
		t.Fatal("the second call's own dial went through, yet it still waits")
	}
	release()
	close(hold)
	if err := <-first; err != nil {
		t.Fatalf("first: %v", err)
	}
	waitFor(t, func() bool { return c.dialCount() == 0 })
}

// TestLargePostsShareAPoolOfOne: a large POST answered without a body (204)
// releases its connection inside the read of the answer, and a call waiting
// for a connection gets it at once; the first call must not touch the
// connection after that (it used to read and stop the second call's body
// writer: a data race, and the second body cut short on the wire).
func TestLargePostsShareAPoolOfOne(t *testing.T) {
	t.Parallel()
	srv := newRawServer(t, serveEach(func(int, *http.Request) string {
		return "HTTP/1.1 204 No Content\r\n\r\n"
	}))
	c := srv.client(t, Options{MaxIdleConns: 1})
	body := make([]byte, 64<<10) // over the inline limit: written by a goroutine
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := c.Do(ctx, &Request{Method: "POST", RequestURI: "/", Body: body})
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != 204 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				cancel()
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("POST: %v", err)
	}
}
