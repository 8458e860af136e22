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
// up. TestCloseEarlyLoopback, which bounds how long a Close takes, and
// TestCancellation, whose write cases move megabytes, run before them
// (TestCancellation's light cases in parallel with each other).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
