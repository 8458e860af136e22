// Package e2e_test runs the real, release-built manifold binary as a child
// process and checks its operational behaviour from the outside: draining on
// SIGTERM, reloads, access logs, the CLI subcommands and a rolling restart
// behind HAProxy. Everything listens on 127.0.0.1 only.
//
// Each test starts its own processes on fresh ports, and most of its time
// is spent waiting on real timers (drain_delay, idle_timeout, slow demo
// answers, HAProxy's checks), so the tests run in parallel (t.Parallel)
// and their waits overlap instead of adding up.
package e2e_test

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
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/manifold-gw/manifold/internal/freeport"
)

// binary is the manifold executable built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	tmp, err := os.MkdirTemp("", "manifold-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	binary = filepath.Join(tmp, "manifold")
	// The package directory is <root>/e2e; build exactly as a release does.
	root, err := filepath.Abs("..")
	if err == nil {
		cmd := releaseBuild(filepath.Join(root, "scripts", "build.sh"), binary)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "VERSION=e2e")
		var out []byte
		out, err = cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("scripts/build.sh: %v\n%s", err, out)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build: %v\n", err)
		_ = os.RemoveAll(tmp)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { _ = os.RemoveAll(tmp) }))
}

// releaseBuild returns the command that runs the release build script to
// write out. The root package's TestImageRuns builds the same binary with
// the same script, and go test runs the two packages at once; on a cold
// build cache two concurrent builds each compile every package (the cache
// does not share work in progress between processes), twice the CPU for
// one result. Both builds therefore take the same lock (flock(1), where it
// exists): whichever comes second links from a warm cache in about a
// second. The lock goes with the flock process, however the build ends.
func releaseBuild(script, out string) *exec.Cmd {
	if flock, err := exec.LookPath("flock"); err == nil {
		return exec.Command(flock, filepath.Join(os.TempDir(), "manifold-release-build.lock"), script, out)
	}
	return exec.Command(script, out)
}

// syncBuffer is a bytes.Buffer safe for the exec copier and test readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one running manifold process.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	cfgPath string
	addr    string // main listener host:port
	admin   string // admin listener host:port
	logs    *syncBuffer
	done    chan struct{} // closed once the process has exited
	exitAt  time.Time     // valid after done
	state   *os.ProcessState
	client  *http.Client
}

// freeAddr returns a loopback address for a process the test starts: one
// outside the kernel's ephemeral range (see internal/freeport), so no
// outgoing connection of a test running in parallel can take it as its
// source port before the process binds it.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeport.Addr(t)
}

// render fills a config template: {{ADDR}} the main listener, {{ADMIN}} the
// admin listener, {{DEMO}} the process's own demo upstreams.
func render(tmpl, addr, admin string) string {
	return strings.NewReplacer(
		"{{ADDR}}", addr,
		"{{ADMIN}}", admin,
		"{{DEMO}}", "http://"+addr+"/__demo",
	).Replace(tmpl)
}

// startManifold writes the config template (rendered with fresh ports) to
// t.TempDir()/config.yaml and starts manifold on it.
func startManifold(t *testing.T, tmpl string) *proc {
	t.Helper()
	addr, admin := freeAddr(t), freeAddr(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(render(tmpl, addr, admin)), 0o644); err != nil {
		t.Fatal(err)
	}
	return launch(t, path, addr, admin)
}

