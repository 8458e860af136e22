package e2e_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const replicaConfig = `
server:
  address: "{{ADDR}}"
  drain_delay: 1s
  shutdown_timeout: 10s
admin:
  address: "{{ADMIN}}"
log: {level: warn, format: json}
demo: true
upstreams:
  users:
    url: "{{DEMO}}"
    timeout: 2s
  orders:
    url: "{{DEMO}}"
    timeout: 2s
endpoints:
  - path: /api/profile/{id}
    timeout: 3s
    backends:
      - {upstream: users, path: "/users/{id}", group: user, allow: [id, name], required: true}
      - {upstream: orders, path: "/orders?user={id}", group: orders, target: orders, required: true}
`

// Only abnormal requests (errors, retries) are logged, to stdout.
// The check interval is 200ms and one failed check marks a server down, so
// HAProxy stops routing to a draining replica within ~200ms plus a check's
// round trip, well inside the replicas' 1s drain_delay.
const haproxyConfig = `
global
    maxconn 256
    stats socket {{SOCK}} mode 600 level admin
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    retries 3
    option redispatch
    retry-on conn-failure empty-response response-timeout 503

frontend fe
    bind {{FRONT}}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /__ready
    http-check expect status 200
    default-server inter 200ms fall 1 rise 2
    server r1 {{R1}} check
    server r2 {{R2}} check
`

// haproxy is a running haproxy child process with its stats socket.
type haproxy struct {
	sock string
	logs *syncBuffer
	done chan struct{}
}

