package handlers

import (
	"errors"
	"fmt"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// A call's span and its sample of manifold_backend_requests_total name its
// outcome with the same word, for every class of failure.
func TestSpanOutcomeIsTheMetricsOutcome(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		nil,
		fmt.Errorf("%w: dial", fetch.ErrTimeout),
		fetch.ErrCanceled,
		fmt.Errorf("%w: reset", fetch.ErrConnect),
		fetch.ErrTooLarge,
		fetch.ErrNotJSON,
		fetch.ErrReshape,
		fetch.ErrCircuitOpen,
		fetch.ErrRejected,
		fetch.ErrNoHealthyInstance,
		&fetch.DependencyError{Name: "order"},
		&fetch.ReferenceError{Ref: "{order.id}"},
		fetch.ErrTooManyItems,
		&fetch.StatusError{Code: 503},
		errors.New("something else"),
	} {
		want := outcome(err)
		if notCalled(err) {
			want = "skipped"
		}
		if got := fetch.Outcome(err); got != want {
			t.Errorf("%v: span outcome %q, metrics outcome %q", err, got, want)
		}
	}
}
