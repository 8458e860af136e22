package fetch_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
	"github.com/manifold-gw/manifold/internal/freeport"
)

// instanceStub is one instance of a pooled upstream: it counts its calls
// and answers as the test says, by path.
type instanceStub struct {
	url    string
	hits   atomic.Int32 // calls to anything but /healthz
	checks atomic.Int32 // /healthz calls
	status atomic.Int32 // status of ordinary calls (0: 200)
	health atomic.Int32 // status of /healthz (0: 200, -1: hang)
	gate   chan struct{}
	gated  atomic.Bool // ordinary calls wait on gate (or the caller leaving)
	held   atomic.Int32
	open   sync.Once
	// newConns counts the connections the instance accepted.
	newConns atomic.Int32
}

func (s *instanceStub) conns() int32 { return s.newConns.Load() }

// release opens the gate: held calls answer, later ones do not wait.
func (s *instanceStub) release() { s.open.Do(func() { close(s.gate) }) }

func newInstance(t *testing.T) *instanceStub {
	s := &instanceStub{gate: make(chan struct{})}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			s.checks.Add(1)
			switch code := s.health.Load(); code {
			case -1:
				<-r.Context().Done()
			case 0:
				io.WriteString(w, "ok")
			default:
				w.WriteHeader(int(code))
			}
			return
		}
		s.hits.Add(1)
		if s.gated.Load() {
			s.held.Add(1)
			select {
			case <-s.gate:
			case <-r.Context().Done():
			}
			s.held.Add(-1)
		}
		if code := s.status.Load(); code != 0 {
			w.WriteHeader(int(code))
		}
		fmt.Fprintf(w, `{"from":%q}`, r.Host)
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.newConns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s.url = srv.URL
	t.Cleanup(s.release) // before the server closes: a failed test leaves no call held
	return s
}

// refusing is the address of a port nothing listens on: one outside the
// ephemeral range, so no parallel test's listener takes it meanwhile.
func refusing(t *testing.T) string {
	return "http://" + freeport.Addr(t)
}

// resetting accepts connections and resets them at once.
func resetting(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

func poolYAML(urls []string, extra string) string {
	return fmt.Sprintf(`
upstreams:
  u:
    urls: ["%s"]
    timeout: 300ms
    circuit_breaker: {enabled: false}
%s
endpoints:
  - {path: /x, timeout: 2s, backends: [{upstream: u, path: /x}]}
`, strings.Join(urls, `", "`), extra)
}

func urlsOf(stubs ...*instanceStub) []string {
	var out []string
	for _, s := range stubs {
		out = append(out, s.url)
	}
	return out
}

func fetchOnce(t *testing.T, ep *fetch.Endpoint) fetch.Result {
	t.Helper()
	return ep.Fetch(context.Background(), inbound())[0]
}

// Both balancers spread the load: each of 3 instances gets at least 20 %
// of 300 calls.
func TestBalanceSpreadsLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ balance, client string }{
		{"least_inflight", "lean"}, {"round_robin", "lean"}, {"least_inflight", "stdlib"}, {"round_robin", "stdlib"},
	} {
		t.Run(tc.balance+"/"+tc.client, func(t *testing.T) {
			t.Parallel()
			a, b, c := newInstance(t), newInstance(t), newInstance(t)
			ep := build(t, poolYAML(urlsOf(a, b, c), "    balance: "+tc.balance+"\n    client: "+tc.client), nil)
			for range 300 {
				if r := fetchOnce(t, ep); r.Err != nil {
					t.Fatal(r.Err)
				}
			}
			for i, s := range []*instanceStub{a, b, c} {
				if s.conns() > 1 {
					t.Errorf("instance %d: %d connections for sequential calls: its pool does not reuse them", i, s.conns())
				}
				if n := s.hits.Load(); n < 60 {
					t.Errorf("instance %d got %d of 300 calls, want at least 60", i, n)
				}
			}
		})
	}
}

