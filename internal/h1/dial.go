package h1

import (
	"context"
	"fmt"
)

// A call that finds the pool empty dials, but takes whichever connection
// comes first: its own dial's, another dial's, or one that a finishing call
// releases meanwhile (net/http's Transport does the same). Without this, a
// call that started a dial waits for that dial even while connections to
// the same upstream are being released all around it, and a dial can be
// slow for reasons that have nothing to do with the upstream's health: at a
// cold start on a CPU-starved machine the accepting process may take tens of
// milliseconds to answer a burst of SYNs, and the upstream's 300ms budget
// ran out in connect while dozens of its connections sat idle.
//
// Each dial runs in a goroutine the Client owns, under a context of its own
// bounded by DialTimeout. A dial whose caller was served otherwise goes on
// only while its connection could still be pooled (such spare dials plus
// the idle connections at most MaxIdleConns); beyond that, or when its
// caller's context ends first, or on CloseIdleConnections, it is cancelled.
// A finished dial hands its connection to the call that started it if that
// call still waits (so every waiting call keeps a dial of its own in
// flight), else to the longest waiting call, else pools it, else closes it. So no dial outlives DialTimeout, and their
// number never exceeds the number of calls that started one.
//
// With MaxConns, every dial and every connection it made holds one of
// MaxConns slots until the dial fails or the connection closes. A call
// that finds the slots taken starts no dial: it waits in the same queue,
// for a released connection or for a slot, which the connection or dial
// giving it back hands to the longest waiting call without a dial of its
// own (releaseSlot).

// want is a call waiting for a connection.
type want struct {
	ch   chan dialResult // buffered: a delivery never blocks
	dial *dialing        // the dial started for the call; nil while it waits at MaxConns
	q    [2]wantLink     // its places in c.waiters and c.needDial
}

// wantLink is a want's place in one wantQueue.
type wantLink struct {
	prev, next *want
	in         bool
}

// wantQueue is a FIFO of waiting calls, linked through the wants
// themselves (link k of each), so that taking the oldest and removing a
// call that gave up are O(1) however many calls wait: at MaxConns,
// thousands may.
type wantQueue struct {
	head, tail *want
	n          int
	k          int // which link of want this queue uses
}

