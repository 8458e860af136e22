//go:build unix

package h1

import "syscall"

// prober looks, without blocking and without consuming anything, at what
// an idle socket holds: nothing (the normal case), data, or the peer's
// close. It costs one recv(MSG_PEEK|MSG_DONTWAIT) system call. One prober
// lives with each connection, so probing allocates nothing.
type prober struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	res probeResult
	buf [1]byte
}

func newProber(rc syscall.RawConn) *prober {
	p := &prober{rc: rc}
	p.fn = p.peek
	return p
}

func (p *prober) peek(fd uintptr) bool {
	for {
		n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
			p.res = probeIdle
		case err != nil:
			p.res = probeError
		case n == 0:
			p.res = probeEOF
		default:
			p.res = probeData
		}
		return true
	}
}

func (p *prober) probe() probeResult {
	p.res = probeError
	if err := p.rc.Read(p.fn); err != nil {
		return probeError
	}
	return p.res
}
