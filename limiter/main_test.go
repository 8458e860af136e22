package limiter_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: the
// limiter promises to start none.
//
// Every test runs in parallel: none waits on the wall clock (they drive
// AllowAt with a synthetic one), and the big ones are single-threaded CPU
// work under -race, so two at a time use both cores.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