func (q *wantQueue) push(w *want) {
	l := &w.q[q.k]
	l.prev, l.next, l.in = q.tail, nil, true
	if q.tail != nil {
		q.tail.q[q.k].next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
}

// remove takes w out of q and reports whether it was in it.
func (q *wantQueue) remove(w *want) bool {
	l := &w.q[q.k]
	if !l.in {
		return false
	}
	if l.prev != nil {
		l.prev.q[q.k].next = l.next
	} else {
		q.head = l.next
	}
	if l.next != nil {
		l.next.q[q.k].prev = l.prev
	} else {
		q.tail = l.prev
	}
	*l = wantLink{}
	q.n--
	return true
}

type dialResult struct {
	pc  *conn
	err error
}

// dialing is one dial in flight.
type dialing struct {
	cancel    context.CancelFunc
	owner     *want // the call that started it, nil once served or gone
	cancelled bool
}

// getConn returns a pooled connection that still looks usable, else the
// first connection that becomes available after it started a dial. With
// MaxConns reached it starts no dial: it waits for a connection to be
// released, or for one to close, which frees a slot for a dial of its own.
func (c *Client) getConn(ctx context.Context) (*conn, error) {
	var w *want
	for w == nil {
		for {
			pc := c.popIdle()
			if pc == nil {
				break
			}
			if pc.alive() {
				return pc, nil
			}
			pc.close()
		}
		if c.opts.MaxIdleConns < 0 && c.opts.MaxConns <= 0 {
			// No pool, so no connection is ever released to a waiting call.
			return c.dial(ctx)
		}
		c.mu.Lock()
		if c.opts.MaxConns > 0 && c.conns >= c.opts.MaxConns && len(c.idle) > 0 {
			// A connection was pooled since popIdle looked (putIdle pools
			// only while no call waits): take it. Waiting at the limit
			// instead, nothing would wake this call before its deadline.
			c.mu.Unlock()
			continue
		}
		w = &want{ch: make(chan dialResult, 1)}
		c.waiters.push(w)
		if c.opts.MaxConns <= 0 || c.conns < c.opts.MaxConns {
			c.startDialLocked(w)
		} else {
			c.needDial.push(w)
		}
		c.mu.Unlock()
	}

	select {
	case r := <-w.ch:
		if r.err != nil {
			return nil, r.err
		}
		c.mu.Lock()
		c.orphan(w.dial, false)
		c.mu.Unlock()
		if err := ctx.Err(); err != nil {
			// Both at once: the connection is good, the call is over.
			if !c.putIdle(r.pc) {
				r.pc.close()
			}
			return nil, fmt.Errorf("h1: dial: %w", err)
		}
		return r.pc, nil
	case <-ctx.Done():
		c.mu.Lock()
		waiting := c.removeWaiter(w)
		atLimit := w.dial == nil // it waited at MaxConns, without a dial
		c.orphan(w.dial, true)
		c.mu.Unlock()
		if !waiting {
			// A connection (or the dial's error) was delivered meanwhile.
			if r := <-w.ch; r.pc != nil {
				r.pc.reused = true // back to the pool, as in dialFor
				if !c.putIdle(r.pc) {
					r.pc.close()
				}
			}
		}
		if atLimit {
			return nil, fmt.Errorf("%w: %w", ErrConnLimit, ctx.Err())
		}
		return nil, fmt.Errorf("h1: dial: %w", ctx.Err())
	}
}

// startDialLocked starts a dial on behalf of w, which waits for it (or for
// any connection that comes first); with MaxConns the dial takes a slot,
// which its connection keeps. c.mu is held.
func (c *Client) startDialLocked(w *want) {
	dctx, cancel := context.WithTimeout(context.Background(), c.opts.DialTimeout)
	d := &dialing{cancel: cancel, owner: w}
	w.dial = d
	if c.dials == nil {
		c.dials = make(map[*dialing]struct{})
	}
	c.dials[d] = struct{}{}
	if c.opts.MaxConns > 0 {
		c.conns++
	}
	go c.dialFor(dctx, d)
}

// releaseSlot gives back the MaxConns slot of a connection that closed or
// of a dial that failed, and starts a dial with it for the longest waiting
// call that has none (calls waiting at the limit start no dial).
func (c *Client) releaseSlot() {
	c.mu.Lock()
	c.conns--
	if c.conns < c.opts.MaxConns {
		if w := c.needDial.head; w != nil {
			c.needDial.remove(w)
			c.startDialLocked(w)
		}
	}
	c.mu.Unlock()
}

// dialFresh dials a connection for a call that must not take a pooled one
// (Do's replay after a stale connection). At MaxConns it cannot dial: it
// then waits for a connection as any call does (getConn), which may be a
// pooled one that passed the liveness check.
func (c *Client) dialFresh(ctx context.Context) (*conn, error) {
	if c.opts.MaxConns <= 0 {
		return c.dial(ctx)
	}
	c.mu.Lock()
	if c.conns >= c.opts.MaxConns {
		c.mu.Unlock()
		return c.getConn(ctx)
	}
	c.conns++
	c.mu.Unlock()
	pc, err := c.dial(ctx)
	if err != nil {
		c.releaseSlot()
		return nil, err
	}
	pc.slot.Store(true)
	return pc, nil
}

// orphan detaches d from the call that started it. A dial still in flight
// goes on as a spare while its connection could be pooled, and is
// cancelled otherwise or when abandon says the call gave up waiting (the
// upstream is probably slow to accept: one more attempt helps nobody).
// d is nil for a call that waited at MaxConns and never got a dial.
// c.mu is held.
func (c *Client) orphan(d *dialing, abandon bool) {
	if d == nil || d.owner == nil {
		return
	}
	d.owner = nil
	if _, inFlight := c.dials[d]; !inFlight {
		return
	}
	if abandon || len(c.idle)+c.spare+1 > c.opts.MaxIdleConns {
		d.cancelled = true
		d.cancel()
		return
	}
	c.spare++
}

// dialFor runs dial d and delivers its outcome: a connection to the call
// that started it if it still waits, else to the longest waiting call, else
// to the pool, else closed; an error to the call that started the dial, if
// it still waits for it.
func (c *Client) dialFor(ctx context.Context, d *dialing) {
	pc, err := c.dial(ctx)
	d.cancel()
	c.mu.Lock()
	delete(c.dials, d)
	if d.owner == nil && !d.cancelled {
		c.spare--
	}
	if err != nil {
		var w *want
		if d.owner != nil && c.removeWaiter(d.owner) {
			w = d.owner
		}
		c.mu.Unlock()
		if c.opts.MaxConns > 0 {
			c.releaseSlot()
		}
		if w != nil {
			w.ch <- dialResult{err: err}
		}
		return
	}
	pc.slot.Store(c.opts.MaxConns > 0)
	// The call that started the dial first, while it waits: so every
	// waiting call keeps a dial of its own in flight.
	var w *want
	if d.owner != nil && c.removeWaiter(d.owner) {
		w = d.owner
	} else if c.waiters.n > 0 {
		w = c.popWaiter()
	}
	if w != nil {
		c.mu.Unlock()
		w.ch <- dialResult{pc: pc}
		return
	}
	c.mu.Unlock()
	pc.reused = true // pooled unused: the server may close it while idle, as any pooled one
	if !c.putIdle(pc) {
		pc.close()
	}
}

// popWaiter takes the longest waiting call; c.mu is held and there is one.
func (c *Client) popWaiter() *want {
	w := c.waiters.head
	c.waiters.remove(w)
	c.needDial.remove(w)
	return w
}

// removeWaiter takes w out of the queue and reports whether it was there
// (false: something was delivered to it already). c.mu is held.
func (c *Client) removeWaiter(w *want) bool {
	c.needDial.remove(w)
	return c.waiters.remove(w)
}

// cancelSpareDials cancels the dials no call waits for; c.mu is held.
func (c *Client) cancelSpareDials() {
	for d := range c.dials {
		if d.owner == nil && !d.cancelled {
			d.cancelled = true
			d.cancel()
			c.spare--
		}
	}
}

// dialCount reports the dials in flight (for tests).
func (c *Client) dialCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.dials)
}
