package soak_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// roleEnv, when set, makes the test binary serve as one soak upstream:
// "fast", "hang:RATIO" or "storm:RATIO".
const roleEnv = "MANIFOLD_SOAK_UPSTREAM"

// hangCap bounds a hanging call in case the gateway never gives up on it.
const hangCap = 10 * time.Second

// upstreamBody is every successful answer: a small JSON object.
var upstreamBody = []byte(`{"id":"soak-1029384756","name":"Soak object","updated":"2026-11-27T10:00:00Z",` +
	`"items":[{"id":1,"sku":"SKU-1000","qty":1,"price":10.00},{"id":2,"sku":"SKU-1007","qty":2,"price":13.11}],"total":9007199254740993,"active":true}`)

// serveUpstream runs one upstream until stdin closes (the test process
// holds the other end of the pipe, so an upstream never outlives it):
//
//	fast        always 200 at once
//	hang:R      with probability R waits until the caller gives up (or
//	            hangCap), else 200 at once
//	storm:R     with probability R answers 503, else 200 at once
//
// It listens on a free loopback port and prints "ADDR host:port" first.
func serveUpstream(role string) error {
	kind, arg, _ := strings.Cut(role, ":")
	ratio := 0.0
	if arg != "" {
		var err error
		if ratio, err = strconv.ParseFloat(arg, 64); err != nil {
			return err
		}
	}
	ok := func(w http.ResponseWriter) {
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(upstreamBody)
	}
	var h http.HandlerFunc
	switch kind {
	case "fast":
		h = func(w http.ResponseWriter, _ *http.Request) { ok(w) }
	case "hang":
		h = func(w http.ResponseWriter, r *http.Request) {
			if rand.Float64() < ratio {
				t := time.NewTimer(hangCap)
				defer t.Stop()
				select {
				case <-r.Context().Done(): // the gateway closed the connection
				case <-t.C:
				}
				return
			}
			ok(w)
		}
	case "storm":
		h = func(w http.ResponseWriter, _ *http.Request) {
			if rand.Float64() < ratio {
				http.Error(w, `{"error":"storm"}`, http.StatusServiceUnavailable)
				return
			}
			ok(w)
		}
	default:
		return fmt.Errorf("unknown role %q", role)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	// No IdleTimeout: the server never closes an idle keep-alive
	// connection on its own, as most upstreams behind a gateway don't
	// within a 20s run.
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// upstream is one running upstream process.
type upstream struct {
	cmd   *exec.Cmd
	addr  string
	stdin io.WriteCloser
	done  chan struct{}
}

// startUpstream re-executes the test binary in role and waits for its
// address. It is stopped when the test ends (or earlier, by stop).
func startUpstream(t *testing.T, role string) *upstream {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start upstream %s: %v", role, err)
	}
	u := &upstream{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	first := make(chan string, 1)
	go func() {
		br := bufio.NewReader(stdout)
		line, _ := br.ReadString('\n')
		first <- line
		_, _ = io.Copy(io.Discard, br)
		_ = cmd.Wait()
		close(u.done)
	}()
	t.Cleanup(u.stop)
	var line string
	select {
	case line = <-first:
	case <-time.After(10 * time.Second):
		t.Fatalf("upstream %s: no address within 10s", role)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "ADDR ")
	if !ok {
		t.Fatalf("upstream %s: unexpected first line %q", role, line)
	}
	u.addr = addr
	return u
}

// stop closes the upstream's stdin (it then closes its listener and every
// connection and exits) and kills it if it has not exited within 5s.
func (u *upstream) stop() {
	_ = u.stdin.Close()
	select {
	case <-u.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = u.cmd.Process.Kill()
	<-u.done
}