// launch starts `manifold run -c path` and waits until its /__health
// answers 200 and its admin listener, if the config has one, accepts
// connections. The process is killed (if still running) and reaped when
// the test ends, whatever its outcome.
func launch(t *testing.T, path, addr, admin string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, "run", "-c", path)
	cmd.Env = append(cleanEnv(), env...) // appended, so they win
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	p := &proc{t: t, cmd: cmd, cfgPath: path, addr: addr, admin: admin, logs: logs,
		done: make(chan struct{}), client: newClient(t, false)}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start manifold: %v", err)
	}
	go func() {
		_ = cmd.Wait()
		p.exitAt = time.Now()
		p.state = cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("manifold pid %d did not die after SIGKILL", cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("manifold pid %d (%s) logs:\n%s", cmd.Process.Pid, addr, tail(logs.String(), 60))
		}
	})
	// The admin listener opens just after the main one, so /__health alone
	// would let a test scrape /metrics before anything listens there (a
	// race that a loaded machine loses): when the config names the admin
	// address (or env sets it), start-up also waits for it to accept
	// connections.
	cfg, _ := os.ReadFile(path)
	waitAdmin := admin != "" && (strings.Contains(string(cfg), admin) || slices.Contains(env, "MANIFOLD_ADMIN_ADDRESS="+admin))
	healthy := false
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("manifold exited during start-up (%v):\n%s", p.state, logs.String())
		default:
		}
		if !healthy {
			code, _, err := p.get("/__health", nil)
			healthy = err == nil && code == http.StatusOK
		}
		if healthy && (!waitAdmin || accepts(admin)) {
			return p
		}
		if time.Now().After(deadline) {
			if healthy {
				t.Fatalf("manifold on %s: admin listener %s not accepting connections within 10s:\n%s", addr, admin, logs.String())
			}
			t.Fatalf("manifold on %s: /__health not 200 within 10s:\n%s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// accepts reports whether a listener accepts connections at addr.
func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// cleanEnv is the test's environment without anything that would override
// the config file.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MANIFOLD_") || strings.HasPrefix(kv, "DEMO_URL=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (p *proc) URL() string      { return "http://" + p.addr }
func (p *proc) AdminURL() string { return "http://" + p.admin }
func (p *proc) Logs() string     { return p.logs.String() }

// Render fills a config template with this process's ports.
func (p *proc) Render(tmpl string) string { return render(tmpl, p.addr, p.admin) }

func (p *proc) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v to pid %d: %v", sig, p.cmd.Process.Pid, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit
// code (-1 when a signal killed it); ok is false on timeout.
func (p *proc) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.state.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// get requests a path on the main listener with the process's own client.
func (p *proc) get(path string, hdr http.Header) (int, []byte, error) {
	code, body, _, err := doGet(p.client, p.URL()+path, hdr)
	return code, body, err
}

// newClient returns a client whose idle connections are closed when the
// test ends (goleak would otherwise see their goroutines).
func newClient(t *testing.T, keepAlive bool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// doGet GETs url and reads the whole body.
func doGet(c *http.Client, url string, hdr http.Header) (int, []byte, *http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp, err
}

// mustGet GETs a path of p and fails the test on a transport error.
func mustGet(t *testing.T, p *proc, path string) (int, []byte) {
	t.Helper()
	code, body, err := p.get(path, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return code, body
}

// waitFor polls cond every interval until it holds or timeout passes; cond
// returns a description of what it saw, used in the failure message.
func waitFor(t *testing.T, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last saw: %s", timeout, what, saw)
		}
		time.Sleep(interval)
	}
}

// Metric scrapes the admin /metrics and returns the value of the series
// name{labels...}, each label written as `key="value"`; ok is false when
// the series is absent.
func (p *proc) Metric(name string, labels ...string) (v float64, ok bool, err error) {
	_, body, _, err := doGet(p.client, p.AdminURL()+"/metrics", nil)
	if err != nil {
		return 0, false, err
	}
	v, ok = metricValue(string(body), name, labels...)
	return v, ok, nil
}

// metricValue finds one series in Prometheus text exposition.
func metricValue(text, name string, labels ...string) (float64, bool) {
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, val := line[:sp], line[sp+1:]
		lbls := ""
		if i := strings.IndexByte(series, '{'); i >= 0 {
			series, lbls = series[:i], series[i:]
		}
		if series != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(lbls, l) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		return f, true
	}
	return 0, false
}

// waitMetric polls a series until want(value) holds.
func (p *proc) waitMetric(timeout time.Duration, what string, want func(float64, bool) bool, name string, labels ...string) {
	p.t.Helper()
	waitFor(p.t, timeout, 20*time.Millisecond, what, func() (bool, string) {
		v, ok, err := p.Metric(name, labels...)
		if err != nil {
			return false, err.Error()
		}
		return want(v, ok), fmt.Sprintf("%s%v = %v (present %v)", name, labels, v, ok)
	})
}

// JSONLogs parses the process's JSON log lines (other lines are skipped).
func (p *proc) JSONLogs() []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// writeAtomic replaces path the way editors save: write a temporary file in
// the same directory, then rename it over the original.
var tmpSeq atomic.Int64

func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), tmpSeq.Add(1)))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// runCLI runs the binary with args (bounded to 10s) and returns its exit
// code and outputs.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = cleanEnv()
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("manifold %v did not finish within 10s", args)
	}
	return cmd.ProcessState.ExitCode(), so.String(), se.String()
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = append([]string{fmt.Sprintf("... (%d earlier lines)", len(all)-lines)}, all[len(all)-lines:]...)
	}
	return strings.Join(all, "\n")
}

// sigterm is a shorthand used by several tests.
var sigterm os.Signal = syscall.SIGTERM
