package limiter_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// limiter promises to start none.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
