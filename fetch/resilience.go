package fetch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/manifold-gw/manifold/config"
)

// Why a timeout happened, recorded as the call context's cause and kept in
// the error for the log. Both count for the circuit breaker (SPEC §4.6
// excludes only 4xx answers and client cancellations): an upstream that
// hangs past an endpoint deadline shorter than its own timeout is as
// unhealthy as one that hangs past its own.
var (
	errOwnTimeout      = errors.New("upstream timeout elapsed")
	errEndpointClipped = errors.New("endpoint deadline left less than the upstream timeout")
	// errNoTimeLeft: the endpoint's deadline had (all but) passed before
	// the call could be sent, so the upstream was never asked.
	errNoTimeLeft = errors.New("no time left before the endpoint deadline to make the call")
)

// errNotCounted marks outcomes the circuit breaker must ignore: the client
// left, or the call was never sent.
var errNotCounted = errors.New("not counted by the circuit breaker")

// BreakerState is an upstream circuit breaker's state, numbered as the
// manifold_circuit_state metric reports it.
type BreakerState int

// The breaker states.
const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

// String names the state.
func (s BreakerState) String() string {
	switch s {
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "closed"
}

func fromGobreaker(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// newBreaker builds the upstream's breaker from its configuration, or nil
// when disabled. State changes are logged at warn and passed to onChange.
func (u *Upstream) newBreaker(cb config.CircuitBreaker) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	if !cb.Enabled {
		return nil
	}
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        u.Name,
		MaxRequests: cb.HalfOpenRequests,
		Interval:    cb.Interval,
		Timeout:     cb.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			if c.ConsecutiveFailures >= cb.ConsecutiveFailures {
				return true
			}
			done := c.TotalSuccesses + c.TotalFailures
			return cb.FailureRatio > 0 && done >= cb.MinRequests && float64(c.TotalFailures)/float64(done) >= cb.FailureRatio
		},
		IsExcluded: func(err error) bool { return errors.Is(err, errNotCounted) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			u.logger.Warn("circuit breaker state changed", "from", from.String(), "to", to.String())
			if u.onStateChange != nil && !u.closed.Load() {
				u.onStateChange(name, fromGobreaker(to))
			}
		},
	})
}

// BreakerState reports the upstream breaker's current state (closed when
// the breaker is disabled).
func (u *Upstream) BreakerState() BreakerState {
	if u.breaker == nil {
		return BreakerClosed
	}
	return fromGobreaker(u.breaker.State())
}

// breakerVerdict turns a call's outcome into what the breaker should
// count: nil (success) for answers that prove the upstream healthy, 4xx and
// 3xx included; errNotCounted for client cancellations and calls never
// sent; the error itself (a failure) otherwise, every timeout included,
// whichever deadline (the upstream's or the endpoint's) cut it.
func breakerVerdict(err error) error {
	if err == nil {
		return nil
	}
	if code, ok := statusOf(err); ok {
		if code >= 500 {
			return err
		}
		return nil
	}
	switch {
	case errors.Is(err, ErrCanceled), errors.Is(err, errNoTimeLeft), errors.Is(err, errConnLimit):
		return errNotCounted
	case errors.Is(err, ErrReshape):
		return nil // the upstream answered; the shape is a contract matter
	}
	return err
}

// admit passes a try to instance in through the bulkhead and the breaker.
// On success the caller must call t.done exactly once with the try's
// outcome; it releases the bulkhead slot and the instance's in-flight
// count and reports to the breaker and the instance's outlier state.
func (u *Upstream) admit(in *instance) (t ticket, err error) {
	if u.slots != nil {
		select {
		case u.slots <- struct{}{}:
		default:
			return t, fmt.Errorf("%w: %d calls in flight", ErrRejected, cap(u.slots))
		}
		t.slot = true
	}
	t.u = u
	if u.breaker != nil {
		done, err := u.breaker.Allow()
		if err != nil {
			if t.slot {
				<-u.slots
			}
			return ticket{}, fmt.Errorf("%w: %w", ErrCircuitOpen, err)
		}
		t.breaker = done
	}
	t.in = in
	if !u.single {
		in.inflight.Add(1)
	}
	return t, nil
}

// statusOf returns the status of an answer err stands for (a
// *StatusError in its tree). errors.AsType returns the target instead of
// writing through a pointer, so unlike errors.As with a local target
// nothing moves to the heap: it runs on every try's outcome.
func statusOf(err error) (code int, ok bool) {
	se, ok := errors.AsType[*StatusError](err)
	if !ok {
		return 0, false
	}
	return se.Code, true
}

// retryable reports whether a failed try may be repeated: only GET and HEAD,
// and only on connect errors, timeouts and 5xx answers.
func retryable(method string, err error) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	if code, ok := statusOf(err); ok {
		return code >= 500
	}
	switch {
	case errors.Is(err, ErrCanceled), errors.Is(err, ErrCircuitOpen), errors.Is(err, ErrRejected):
		return false
	}
	return errors.Is(err, ErrConnect) || errors.Is(err, ErrTimeout)
}

// retryDelay is the wait before retry number try (0-based): jittered
// exponential backoff. ok is false when the retry may not start at all: a
// retry starts only if the upstream's whole timeout still fits before ctx's
// deadline after the wait, so no try is started that could not finish.
func (u *Upstream) retryDelay(ctx context.Context, try int) (d time.Duration, ok bool) {
	base := u.cfg.Retry.Backoff << min(try, 10)
	d = base/2 + rand.N(base/2+1)
	if dl, has := ctx.Deadline(); has && time.Until(dl)-d-headroomMax < u.cfg.Timeout {
		return 0, false
	}
	return d, ctx.Err() == nil
}

// backoff waits before retry number try and reports whether the retry may
// start (see retryDelay); it gives up at once if ctx ends.
func (u *Upstream) backoff(ctx context.Context, try int) bool {
	d, ok := u.retryDelay(ctx, try)
	return ok && sleep(ctx, d)
}

// sleep waits d unless ctx ends first; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
