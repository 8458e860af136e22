package soak_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/freeport"
)

// The soak's knobs, all environment variables:
//
//	MANIFOLD_SOAK=1                  run it (else TestSoak is skipped)
//	MANIFOLD_SOAK_CLIENT=both        lean | stdlib | both (one run each, same shape)
//	MANIFOLD_SOAK_DURATION=20s       load time per run (at most 10m)
//	MANIFOLD_SOAK_CONNS=256          concurrent client connections
//	MANIFOLD_SOAK_MAX_REQUESTS=2e6   hard cap on requests per run
//	MANIFOLD_SOAK_HANG=0.1           share of calls the hanging upstream hangs
//	MANIFOLD_SOAK_STORM=0.3          share of calls the storm upstream answers 503
//	MANIFOLD_SOAK_BINARY=path        run this gateway binary instead of building ../
//
// Run it with, e.g.:
//
//	MANIFOLD_SOAK=1 go test -run TestSoak -v -timeout 10m ./soak/
const (
	maxDuration     = 10 * time.Minute
	endpointTimeout = 300 * time.Millisecond
	clientTimeout   = 5 * time.Second // per request, load generator side
)

// gatewayConfig is the shape: one endpoint, 300ms, three backends.
// The fast backend is required, so its failure is the 504 the issue saw;
// expose_errors names the failed backends in every answer.
const gatewayConfig = `
server:
  address: "{{ADDR}}"
admin:
  address: "{{ADMIN}}"
log: {level: error, format: json}
upstreams:
  fast:
    url: "http://{{FAST}}"
    timeout: 1s
    client: {{CLIENT}}
    circuit_breaker: {enabled: false}
  hang:
    url: "http://{{HANG}}"
    timeout: 1s
    client: {{CLIENT}}
    circuit_breaker: {enabled: false}
  storm:
    url: "http://{{STORM}}"
    timeout: 1s
    client: {{CLIENT}}
    circuit_breaker:
      consecutive_failures: 5
      interval: 10s
      open_timeout: 1s
      half_open_requests: 1
endpoints:
  - path: /soak
    timeout: 300ms
    expose_errors: true
    backends:
      - {upstream: fast, path: /fast, group: fast, required: true}
      - {upstream: hang, path: /hang, group: hang}
      - {upstream: storm, path: /storm, group: storm}
`

type soakConfig struct {
	duration    time.Duration
	conns       int
	maxRequests int64
	hang, storm float64
}

func TestSoak(t *testing.T) {
	if os.Getenv("MANIFOLD_SOAK") == "" {
		t.Skip("set MANIFOLD_SOAK=1 to run the overload soak (issue #8 item 11)")
	}
	cfg := soakConfig{
		duration:    envDuration(t, "MANIFOLD_SOAK_DURATION", 20*time.Second),
		conns:       int(envFloat(t, "MANIFOLD_SOAK_CONNS", 256)),
		maxRequests: int64(envFloat(t, "MANIFOLD_SOAK_MAX_REQUESTS", 2e6)),
		hang:        envFloat(t, "MANIFOLD_SOAK_HANG", 0.1),
		storm:       envFloat(t, "MANIFOLD_SOAK_STORM", 0.3),
	}
	if cfg.duration <= 0 || cfg.duration > maxDuration || cfg.conns < 1 || cfg.conns > 4096 || cfg.maxRequests < 1 {
		t.Fatalf("soak: duration must be in (0, %v], conns in [1, 4096], max requests >= 1", maxDuration)
	}
	clients := []string{"lean", "stdlib"}
	switch c := os.Getenv("MANIFOLD_SOAK_CLIENT"); c {
	case "", "both":
	case "lean", "stdlib":
		clients = []string{c}
	default:
		t.Fatalf("MANIFOLD_SOAK_CLIENT=%q: want lean, stdlib or both", c)
	}
	for _, client := range clients {
		t.Run(client, func(t *testing.T) { soak(t, client, cfg) })
	}
}