// least_inflight avoids an instance whose calls are held: once one call
// waits there, every later call goes elsewhere. round_robin keeps sending
// it its share.
func TestLeastInflightAvoidsAHeldInstance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		balance string
		maxHeld int32
	}{{"least_inflight", 1}, {"round_robin", 20}} {
		t.Run(tc.balance, func(t *testing.T) {
			t.Parallel()
			slow, b, c := newInstance(t), newInstance(t), newInstance(t)
			slow.gated.Store(true)
			// Held calls stay held (no upstream timeout ends them).
			yaml := strings.Replace(poolYAML(urlsOf(slow, b, c), "    balance: "+tc.balance), "timeout: 300ms", "timeout: 2s", 1)
			ep := build(t, yaml, nil)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range 90 {
				// Wait until this call is held, or has ended (so that its
				// instance's in-flight count is back to what it was).
				held := slow.hits.Load()
				done := make(chan struct{})
				wg.Go(func() { defer close(done); ep.Fetch(ctx, inbound()) })
				waitFor(t, "the call to be held or to end", func() bool {
					select {
					case <-done:
						return true
					default:
						return slow.hits.Load() > held
					}
				})
			}
			held := slow.hits.Load()
			cancel()
			wg.Wait()
			if tc.balance == "least_inflight" && held > tc.maxHeld {
				t.Errorf("%d calls went to the held instance, want at most %d", held, tc.maxHeld)
			}
			if tc.balance == "round_robin" && held < tc.maxHeld {
				t.Errorf("round_robin sent %d calls to the held instance, want its share (>= %d)", held, tc.maxHeld)
			}
		})
	}
}

// A retry goes to another instance: with one instance failing and one
// retry, every call succeeds.
func TestRetryGoesToAnotherInstance(t *testing.T) {
	t.Parallel()
	for _, balance := range []string{"least_inflight", "round_robin"} {
		t.Run(balance, func(t *testing.T) {
			t.Parallel()
			bad, good := newInstance(t), newInstance(t)
			bad.status.Store(503)
			ep := build(t, poolYAML(urlsOf(bad, good), "    balance: "+balance+"\n    retry: {attempts: 1, backoff: 1ms}\n    outlier: {consecutive_failures: 0}"), nil)
			for i := range 60 {
				if r := fetchOnce(t, ep); r.Err != nil {
					t.Fatalf("call %d: %v", i, r.Err)
				}
			}
			if bad.hits.Load() == 0 {
				t.Error("the failing instance was never tried: the test proves nothing")
			}
		})
	}
}

// Faulty instances (refusing, resetting, hanging past the timeout, serving
// a certificate nobody trusts) are ejected after consecutive_failures, and
// calls then go to the healthy one only.
func TestOutlierEjectsFaultyInstances(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	goodCert, _, _ := ca.issue(t, "good", nil, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	other := newTestCA(t)
	badCert, _, _ := other.issue(t, "bad", nil, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageServerAuth)
	hang := newInstance(t)
	hang.gated.Store(true)
	for _, tc := range []struct {
		name      string
		bad, good string
		tls       string
	}{
		{"refused", refusing(t), "", ""},
		{"reset", resetting(t), "", ""},
		{"hang", hang.url, "", ""},
		{"wrong certificate", serveTLS(t, badCert, nil), serveTLS(t, goodCert, nil), "    tls: {ca_file: " + ca.file + "}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			good := tc.good
			if good == "" {
				good = newInstance(t).url
			}
			extra := "    outlier: {consecutive_failures: 2, eject_for: 1m, max_ejected_percent: 50}\n" + tc.tls
			eps, ups := endpoints(t, poolYAML([]string{tc.bad, good}, extra), nil)
			u := ups["u"]
			failures := 0
			for range 50 {
				if fetchOnce(t, eps[0]).Err != nil {
					failures++
				}
			}
			if failures != 2 {
				t.Errorf("%d calls failed, want 2 (then the instance is ejected)", failures)
			}
			st := u.Instances()
			if st[0].InRotation || !st[1].InRotation {
				t.Errorf("instances %+v: want the faulty one out, the good one in", st)
			}
		})
	}
}

