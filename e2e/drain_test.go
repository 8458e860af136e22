package e2e_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

const drainConfig = `
server:
  address: "{{ADDR}}"
  drain_delay: 700ms
  shutdown_timeout: 10s
admin:
  address: "{{ADMIN}}"
log: {level: info, format: json}
demo: true
upstreams:
  users:
    url: "{{DEMO}}"
    timeout: 5s
endpoints:
  - path: /slow/{id}
    timeout: 5s
    backends:
      - upstream: users
        path: /users/{id}?delay=1500ms
  - path: /fast/{id}
    timeout: 5s
    backends:
      - upstream: users
        path: /users/{id}
`

func TestDrainFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	const (
		n          = 6
		drainDelay = 700 * time.Millisecond
	)
	p := startManifold(t, drainConfig)

	// The slow endpoint answers exactly what the fast one does, 1.5s later.
	want := make([][]byte, n)
	for i := range n {
		code, body := mustGet(t, p, fmt.Sprintf("/fast/%d", i+1))
		if code != http.StatusOK || !bytes.Contains(body, []byte(`"id"`)) {
			t.Fatalf("GET /fast/%d = %d %s", i+1, code, body)
		}
		want[i] = body
	}

	type result struct {
		code      int
		body      []byte
		completed string
		err       error
		at        time.Time
	}
	results := make(chan struct {
		i int
		r result
	}, n)
	client := newClient(t, true)
	start := time.Now()
	for i := range n {
		go func() {
			code, body, resp, err := doGet(client, fmt.Sprintf("%s/slow/%d", p.URL(), i+1), nil)
			r := result{code: code, body: body, err: err, at: time.Now()}
			if resp != nil {
				r.completed = resp.Header.Get("X-Manifold-Completed")
			}
			results <- struct {
				i int
				r result
			}{i, r}
		}()
	}

	// Each client request is counted once, and so is its backend call
	// (served by the same process's /__demo): 2n means every client request
	// is inside its handler.
	p.waitMetric(5*time.Second, "all slow requests in flight",
		func(v float64, ok bool) bool { return ok && v >= 2*n }, "manifold_inflight_requests")
	if len(results) != 0 {
		t.Fatalf("a request finished before SIGTERM (after %v): the endpoint is not slow enough for this test", time.Since(start))
	}

	sigAt := time.Now()
	p.Signal(sigterm)

	// Readiness flips at once, while the requests are still in flight.
	var readyCode int
	var readyBody []byte
	for deadline := sigAt.Add(500 * time.Millisecond); ; {
		code, body, err := p.get("/__ready", nil)
		if err == nil {
			readyCode, readyBody = code, body
			if code == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/__ready still %d %s 500ms after SIGTERM (err %v)", readyCode, readyBody, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := strings.TrimSpace(string(readyBody)); got != `{"status":"draining"}` {
		t.Errorf("/__ready body while draining = %q, want {\"status\":\"draining\"}", got)
	}
	if len(results) != 0 {
		t.Errorf("a request finished before readiness went 503 (%v after SIGTERM)", time.Since(sigAt))
	}
	t.Logf("/__ready answered 503 %v after SIGTERM", time.Since(sigAt))

	// A new request inside drain_delay is still accepted and served, and the
	// server closes the (keep-alive capable) connection after it.
	fresh := newClient(t, true)
	sentAt := time.Since(sigAt)
	code, body, resp, err := doGet(fresh, p.URL()+"/fast/1", nil)
	switch {
	case sentAt >= drainDelay:
		t.Errorf("the drain-time request was sent %v after SIGTERM, after drain_delay: inconclusive", sentAt)
	case err != nil:
		t.Errorf("new request %v after SIGTERM (inside drain_delay): %v", sentAt, err)
	case code != http.StatusOK || !bytes.Equal(body, want[0]):
		t.Errorf("new request during drain_delay = %d %s, want 200 %s", code, body, want[0])
	case !resp.Close:
		t.Errorf("answer during drain has no Connection: close (headers %v)", resp.Header)
	default:
		t.Logf("new request sent %v after SIGTERM: 200, Connection: close", sentAt)
	}

	// After drain_delay the main listener closes, but the admin listener
	// stays open while the in-flight requests finish: /metrics can still be
	// scraped, and sees them in flight.
	for {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			break // closed
		}
		c.Close()
		if time.Since(sigAt) > 5*time.Second {
			t.Fatalf("the main listener still accepts connections %v after SIGTERM", time.Since(sigAt))
		}
		time.Sleep(10 * time.Millisecond)
	}
	closedAt := time.Since(sigAt)
	inflight, scraped, err := p.Metric("manifold_inflight_requests")
	switch {
	case len(results) != 0:
		t.Logf("inconclusive: a request finished before the main listener closed (%v after SIGTERM)", closedAt)
	case err != nil || !scraped:
		t.Errorf("admin /metrics after the main listener closed (%v after SIGTERM, requests in flight): found=%v err=%v", closedAt, scraped, err)
	case inflight < n:
		t.Errorf("admin /metrics after the main listener closed: manifold_inflight_requests = %v, want ≥ %d in flight", inflight, n)
	default:
		t.Logf("main listener closed %v after SIGTERM; admin /metrics still answers, %v in flight", closedAt, inflight)
	}
	if closedAt < drainDelay {
		t.Errorf("the main listener closed %v after SIGTERM, before drain_delay %v", closedAt, drainDelay)
	}

	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case res := <-results:
			r := res.r
			switch {
			case r.err != nil:
				t.Errorf("in-flight /slow/%d: %v (%v after SIGTERM)", res.i+1, r.err, r.at.Sub(sigAt))
			case r.code != http.StatusOK || !bytes.Equal(r.body, want[res.i]) || r.completed != "true":
				t.Errorf("in-flight /slow/%d = %d completed=%q %s, want 200 completed=true %s",
					res.i+1, r.code, r.completed, r.body, want[res.i])
			default:
				t.Logf("in-flight /slow/%d: 200 full body, %v after start, %v after SIGTERM",
					res.i+1, r.at.Sub(start), r.at.Sub(sigAt))
			}
		case <-deadline:
			t.Fatalf("in-flight requests not all answered 10s after SIGTERM")
		}
	}

	code, ok := p.Wait(10*time.Second - time.Since(sigAt))
	if !ok {
		t.Fatalf("manifold still running 10s after SIGTERM")
	}
	took := p.exitAt.Sub(sigAt)
	t.Logf("exit code %d, %v after SIGTERM", code, took)
	if code != 0 {
		t.Errorf("exit code %d after a clean drain, want 0", code)
	}
	if took < drainDelay {
		t.Errorf("exited %v after SIGTERM, before drain_delay %v", took, drainDelay)
	}
	logs := p.Logs()
	for _, msg := range []string{`"msg":"draining"`, `"msg":"stopped"`} {
		if !strings.Contains(logs, msg) {
			t.Errorf("logs lack %s", msg)
		}
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Parallel()
	p := startManifold(t, strings.Replace(drainConfig, "drain_delay: 700ms", "drain_delay: 30s", 1))
	p.Signal(sigterm)
	// The first signal has been handled once readiness is 503.
	waitFor(t, 2*time.Second, 10*time.Millisecond, "/__ready 503 after the first SIGTERM", func() (bool, string) {
		code, body, err := p.get("/__ready", nil)
		return err == nil && code == http.StatusServiceUnavailable, fmt.Sprintf("%d %s %v", code, body, err)
	})
	at := time.Now()
	p.Signal(sigterm)
	code, ok := p.Wait(2 * time.Second)
	if !ok {
		t.Fatalf("manifold still running 2s after the second SIGTERM (drain_delay 30s)")
	}
	t.Logf("second SIGTERM: exited after %v with %v (exit code %d)", p.exitAt.Sub(at), p.state, code)
	if code < 0 {
		t.Errorf("killed by the signal (%v) rather than exiting on its own", p.state)
	}
	if !strings.Contains(p.Logs(), "second signal") {
		t.Errorf("logs do not mention the second signal:\n%s", p.Logs())
	}
}

