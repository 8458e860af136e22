package limiter_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// limiter promises to start none.
//
// The tests do not call t.Parallel, on purpose: none waits on the wall
// clock (they drive AllowAt with a synthetic one), so there are no waits
// to overlap, only CPU work under -race, and go test already keeps both
// cores busy with another package meanwhile. Run side by side, the big
// tests only slowed each other, TestConcurrentStress (eight goroutines
// contending for shard locks) most of all on a loaded machine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