// An ejected instance comes back after eject_for; ejected again, it stays
// out twice as long (a flapping instance), and never more than 10x.
func TestOutlierBackoffForAFlappingInstance(t *testing.T) {
	t.Parallel()
	flappy, good := newInstance(t), newInstance(t)
	flappy.status.Store(500)
	var mu sync.Mutex
	var outAt, inAt []time.Time
	eps, ups := endpointsWith(t, poolYAML(urlsOf(flappy, good), "    outlier: {consecutive_failures: 1, eject_for: 100ms, max_ejected_percent: 50}"), fetch.PoolHooks{
		InstanceState: func(instance string, healthy bool) {
			if !strings.HasSuffix(flappy.url, instance) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if healthy {
				inAt = append(inAt, time.Now())
			} else {
				outAt = append(outAt, time.Now())
			}
		},
	})
	ejections := func() int { mu.Lock(); defer mu.Unlock(); return len(outAt) }
	readmissions := func() int { mu.Lock(); defer mu.Unlock(); return len(inAt) - 1 } // the first is the build's report
	for round := 1; round <= 2; round++ {
		// Call until the flapping instance is hit again and ejected.
		waitFor(t, "an ejection", func() bool { fetchOnce(t, eps[0]); return ejections() == round })
		waitFor(t, "the readmission", func() bool { return readmissions() == round })
	}
	mu.Lock()
	defer mu.Unlock()
	first, second := inAt[1].Sub(outAt[0]), inAt[2].Sub(outAt[1])
	if first < 100*time.Millisecond || second < 200*time.Millisecond {
		t.Errorf("ejections lasted %v then %v, want at least 100ms then 200ms", first, second)
	}
	if !ups["u"].Instances()[0].InRotation {
		t.Error("the instance is not back in rotation")
	}
}

// max_ejected_percent is never exceeded: with every instance failing, only
// that share is ejected, the rest stays in rotation.
func TestOutlierMaxEjectedPercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		percent, instances, want int
	}{{50, 3, 1}, {100, 3, 3}, {34, 3, 1}, {33, 3, 0}, {50, 1, 0}} {
		t.Run(fmt.Sprintf("%d%%of%d", tc.percent, tc.instances), func(t *testing.T) {
			t.Parallel()
			var stubs []*instanceStub
			for range tc.instances {
				s := newInstance(t)
				s.status.Store(502)
				stubs = append(stubs, s)
			}
			eps, ups := endpoints(t, poolYAML(urlsOf(stubs...), fmt.Sprintf("    outlier: {consecutive_failures: 1, eject_for: 1m, max_ejected_percent: %d}", tc.percent)), nil)
			// Calls in parallel: instances failing at the same moment must
			// not both find room under the cap.
			var wg sync.WaitGroup
			for range 30 {
				wg.Go(func() { fetchOnce(t, eps[0]) })
			}
			wg.Wait()
			out := 0
			for _, st := range ups["u"].Instances() {
				if !st.InRotation {
					out++
				}
			}
			if out != tc.want {
				t.Errorf("%d instances ejected, want %d", out, tc.want)
			}
		})
	}
}

