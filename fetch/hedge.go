package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// errHedgeLost is the cause given to the try that lost a hedge race: it
// is cancelled, its connection closed, and its outcome counted by neither
// the breaker nor outlier ejection (it reads as ErrCanceled).
var errHedgeLost = errors.New("the other try of a hedged call answered first")

// hedgeUnit is one hedge in the budget's fixed-point tokens.
const hedgeUnit = 1_000_000

// hedgeBank is how many hedges the budget can save up.
const hedgeBank = 10

// hedging is a backend's compiled hedge: the delay and the budget. The
// budget is a token bucket that only ordinary tries refill, each by
// max_percent/100 of a hedge, and a hedge spends one whole token, so the
// hedges never exceed max_percent of the backend's ordinary tries (plus
// nothing: it starts empty).
type hedging struct {
	after  time.Duration
	earn   int64 // tokens per ordinary try
	tokens atomic.Int64
}

func newHedging(h *config.Hedge) *hedging {
	if h == nil {
		return nil
	}
	return &hedging{after: h.After, earn: int64(h.MaxPercent / 100 * hedgeUnit)}
}

// credit adds one ordinary try's share to the budget, up to the bank.
func (h *hedging) credit() {
	for {
		cur := h.tokens.Load()
		next := min(cur+h.earn, hedgeBank*hedgeUnit)
		if next == cur || h.tokens.CompareAndSwap(cur, next) {
			return
		}
	}
}

// spend takes one hedge from the budget, reporting whether there was one.
func (h *hedging) spend() bool {
	for {
		cur := h.tokens.Load()
		if cur < hedgeUnit {
			return false
		}
		if h.tokens.CompareAndSwap(cur, cur-hedgeUnit) {
			return true
		}
	}
}

// wins reports whether a try's outcome ends the race: an answer, that is
// anything but a failure that would be retried (a connect error, a timeout,
// a 5xx).
func (b *Backend) wins(out tryOut) bool {
	return out.err == nil || !retryable(b.Config.Method, out.err)
}

// hedgeRace is the state one hedged call shares between its first try (on
// the caller's goroutine) and the hedge (sent from the timer, on a
// goroutine of its own).
type hedgeRace struct {
	mu      sync.Mutex
	over    bool        // the first try has ended: no hedge may start now
	started bool        // the hedge was sent; its outcome comes on done
	done    chan tryOut // buffered: the hedge's goroutine never waits
	cancelB context.CancelCauseFunc

	// winner is who answered first (0 none yet, 1 the first try, 2 the
	// hedge), firstFail who failed first; both set once, by CAS.
	winner, firstFail atomic.Int32
}

// hedged makes one try and, when it has not ended after hedge.after and
// the budget allows, a second one to another instance. The first answer
// wins and the other try is cancelled (its connection is closed); when
// both fail, the first failure is the outcome. The first try runs on the
// caller's goroutine and the hedge is started by a timer, so a call that
// answers in time costs a timer and no goroutine.
func (b *Backend) hedged(ctx context.Context, o *outbound, avoid *instance) tryOut {
	h := b.hedge
	u := b.Upstream
	first, err := u.pick(avoid)
	if err != nil {
		return tryOut{err: err}
	}
	h.credit()
	ctxA, cancelA := context.WithCancelCause(ctx)
	defer cancelA(nil)
	r := &hedgeRace{}
	timer := time.AfterFunc(h.after, func() { b.startHedge(ctx, o, first, r, cancelA) })

	outA := b.fetchOn(ctxA, o, first)
	r.mu.Lock()
	r.over = true
	started := r.started
	r.mu.Unlock()
	timer.Stop()
	if !started {
		return outA
	}
	defer r.cancelB(nil)
	if b.wins(outA) && r.winner.CompareAndSwap(0, 1) {
		r.cancelB(errHedgeLost)
		// It ends with its context: nothing outlives the call.
		if outB := <-r.done; !unsent(outB.err) {
			call(u.hooks.HedgeLost)
		}
		return outA
	}
	if !b.wins(outA) {
		r.firstFail.CompareAndSwap(0, 1)
	}
	outB := <-r.done
	if unsent(outB.err) {
		return outA // never sent: the first try decided alone, no hedge counted
	}
	if r.winner.Load() == 2 {
		call(u.hooks.HedgeWon)
		return outB
	}
	call(u.hooks.HedgeLost)
	if r.firstFail.Load() == 2 {
		return outB
	}
	return outA
}

