package fetch

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// flights coalesces identical calls in flight: one shared call per key.
// Its zero value is ready to use; it must not be copied after first use.
//
// Unlike golang.org/x/sync/singleflight, the shared call runs on a
// goroutine of its own, so every waiter, the first included, can leave
// when its own context ends while the call carries on for the others; the
// call's context is cancelled only once no waiter is left.
//
// The map holds only keys whose call is in flight (its buckets, like any
// Go map's, stay sized for the peak number of keys in flight at once).
type flights[T any] struct {
	mu sync.Mutex
	m  map[string]*flight[T] // guarded by mu
}

// flight is one shared call. Its call field is the context the call runs
// under, so a shared call allocates the flight, the channel and the call's
// goroutine, plus the boxing of context.WithoutCancel: no cancelCtx, no
// cancel func, no second channel.
type flight[T any] struct {
	call callCtx

	// waiters is how many callers wait for the call and have not left;
	// guarded by flights.mu.
	waiters int

	// Written by the call's goroutine before call.done is closed, read by
	// waiters after: the channel orders them.
	res      T
	panicked bool // fn panicked (or called runtime.Goexit): re-panic with pv
	pv       any
}

// errFlightGoexit is what waiters panic with when fn called
// runtime.Goexit instead of returning: there is no result to give them.
var errFlightGoexit = errors.New("fetch: coalesced call exited without returning (runtime.Goexit)")

// do returns the result of fn for key. The first caller for a key starts fn
// in a new goroutine with a context derived from context.WithoutCancel(ctx)
// (so values such as trace data flow) that is cancelled when the last
// waiter has gone; later callers with the same key while it runs join it
// (joined=true). Each waiter waits on its own ctx: when its ctx ends first
// it returns at once with err = ctx.Err() and leaves; the shared call
// carries on for the others, and is cancelled only when no waiter is left.
// fn applies its own timeout (the upstream's); do adds none. When fn
// returns, the key is forgotten before waiters are woken, so a later call
// starts afresh; a flight that was cancelled because every waiter left is
// forgotten at once, so a newcomer never joins a cancelled call. Every
// waiter gets the same T (no copies: T will hold a []byte that waiters only
// read).
//
// A panic in fn is recovered on the call's goroutine and raised again, with
// the same value, in every waiter that receives the result, so each
// request's own recoverer answers it. A joiner allocates nothing.
func (g *flights[T]) do(ctx context.Context, key string, fn func(ctx context.Context) T) (res T, joined bool, err error) {
	if err := ctx.Err(); err != nil {
		return res, false, err // gone already: start nothing, join nothing
	}
	g.mu.Lock()
	f, joined := g.m[key]
	if !joined {
		if g.m == nil {
			g.m = make(map[string]*flight[T])
		}
		f = &flight[T]{call: callCtx{
			values: context.WithoutCancel(ctx),
			done:   make(chan struct{}),
		}}
		g.m[key] = f
		go g.run(f, key, fn)
	}
	f.waiters++
	g.mu.Unlock()

	select {
	case <-f.call.done:
		// Closed either when fn has returned or when every waiter has
		// left; this waiter had not, so fn has returned.
		if f.panicked {
			panic(f.pv)
		}
		return f.res, joined, nil
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		last := f.waiters == 0
		if last && g.m[key] == f {
			delete(g.m, key)
		}
		g.mu.Unlock()
		if last {
			// A no-op if fn has returned meanwhile. The shared try ends
			// for the last waiter's reason: its deadline, if that is why
			// it left, so that the try counts as a timeout for the breaker
			// and outlier ejection (a cancellation counts for neither).
			f.call.endWith(ctx.Err())
		}
		return res, joined, ctx.Err()
	}
}

// run calls fn for f on the flight's own goroutine, then forgets key and
// wakes the waiters, in that order.
func (g *flights[T]) run(f *flight[T], key string, fn func(ctx context.Context) T) {
	returned := false
	defer func() {
		if !returned {
			// A panic (recover gives its value; panic(nil) arrives as a
			// *runtime.PanicNilError) or runtime.Goexit (recover gives
			// nil, and the goroutine goes on exiting after this).
			f.panicked = true
			if f.pv = recover(); f.pv == nil {
				f.pv = errFlightGoexit
			}
		}
		g.mu.Lock()
		if g.m[key] == f { // not if every waiter left and a new call took the key
			delete(g.m, key)
		}
		g.mu.Unlock()
		f.call.end()
	}()
	f.res = fn(&f.call)
	returned = true
}

// callCtx is the context a shared call runs under: the first caller's
// values (through context.WithoutCancel, which also keeps context.Cause
// from finding the caller's cancellation), no deadline, and a Done channel
// closed once, when the last waiter has gone or fn has returned, whichever
// comes first. Err is then context.Canceled, or context.DeadlineExceeded
// when the last waiter left at its deadline (see Err).
//
// It implements the AfterFunc method that package context looks for, so a
// context derived from it (fn's own timeout) is cancelled with it directly,
// without the watcher goroutine context would start for a foreign parent.
type callCtx struct {
	values context.Context
	done   chan struct{}

	mu     sync.Mutex
	err    error        // guarded by mu; what Err says once ended
	ended  bool         // guarded by mu; done is closed
	afters []*afterFunc // guarded by mu; registered by AfterFunc, run by end
}

// afterFunc is one AfterFunc registration; its address is its identity.
type afterFunc struct{ f func() }

var _ context.Context = (*callCtx)(nil)

func (c *callCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *callCtx) Done() <-chan struct{}       { return c.done }
func (c *callCtx) Value(key any) any           { return c.values.Value(key) }
func (c *callCtx) String() string              { return "fetch.flight" }

// Err is context.Canceled once the flight ended because fn returned or its
// last waiter was cancelled, and context.DeadlineExceeded when that waiter
// left at its deadline: the flight has no deadline of its own, but it ends
// because one passed, and the try under it failed for that reason.
func (c *callCtx) Err() error {
	select {
	case <-c.done:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err
	default:
		return nil
	}
}

// AfterFunc arranges for f to be called once c is done, or at once if it
// is, and returns a stop function that cancels the arrangement (true if it
// did, false if f has been or is being called, or was stopped before).
// Package context uses it to cancel the contexts derived from c; f is
// called on the goroutine that ends c, as a cancelCtx cancels its
// children (context.AfterFunc itself starts the caller's function on a
// goroutine of its own), or on a new goroutine if c has already ended.
func (c *callCtx) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		// Not on this goroutine: context calls AfterFunc holding the
		// child's lock, which f takes.
		go f()
		return func() bool { return false }
	}
	c.afters = append(c.afters, a)
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.afters, a)
		if i < 0 {
			return false // ended (so f has run or is running) or stopped
		}
		c.afters = slices.Delete(c.afters, i, i+1)
		return true
	}
}

// end closes done, once, and runs the registered functions outside the
// lock (they may call their own stop).
func (c *callCtx) end() { c.endWith(context.Canceled) }

// endWith is end with the reason Err reports: context.DeadlineExceeded if
// err is that, else context.Canceled.
func (c *callCtx) endWith(err error) {
	if !errors.Is(err, context.DeadlineExceeded) {
		err = context.Canceled
	} else {
		err = context.DeadlineExceeded
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	c.err = err
	close(c.done)
	afters := c.afters
	c.afters = nil
	c.mu.Unlock()
	for _, a := range afters {
		a.f()
	}
}
