//go:build !unix

package h1

import "time"

// cpuTime is not measured on this platform.
func cpuTime() (user, sys time.Duration) { return 0, 0 }