// When every instance is out of rotation, calls fail at once with
// ErrNoHealthyInstance and nothing is sent.
func TestNoHealthyInstanceFailsFast(t *testing.T) {
	t.Parallel()
	a, b := newInstance(t), newInstance(t)
	a.health.Store(500)
	b.health.Store(503)
	eps, ups := endpoints(t, poolYAML(urlsOf(a, b), "    health_check: {path: /healthz, interval: 20ms, timeout: 10ms, unhealthy_after: 1, healthy_after: 1}"), nil)
	waitFor(t, "both instances out", func() bool {
		st := ups["u"].Instances()
		return !st[0].InRotation && !st[1].InRotation
	})
	before := a.hits.Load() + b.hits.Load()
	r := fetchOnce(t, eps[0])
	if !errors.Is(r.Err, fetch.ErrNoHealthyInstance) || fetch.Reason(r.Err) != "no healthy instance" {
		t.Fatalf("err %v (reason %q), want no healthy instance", r.Err, fetch.Reason(r.Err))
	}
	if r.Duration > 50*time.Millisecond {
		t.Errorf("took %v: a call with no instance in rotation must fail at once", r.Duration)
	}
	if n := a.hits.Load() + b.hits.Load(); n != before {
		t.Errorf("%d calls were sent", n-before)
	}
	// One instance recovers: calls go to it.
	a.health.Store(0)
	waitFor(t, "a back in rotation", func() bool { return ups["u"].Instances()[0].InRotation })
	if r := fetchOnce(t, eps[0]); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// Active health checks take a failing instance out within the intervals
// unhealthy_after allows, and bring it back within healthy_after's; a
// health endpoint that hangs is bounded by the check's timeout.
func TestHealthChecksOutAndBack(t *testing.T) {
	t.Parallel()
	const interval = 50 * time.Millisecond
	for _, mode := range []int32{500, -1} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			t.Parallel()
			a, b := newInstance(t), newInstance(t)
			_, ups := endpoints(t, poolYAML(urlsOf(a, b), "    health_check: {path: /healthz, interval: 50ms, timeout: 25ms, unhealthy_after: 2, healthy_after: 3}"), nil)
			u := ups["u"]
			waitFor(t, "a first check", func() bool { return a.checks.Load() > 0 })
			a.health.Store(mode)
			start := time.Now()
			waitFor(t, "a out", func() bool { return !u.Instances()[0].InRotation })
			// The round in flight, then 2 failed rounds, each at most
			// interval*1.1 apart plus the timeout; a generous margin on top.
			if d, bound := time.Since(start), 3*(interval*11/10+25*time.Millisecond)+200*time.Millisecond; d > bound {
				t.Errorf("out after %v, want within %v", d, bound)
			}
			if !u.Instances()[1].InRotation {
				t.Error("b left rotation too")
			}
			a.health.Store(0)
			start = time.Now()
			waitFor(t, "a back", func() bool { return u.Instances()[0].InRotation })
			if d, bound := time.Since(start), 4*(interval*11/10+25*time.Millisecond)+200*time.Millisecond; d > bound {
				t.Errorf("back after %v, want within %v", d, bound)
			}
		})
	}
}

// The checker is one goroutine per upstream and Close stops it (goleak in
// TestMain proves nothing is left); no check is made after Close.
func TestHealthChecksStopOnClose(t *testing.T) {
	t.Parallel()
	a := newInstance(t)
	_, ups := endpoints(t, poolYAML(urlsOf(a), "    health_check: {path: /healthz, interval: 10ms, timeout: 5ms}"), nil)
	waitFor(t, "checks", func() bool { return a.checks.Load() >= 2 })
	ups["u"].Close()
	n := a.checks.Load()
	time.Sleep(50 * time.Millisecond) // five intervals: a running checker would check again
	if m := a.checks.Load(); m != n {
		t.Errorf("%d checks after Close", m-n)
	}
}

// endpointsWith is endpoints with the upstreams' pool hooks set.
func endpointsWith(t *testing.T, yaml string, hooks fetch.PoolHooks) ([]*fetch.Endpoint, map[string]*fetch.Upstream) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ups := map[string]*fetch.Upstream{}
	for name, uc := range cfg.Upstreams {
		ups[name] = fetch.NewUpstream(uc, nil, fetch.WithPoolHooks(hooks))
		t.Cleanup(ups[name].Close)
	}
	var eps []*fetch.Endpoint
	for _, ec := range cfg.Endpoints {
		ep, err := fetch.NewEndpoint(ec, ups)
		if err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	return eps, ups
}