func startHAProxy(t *testing.T, cfg, sock string) *haproxy {
	t.Helper()
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("haproxy", "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	h := &haproxy{sock: sock, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd := exec.Command("haproxy", "-f", path, "-db")
	cmd.Stdout, cmd.Stderr = h.logs, h.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	go func() { _ = cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			_ = cmd.Process.Kill()
			select {
			case <-h.done:
			case <-time.After(10 * time.Second):
				t.Errorf("haproxy pid %d did not die after SIGKILL", cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("haproxy output:\n%s", tail(h.logs.String(), 40))
		}
	})
	return h
}

// stats returns `show stat` as one map per row, keyed by column name.
func (h *haproxy) stats() ([]map[string]string, error) {
	select {
	case <-h.done:
		return nil, fmt.Errorf("haproxy exited:\n%s", h.logs.String())
	default:
	}
	conn, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(conn)
	if err != nil {
		return nil, err
	}
	raw = bytes.TrimPrefix(bytes.TrimSpace(raw), []byte("# "))
	r := csv.NewReader(bytes.NewReader(raw))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) < 2 {
		return nil, fmt.Errorf("show stat: %v: %q", err, raw)
	}
	var out []map[string]string
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, name := range rows[0] {
			if i < len(row) {
				m[name] = row[i]
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// server returns the stats row of server name in backend replicas.
func (h *haproxy) server(name string) (map[string]string, error) {
	rows, err := h.stats()
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r["pxname"] == "replicas" && r["svname"] == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("no server %s in show stat", name)
}

// waitStatus polls until HAProxy reports server name with the given
// status (UP, DOWN, ...; exact match) and returns how long it took and the
// server's stats row at that moment.
func (h *haproxy) waitStatus(t *testing.T, name, status string, timeout time.Duration) (time.Duration, map[string]string) {
	t.Helper()
	start := time.Now()
	var row map[string]string
	waitFor(t, timeout, 10*time.Millisecond, "haproxy server "+name+" "+status, func() (bool, string) {
		r, err := h.server(name)
		if err != nil {
			return false, err.Error()
		}
		row = r
		return r["status"] == status, r["status"]
	})
	return time.Since(start), row
}

func TestRollingRestartBehindHAProxy(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("haproxy not in PATH, and CI is expected to install it: %v", err)
		}
		t.Skip("haproxy not in PATH (apt-get install haproxy); skipping the rolling-restart test")
	}
	testStart := time.Now()
	var timeline []string
	event := func(format string, args ...any) {
		now := time.Now()
		s := fmt.Sprintf("%7.3fs [%s] ", now.Sub(testStart).Seconds(), now.Format("15:04:05.000")) + fmt.Sprintf(format, args...)
		timeline = append(timeline, s)
		t.Log(s)
	}

	replicas := []*proc{startManifold(t, replicaConfig), startManifold(t, replicaConfig)}
	front := freeAddr(t)
	sock := filepath.Join(t.TempDir(), "haproxy.sock")
	h := startHAProxy(t, strings.NewReplacer(
		"{{SOCK}}", sock, "{{FRONT}}", front,
		"{{R1}}", replicas[0].addr, "{{R2}}", replicas[1].addr,
	).Replace(haproxyConfig), sock)
	waitFor(t, 10*time.Second, 20*time.Millisecond, "haproxy stats socket", func() (bool, string) {
		_, err := h.stats()
		return err == nil, fmt.Sprint(err)
	})
	h.waitStatus(t, "r1", "UP", 10*time.Second)
	h.waitStatus(t, "r2", "UP", 10*time.Second)
	probe := newClient(t, false)
	waitFor(t, 10*time.Second, 20*time.Millisecond, "a request through haproxy", func() (bool, string) {
		code, body, _, err := doGet(probe, "http://"+front+"/api/profile/1", nil)
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	})
	event("haproxy up, both replicas UP")

	// Steady load: 4 keep-alive clients, bounded by a stop flag, 60s and
	// 200k requests in all.
	var (
		stop              atomic.Bool
		total, ok, failed atomic.Int64
		mu                sync.Mutex
		firstFailures     []string
		wg                sync.WaitGroup
	)
	hardStop := time.Now().Add(60 * time.Second)
	for w := range 4 {
		client := newClient(t, true)
		wg.Go(func() {
			for i := 0; !stop.Load() && time.Now().Before(hardStop) && total.Add(1) <= 200_000; i++ {
				id := (w*7919+i)%997 + 1
				code, body, resp, err := doGet(client, fmt.Sprintf("http://%s/api/profile/%d", front, id), nil)
				good := err == nil && code == http.StatusOK &&
					resp.Header.Get("X-Manifold-Completed") == "true" &&
					bytes.Contains(body, []byte(`"user":{`)) && bytes.Contains(body, []byte(`"orders":[`))
				if good {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				mu.Lock()
				if len(firstFailures) < 10 {
					firstFailures = append(firstFailures, fmt.Sprintf("%.3fs worker %d: %d %q %v",
						time.Since(testStart).Seconds(), w, code, tail(string(body), 1), err))
				}
				mu.Unlock()
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()
	// waitLoad waits for n more successful requests.
	waitLoad := func(n int64) {
		t.Helper()
		mark := ok.Load()
		waitFor(t, 15*time.Second, 10*time.Millisecond, fmt.Sprintf("%d more successful requests", n), func() (bool, string) {
			return ok.Load() >= mark+n, fmt.Sprintf("%d ok, %d failed", ok.Load()-mark, failed.Load())
		})
	}
	waitLoad(300)
	event("load running: %d ok, %d failed", ok.Load(), failed.Load())

	for i, old := range replicas {
		name := fmt.Sprintf("r%d", i+1)
		old.Signal(sigterm)
		event("%s: SIGTERM", name)
		down, row := h.waitStatus(t, name, "DOWN", 5*time.Second)
		event("%s: haproxy marked it DOWN %v after SIGTERM (check %s %s)", name, down.Round(time.Millisecond), row["check_status"], row["check_code"])
		// Taken out by its readiness answering 503, not by a refused
		// connection: the replica was still listening when HAProxy noticed.
		if row["check_status"] != "L7STS" || row["check_code"] != "503" {
			t.Errorf("%s went DOWN on check %s %s, want L7STS 503 (readiness), i.e. before its listener closed",
				name, row["check_status"], row["check_code"])
		}
		code, exited := old.Wait(15 * time.Second)
		if !exited {
			t.Fatalf("%s still running 15s after SIGTERM", name)
		}
		event("%s: exited with %d", name, code)
		if code != 0 {
			t.Fatalf("%s exit code %d after SIGTERM, want 0:\n%s", name, code, old.Logs())
		}
		if logs := strings.TrimSpace(old.Logs()); strings.Contains(logs, `"level":"ERROR"`) || strings.Contains(logs, `"level":"WARN"`) {
			t.Errorf("%s logged problems:\n%s", name, tail(logs, 20))
		}
		replicas[i] = launch(t, old.cfgPath, old.addr, old.admin)
		event("%s: restarted on the same ports, /__health 200", name)
		up, _ := h.waitStatus(t, name, "UP", 10*time.Second)
		event("%s: haproxy marked it UP %v later", name, up.Round(time.Millisecond))
		waitLoad(300)
		event("load: %d ok, %d failed", ok.Load(), failed.Load())
	}

	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(testStart)
	t.Logf("load: %d ok, %d failed in %v", ok.Load(), failed.Load(), elapsed.Round(time.Millisecond))
	var redispatched int
	for _, name := range []string{"r1", "r2", "BACKEND"} {
		if r, err := h.server(name); err == nil {
			if name == "BACKEND" {
				redispatched, _ = strconv.Atoi(r["wredis"])
			}
			t.Logf("haproxy %s: status %s, sessions %s, retries %s, redispatches %s, conn errors %s, resp errors %s, 5xx %s, down transitions %s",
				name, r["status"], r["stot"], r["wretr"], r["wredis"], r["econ"], r["eresp"], r["hrsp_5xx"], r["chkdown"])
		}
	}
	// Requests HAProxy had to retry or redispatch (the retries field of the
	// log line is "+N" when redispatched): they show where it covered for
	// the replicas.
	var abnormal []string
	for line := range strings.Lines(h.logs.String()) {
		if strings.Contains(line, "/api/profile/") {
			abnormal = append(abnormal, strings.TrimSpace(line))
		}
	}
	t.Logf("haproxy logged %d abnormal requests:\n%s", len(abnormal), strings.Join(abnormal, "\n"))
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during the rolling restart; first: %s\ntimeline:\n%s",
			failed.Load(), ok.Load()+failed.Load(), strings.Join(firstFailures, "\n"), strings.Join(timeline, "\n"))
	}
	// HAProxy's retries hide a replica that drops requests from the
	// clients, so bound how often it had to step in. When a replica gets
	// SIGTERM it closes its idle keep-alive connections at once (see the
	// report on serve.go), and HAProxy re-sends a request that raced with
	// such a close: at most one per load connection (4) per roll. A replica
	// that stopped listening before HAProxy took it out would show hundreds.
	if redispatched > 2*4 {
		t.Errorf("HAProxy redispatched %d requests away from the replicas (at most 8 expected): a replica refused or dropped requests", redispatched)
	}
	if ok.Load() < 500 {
		t.Errorf("only %d successful requests: the load did not run", ok.Load())
	}
	for i, p := range replicas {
		if logs := strings.TrimSpace(p.Logs()); logs != "" {
			t.Logf("replica r%d (restarted) logs:\n%s", i+1, tail(logs, 10))
		}
	}
}
