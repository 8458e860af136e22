package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// run reads the process environment: keep the tests hermetic.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "MANIFOLD_") {
			os.Unsetenv(name)
		}
	}
	goleak.VerifyTestMain(m)
}

const validConfig = `server: {address: "127.0.0.1:18080"}
admin: {address: ""}
upstreams:
  users: {url: "http://users.test"}
  orders: {url: "http://orders.test"}
endpoints:
  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{id}"}
      - {upstream: orders, path: "/orders?user={id}"}
`

// brokenConfig has four problems, listed in brokenPaths in file order.
const brokenConfig = `server:
  address: ":8080"
  read_timeout: 30
upstreams:
  users: {url: "ftp://users.test"}
  orders: {url: "http://orders.test"}
endpoints:
  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{uid}"}
  - path: /o/{id}
    backends:
      - {upstream: ordrs, path: "/orders/{id}"}
`

var brokenPaths = []string{
	"server.read_timeout",
	"upstreams.users.url",
	"endpoints[0].backends[0].path",
	"endpoints[1].backends[0].upstream",
}

func writeConfig(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// checkProblemLines asserts that text is exactly one line per problem of
// brokenConfig, each "FILE: path: message".
func checkProblemLines(t *testing.T, text, file string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != len(brokenPaths) {
		t.Fatalf("%d lines, want %d (one per problem):\n%s", len(lines), len(brokenPaths), text)
	}
	for i, line := range lines {
		prefix := file + ": " + brokenPaths[i] + ": "
		if !strings.HasPrefix(line, prefix) || len(line) == len(prefix) {
			t.Errorf("line %d = %q, want %q and a message", i, line, prefix)
		}
	}
	if want := `unknown upstream "ordrs" (known: orders, users)`; !strings.HasSuffix(lines[3], want) {
		t.Errorf("line 3 = %q, want it to end with %q", lines[3], want)
	}
}

func TestCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	valid := writeConfig(t, dir, "valid.yaml", validConfig)
	broken := writeConfig(t, dir, "broken.yaml", brokenConfig)
	missing := filepath.Join(dir, "missing.yaml")

	t.Run("check valid", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{"check", "-c", valid},
			{"check", "--config", valid},
			{"-c", valid, "check"},
			{"check", "--config=" + valid},
		} {
			code, stdout, stderr := runCLI(args...)
			if code != 0 {
				t.Errorf("%q: exit %d, want 0; stderr:\n%s", args, code, stderr)
			}
			if stderr != "" {
				t.Errorf("%q: stderr = %q, want nothing", args, stderr)
			}
			if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
				t.Errorf("%q: stdout = %q, want one line", args, stdout)
			}
			for _, want := range []string{valid + ": ", "2 upstreams", "1 endpoint", "127.0.0.1:18080"} {
				if !strings.Contains(stdout, want) {
					t.Errorf("%q: summary %q does not contain %q", args, stdout, want)
				}
			}
		}
	})
	t.Run("check broken", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI("check", "-c", broken)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if stdout != "" {
			t.Errorf("stdout = %q, want nothing", stdout)
		}
		checkProblemLines(t, stderr, broken)
	})
	t.Run("run refuses a broken file before listening", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI("run", "-c", broken)
		if code != 1 || stdout != "" {
			t.Errorf("exit %d stdout %q, want 1 and nothing", code, stdout)
		}
		checkProblemLines(t, stderr, broken)
	})
	t.Run("check missing file", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI("check", "-c", missing)
		if code != 1 || stdout != "" {
			t.Errorf("exit %d stdout %q, want 1 and nothing", code, stdout)
		}
		want := missing + `: cannot read the config file: no such file or directory
  Manifold reads the first of:
  -> -c/--config FILE   ` + missing + `: not found
     $MANIFOLD_CONFIG   not read: -c wins
     ./config.yaml      not read: -c wins
  Name the file with -c FILE or MANIFOLD_CONFIG=FILE; "manifold --help" shows an example.
`
		if stderr != want {
			t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
		}
	})
	t.Run("version", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runCLI("version")
		if code != 0 || stdout != "manifold dev\n" || stderr != "" {
			t.Errorf("exit %d stdout %q stderr %q; want 0, \"manifold dev\\n\", nothing", code, stdout, stderr)
		}
	})

	usage := []struct {
		name     string
		args     []string
		code     int
		inStderr []string
	}{
		{"unknown command", []string{"serve"}, 2, []string{`manifold: unknown command "serve"`, `Run "manifold --help" for the commands.`}},
		{"unknown command with file", []string{"chek", "-c", valid}, 2, []string{`unknown command "chek" (did you mean "check"?)`}},
		{"extra argument", []string{"check", "extra"}, 2, []string{`manifold check: unexpected argument "extra"`, `Run "manifold check --help" for usage.`}},
		{"unknown flag", []string{"check", "--nope"}, 2, []string{"manifold check: unknown flag: --nope"}},
		{"flag of another command", []string{"check", "--url", "http://x"}, 2, []string{"manifold check: unknown flag: --url"}},
		{"version is not a check flag", []string{"check", "-v"}, 2, []string{"manifold check: unknown shorthand flag: 'v'"}},
		{"flag without value", []string{"check", "-c"}, 2, []string{"argument"}},
		{"help for an unknown command", []string{"help", "serve"}, 2, []string{`manifold help: unknown command "serve"`}},
		{"help takes one command", []string{"help", "check", "run"}, 2, []string{`manifold help: unexpected argument "run"`}},
	}
	for _, tc := range usage {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			for _, w := range tc.inStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestCLIHealth(t *testing.T) {
	t.Parallel()
	var status atomic.Int32
	status.Store(http.StatusOK)
	var lastPath atomic.Value
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastPath.Store(r.URL.Path)
		w.WriteHeader(int(status.Load()))
		fmt.Fprint(w, `{"status":"ok"}`)
	}))
	defer ts.Close()
	addr := ts.Listener.Addr().String()
	cfg := writeConfig(t, t.TempDir(), "c.yaml", strings.Replace(validConfig, "127.0.0.1:18080", addr, 1))

	code, stdout, stderr := runCLI("health", "--url", ts.URL+"/custom")
	if code != 0 || stdout != "{\"status\":\"ok\"}\n" || lastPath.Load() != "/custom" {
		t.Errorf("health --url: exit %d stdout %q stderr %q path %v", code, stdout, stderr, lastPath.Load())
	}
	code, stdout, stderr = runCLI("health", "-c", cfg)
	if code != 0 || lastPath.Load() != "/__health" {
		t.Errorf("health -c (server.address %s): exit %d stdout %q stderr %q path %v", addr, code, stdout, stderr, lastPath.Load())
	}
	status.Store(http.StatusServiceUnavailable)
	code, _, stderr = runCLI("health", "-c", cfg)
	if code != 1 || !strings.Contains(stderr, "503") {
		t.Errorf("health against a 503: exit %d stderr %q, want 1 naming the status", code, stderr)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	if code, _, _ := runCLI("health", "--url", closedURL+"/__health"); code != 1 {
		t.Errorf("health with nothing listening: exit %d, want 1", code)
	}
}

