package fetch

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// waiting is how many callers wait for key's call in flight, 0 if none is.
func (g *flights[T]) waiting(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[key]; f != nil {
		return f.waiters
	}
	return 0
}

// inFlight is how many keys have a call in flight.
func (g *flights[T]) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}

// flightGate is a channel the test closes to let the calls it holds
// answer; closed at cleanup too, so a failing test leaves no goroutine.
type flightGate struct {
	ch   chan struct{}
	once sync.Once
}

func newFlightGate(t *testing.T) *flightGate {
	g := &flightGate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *flightGate) open() { g.once.Do(func() { close(g.ch) }) }

// waitFlight waits until cond holds (it polls: cond reads state under the
// flights' mutex), failing the test after a generous while.
func waitFlight(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// recv receives from ch, failing the test if nothing comes for a long
// while (the thing under test did not return promptly, or at all).
func recv[V any](t *testing.T, what string, ch <-chan V) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

type flightOut struct {
	res    []byte
	joined bool
	err    error
}

// gatedBody is a call that counts its starts, notes its context, and
// answers body once gate opens (or ctx's end, if it is honoured).
type gatedBody struct {
	gate  *flightGate
	body  []byte
	calls atomic.Int32
	ctx   atomic.Pointer[context.Context]
}

func (c *gatedBody) fn(ctx context.Context) []byte {
	c.calls.Add(1)
	c.ctx.Store(&ctx)
	<-c.gate.ch
	return c.body
}

// callErr is the error of the context the call runs under.
func (c *gatedBody) callErr() error { return (*c.ctx.Load()).Err() }

// 50 concurrent identical calls: fn runs once, 49 join, and all 50 get the
// very same bytes (one backing array, not copies).
func TestFlightsShareOneCall(t *testing.T) {
	t.Parallel()
	var g flights[[]byte]
	c := &gatedBody{gate: newFlightGate(t), body: []byte(`{"id":1}`)}
	const n = 50
	outs := make([]flightOut, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var o flightOut
			o.res, o.joined, o.err = g.do(context.Background(), "GET /u/1", c.fn)
			outs[i] = o
		})
	}
	waitFlight(t, "50 waiters on one call", func() bool { return g.waiting("GET /u/1") == n && c.calls.Load() == 1 })
	c.gate.open()
	wg.Wait()

	if got := c.calls.Load(); got != 1 {
		t.Errorf("fn ran %d times for %d identical calls, want 1", got, n)
	}
	joined := 0
	for i, o := range outs {
		if o.err != nil {
			t.Errorf("waiter %d: err %v", i, o.err)
		}
		if o.joined {
			joined++
		}
		if unsafe.SliceData(o.res) != unsafe.SliceData(c.body) || len(o.res) != len(c.body) {
			t.Errorf("waiter %d got %p[:%d], want the call's own %p[:%d]", i, unsafe.SliceData(o.res), len(o.res), unsafe.SliceData(c.body), len(c.body))
		}
	}
	if joined != n-1 {
		t.Errorf("%d joined, want %d", joined, n-1)
	}
	if k := g.inFlight(); k != 0 {
		t.Errorf("%d keys still in flight after the call returned", k)
	}
}