// TestDrainKeepsIdleKeepAliveConnectionsUsable: a balancer's pooled
// connection that was idle at SIGTERM must still carry one more request
// during drain_delay (answered with Connection: close), not be cut under it.
// A raw connection is used because net/http's client would silently retry a
// GET on a connection the server closed, hiding exactly this failure.
func TestDrainKeepsIdleKeepAliveConnectionsUsable(t *testing.T) {
	t.Parallel()
	p := startManifold(t, drainConfig)
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	roundTrip := func(path string) (*http.Response, error) {
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: manifold\r\n\r\n", path); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, err
	}
	if resp, err := roundTrip("/fast/1"); err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("before SIGTERM: %v %v", resp, err)
	}
	p.Signal(syscall.SIGTERM)
	waitFor(t, 2*time.Second, 5*time.Millisecond, "/__ready 503", func() (bool, string) {
		code, _, err := p.get("/__ready", nil)
		return err == nil && code == http.StatusServiceUnavailable, fmt.Sprint(code, err)
	})
	// The same connection, idle since before the signal.
	resp, err := roundTrip("/fast/2")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("request on the idle keep-alive connection during drain: %v %v", resp, err)
	}
	if !resp.Close {
		t.Error("answer during drain did not say Connection: close")
	}
	if code, ok := p.Wait(10 * time.Second); !ok || code != 0 {
		t.Fatalf("exit %d (exited %v)", code, ok)
	}
}

// TestSIGHUPDuringShutdownIsIgnored: once the listener has closed and
// in-flight requests are finishing, a SIGHUP (say, from a config tool) must
// neither reload nor cut those requests short.
func TestSIGHUPDuringShutdownIsIgnored(t *testing.T) {
	t.Parallel()
	p := startManifold(t, strings.Replace(drainConfig, "drain_delay: 700ms", "drain_delay: 100ms", 1))
	type answer struct {
		code int
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		code, _, err := p.get("/slow/1", nil) // 1.5s
		got <- answer{code, err}
	}()
	p.waitMetric(5*time.Second, "the slow request in flight", func(v float64, ok bool) bool { return ok && v >= 2 }, "manifold_inflight_requests")
	p.Signal(syscall.SIGTERM)
	// The drain is over once the listener refuses connections.
	waitFor(t, 3*time.Second, 10*time.Millisecond, "the listener to close", func() (bool, string) {
		c, err := net.Dial("tcp", strings.TrimPrefix(p.URL(), "http://"))
		if err == nil {
			c.Close()
		}
		return err != nil, fmt.Sprint(err)
	})
	p.Signal(syscall.SIGHUP)
	a := <-got
	if a.err != nil || a.code != http.StatusOK {
		t.Fatalf("in-flight request after SIGHUP: %d %v", a.code, a.err)
	}
	if code, ok := p.Wait(10 * time.Second); !ok || code != 0 {
		t.Fatalf("exit %d (exited %v)", code, ok)
	}
}
