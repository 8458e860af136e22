package h1

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// client promises that none outlives Do or the body's end.
//
// Each test has its own servers and client, and many spend their time
// waiting on real timers (contexts that end, idle and keep-alive timeouts,
// nginx's), so they run in parallel; the waits overlap instead of adding
// up. Three run before them instead: TestCloseEarlyLoopback, which bounds
// how long a Close takes; TestLargePost, which is CPU work (48 MiB through
// the client under -race) with nothing to overlap; and TestCancellation,
// whose write cases move megabytes (its light cases run in parallel with
// each other).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
