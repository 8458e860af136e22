package h1

// probeResult is what an idle connection's socket holds.
type probeResult uint8

const (
	probeIdle  probeResult = iota // nothing to read: usable
	probeData                     // unsolicited bytes
	probeEOF                      // the peer closed
	probeError                    // reset or other error
)
