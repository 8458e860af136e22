package limiter_test

import (
	"bufio"
	"bytes"
	"context"
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

	"github.com/redis/go-redis/v9"

	"github.com/manifold-gw/manifold/limiter"
)

// redisServer is a real redis-server child process on a free 127.0.0.1
// port, with its own temporary directory and no persistence. It can be
// stopped and started again on the same port, to test outages.
type redisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string // extra arguments, e.g. --requirepass

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	log    *os.File
}

// redisServerBin returns the redis-server binary, skipping tb when it is
// absent, unless $CI is set: CI installs it (.ci/run), so there a missing
// binary is a failure, not a reason to skip the tests that matter.
func redisServerBin(tb testing.TB) string {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if _, statErr := os.Stat("/usr/bin/redis-server"); statErr == nil {
			return "/usr/bin/redis-server"
		}
		if os.Getenv("CI") != "" {
			tb.Fatalf("redis-server not found and CI=%q: install it (Debian package redis-server, as .ci/run does)", os.Getenv("CI"))
		}
		tb.Skip("redis-server not installed (Debian package redis-server); skipping the real-Redis tests. With CI set this is a failure.")
	}
	return bin
}

// startRedis starts a redis-server with extra arguments and waits until it
// answers. It is stopped (by PID) when tb ends.
func startRedis(tb testing.TB, extra ...string) *redisServer {
	tb.Helper()
	s := &redisServer{
		t:    tb,
		bin:  redisServerBin(tb),
		dir:  tb.TempDir(),
		port: freePort(tb),
		args: extra,
	}
	// Registered first, so it runs last: after the test's clients are
	// closed and the server is stopped.
	tb.Cleanup(func() { waitRedisGoroutines(tb) })
	s.Start()
	tb.Cleanup(s.Stop)
	return s
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is the server's host:port.
func (s *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Start (re)starts the server on its port and waits for it to answer PING.
func (s *redisServer) Start() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("redis-server already running")
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
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
	if err := cmd.Start(); err != nil {
		log.Close()
		s.t.Fatalf("start redis-server: %v", err)
	}
	s.cmd, s.log, s.exited = cmd, log, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.exited)

	// Wait for the condition "answers PING" (an unauthenticated PING to a
	// server with requirepass answers -NOAUTH, which is up too).
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.exited:
			s.t.Fatalf("redis-server exited at start-up:\n%s", s.Log())
		default:
		}
		if s.ping() {
			return
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("redis-server on %s did not answer PING within 10s:\n%s", s.Addr(), s.Log())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *redisServer) ping() bool {
	c, err := net.DialTimeout("tcp", s.Addr(), 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

// Stop kills the server (SIGKILL: an abrupt outage, sockets reset) and
// waits for it to exit. It does nothing if the server is not running.
func (s *redisServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.t.Errorf("redis-server pid %d did not exit after SIGKILL", s.cmd.Process.Pid)
	}
	s.log.Close()
	s.cmd = nil
}

// Log returns what the server has logged so far.
func (s *redisServer) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	return string(b)
}

// client returns a limiter client for the server, closed when tb ends.
func (s *redisServer) client(tb testing.TB, o limiter.RedisClientOptions) *redis.Client {
	tb.Helper()
	o.Addr = s.Addr()
	return closeOnCleanup(tb, limiter.NewRedisClient(o))
}

func closeOnCleanup(tb testing.TB, c *redis.Client) *redis.Client {
	tb.Helper()
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("close redis client: %v", err)
		}
	})
	return c
}

// do runs one administrative command on its own short-lived connection.
func (s *redisServer) do(tb testing.TB, args ...any) any {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), Protocol: 2, MaxRetries: -1, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Do(ctx, args...).Result()
	if err != nil && err != redis.Nil {
		tb.Fatalf("redis %v: %v", args, err)
	}
	return v
}

// waitRedisGoroutines waits, by condition, until no goroutine of go-redis
// is left, and fails tb with their stacks if some are still there after
// five seconds. It runs at the end of every test that uses Redis (see
// startRedis and newMiniredis), after its clients are closed: a pool that
// failed to dial probes the address once a second in the background and
// notices Close only after its sleep, later than goleak would wait at the
// end of the package, which would then blame the wrong test or none.
func waitRedisGoroutines(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("github.com/redis/go-redis/")) {
			return
		}
		if time.Now().After(deadline) {
			tb.Errorf("go-redis goroutines still running 5s after Close:\n%s", buf[:n])
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
