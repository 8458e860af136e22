// Package redistest runs a real redis-server for tests: a child process on
// a free 127.0.0.1 port, with its own directory and no persistence, that a
// test can stop (an abrupt outage) and start again on the same port. It
// speaks to the server over plain RESP on short-lived connections, so it
// starts no goroutine of a Redis client library in the test's process.
//
// Tests that need it skip when the redis-server binary is absent, unless
// $CI is set: CI installs it (.ci/run), and there a missing binary fails.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/freeport"
)

// Server is one redis-server child process. Its methods are for the
// test's goroutine.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	args []string

	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
	log    *os.File
}

// Binary returns the redis-server executable, skipping tb when there is
// none, or failing it when $CI is set.
func Binary(tb testing.TB) string {
	tb.Helper()
	if bin, err := exec.LookPath("redis-server"); err == nil {
		return bin
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	if ci := os.Getenv("CI"); ci != "" {
		tb.Fatalf("redis-server not found and CI=%q: install it (Debian package redis-server, as .ci/run does)", ci)
	}
	tb.Skip("redis-server not installed (Debian package redis-server); skipping the real-Redis tests. With CI set this is a failure.")
	return ""
}

// Start starts a redis-server (extra are further command-line options,
// e.g. "--requirepass", "pw") and waits until it answers PING. It is
// stopped, by PID, when tb ends.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: Binary(tb), dir: tb.TempDir(), port: freePort(tb), args: extra}
	s.Start()
	tb.Cleanup(s.Stop)
	return s
}

// freePort is a port outside the ephemeral range, so that no outgoing
// connection takes it while the server is stopped between a test's Stop
// and Start.
func freePort(tb testing.TB) int {
	tb.Helper()
	return freeport.Port(tb)
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// PID is the running server's process id (0 when stopped).
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start (re)starts the server on its port and waits, at most 10s, for it
// to answer PING.
func (s *Server) Start() {
	s.tb.Helper()
	if s.cmd != nil {
		s.tb.Fatal("redis-server already running")
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.tb.Fatal(err)
	}
	args := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "",
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		s.tb.Fatalf("start redis-server: %v", err)
	}
	s.cmd, s.log, s.exited = cmd, log, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.exited)

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.exited:
			s.tb.Fatalf("redis-server exited at start-up:\n%s", s.Log())
		default:
		}
		if reply, err := s.do("PING"); err == nil && (reply == "+PONG" || strings.HasPrefix(reply, "-NOAUTH")) {
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.tb.Fatalf("redis-server on %s did not answer PING within 10s:\n%s", s.Addr(), s.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: an abrupt outage, its connections reset)
// and waits for it to exit. It does nothing when the server is stopped.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.tb.Errorf("redis-server pid %d did not exit after SIGKILL", s.cmd.Process.Pid)
	}
	s.log.Close()
	s.cmd = nil
}

// Log returns what the server has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

// Do runs one command on a connection of its own and returns the first
// line of the reply, e.g. "+OK", ":3" or "-ERR ...". It fails tb when the
// server cannot be reached.
func (s *Server) Do(args ...string) string {
	s.tb.Helper()
	reply, err := s.do(args...)
	if err != nil {
		s.tb.Fatalf("redis %q: %v", args, err)
	}
	return reply
}

func (s *Server) do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(command(args)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// command encodes args as a RESP array of bulk strings.
func command(args []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

// WaitClientGoroutines waits, by condition and at most five seconds, until
// no goroutine of go-redis is left in the process, and fails tb with the
// stacks if some are. Call it once a test has closed its clients (register
// it with tb.Cleanup before what closes them, so that it runs after):
// a pool that failed to dial probes its address about once a second in the
// background and notices Close only after its sleep, later than goleak
// waits at the end of the package, which would then blame no test.
func WaitClientGoroutines(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("github.com/redis/go-redis/")) {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("go-redis goroutines still running 5s after the clients were closed:\n%s", buf[:n])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
