package fetch

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// breakerVerdict holds SPEC §4.6: for the breaker only 4xx answers and
// client cancellations are not failures (plus what this package adds:
// 3xx and reshape errors prove the upstream answered; a try never sent
// says nothing). Every timeout of a sent try counts, clipped or not.
func TestBreakerVerdict(t *testing.T) {
	canceled := classify(canceledCtx(), canceledCtx(), context.Canceled)
	tests := []struct {
		name string
		err  error
		want string // "success", "failure" or "excluded"
	}{
		{"ok", nil, "success"},
		{"404", &StatusError{Code: 404}, "success"},
		{"302", &StatusError{Code: 302}, "success"},
		{"reshape", fmt.Errorf("%w: %w", ErrReshape, ErrTargetMissing), "success"},
		{"500", &StatusError{Code: 500}, "failure"},
		{"own timeout", fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded), "failure"},
		{"timeout clipped by the endpoint", fmt.Errorf("%w: %w", ErrTimeout, errEndpointClipped), "failure"},
		{"connect", fmt.Errorf("%w: refused", ErrConnect), "failure"},
		{"not JSON", ErrNotJSON, "failure"},
		{"too large", ErrTooLarge, "failure"},
		{"client left", canceled, "excluded"},
		{"never sent", fmt.Errorf("%w: %w", ErrTimeout, errNoTimeLeft), "excluded"},
	}
	for _, tt := range tests {
		v := breakerVerdict(tt.err)
		got := "failure"
		switch {
		case v == nil:
			got = "success"
		case errors.Is(v, errNotCounted):
			got = "excluded"
		}
		if got != tt.want {
			t.Errorf("%s: %v counts as %s, want %s", tt.name, tt.err, got, tt.want)
		}
	}
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
