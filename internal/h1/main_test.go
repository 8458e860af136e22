package h1

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// client promises that none outlives Do or the body's end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
