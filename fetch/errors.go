package fetch

import (
	"errors"
	"fmt"
	"net/http"
)

// The classes of backend failure. Every failed Result's Err matches exactly
// one of them with errors.Is (or is a *StatusError), so callers map failures
// to statuses and reasons without reading error text.
var (
	// ErrTimeout: the call's deadline (the upstream's timeout or what was
	// left of the endpoint's) passed before a complete answer arrived.
	ErrTimeout = errors.New("upstream timed out")
	// ErrCanceled: the client went away, so the call was abandoned. It says
	// nothing about the upstream's health.
	ErrCanceled = errors.New("request canceled")
	// ErrConnect: the upstream could not be reached or the exchange broke
	// (dial, TLS, reset, malformed response).
	ErrConnect = errors.New("upstream unreachable")
	// ErrTooLarge: the answer's decoded body exceeded max_response_bytes.
	ErrTooLarge = errors.New("upstream response too large")
	// ErrNotJSON: a merged backend answered something that is not JSON.
	ErrNotJSON = errors.New("upstream response is not JSON")
	// ErrReshape: the answer could not be reshaped (e.g. target missing).
	ErrReshape = errors.New("upstream response has an unexpected shape")
	// ErrCircuitOpen: the upstream's circuit breaker refused the call.
	ErrCircuitOpen = errors.New("circuit breaker open")
	// ErrRejected: the upstream's max_concurrent calls were already in
	// flight, so the call was refused at once.
	ErrRejected = errors.New("upstream concurrency limit reached")
	// ErrSkipped: a dependency of the backend failed, so it was never
	// called. The error is a *DependencyError naming the dependency.
	ErrSkipped = errors.New("dependency failed")
	// ErrReference: a {NAME.path} reference could not be filled from the
	// dependency's answer (missing, not a scalar, or unfit for a header).
	// The error is a *ReferenceError naming the reference.
	ErrReference = errors.New("reference cannot be filled")
	// errConnLimit marks a try that timed out waiting for a connection at
	// the instance's max_connections (lean client): a timeout for the
	// caller, counted by neither the breaker nor outlier ejection.
	errConnLimit = errors.New("no connection free within max_connections")

	// ErrTooManyItems: a foreach array had more elements than max_items.
	ErrTooManyItems = errors.New("too many foreach items")
)

// DependencyError is the failure of a backend that was not called because
// the backend it depends on failed.
type DependencyError struct {
	// Name is the dependency's name, as written in the config.
	Name string
}

// Error names the dependency.
func (e *DependencyError) Error() string { return "dependency " + e.Name + " failed" }

// Is makes a DependencyError match ErrSkipped.
func (e *DependencyError) Is(target error) bool { return target == ErrSkipped }

// ReferenceError is the failure of a backend whose call could not be built
// because a reference found nothing usable in its dependency's answer.
type ReferenceError struct {
	// Ref is the reference as written, braces included: "{order.customer.id}".
	Ref string
	// Header is true when the value was found but cannot go into a header
	// (it holds CR, LF or NUL).
	Header bool
}

// Error names the reference.
func (e *ReferenceError) Error() string {
	if e.Header {
		return "invalid header value from " + e.Ref
	}
	return "missing " + e.Ref
}

// Is makes a ReferenceError match ErrReference.
func (e *ReferenceError) Is(target error) bool { return target == ErrReference }

// StatusError is an upstream answer with a non-2xx status (3xx included:
// redirects are never followed).
type StatusError struct {
	// Code is the upstream's HTTP status.
	Code int
}

// Error names the status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("upstream answered %d %s", e.Code, http.StatusText(e.Code))
}

// Reason is the short, client-safe description of a failure used in
// "_errors" and error bodies: it never includes upstream addresses or
// internal error text.
func Reason(err error) string {
	var se *StatusError
	var de *DependencyError
	var re *ReferenceError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &de):
		return de.Error() // config text only: "dependency order failed"
	case errors.As(err, &re):
		return re.Error() // config text only: "missing {order.customer.id}"
	case errors.As(err, &se):
		return fmt.Sprintf("status %d", se.Code)
	case errors.Is(err, ErrTimeout):
		return "timeout"
	case errors.Is(err, ErrCanceled):
		return "canceled"
	case errors.Is(err, ErrCircuitOpen):
		return "circuit open"
	case errors.Is(err, ErrRejected):
		return "too many concurrent calls"
	case errors.Is(err, ErrNoHealthyInstance):
		return "no healthy instance"
	case errors.Is(err, ErrTooLarge):
		return "response too large"
	case errors.Is(err, ErrNotJSON):
		return "invalid JSON response"
	case errors.Is(err, ErrReshape):
		return "unexpected response shape"
	case errors.Is(err, ErrConnect):
		return "unreachable"
	case errors.Is(err, ErrTooManyItems):
		return "too many items"
	}
	return "failed"
}
