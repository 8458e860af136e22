package demo_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine (a delayed handler, a timer
// waiter, a client connection) outlives the tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