// A waiter whose own context ends first (cancelled, or past its own
// deadline) returns at once with that error while the call carries on,
// not cancelled, for the others, who get its answer. The leaver may be the
// caller that started the call or one that joined it.
func TestFlightsWaiterLeavesAlone(t *testing.T) {
	t.Parallel()
	type leaver struct {
		ctx     context.Context
		cancel  context.CancelFunc
		trigger bool // the test cancels ctx; else its deadline ends it
	}
	for _, tc := range []struct {
		name   string
		first  bool // the leaver starts the call; else it joins
		stayer func() (context.Context, context.CancelFunc)
		leaver func() leaver
		want   error
	}{{
		name:   "cancelled joiner",
		stayer: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
		leaver: func() leaver {
			ctx, cancel := context.WithCancel(context.Background())
			return leaver{ctx, cancel, true}
		},
		want: context.Canceled,
	}, {
		name:   "cancelled starter",
		first:  true,
		stayer: func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
		leaver: func() leaver {
			ctx, cancel := context.WithCancel(context.Background())
			return leaver{ctx, cancel, true}
		},
		want: context.Canceled,
	}, {
		name: "short deadline joiner, long deadline stayers",
		stayer: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Hour)
		},
		leaver: func() leaver {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			return leaver{ctx, cancel, false}
		},
		want: context.DeadlineExceeded,
	}, {
		name:  "short deadline starter, long deadline stayers",
		first: true,
		stayer: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Hour)
		},
		leaver: func() leaver {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			return leaver{ctx, cancel, false}
		},
		want: context.DeadlineExceeded,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var g flights[[]byte]
			c := &gatedBody{gate: newFlightGate(t), body: []byte(`[1,2,3]`)}
			const key, stayers = "GET /x", 49
			l := tc.leaver()
			t.Cleanup(l.cancel)
			left := make(chan flightOut, 1)
			leave := func() {
				var o flightOut
				o.res, o.joined, o.err = g.do(l.ctx, key, c.fn)
				left <- o
			}
			var wg sync.WaitGroup
			if tc.first {
				wg.Go(leave)
				waitFlight(t, "the leaver's call to start", func() bool { return c.calls.Load() == 1 })
			}
			outs := make([]flightOut, stayers)
			for i := range stayers {
				ctx, cancel := tc.stayer()
				t.Cleanup(cancel)
				wg.Go(func() {
					var o flightOut
					o.res, o.joined, o.err = g.do(ctx, key, c.fn)
					outs[i] = o
				})
			}
			if !tc.first {
				waitFlight(t, "the stayers to wait", func() bool { return g.waiting(key) == stayers })
				wg.Go(leave)
			}
			if l.trigger {
				waitFlight(t, "the leaver to wait", func() bool { return g.waiting(key) == stayers+1 })
				l.cancel()
			}
			// The call is still held: the leaver must return all the same.
			o := recv(t, "the leaver to return", left)
			if !errors.Is(o.err, tc.want) || o.res != nil {
				t.Errorf("leaver got %q, %v; want nil, %v", o.res, o.err, tc.want)
			}
			waitFlight(t, "the stayers to wait", func() bool { return g.waiting(key) == stayers })
			if err := c.callErr(); err != nil {
				t.Errorf("the shared call's context ended with its waiters still there: %v", err)
			}
			c.gate.open()
			wg.Wait()
			if got := c.calls.Load(); got != 1 {
				t.Errorf("fn ran %d times, want 1", got)
			}
			for i, o := range outs {
				if o.err != nil || unsafe.SliceData(o.res) != unsafe.SliceData(c.body) {
					t.Errorf("stayer %d: %q, %v; want the shared answer", i, o.res, o.err)
				}
			}
		})
	}
}

// When every waiter has left, the shared call's context is cancelled (fn
// and the timeout fn derives from it see it end) and the key is forgotten
// at once: a newcomer starts a new call, even while the old fn has not
// returned yet.
func TestFlightsLastWaiterCancelsCall(t *testing.T) {
	t.Parallel()
	var g flights[string]
	const key, n = "GET /slow", 3
	var starts atomic.Int32
	observed := make(chan error, 1)    // what the first call's fn saw end
	hold := newFlightGate(t)           // the first fn returns only then
	second := newFlightGate(t)         // the second fn answers then
	returned := make(chan struct{}, 1) // the first fn has returned
	var firstCtx atomic.Pointer[context.Context]
	fn := func(ctx context.Context) string {
		if starts.Add(1) == 2 {
			<-second.ch
			return "second"
		}
		firstCtx.Store(&ctx)
		defer func() { returned <- struct{}{} }()
		tctx, cancel := context.WithTimeout(ctx, time.Hour) // the upstream's
		defer cancel()
		<-tctx.Done()
		observed <- context.Cause(tctx)
		<-hold.ch
		return "first"
	}

	cancels := make([]context.CancelFunc, n)
	outs := make(chan flightOut, n)
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		go func() {
			_, joined, err := g.do(ctx, key, fn)
			outs <- flightOut{joined: joined, err: err}
		}()
	}
	waitFlight(t, "3 waiters", func() bool { return g.waiting(key) == n && firstCtx.Load() != nil })
	for i, cancel := range cancels {
		cancel()
		if o := recv(t, "a leaver to return", outs); !errors.Is(o.err, context.Canceled) {
			t.Errorf("leaver %d: %v, want canceled", i, o.err)
		}
		if i < n-1 {
			waitFlight(t, "the leaver to be gone", func() bool { return g.waiting(key) == n-1-i })
			if err := (*firstCtx.Load()).Err(); err != nil {
				t.Fatalf("the shared call ended (%v) with %d waiters left", err, n-1-i)
			}
		}
	}
	// do returned to the last leaver only after forgetting the key.
	if k := g.inFlight(); k != 0 {
		t.Errorf("%d keys in flight once every waiter left, want 0", k)
	}
	if err := recv(t, "fn to see its context end", observed); !errors.Is(err, context.Canceled) {
		t.Errorf("fn's timeout context ended with %v, want canceled", err)
	}

	// The first fn has not returned: a newcomer must not join it.
	got := make(chan flightOut, 1)
	go func() {
		res, joined, err := g.do(context.Background(), key, fn)
		got <- flightOut{res: []byte(res), joined: joined, err: err}
	}()
	waitFlight(t, "the new call to start", func() bool { return starts.Load() == 2 })
	hold.open()
	recv(t, "the first fn to return", returned)
	second.open()
	o := recv(t, "the newcomer", got)
	if o.joined || o.err != nil || string(o.res) != "second" {
		t.Errorf("newcomer got %q, joined=%v, %v; want a call of its own", o.res, o.joined, o.err)
	}
}

