package e2e_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/demo"
)

// poolInstance is one demo instance of the shipped config's pool upstream
// that the test serves itself, counting the calls it gets (health checks
// aside).
type poolInstance struct {
	srv   *httptest.Server
	calls atomic.Int64
}

// listenPoolInstances finds a port P free on 127.0.0.1, 127.0.0.2 and
// 127.0.0.3 and serves the demo on 127.0.0.2:P and 127.0.0.3:P (one demo
// handler for both, as the gateway's own /__demo is one handler for every
// Host), leaving 127.0.0.1:P to the gateway. A few ports are tried, since
// another process may hold P on one of the addresses.
func listenPoolInstances(t *testing.T) (port string, insts [2]*poolInstance) {
	t.Helper()
	h := http.StripPrefix("/__demo", demo.Handler())
	var lastErr error
	for range 5 {
		_, port, _ = net.SplitHostPort(freeAddr(t))
		var lns []net.Listener
		for _, host := range []string{"127.0.0.2", "127.0.0.3"} {
			ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
			if err != nil {
				lastErr = err
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) < 2 {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		for i, ln := range lns {
			in := &poolInstance{}
			in.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/__demo/status" {
					in.calls.Add(1)
				}
				h.ServeHTTP(w, r)
			}))
			in.srv.Listener.Close()
			in.srv.Listener = ln
			in.srv.Start()
			t.Cleanup(in.srv.Close)
			insts[i] = in
		}
		return port, insts
	}
	t.Skipf("cannot listen on 127.0.0.2 and 127.0.0.3 with a common port (%v); on macOS: sudo ifconfig lo0 alias 127.0.0.2 up, and the same for 127.0.0.3", lastErr)
	return "", insts
}

// TestShippedDemoPool runs the shipped config.yaml the way .ci/run does
// (listener on 127.0.0.1:P through MANIFOLD_SERVER_ADDRESS, DEMO_URL), with
// DEMO_POOL_PORT=P: its pool upstream's three instances are the gateway's
// own demo on 127.0.0.1:P and the test's on 127.0.0.2:P and 127.0.0.3:P
// (the slow one, by the demo's Host rule). Every instance starts healthy
// and takes calls, both pool endpoints answer in full, and the hedged one
// hedges.
func TestShippedDemoPool(t *testing.T) {
	t.Parallel()
	port, insts := listenPoolInstances(t)
	addr, admin := net.JoinHostPort("127.0.0.1", port), freeAddr(t)
	cfgPath, err := filepath.Abs(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := launch(t, cfgPath, addr, admin,
		"MANIFOLD_SERVER_ADDRESS="+addr, "MANIFOLD_ADMIN_ADDRESS="+admin,
		"DEMO_URL=http://"+addr, "DEMO_POOL_PORT="+port)
	if strings.Contains(p.Logs(), "level=ERROR") {
		t.Errorf("errors at start-up:\n%s", p.Logs())
	}

	for i := 1; i <= 3; i++ {
		inst := fmt.Sprintf(`instance="127.0.0.%d:%s"`, i, port)
		v, ok, err := p.Metric("manifold_upstream_instance_healthy", `upstream="pool"`, inst)
		if err != nil || !ok || v != 1 {
			t.Errorf("manifold_upstream_instance_healthy{upstream=pool,%s} = %v (present %v, %v), want 1: instances start healthy", inst, v, ok, err)
		}
	}

	// Both endpoints answer the same full object.
	var want []byte
	for _, path := range []string{"/api/pool/42", "/api/pool/42/hedged"} {
		code, body := mustGet(t, p, path)
		var got map[string]json.RawMessage
		if code != http.StatusOK || json.Unmarshal(body, &got) != nil || len(got) != 3 ||
			got["user"] == nil || got["orders"] == nil || got["recommendations"] == nil {
			t.Fatalf("GET %s = %d %s, want 200 with user, orders and recommendations", path, code, body)
		}
		if want == nil {
			want = body
		} else if string(body) != string(want) {
			t.Errorf("GET %s = %s, want the unhedged answer %s", path, body, want)
		}
	}

	// Balancing: 20 requests (60 calls) reach both of the test's instances;
	// least_inflight gives each about a third, so 6 is far in the tail.
	before := [2]int64{insts[0].calls.Load(), insts[1].calls.Load()}
	for range 20 {
		if code, body := mustGet(t, p, "/api/pool/7"); code != http.StatusOK {
			t.Fatalf("GET /api/pool/7 = %d %s", code, body)
		}
	}
	for i, in := range insts {
		if n := in.calls.Load() - before[i]; n < 6 {
			t.Errorf("127.0.0.%d got %d of the 60 calls, want at least 6 (a third is 20)", i+2, n)
		}
	}

	// Hedging: 127.0.0.3 slows every 4th call it gets by 50-80ms, more than
	// hedge.after (20ms), so hedges go out once the budget has been earned.
	// Bounded: at most 200 requests.
	hedges := func() float64 {
		var sum float64
		for _, r := range []string{`result="won"`, `result="lost"`} {
			v, _, err := p.Metric("manifold_backend_hedges_total", `upstream="pool"`, r)
			if err != nil {
				t.Fatalf("scraping /metrics: %v", err)
			}
			sum += v
		}
		return sum
	}
	requests := 0
	for ; requests < 200 && hedges() == 0; requests++ {
		if code, body := mustGet(t, p, "/api/pool/42/hedged"); code != http.StatusOK {
			t.Fatalf("GET /api/pool/42/hedged = %d %s", code, body)
		}
	}
	n := hedges()
	if n == 0 {
		t.Fatalf("no hedge after %d hedged requests (%d calls to 127.0.0.3)", requests, insts[1].calls.Load())
	}
	won, _, _ := p.Metric("manifold_backend_hedges_total", `upstream="pool"`, `result="won"`)
	t.Logf("first hedge after %d hedged requests; %v hedges, %v won", requests, n, won)

	p.Signal(syscall.SIGTERM)
	if code, ok := p.Wait(20 * time.Second); !ok || code != 0 {
		t.Errorf("after SIGTERM: exit %d (exited %v), want 0", code, ok)
	}
}
