package h1

import "net"

// probeResult is what an idle connection's socket holds.
type probeResult uint8

const (
	probeIdle  probeResult = iota // nothing to read: usable
	probeData                     // unsolicited bytes
	probeEOF                      // the peer closed
	probeError                    // reset or other error
)

// errIdleCheck is what a tlsSocket in check mode returns instead of
// blocking. It is a temporary net.Error on purpose: crypto/tls returns such
// an error from Read without recording it as the connection's failure.
var errIdleCheck error = idleCheckError{}

type idleCheckError struct{}

func (idleCheckError) Error() string   { return "h1: idle check: nothing to read" }
func (idleCheckError) Timeout() bool   { return true }
func (idleCheckError) Temporary() bool { return true }

// tlsSocket is the socket as crypto/tls sees it. It follows the TLS record
// framing of the bytes crypto/tls reads (a 5-byte header with the length,
// then that many bytes), so that tlsAlive can tell whether a record is
// half-read; and in check mode it never blocks: with nothing in the socket
// (as the prober sees it) a Read fails at once with errIdleCheck.
type tlsSocket struct {
	net.Conn
	prober   *prober // nil: treated as always idle
	checking bool
	checked  int     // bytes read in check mode
	hdr      [5]byte // the current record header, hdrLen bytes of it
	hdrLen   int
	left     int // bytes of the current record's body still to come
}

func (s *tlsSocket) Read(p []byte) (int, error) {
	if s.checking && (s.prober == nil || s.prober.probe() == probeIdle) {
		return 0, errIdleCheck
	}
	n, err := s.Conn.Read(p)
	if s.checking {
		s.checked += n
	}
	s.track(p[:n])
	return n, err
}

func (s *tlsSocket) track(b []byte) {
	for len(b) > 0 {
		if s.left > 0 {
			k := min(s.left, len(b))
			s.left -= k
			b = b[k:]
			continue
		}
		k := copy(s.hdr[s.hdrLen:], b)
		s.hdrLen += k
		b = b[k:]
		if s.hdrLen == len(s.hdr) {
			s.left = int(s.hdr[3])<<8 | int(s.hdr[4])
			s.hdrLen = 0
		}
	}
}

// atBoundary: every byte read so far belongs to a complete record.
func (s *tlsSocket) atBoundary() bool { return s.hdrLen == 0 && s.left == 0 }
