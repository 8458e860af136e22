package telemetry_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The batch span processor's goroutine and the exporter's connections end
// at Shutdown: every test shuts its provider down.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