// startHedge sends the hedge of r's call, unless the first try has ended
// or the budget is spent. It runs on the timer's goroutine.
func (b *Backend) startHedge(ctx context.Context, o *outbound, first *instance, r *hedgeRace, cancelA context.CancelCauseFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over || !b.hedge.spend() {
		return
	}
	second, err := b.Upstream.pick(first)
	if err != nil {
		return
	}
	ctxB, cancelB := context.WithCancelCause(ctx)
	r.started, r.cancelB, r.done = true, cancelB, make(chan tryOut, 1)
	go func() {
		out := b.fetchOn(ctxB, o, second)
		switch {
		case unsent(out.err):
			// Refused by the bulkhead or the breaker: it must not end the
			// race, which would cancel a first try that may still answer.
		case !b.wins(out):
			r.firstFail.CompareAndSwap(0, 2)
		case r.winner.CompareAndSwap(0, 2):
			cancelA(errHedgeLost) // the first try gives up at once
		}
		r.done <- out
	}()
}

// unsent reports whether a try failed without being sent: the bulkhead
// was full or the breaker open. A hedge refused so must not end the race,
// which would cancel a first try that may still answer.
func unsent(err error) bool {
	return errors.Is(err, ErrRejected) || errors.Is(err, ErrCircuitOpen)
}

func call(f func()) {
	if f != nil {
		f()
	}
}

// sent is one try of a relayed call whose answer head has arrived (or
// failed): the body is open until the caller closes it and calls t.done.
type sent struct {
	resp    *http.Response
	callCtx context.Context
	t       ticket
	err     error
	hedge   bool
}

// answered reports whether a relayed try ends the race: an answer below
// 500, or a failure that would not be retried.
func (b *Backend) answered(s sent) bool {
	if s.err != nil {
		return !retryable(b.Config.Method, s.err)
	}
	return s.resp.StatusCode < 500
}

// discard closes a try that is not relayed and settles its ticket: lost
// (the other answered) is not counted; otherwise its 5xx is. A try that
// failed before its answer was settled by send.
func (s sent) discard(lost bool) {
	if s.err != nil {
		return
	}
	s.resp.Body.Close()
	if lost {
		s.t.done(fmt.Errorf("%w: %w", ErrCanceled, errHedgeLost))
	} else {
		s.t.done(&StatusError{Code: s.resp.StatusCode})
	}
}

// attemptHedged is attempt with hedging, for a relayed call: the race is
// to the answer's head, and the winner's body stays open for streaming
// (its context ends when release is called: the caller's Close). When both
// tries fail, the first failure is returned (a 5xx answer is relayed as the
// plain attempt would, retries aside).
func (b *Backend) attemptHedged(ctx context.Context, o *outbound, avoid *instance) (s sent, release context.CancelFunc) {
	h := b.hedge
	u := b.Upstream
	first, err := u.pick(avoid)
	if err != nil {
		return sent{err: err}, func() {}
	}
	h.credit()
	done := make(chan sent, 2)
	ctxA, cancelA := context.WithCancelCause(ctx)
	try := func(ctx context.Context, in *instance, hedge bool) {
		resp, callCtx, t, err := b.send(ctx, o, in)
		t.in = in
		done <- sent{resp: resp, callCtx: callCtx, t: t, err: err, hedge: hedge}
	}
	go try(ctxA, first, false)
	releaseA := func() { cancelA(nil) }

	timer := time.NewTimer(h.after)
	select {
	case r := <-done:
		timer.Stop()
		return r, releaseA
	case <-ctx.Done():
		timer.Stop()
		return <-done, releaseA
	case <-timer.C:
	}
	if !h.spend() {
		return <-done, releaseA
	}
	second, err := u.pick(first)
	if err != nil {
		return <-done, releaseA
	}
	ctxB, cancelB := context.WithCancelCause(ctx)
	go try(ctxB, second, true)
	releaseB := func() { cancelB(nil) }

	var failed *sent
	for pending := 2; pending > 0; pending-- {
		r := <-done
		if r.hedge && unsent(r.err) {
			// Never sent (settled by send): the first try decides alone.
			cancelB(nil)
			if failed == nil {
				return <-done, releaseA
			}
			return *failed, releaseA
		}
		if !b.answered(r) {
			if failed == nil {
				failed = &r
			} else {
				r.discard(false)
			}
			continue
		}
		if failed != nil {
			failed.discard(false)
		}
		if pending == 2 {
			if r.hedge {
				cancelA(errHedgeLost)
			} else {
				cancelB(errHedgeLost)
			}
			(<-done).discard(true)
		}
		if r.hedge {
			call(u.hooks.HedgeWon)
			cancelA(errHedgeLost)
			return r, releaseB
		}
		call(u.hooks.HedgeLost)
		cancelB(errHedgeLost)
		return r, releaseA
	}
	call(u.hooks.HedgeLost)
	if failed.hedge {
		cancelA(nil)
		return *failed, releaseB
	}
	cancelB(nil)
	return *failed, releaseA
}