func soak(t *testing.T, client string, cfg soakConfig) {
	fast := startUpstream(t, "fast")
	hang := startUpstream(t, fmt.Sprintf("hang:%g", cfg.hang))
	storm := startUpstream(t, fmt.Sprintf("storm:%g", cfg.storm))
	gw := startGateway(t, strings.NewReplacer(
		"{{CLIENT}}", client, "{{FAST}}", fast.addr, "{{HANG}}", hang.addr, "{{STORM}}", storm.addr,
	).Replace(gatewayConfig))

	// The baseline is taken before any traffic: no upstream connection
	// exists yet, so it holds for either client.
	baseline := gw.goroutines(t)
	if code, body, err := get(gw.url() + "/soak"); err != nil || code != http.StatusOK {
		t.Fatalf("GET /soak before the load = %d %s (%v)", code, body, err)
	}
	load0, net0, sched0 := loadAvg(), tcpCounters(), gw.schedStat()

	res := drive(t, gw, cfg)

	net1, load1, sched1 := tcpCounters(), loadAvg(), gw.schedStat()
	afterLoad := gw.goroutines(t)
	fastOutcomes := gw.metricSeries(t, "manifold_backend_requests_total", `upstream="fast"`)
	fastDurations := gw.metricSeries(t, "manifold_backend_duration_seconds_bucket", `upstream="fast"`)
	peakRSS := gw.peakRSS()
	// With the upstreams gone, every upstream connection is closed, so
	// the stdlib transport's per-connection goroutines end too: what is
	// left must be the baseline.
	fast.stop()
	hang.stop()
	storm.stop()
	var settled int
	deadline := time.Now().Add(15 * time.Second)
	for {
		settled = gw.goroutines(t)
		if settled <= baseline || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}

	lat := res.latencies
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	t.Logf("client=%s conns=%d duration=%v load avg %s -> %s", client, cfg.conns, res.elapsed.Round(time.Millisecond), load0, load1)
	t.Logf("requests %d (%.0f rps), statuses %v, transport errors %d", len(lat), float64(len(lat))/res.elapsed.Seconds(), res.codes, res.transportErrs)
	t.Logf("latency p50 %v p90 %v p99 %v p99.9 %v max %v", pct(0.50), pct(0.90), pct(0.99), pct(0.999), lat[len(lat)-1])
	t.Logf("healthy (fast) upstream failures: %d %v (by second of the run: %v); gateway metrics for fast: %v", res.fastFailures, res.fastReasons, res.fastBySecond, fastOutcomes)
	t.Logf("fast calls by duration (gateway histogram): %s", tail(fastDurations))
	t.Logf("other backends failed: hang %v, storm %v", res.reasons["hang"], res.reasons["storm"])
	t.Logf("gateway goroutines: before %d, right after the load %d (peak seen %d), after the upstreams stopped %d; peak RSS %.1f MB",
		baseline, afterLoad, res.peakGoroutines, settled, float64(peakRSS)/(1<<20))
	t.Logf("TCP (system-wide deltas): %s", net1.sub(net0))
	t.Logf("gateway threads: %.1fs on CPU, %.1fs runnable but waiting for a CPU (kernel schedstat, all threads)",
		float64(sched1.onCPU-sched0.onCPU)/1e9, float64(sched1.waiting-sched0.waiting)/1e9)
	for _, s := range res.fastSamples {
		t.Logf("sample answer with fast failed: %s", s)
	}

	if res.fastFailures != 0 {
		t.Errorf("%d requests failed because the healthy upstream failed (want 0): %v", res.fastFailures, res.fastReasons)
	}
	if res.transportErrs != 0 {
		t.Errorf("%d client-side transport errors", res.transportErrs)
	}
	if settled > baseline {
		t.Errorf("gateway goroutines did not return to the baseline: %d before, %d 15s after the upstreams stopped", baseline, settled)
	}
}

// result is one run's tallies, from the client side.
type result struct {
	elapsed        time.Duration
	latencies      []time.Duration
	codes          map[int]int
	transportErrs  int
	fastFailures   int
	fastReasons    map[string]int
	reasons        map[string]map[string]int // backend → reason → count
	fastSamples    []string
	peakGoroutines int
	// fastBySecond counts the fast upstream's failures by the second of
	// the run in which the request started (cold start or steady state?).
	fastBySecond map[int]int
}

