package e2e_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// reloadHead is the part of every reload-test config that does not change.
const reloadHead = `
server:
  address: "{{ADDR}}"
  shutdown_timeout: 5s
admin:
  address: "{{ADMIN}}"
log: {level: info, format: json}
demo: true
upstreams:
  users:
    url: "{{DEMO}}"
    timeout: 2s
endpoints:
  - path: /stable/{id}
    backends:
      - {upstream: users, path: "/users/{id}", allow: [id, name]}
`

const (
	oldEndpoint = `
  - path: /old/{id}
    backends:
      - {upstream: users, path: "/users/{id}", allow: [id]}
`
	newEndpoint = `
  - path: /new/{id}
    backends:
      - {upstream: users, path: "/users/{id}", allow: [id]}
`
	hupEndpoint = `
  - path: /hup/{id}
    backends:
      - {upstream: users, path: "/users/{id}", allow: [id]}
`
)

func statusOf(p *proc, path string) func() (bool, string) {
	return func() (bool, string) {
		code, body, err := p.get(path, nil)
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v", code, body, err)
	}
}

func TestReload(t *testing.T) {
	t.Parallel()
	t.Run("FileRewriteSwapsRoutes", func(t *testing.T) {
		t.Parallel()
		p := startManifold(t, reloadHead+oldEndpoint)
		if code, body := mustGet(t, p, "/old/1"); code != http.StatusOK {
			t.Fatalf("/old/1 before reload = %d %s", code, body)
		}
		if code, _ := mustGet(t, p, "/new/1"); code != http.StatusNotFound {
			t.Fatalf("/new/1 before reload = %d, want 404", code)
		}

		// Traffic on /stable from before the rewrite until after it took
		// effect; bounded to 2000 requests and 10s.
		var stop atomic.Bool
		var sent, bad atomic.Int64
		var mu sync.Mutex
		var firstBad []string
		var wg sync.WaitGroup
		client := newClient(t, true)
		wg.Go(func() {
			end := time.Now().Add(10 * time.Second)
			for i := 0; i < 2000 && !stop.Load() && time.Now().Before(end); i++ {
				code, body, _, err := doGet(client, fmt.Sprintf("%s/stable/%d", p.URL(), i%9+1), nil)
				sent.Add(1)
				if err != nil || code != http.StatusOK {
					bad.Add(1)
					mu.Lock()
					if len(firstBad) < 5 {
						firstBad = append(firstBad, fmt.Sprintf("#%d: %d %s %v", i, code, body, err))
					}
					mu.Unlock()
				}
			}
		})
		defer func() { stop.Store(true); wg.Wait() }()
		waitFor(t, 5*time.Second, 5*time.Millisecond, "/stable traffic to start", func() (bool, string) {
			return sent.Load() >= 20, fmt.Sprint(sent.Load(), " sent")
		})

		before := sent.Load()
		writeAtomic(t, p.cfgPath, p.Render(reloadHead+newEndpoint))
		waitFor(t, 5*time.Second, 20*time.Millisecond, "/new/1 to answer 200", statusOf(p, "/new/1"))
		// The swap is atomic: once /new serves, /old is gone.
		if code, body := mustGet(t, p, "/old/1"); code != http.StatusNotFound {
			t.Errorf("/old/1 after /new/1 served = %d %s, want 404", code, body)
		}
		during := sent.Load() - before
		mark := sent.Load()
		waitFor(t, 5*time.Second, 5*time.Millisecond, "/stable traffic after the reload", func() (bool, string) {
			return sent.Load() >= mark+20 || stop.Load(), fmt.Sprint(sent.Load()-mark, " sent after")
		})
		stop.Store(true)
		wg.Wait()
		t.Logf("/stable: %d requests, %d during the reload, %d not 200", sent.Load(), during, bad.Load())
		if bad.Load() != 0 {
			t.Errorf("/stable: %d of %d requests failed across the reload, first: %v", bad.Load(), sent.Load(), firstBad)
		}
		if v, _, _ := p.Metric("manifold_config_reloads_total", `result="success"`); v != 1 {
			t.Errorf(`manifold_config_reloads_total{result="success"} = %v, want 1`, v)
		}
		if _, ok, _ := p.Metric("manifold_config_reloads_total", `result="failure"`); ok {
			t.Errorf(`manifold_config_reloads_total{result="failure"} present after a valid reload`)
		}
	})

	t.Run("InvalidEditKeepsRunningConfig", func(t *testing.T) {
		t.Parallel()
		p := startManifold(t, reloadHead+oldEndpoint)
		// An unknown key under upstreams.users.
		bad := strings.Replace(reloadHead, "    timeout: 2s\n", "    timeout: 2s\n    retries: 3\n", 1) + newEndpoint
		if bad == reloadHead+newEndpoint {
			t.Fatal("test bug: the invalid edit did not apply")
		}
		writeAtomic(t, p.cfgPath, p.Render(bad))
		p.waitMetric(5*time.Second, "a failed reload",
			func(v float64, ok bool) bool { return ok && v == 1 }, "manifold_config_reloads_total", `result="failure"`)

		waitFor(t, 2*time.Second, 20*time.Millisecond, "the problem, with its YAML path, in the logs", func() (bool, string) {
			for _, l := range p.JSONLogs() {
				prob, _ := l["problem"].(string)
				if l["level"] == "ERROR" && strings.Contains(prob, "upstreams.users.retries") && strings.Contains(prob, "unknown key") {
					return true, prob
				}
			}
			return false, tail(p.Logs(), 5)
		})
		for path, want := range map[string]int{"/old/1": 200, "/stable/1": 200, "/new/1": 404} {
			if code, body := mustGet(t, p, path); code != want {
				t.Errorf("%s after a refused reload = %d %s, want %d", path, code, body, want)
			}
		}
		if _, ok, _ := p.Metric("manifold_config_reloads_total", `result="success"`); ok {
			t.Errorf(`manifold_config_reloads_total{result="success"} present after a refused reload`)
		}
	})

	t.Run("SIGHUP", func(t *testing.T) {
		t.Parallel()
		// The config path is a symlink into another directory, and the edit
		// is made in place on the target: the file watcher (which watches
		// the symlink's directory) sees no event, so only SIGHUP can
		// load the edit.
		addr, admin := freeAddr(t), freeAddr(t)
		target := filepath.Join(t.TempDir(), "real.yaml")
		link := filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(target, []byte(render(reloadHead+oldEndpoint, addr, admin)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		p := launch(t, link, addr, admin)
		if err := os.WriteFile(target, []byte(p.Render(reloadHead+oldEndpoint+hupEndpoint)), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _ := mustGet(t, p, "/hup/1"); code != http.StatusNotFound {
			t.Fatalf("/hup/1 answered %d before SIGHUP", code)
		}
		p.Signal(syscall.SIGHUP)
		waitFor(t, 5*time.Second, 20*time.Millisecond, "/hup/1 to answer 200 after SIGHUP", statusOf(p, "/hup/1"))
		if v, _, _ := p.Metric("manifold_config_reloads_total", `result="success"`); v != 1 {
			t.Errorf(`manifold_config_reloads_total{result="success"} = %v after SIGHUP, want 1`, v)
		}
		var triggers []string
		for _, l := range p.JSONLogs() {
			if l["msg"] == "config reloaded" {
				triggers = append(triggers, fmt.Sprint(l["trigger"]))
			}
		}
		if len(triggers) != 1 || triggers[0] != "SIGHUP" {
			t.Errorf(`"config reloaded" triggers = %q, want [SIGHUP]`, triggers)
		}
		if code, _ := mustGet(t, p, "/old/1"); code != http.StatusOK {
			t.Errorf("/old/1 after SIGHUP = %d, want 200", code)
		}
	})

	t.Run("BreakerStateKeptAcrossReload", func(t *testing.T) {
		t.Parallel()
		var hits atomic.Int64
		flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":"always failing"}`))
		}))
		t.Cleanup(flaky.Close)

		cfg := func(flakyTimeout string, extra bool) string {
			s := strings.Replace(reloadHead, "endpoints:\n", fmt.Sprintf(`  flaky:
    url: %q
    timeout: %s
    circuit_breaker: {consecutive_failures: 2, open_timeout: 1m}
endpoints:
  - path: /combo/{id}
    expose_errors: true
    backends:
      - {upstream: users, path: "/users/{id}", group: user, allow: [id]}
      - {upstream: flaky, path: "/things/{id}", group: flaky}
`, flaky.URL, flakyTimeout), 1)
			if extra {
				s += newEndpoint
			}
			return s
		}
		p := startManifold(t, cfg("1s", false))

		// combo calls /combo/1 and returns the flaky entry of "_errors".
		combo := func() string {
			t.Helper()
			code, body := mustGet(t, p, "/combo/1")
			var r struct {
				Errors map[string]string `json:"_errors"`
			}
			if code != http.StatusOK || json.Unmarshal(body, &r) != nil {
				t.Fatalf("/combo/1 = %d %s, want a 200 partial answer", code, body)
			}
			return r.Errors["flaky"]
		}
		state := func() float64 {
			t.Helper()
			v, ok, err := p.Metric("manifold_circuit_state", `upstream="flaky"`)
			if err != nil || !ok {
				t.Fatalf(`manifold_circuit_state{upstream="flaky"} missing (%v)`, err)
			}
			return v
		}

		if s := state(); s != 0 {
			t.Fatalf("breaker state at start = %v, want 0", s)
		}
		for i := range 2 {
			if got := combo(); got != "status 500" {
				t.Fatalf("request %d: _errors.flaky = %q, want status 500", i+1, got)
			}
		}
		if got := combo(); got != "circuit open" {
			t.Fatalf(`third request: _errors.flaky = %q, want "circuit open"`, got)
		}
		if h := hits.Load(); h != 2 {
			t.Fatalf("flaky server hits = %d after the breaker opened, want 2", h)
		}
		if s := state(); s != 2 {
			t.Fatalf("breaker state after 2 failures = %v, want 2 (open)", s)
		}

		// Reload 1: an unrelated endpoint; flaky is unchanged.
		writeAtomic(t, p.cfgPath, p.Render(cfg("1s", true)))
		waitFor(t, 5*time.Second, 20*time.Millisecond, "/new/1 after reload 1", statusOf(p, "/new/1"))
		if s := state(); s != 2 {
			t.Errorf("breaker state after an unrelated reload = %v, want 2 (kept open)", s)
		}
		if got := combo(); got != "circuit open" {
			t.Errorf(`after an unrelated reload: _errors.flaky = %q, want "circuit open"`, got)
		}
		if h := hits.Load(); h != 2 {
			t.Errorf("flaky server hits = %d after an unrelated reload, want still 2", h)
		}

		// Reload 2: flaky's timeout changes, so it gets a fresh breaker.
		writeAtomic(t, p.cfgPath, p.Render(cfg("1500ms", true)))
		p.waitMetric(5*time.Second, "reload 2",
			func(v float64, ok bool) bool { return ok && v == 2 }, "manifold_config_reloads_total", `result="success"`)
		if s := state(); s != 0 {
			t.Errorf("breaker state after flaky changed = %v, want 0 (fresh, closed)", s)
		}
		if got := combo(); got != "status 500" {
			t.Errorf("after flaky changed: _errors.flaky = %q, want status 500 (call reached the server)", got)
		}
		if h := hits.Load(); h != 3 {
			t.Errorf("flaky server hits = %d after flaky changed, want 3", h)
		}
	})
}
