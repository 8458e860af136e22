package h1

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMaxConnsStress: random cancellations, server closes, over-long
// bodies, CloseIdleConnections and Close while calls wait; afterwards no
// slot is held, no dial runs, no call waits, and the slot count never went
// above MaxConns.
func TestMaxConnsStress(t *testing.T) {
	for _, idle := range []int{-1, 1, 0} {
		t.Run(fmt.Sprint("idle", idle), func(t *testing.T) {
			var open, maxOpen atomic.Int32
			s := newRawServer(t, func(rc *rawConn) {
				n := open.Add(1)
				defer open.Add(-1)
				for m := maxOpen.Load(); n > m && !maxOpen.CompareAndSwap(m, n); m = maxOpen.Load() {
				}
				for {
					req, _, err := rc.readRequest()
					if err != nil {
						return
					}
					switch req.URL.Path {
					case "/close":
						rc.write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
						return
					case "/drop":
						return
					case "/tail":
						rc.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
					case "/slow":
						time.Sleep(time.Millisecond)
						rc.write(okResponse)
					default:
						rc.write(okResponse)
					}
				}
			})
			const max = 3
			c := s.client(t, Options{MaxConns: max, MaxIdleConns: idle, DialTimeout: time.Second})
			var overLimit atomic.Bool
			stopMon := make(chan struct{})
			var mon sync.WaitGroup
			mon.Go(func() {
				for {
					select {
					case <-stopMon:
						return
					default:
					}
					if c.slots() > max {
						overLimit.Store(true)
					}
					time.Sleep(time.Millisecond)
				}
			})
			paths := []string{"/", "/", "/", "/close", "/drop", "/tail", "/slow"}
			var wg sync.WaitGroup
			end := time.Now().Add(time.Second)
			for g := range 12 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 7))
					for time.Now().Before(end) {
						d := time.Duration(r.IntN(3000)) * time.Microsecond
						ctx, cancel := context.WithTimeout(context.Background(), d+100*time.Microsecond)
						resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: paths[r.IntN(len(paths))]})
						if err == nil {
							if r.IntN(4) == 0 {
								resp.Body.Close()
							} else {
								io.Copy(io.Discard, resp.Body)
								resp.Body.Close()
							}
						}
						cancel()
						if r.IntN(200) == 0 {
							c.CloseIdleConnections()
						}
					}
				})
			}
			wg.Wait()
			close(stopMon)
			mon.Wait()
			c.Close()
			waitFor(t, func() bool { return c.dialCount() == 0 })
			c.CloseIdleConnections()
			c.mu.Lock()
			conns, waiters, nd, spare, idleN := c.conns, c.waiters.n, c.needDial.n, c.spare, len(c.idle)
			c.mu.Unlock()
			if conns != 0 || waiters != 0 || nd != 0 || spare != 0 || idleN != 0 {
				t.Errorf("after all calls: slots %d waiters %d needDial %d spare %d idle %d", conns, waiters, nd, spare, idleN)
			}
			if overLimit.Load() {
				t.Errorf("slot count went above MaxConns")
			}
			t.Logf("accepted %d, server max open %d", s.accepted.Load(), maxOpen.Load())
		})
	}
}

// TestMaxConnsStressTLS: the same over TLS, where deadlines also cut dials
// and handshakes: the slots never exceed MaxConns, and none is held after.
func TestMaxConnsStressTLS(t *testing.T) {
	s := newTLSServer(t, func(tc *tlsConn) {
		for {
			req, err := tc.readRequest()
			if err != nil {
				return
			}
			if req.URL.Path == "/close" {
				tc.write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
				return
			}
			if tc.write(okResponse) != nil {
				return
			}
		}
	})
	const max = 2
	c := s.client(t, Options{MaxConns: max, TLS: clientTLS(t, 0), DialTimeout: time.Second})
	paths := []string{"/", "/", "/close"}
	var wg sync.WaitGroup
	end := time.Now().Add(time.Second)
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for time.Now().Before(end) {
				d := time.Duration(r.IntN(20000)) * time.Microsecond
				ctx, cancel := context.WithTimeout(context.Background(), d+200*time.Microsecond)
				resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: paths[r.IntN(len(paths))]})
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				cancel()
				if c.slots() > max {
					t.Errorf("slots %d > %d", c.slots(), max)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, func() bool { return c.dialCount() == 0 })
	c.CloseIdleConnections()
	c.mu.Lock()
	conns, waiters, nd, spare := c.conns, c.waiters.n, c.needDial.n, c.spare
	c.mu.Unlock()
	if conns != 0 || waiters != 0 || nd != 0 || spare != 0 {
		t.Errorf("after all calls: slots %d waiters %d needDial %d spare %d", conns, waiters, nd, spare)
	}
	// The pool still works at the limit.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, &Request{Method: "GET", RequestURI: "/"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	t.Logf("accepted %d", s.accepted.Load())
}