// The environment is read by run: these tests cannot be parallel.
func TestCLIEnvironment(t *testing.T) {
	dir := t.TempDir()
	valid := writeConfig(t, dir, "valid.yaml", validConfig)
	broken := writeConfig(t, dir, "broken.yaml", brokenConfig)

	t.Run("MANIFOLD_CONFIG when -c is absent", func(t *testing.T) {
		t.Setenv("MANIFOLD_CONFIG", broken)
		code, _, stderr := runCLI("check")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		checkProblemLines(t, stderr, broken)
	})
	t.Run("a missing MANIFOLD_CONFIG is named as the source", func(t *testing.T) {
		missing := filepath.Join(dir, "gone.yaml")
		t.Setenv("MANIFOLD_CONFIG", missing)
		code, _, stderr := runCLI("check")
		want := missing + `: cannot read the config file: no such file or directory
  Manifold reads the first of:
     -c/--config FILE   not given
  -> $MANIFOLD_CONFIG   ` + missing + `: not found
     ./config.yaml      not read: $MANIFOLD_CONFIG wins
  Name the file with -c FILE or MANIFOLD_CONFIG=FILE; "manifold --help" shows an example.
`
		if code != 1 || stderr != want {
			t.Errorf("exit %d stderr:\n%s\nwant 1 and:\n%s", code, stderr, want)
		}
	})
	t.Run("no ./config.yaml says where it looked", func(t *testing.T) {
		d := t.TempDir()
		t.Chdir(d)
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{}, {"run"}, {"check"}} {
			code, stdout, stderr := runCLI(args...)
			want := `config.yaml: cannot read the config file: no such file or directory
  Manifold reads the first of:
     -c/--config FILE   not given
     $MANIFOLD_CONFIG   not set
  -> ./config.yaml      not found in ` + wd + `
  Name the file with -c FILE or MANIFOLD_CONFIG=FILE; "manifold --help" shows an example.
`
			if code != 1 || stdout != "" || stderr != want {
				t.Errorf("%q: exit %d stdout %q stderr:\n%s\nwant 1 and:\n%s", args, code, stdout, stderr, want)
			}
		}
	})
	t.Run("-c beats MANIFOLD_CONFIG", func(t *testing.T) {
		t.Setenv("MANIFOLD_CONFIG", broken)
		code, stdout, stderr := runCLI("check", "-c", valid)
		if code != 0 || !strings.HasPrefix(stdout, valid+": ") {
			t.Errorf("exit %d stdout %q stderr %q, want 0 and a summary of %s", code, stdout, stderr, valid)
		}
	})
	t.Run("MANIFOLD_* overrides reach check", func(t *testing.T) {
		t.Setenv("MANIFOLD_SERVER_ADDRESS", "127.0.0.1:19999")
		code, stdout, _ := runCLI("check", "-c", valid)
		if code != 0 || !strings.Contains(stdout, "127.0.0.1:19999") || strings.Contains(stdout, "18080") {
			t.Errorf("exit %d stdout %q, want the overridden address", code, stdout)
		}
	})
	t.Run("a misspelled MANIFOLD_* variable warns with the real name", func(t *testing.T) {
		t.Setenv("MANIFOLD_SERVER_ADRESS", ":9000")
		code, stdout, stderr := runCLI("check", "-c", valid)
		want := valid + ": warning: MANIFOLD_SERVER_ADRESS is not a config key; did you mean MANIFOLD_SERVER_ADDRESS?\n"
		if code != 0 || stderr != want || !strings.Contains(stdout, "127.0.0.1:18080") {
			t.Errorf("exit %d stdout %q stderr %q\nwant 0, the file's address and stderr %q", code, stdout, stderr, want)
		}
		code, _, stderr = runCLI("check", "-c", broken)
		if code != 1 || !strings.HasPrefix(stderr, broken+": warning: MANIFOLD_SERVER_ADRESS") {
			t.Errorf("refused file: exit %d stderr %q, want 1 and the warning first", code, stderr)
		}
	})
	t.Run("bad override is a problem", func(t *testing.T) {
		t.Setenv("MANIFOLD_SERVER_MAX_BODY_BYTES", "abc")
		code, _, stderr := runCLI("check", "-c", valid)
		if code != 1 || !strings.HasPrefix(stderr, valid+": server.max_body_bytes: from $MANIFOLD_SERVER_MAX_BODY_BYTES: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("exit %d stderr %q, want 1 and one problem at server.max_body_bytes", code, stderr)
		}
	})
	t.Run("./config.yaml by default, names as given", func(t *testing.T) {
		d := t.TempDir()
		writeConfig(t, d, "config.yaml", `upstreams:
  users: {url: "http://users.test"}
  orders: {url: "http://orders.test"}
endpoints:
  - path: /api/users/{id}
    backends:
      - {upstream: users, path: "/users/{id}"}
  - path: /api/orders/{id}
    backends:
      - {upstream: ordrs, path: "/orders/{id}"}
`)
		t.Chdir(d)
		code, stdout, stderr := runCLI("check")
		const want = `config.yaml: endpoints[1].backends[0].upstream: unknown upstream "ordrs" (known: orders, users)` + "\n"
		if code != 1 || stdout != "" || stderr != want {
			t.Errorf("exit %d stdout %q stderr %q\nwant exit 1 and stderr %q", code, stdout, stderr, want)
		}
		code, _, stderr = runCLI("check", "-c", "./config.yaml")
		if code != 1 || !strings.HasPrefix(stderr, "./config.yaml: endpoints[1]") {
			t.Errorf("exit %d stderr %q, want the file named ./config.yaml as given", code, stderr)
		}
	})
}