// Calls for different keys do not share, even at the same time.
func TestFlightsDifferentKeys(t *testing.T) {
	t.Parallel()
	var g flights[string]
	gate := newFlightGate(t)
	var calls atomic.Int32
	outs := map[string]chan flightOut{"GET /a": make(chan flightOut, 1), "GET /b": make(chan flightOut, 1)}
	for key, out := range outs {
		go func() {
			res, joined, err := g.do(context.Background(), key, func(context.Context) string {
				calls.Add(1)
				<-gate.ch
				return key
			})
			out <- flightOut{res: []byte(res), joined: joined, err: err}
		}()
	}
	waitFlight(t, "two calls in flight", func() bool { return calls.Load() == 2 && g.inFlight() == 2 })
	gate.open()
	for key, out := range outs {
		if o := recv(t, key, out); o.joined || o.err != nil || string(o.res) != key {
			t.Errorf("%s: %q joined=%v %v", key, o.res, o.joined, o.err)
		}
	}
}

// Once a call has returned, the next one for its key starts afresh, and
// the context it ran under has ended and holds nothing more (the timeout fn
// derived from it unregistered itself).
func TestFlightsAfreshAfterCompletion(t *testing.T) {
	t.Parallel()
	var g flights[int]
	var calls atomic.Int32
	var last *callCtx
	fn := func(ctx context.Context) int {
		_, cancel := context.WithTimeout(ctx, time.Minute) // registers with ctx
		defer cancel()                                     // and unregisters
		last = ctx.(*callCtx)
		return int(calls.Add(1))
	}
	for want := 1; want <= 3; want++ {
		got, joined, err := g.do(context.Background(), "GET /n", fn)
		if got != want || joined || err != nil {
			t.Errorf("call %d: %d, joined=%v, %v; want a fresh call", want, got, joined, err)
		}
		if k := g.inFlight(); k != 0 {
			t.Errorf("%d keys in flight after the call returned", k)
		}
		last.mu.Lock()
		if !last.ended || len(last.afters) != 0 {
			t.Errorf("after the call: ended=%v with %d functions registered; want ended, none", last.ended, len(last.afters))
		}
		last.mu.Unlock()
	}
}

// A panic in fn does not crash the process: every waiter panics again with
// the very value, and the key is free for a fresh call afterwards. A
// runtime.Goexit in fn is a panic to the waiters, who have no result.
func TestFlightsPanicReachesWaiters(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		fn   func()
		want func(v any) bool
	}{
		{"panic", func() { panic(boom) }, func(v any) bool { return v == boom }},
		{"panic(nil)", func() { panic(nil) }, func(v any) bool { _, ok := v.(*runtime.PanicNilError); return ok }},
		{"Goexit", runtime.Goexit, func(v any) bool { return v == errFlightGoexit }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var g flights[[]byte]
			gate := newFlightGate(t)
			const key, n = "GET /p", 5
			fn := func(context.Context) []byte { <-gate.ch; tc.fn(); return nil }
			vals := make([]any, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					defer func() { vals[i] = recover() }()
					g.do(context.Background(), key, fn)
					vals[i] = "returned"
				})
			}
			waitFlight(t, "5 waiters", func() bool { return g.waiting(key) == n })
			gate.open()
			wg.Wait()
			for i, v := range vals {
				if !tc.want(v) || v != vals[0] {
					t.Errorf("waiter %d recovered %#v, want the same value as the others (%#v), of the call's panic", i, v, vals[0])
				}
			}
			res, joined, err := g.do(context.Background(), key, func(context.Context) []byte { return []byte("ok") })
			if string(res) != "ok" || joined || err != nil {
				t.Errorf("after the panic: %q joined=%v %v; want a fresh call", res, joined, err)
			}
		})
	}
}

