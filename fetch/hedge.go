package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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

// hedgeTry is one try of a hedged call, tagged with which it was.
type hedgeTry struct {
	tryOut
	hedge bool
}

// wins reports whether a try's outcome ends the race: an answer, that is
// anything but a failure that would be retried (a connect error, a timeout,
// a 5xx).
func (b *Backend) wins(out tryOut) bool {
	return out.err == nil || !retryable(b.Config.Method, out.err)
}

// hedged makes one try and, when it has not ended after hedge.after and
// the budget allows, a second one to another instance. The first answer
// wins and the other try is cancelled (its connection is closed); when
// both fail, the first failure is the outcome.
func (b *Backend) hedged(ctx context.Context, o *outbound, avoid *instance) tryOut {
	h := b.hedge
	u := b.Upstream
	first, err := u.pick(avoid)
	if err != nil {
		return tryOut{err: err}
	}
	h.credit()
	done := make(chan hedgeTry, 2)
	ctxA, cancelA := context.WithCancelCause(ctx)
	defer cancelA(nil)
	go func() { done <- hedgeTry{tryOut: b.fetchOn(ctxA, o, first)} }()

	timer := time.NewTimer(h.after)
	select {
	case r := <-done:
		timer.Stop()
		return r.tryOut
	case <-ctx.Done():
		timer.Stop()
		return (<-done).tryOut // it ends with ctx
	case <-timer.C:
	}
	if !h.spend() {
		return (<-done).tryOut
	}
	second, err := u.pick(first)
	if err != nil {
		return (<-done).tryOut
	}
	ctxB, cancelB := context.WithCancelCause(ctx)
	defer cancelB(nil)
	go func() { done <- hedgeTry{tryOut: b.fetchOn(ctxB, o, second), hedge: true} }()

	var failed *hedgeTry
	for pending := 2; pending > 0; pending-- {
		r := <-done
		if r.hedge && unsent(r.err) {
			// Never sent: the first try decides alone, and no hedge is counted.
			if failed == nil {
				return (<-done).tryOut
			}
			return failed.tryOut
		}
		if !b.wins(r.tryOut) {
			if failed == nil {
				failed = &r
			}
			continue
		}
		if pending == 2 {
			// Cancel the other and wait for it: its goroutine ends here.
			if r.hedge {
				cancelA(errHedgeLost)
			} else {
				cancelB(errHedgeLost)
			}
			<-done
		}
		if r.hedge {
			call(u.hooks.HedgeWon)
		} else {
			call(u.hooks.HedgeLost)
		}
		return r.tryOut
	}
	call(u.hooks.HedgeLost)
	return failed.tryOut
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