// drive runs cfg.conns keep-alive connections against the gateway's /soak
// for cfg.duration (or until cfg.maxRequests were sent) and tallies the
// answers. Each worker owns one connection and one goroutine.
func drive(t *testing.T, gw *gateway, cfg soakConfig) *result {
	var issued atomic.Int64
	stopAt := time.Now().Add(cfg.duration)
	parts := make([]*result, cfg.conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cfg.conns {
		parts[i] = newResult()
		wg.Go(func() { worker(gw.addr, start, stopAt, cfg.maxRequests, &issued, parts[i]) })
	}
	// Watch the gateway's goroutines while the load runs.
	peak := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	admin := gw.adminURL()
watch:
	for {
		select {
		case <-done:
			break watch
		case <-tick.C:
			if n, err := scrapeGoroutines(admin); err == nil {
				peak = max(peak, n)
			}
		}
	}
	res := newResult()
	res.elapsed = time.Since(start)
	res.peakGoroutines = peak
	for _, p := range parts {
		res.latencies = append(res.latencies, p.latencies...)
		for k, v := range p.codes {
			res.codes[k] += v
		}
		res.transportErrs += p.transportErrs
		res.fastFailures += p.fastFailures
		for k, v := range p.fastReasons {
			res.fastReasons[k] += v
		}
		for k, v := range p.fastBySecond {
			res.fastBySecond[k] += v
		}
		for b, m := range p.reasons {
			if res.reasons[b] == nil {
				res.reasons[b] = map[string]int{}
			}
			for k, v := range m {
				res.reasons[b][k] += v
			}
		}
		if len(res.fastSamples) < 5 {
			res.fastSamples = append(res.fastSamples, p.fastSamples...)
		}
	}
	if len(res.latencies) == 0 {
		t.Fatalf("no request completed (transport errors %d)", res.transportErrs)
	}
	return res
}

func newResult() *result {
	return &result{codes: map[int]int{}, fastReasons: map[string]int{}, reasons: map[string]map[string]int{}, fastBySecond: map[int]int{}}
}

var soakRequest = []byte("GET /soak HTTP/1.1\r\nHost: soak\r\nUser-Agent: manifold-soak\r\n\r\n")

// answer is what the soak reads from a response: the reasons of failed
// backends, from "_errors" (partial 200) or "error.backends" (504 etc.).
type answer struct {
	Errors map[string]string `json:"_errors"`
	Error  struct {
		Backends map[string]string `json:"backends"`
	} `json:"error"`
}

func worker(addr string, runStart, stopAt time.Time, maxRequests int64, issued *atomic.Int64, r *result) {
	var nc net.Conn
	var br *bufio.Reader
	defer func() {
		if nc != nil {
			nc.Close()
		}
	}()
	for time.Now().Before(stopAt) && issued.Add(1) <= maxRequests {
		if nc == nil {
			c, err := net.DialTimeout("tcp", addr, clientTimeout)
			if err != nil {
				r.transportErrs++
				time.Sleep(10 * time.Millisecond)
				continue
			}
			nc, br = c, bufio.NewReaderSize(c, 16<<10)
		}
		start := time.Now()
		_ = nc.SetDeadline(start.Add(clientTimeout))
		resp, body, err := roundTrip(nc, br)
		if err != nil {
			r.transportErrs++
			nc.Close()
			nc = nil
			continue
		}
		r.latencies = append(r.latencies, time.Since(start))
		r.codes[resp.StatusCode]++
		if resp.Close {
			nc.Close()
			nc = nil
		}
		if resp.StatusCode == http.StatusOK && !bytes.Contains(body, []byte(`"_errors"`)) {
			continue
		}
		var a answer
		_ = json.Unmarshal(body, &a)
		failed := a.Errors
		if failed == nil {
			failed = a.Error.Backends
		}
		for b, reason := range failed {
			if r.reasons[b] == nil {
				r.reasons[b] = map[string]int{}
			}
			r.reasons[b][reason]++
		}
		if reason, ok := failed["fast"]; ok || resp.StatusCode != http.StatusOK {
			// The fast backend is required: any other answer than 200 is
			// its failure, whatever the body says.
			if !ok {
				reason = fmt.Sprintf("status %d without a reason", resp.StatusCode)
			}
			r.fastFailures++
			r.fastReasons[reason]++
			r.fastBySecond[int(start.Sub(runStart)/time.Second)]++
			if len(r.fastSamples) < 2 {
				r.fastSamples = append(r.fastSamples, fmt.Sprintf("%d %s (after %v)", resp.StatusCode, body, time.Since(start).Round(time.Millisecond)))
			}
		}
	}
}

func roundTrip(nc net.Conn, br *bufio.Reader) (*http.Response, []byte, error) {
	if _, err := nc.Write(soakRequest); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp, body, err
}

// gateway is the running manifold process.
type gateway struct {
	cmd         *exec.Cmd
	addr, admin string
	logs        *bytes.Buffer
	logMu       *sync.Mutex
	done        chan struct{}
}

func (g *gateway) url() string      { return "http://" + g.addr }
func (g *gateway) adminURL() string { return "http://" + g.admin }

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 1<<20 {
		return len(p), nil // keep the first MB only
	}
	return w.buf.Write(p)
}