// ---- the real binary ----

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
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

func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "manifold")
	// The release build, under the same lock as e2e's and TestImageRuns':
	// with the same flags it links from their cache instead of compiling
	// every package a third time.
	cmd := releaseBuild("./scripts/build.sh", bin)
	cmd.Env = append(os.Environ(), "VERSION=dev")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("process did not run: %v", err)
	return -1
}

func TestBinary(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()

	t.Run("check broken", func(t *testing.T) {
		t.Parallel()
		broken := writeConfig(t, dir, "broken.yaml", brokenConfig)
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "check", "-c", broken)
		cmd.Env = os.Environ()
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if code := exitCode(t, cmd.Run()); code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		if stdout.Len() != 0 {
			t.Errorf("stdout = %q, want nothing", stdout.String())
		}
		checkProblemLines(t, stderr.String(), broken)
	})

	t.Run("check valid and version", func(t *testing.T) {
		t.Parallel()
		valid := writeConfig(t, dir, "valid.yaml", validConfig)
		out, err := exec.Command(bin, "check", "-c", valid).Output()
		if code := exitCode(t, err); code != 0 || !strings.HasPrefix(string(out), valid+": ") {
			t.Errorf("check: exit %d stdout %q", code, out)
		}
		out, err = exec.Command(bin, "version").Output()
		if code := exitCode(t, err); code != 0 || string(out) != "manifold dev\n" {
			t.Errorf("version: exit %d stdout %q", code, out)
		}
		if code := exitCode(t, exec.Command(bin, "frobnicate").Run()); code != 2 {
			t.Errorf("unknown command: exit %d, want 2", code)
		}
	})

	t.Run("MANIFOLD_SERVER_ADDRESS moves the listener", func(t *testing.T) {
		t.Parallel()
		var upstreamHits atomic.Int32
		upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			upstreamHits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
		}))
		defer upstream.Close()

		filePort, envPort := freePort(t), freePort(t)
		cfgPath := writeConfig(t, dir, "run.yaml", fmt.Sprintf(`server:
  address: "127.0.0.1:%d"
  shutdown_timeout: 5s
admin:
  address: ""
log: {level: info, format: text}
demo: true
upstreams:
  users: {url: %q}
endpoints:
  - path: /api/users/{id}
    backends:
      - {upstream: users, path: "/users/{id}", group: user}
`, filePort, upstream.URL))

		var stdout, stderr syncBuffer
		cmd := exec.Command(bin, "run", "-c", cfgPath)
		cmd.Env = append(os.Environ(), fmt.Sprintf("MANIFOLD_SERVER_ADDRESS=127.0.0.1:%d", envPort))
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		exited := false
		defer func() {
			if !exited {
				_ = cmd.Process.Kill()
				<-done
			}
		}()

		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
		get := func(url string) (int, string, error) {
			resp, err := client.Get(url)
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body), err
		}

		base := fmt.Sprintf("http://127.0.0.1:%d", envPort)
		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
	poll:
		for {
			status, body, err := get(base + "/__health")
			if err == nil && status == http.StatusOK {
				if !strings.Contains(body, `"ok"`) {
					t.Errorf("/__health body = %q", body)
				}
				break poll
			}
			select {
			case err := <-done:
				exited = true
				t.Fatalf("manifold exited before serving: %v\nstderr:\n%s", err, stderr.String())
			case <-deadline:
				t.Fatalf("/__health on the overridden port never answered 200 (last: %d %v)\nstderr:\n%s", status, err, stderr.String())
			case <-tick.C:
			}
		}

		// Nothing listens on the address written in the file.
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", filePort), time.Second); err == nil {
			c.Close()
			t.Errorf("something listens on the file's address 127.0.0.1:%d despite the override", filePort)
		}
		// The configured route is served and reaches the upstream.
		status, body, err := get(base + "/api/users/7")
		if err != nil || status != http.StatusOK || !strings.Contains(body, "/users/7") || upstreamHits.Load() != 1 {
			t.Errorf("GET /api/users/7 = %d %q %v (upstream hits %d), want 200 with the upstream's answer", status, body, err, upstreamHits.Load())
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			exited = true
			if code := exitCode(t, err); code != 0 {
				t.Errorf("exit code after SIGTERM = %d (%v), want 0\nstderr:\n%s", code, err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("manifold did not exit within 10s of SIGTERM\nstderr:\n%s", stderr.String())
		}
		if stdout.String() != "" {
			t.Errorf("stdout = %q, want nothing (logs go to stderr)", stdout.String())
		}
	})
}