// fn runs under the first caller's values but not its cancellation or
// deadline: no deadline at all (fn applies the upstream's), context.Cause
// does not see the caller's cause, and what fn derives from it ends with it.
func TestFlightsCallContext(t *testing.T) {
	t.Parallel()
	type traceKey struct{}
	var g flights[string]
	gate := newFlightGate(t)
	type seen struct {
		value      any
		deadline   bool
		err        error
		registered int // with ctx, by what fn derived from it
	}
	saw := make(chan seen, 1)
	ended := make(chan error, 3)
	fn := func(ctx context.Context) string {
		context.AfterFunc(ctx, func() { ended <- context.Cause(ctx) })
		child, cancel := context.WithCancel(ctx)
		defer cancel()
		_, cancel2 := context.WithTimeout(ctx, time.Hour)
		cancel2() // unregisters itself before the call ends
		c := ctx.(*callCtx)
		c.mu.Lock()
		registered := len(c.afters)
		c.mu.Unlock()
		_, has := ctx.Deadline()
		saw <- seen{ctx.Value(traceKey{}), has, ctx.Err(), registered}
		select {
		case <-child.Done():
			ended <- context.Cause(child)
			ended <- ctx.Err()
		case <-gate.ch:
		}
		return "done"
	}
	ctx, cancel := context.WithCancelCause(context.WithValue(context.Background(), traceKey{}, "trace-1"))
	ctx, cancelT := context.WithTimeout(ctx, time.Hour)
	defer cancelT()
	out := make(chan flightOut, 1)
	go func() {
		_, _, err := g.do(ctx, "GET /t", fn)
		out <- flightOut{err: err}
	}()
	if s := recv(t, "fn to start", saw); s.value != "trace-1" || s.deadline || s.err != nil || s.registered != 2 {
		t.Errorf("fn saw value %v, deadline %v, err %v, %d registered; want trace-1, none, nil, 2", s.value, s.deadline, s.err, s.registered)
	}
	cancel(errors.New("client went away"))
	if o := recv(t, "the waiter to leave", out); !errors.Is(o.err, context.Canceled) {
		t.Errorf("waiter: %v, want canceled", o.err)
	}
	for range 3 {
		if err := recv(t, "fn's contexts to end", ended); err != context.Canceled {
			t.Errorf("a context of fn ended with %v, want context.Canceled (not the caller's cause)", err)
		}
	}
}

// A caller whose context has already ended starts nothing.
func TestFlightsCallerGoneBeforehand(t *testing.T) {
	t.Parallel()
	var g flights[int]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if _, joined, err := g.do(ctx, "k", func(context.Context) int { ran = true; return 1 }); joined || !errors.Is(err, context.Canceled) {
		t.Errorf("joined=%v %v; want canceled", joined, err)
	}
	if ran || g.inFlight() != 0 {
		t.Errorf("fn ran=%v, %d keys in flight; want nothing started", ran, g.inFlight())
	}
}

// BenchmarkFlights: a call no one shares (what a shared call costs), and
// 8 goroutines calling one key (what joining costs, and the mutex).
func BenchmarkFlights(b *testing.B) {
	body := []byte(`{"id":1,"name":"ada"}`)
	answer := func(context.Context) []byte { return body }
	ctx := context.Background()
	b.Run("uncontended", func(b *testing.B) {
		var g flights[[]byte]
		b.ReportAllocs()
		for b.Loop() {
			if res, _, err := g.do(ctx, "GET /users/1", answer); err != nil || len(res) == 0 {
				b.Fatal(res, err)
			}
		}
	})
	b.Run("contended-8", func(b *testing.B) {
		var g flights[[]byte]
		slow := func(context.Context) []byte { runtime.Gosched(); return body }
		var left, joins atomic.Int64
		left.Store(int64(b.N))
		b.ReportAllocs()
		b.ResetTimer()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for left.Add(-1) >= 0 {
					res, joined, err := g.do(ctx, "GET /users/1", slow)
					if err != nil || len(res) == 0 {
						panic(err)
					}
					if joined {
						joins.Add(1)
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(joins.Load())/float64(b.N), "joined/op")
	})
}