// startGateway writes cfg (with fresh ports) and runs the binary on it
// until the test ends.
func startGateway(t *testing.T, cfg string) *gateway {
	t.Helper()
	g := &gateway{addr: freeAddr(t), admin: freeAddr(t), logs: &bytes.Buffer{}, logMu: &sync.Mutex{}, done: make(chan struct{})}
	cfg = strings.NewReplacer("{{ADDR}}", g.addr, "{{ADMIN}}", g.admin).Replace(cfg)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(binary, "run", "-c", path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MANIFOLD_") {
			g.cmd.Env = append(g.cmd.Env, kv)
		}
	}
	w := lockedWriter{mu: g.logMu, buf: g.logs}
	g.cmd.Stdout, g.cmd.Stderr = w, w
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("start manifold: %v", err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.done
		if t.Failed() {
			g.logMu.Lock()
			t.Logf("manifold logs (first MB):\n%s", g.logs.String())
			g.logMu.Unlock()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, err := get(g.url() + "/__health"); err == nil && code == http.StatusOK {
			return g
		}
		select {
		case <-g.done:
			t.Fatalf("manifold exited during start-up:\n%s", g.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("manifold: /__health not 200 within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// goroutines scrapes go_goroutines from the admin listener.
func (g *gateway) goroutines(t *testing.T) int {
	t.Helper()
	n, err := scrapeGoroutines(g.adminURL())
	if err != nil {
		t.Fatalf("scrape go_goroutines: %v", err)
	}
	return n
}

func scrapeGoroutines(admin string) (int, error) {
	series, err := scrape(admin, "go_goroutines", "")
	if err != nil {
		return 0, err
	}
	for _, v := range series {
		return int(v), nil
	}
	return 0, fmt.Errorf("go_goroutines missing")
}

// metricSeries returns every series of name whose labels contain filter.
func (g *gateway) metricSeries(t *testing.T, name, filter string) map[string]float64 {
	t.Helper()
	s, err := scrape(g.adminURL(), name, filter)
	if err != nil {
		t.Fatalf("scrape %s: %v", name, err)
	}
	return s
}

func scrape(admin, name, filter string) (map[string]float64, error) {
	code, body, err := get(admin + "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d", code)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		series := line[:sp]
		base, labels, _ := strings.Cut(series, "{")
		if base != name || !strings.Contains(labels, filter) {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err == nil {
			out[labels] = v
		}
	}
	return out, nil
}

// tail summarises a duration histogram's upper buckets: how many calls
// took longer than 10ms, 50ms, 100ms and 250ms.
func tail(buckets map[string]float64) string {
	total, le := 0.0, map[string]float64{}
	for labels, v := range buckets {
		_, after, _ := strings.Cut(labels, `le="`)
		bound, _, _ := strings.Cut(after, `"`)
		le[bound] = v
		if bound == "+Inf" {
			total = v
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%.0f calls", total)
	for _, bound := range []string{"0.01", "0.05", "0.1", "0.25"} {
		fmt.Fprintf(&b, ", >%sms: %.0f", strings.TrimSuffix(strconv.FormatFloat(mustFloat(bound)*1000, 'f', -1, 64), ".0"), total-le[bound])
	}
	return b.String()
}

func mustFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// schedTimes are the kernel's per-thread scheduler statistics summed over
// the gateway's threads (/proc/PID/task/*/schedstat): nanoseconds on a CPU
// and nanoseconds runnable but waiting for one, which tells CPU starvation
// of the whole process apart from waits inside it.
type schedTimes struct{ onCPU, waiting int64 }

func (g *gateway) schedStat() schedTimes {
	var s schedTimes
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", g.cmd.Process.Pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fs := strings.Fields(string(b)); len(fs) >= 2 {
			on, _ := strconv.ParseInt(fs[0], 10, 64)
			wait, _ := strconv.ParseInt(fs[1], 10, 64)
			s.onCPU += on
			s.waiting += wait
		}
	}
	return s
}

// peakRSS is the gateway's VmHWM in bytes.
func (g *gateway) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// get is a one-shot GET on a fresh connection (no idle connection, and so
// no goroutine, is left behind in the test process or the gateway).
func get(url string) (int, []byte, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// freeAddr is a port outside the ephemeral range (see internal/freeport),
// which the soak's own thousands of connections cannot take as a source
// port before the gateway binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeport.Addr(t)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// tcpStats are the kernel's TCP counters that show dials and listen-queue
// trouble: system-wide, so other work on the machine shows in them too.
type tcpStats map[string]int64

var tcpWanted = []string{"Tcp:ActiveOpens", "Tcp:PassiveOpens", "Tcp:RetransSegs", "TcpExt:ListenOverflows", "TcpExt:ListenDrops", "TcpExt:TCPSynRetrans", "TcpExt:TCPTimeouts"}

func tcpCounters() tcpStats {
	s := tcpStats{}
	for _, f := range []string{"/proc/net/snmp", "/proc/net/netstat"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(names) != len(values) || len(names) == 0 {
				continue
			}
			prefix := names[0]
			for j := 1; j < len(names); j++ {
				v, _ := strconv.ParseInt(values[j], 10, 64)
				s[prefix+names[j]] = v
			}
		}
	}
	return s
}

func (s tcpStats) sub(old tcpStats) string {
	var b strings.Builder
	for _, k := range tcpWanted {
		fmt.Fprintf(&b, "%s +%d ", k, s[k]-old[k])
	}
	return strings.TrimSpace(b.String())
}

func envDuration(t *testing.T, key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return d
}

func envFloat(t *testing.T, key string, def float64) float64 {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return f
}
