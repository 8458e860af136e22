package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// No Docker engine runs here or in CI, so the image's defaults are checked
// by reading the Dockerfile: its final stage's ENV, COPY, EXPOSE, ENTRYPOINT,
// CMD and HEALTHCHECK, and by running the binary the way the image would.

// dockerStage is what the final stage of the Dockerfile sets.
type dockerStage struct {
	env         map[string]string
	envOrder    []string
	copies      [][2]string // [source in the build context, destination]
	expose      []string
	entrypoint  []string
	cmd         []string
	healthcheck []string
	runs        []string // RUN lines of every stage
}

// readDockerfile parses the subset of Dockerfile syntax ours uses: line
// continuations, comments, ENV key=value pairs, COPY (ignoring --from
// copies between stages), EXPOSE, and exec-form ENTRYPOINT, CMD and
// HEALTHCHECK ... CMD.
func readDockerfile(t *testing.T, path string) dockerStage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var instrs []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue // a comment inside a continued instruction
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		instrs = append(instrs, cur.String())
		cur.Reset()
	}
	var st dockerStage
	execForm := func(s string) []string {
		var out []string
		if err := json.Unmarshal([]byte(strings.TrimSpace(s)), &out); err != nil {
			t.Fatalf("Dockerfile: %q is not an exec-form list: %v", s, err)
		}
		return out
	}
	for _, in := range instrs {
		op, rest, _ := strings.Cut(in, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(op) {
		case "FROM":
			runs := st.runs
			st = dockerStage{env: map[string]string{}, runs: runs}
		case "RUN":
			st.runs = append(st.runs, rest)
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: ENV %q: use key=value", kv)
				}
				st.env[k] = strings.Trim(v, `"`)
				st.envOrder = append(st.envOrder, k)
			}
		case "COPY":
			f := strings.Fields(rest)
			if strings.HasPrefix(f[0], "--from") {
				continue
			}
			for _, src := range f[:len(f)-1] {
				st.copies = append(st.copies, [2]string{src, f[len(f)-1]})
			}
		case "EXPOSE":
			st.expose = append(st.expose, strings.Fields(rest)...)
		case "ENTRYPOINT":
			st.entrypoint = execForm(rest)
		case "CMD":
			st.cmd = execForm(rest)
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(rest, "CMD ")
			if !ok {
				t.Fatalf("Dockerfile: HEALTHCHECK %q without CMD", rest)
			}
			st.healthcheck = execForm(c)
		}
	}
	return st
}

// imageEnv is the image's environment with every path under /etc/manifold
// moved into dir, the stand-in for the container's /etc/manifold.
func (st dockerStage) imageEnv(dir string) map[string]string {
	env := map[string]string{}
	for k, v := range st.env {
		env[k] = inDir(v, dir)
	}
	return env
}

func inDir(v, dir string) string {
	if rest, ok := strings.CutPrefix(v, "/etc/manifold/"); ok {
		return filepath.Join(dir, rest)
	}
	return v
}

func getenvOf(env map[string]string) config.Getenv {
	return func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
}

// The image's defaults are production-safe (#8 item 13): the old image set
// MANIFOLD_ADMIN_ADDRESS=:9091, and environment beats file, so admin.address
// "" in a mounted file could never turn the unauthenticated admin listener
// off; and its default config was the demo (demo: true), serving /__demo/
// (?delay=, ?fail=) to anyone who could reach the port.
func TestImageDefaults(t *testing.T) {
	t.Parallel()
	st := readDockerfile(t, "Dockerfile")
	cfgPath := st.env["MANIFOLD_CONFIG"]
	if !strings.HasPrefix(cfgPath, "/etc/manifold/") {
		t.Fatalf("MANIFOLD_CONFIG = %q, want a file under /etc/manifold/ (where operators mount theirs)", cfgPath)
	}

	t.Run("no baked-in overrides", func(t *testing.T) {
		for _, k := range st.envOrder {
			if strings.HasPrefix(k, config.EnvPrefix+"_") && k != "MANIFOLD_CONFIG" {
				t.Errorf("ENV sets %s=%s: environment beats file, so an operator's mounted file can never change that key", k, st.env[k])
			}
		}
	})
	t.Run("the admin port is not published by default", func(t *testing.T) {
		if slices.ContainsFunc(st.expose, func(p string) bool { return strings.HasPrefix(p, "9091") }) {
			t.Errorf("EXPOSE %v: 9091 is the unauthenticated admin port; docker run -P would publish it", st.expose)
		}
	})
	t.Run("every config in the image checks clean; none at MANIFOLD_CONFIG serves the demo", func(t *testing.T) {
		var n int
		for _, c := range st.copies {
			src, dst := c[0], c[1]
			if !strings.HasSuffix(src, ".yaml") {
				continue
			}
			n++
			cfg, err := config.Load(src, getenvOf(st.imageEnv(t.TempDir())))
			if err != nil {
				t.Errorf("COPY %s %s: the file does not check clean with the image's environment:\n%v", src, dst, err)
				continue
			}
			if cfg.Demo && dst == cfgPath {
				t.Errorf("COPY %s %s: the default config (MANIFOLD_CONFIG) has demo: true, so every container serves /__demo/ (?delay=, ?fail=) to the world", src, dst)
			}
			if cfg.Demo && !strings.Contains(filepath.Base(dst), "demo") {
				t.Errorf("COPY %s %s: a demo config must say so in its name", src, dst)
			}
		}
		if n == 0 {
			t.Log("the image ships no config file")
		}
	})
	t.Run("a mounted file decides admin.address and demo", func(t *testing.T) {
		dir := t.TempDir()
		env := st.imageEnv(dir)
		mounted := env["MANIFOLD_CONFIG"]
		for _, tc := range []struct {
			name, admin, want string
		}{
			{"admin off", "admin: {address: \"\"}\n", ""},
			{"admin on where the operator says", "admin: {address: \":9091\"}\n", ":9091"},
			{"not set: the loopback default", "", "127.0.0.1:9091"},
		} {
			if err := os.WriteFile(mounted, []byte(tc.admin+validConfig[strings.Index(validConfig, "upstreams:"):]), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(mounted, getenvOf(env))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if cfg.Admin.Address != tc.want || cfg.Demo {
				t.Errorf("%s: with the image's environment admin.address = %q, demo = %v; want %q, false", tc.name, cfg.Admin.Address, cfg.Demo, tc.want)
			}
		}
	})
	t.Run("the image is built by scripts/build.sh", func(t *testing.T) {
		if !slices.ContainsFunc(st.runs, func(r string) bool { return strings.Contains(r, "./scripts/build.sh /out/manifold") }) {
			t.Errorf("no RUN calls ./scripts/build.sh /out/manifold: %q", st.runs)
		}
		if len(st.entrypoint) == 0 || st.entrypoint[0] != "/usr/local/bin/manifold" {
			t.Errorf("ENTRYPOINT %q does not run /usr/local/bin/manifold", st.entrypoint)
		}
	})
}

// The image's ENTRYPOINT + CMD and HEALTHCHECK, run with exactly its ENV
// (paths under /etc/manifold moved to a temporary directory): with no file
// mounted it refuses to start; with an operator's file it serves that file
// only, without /__demo/ and without an admin listener unless the file
// asks; the health check probes the main listener, so it works with admin
// off; the demo is there for whoever asks for it.
func TestImageRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	st := readDockerfile(t, "Dockerfile")
	for _, k := range []string{"MANIFOLD_ADMIN_ADDRESS", "MANIFOLD_SERVER_ADDRESS"} {
		if v, ok := st.env[k]; ok {
			t.Fatalf("ENV sets %s=%s: refusing to run the image's command, which would listen beyond 127.0.0.1", k, v)
		}
	}
	// The binary the Dockerfile's RUN builds, by the same script.
	bin := filepath.Join(t.TempDir(), "manifold")
	build := releaseBuild("./scripts/build.sh", bin)
	build.Env = append(os.Environ(), "VERSION=image-test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build.sh: %v\n%s", err, out)
	}
	// etc stands for the image's /etc/manifold, with the files it copies.
	etc := t.TempDir()
	for _, c := range st.copies {
		if !strings.HasPrefix(c[1], "/etc/manifold/") {
			continue
		}
		data, err := os.ReadFile(c[0])
		if err != nil {
			t.Fatal(err)
		}
		dst := inDir(c[1], etc)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil { // COPY creates parents
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	envList := []string{}
	for k, v := range st.imageEnv(etc) {
		envList = append(envList, k+"="+v)
	}
	image := func(args []string) *exec.Cmd {
		if len(args) == 0 || args[0] != "/usr/local/bin/manifold" {
			t.Fatalf("command %q does not start with /usr/local/bin/manifold", args)
		}
		cmd := exec.Command(bin, args[1:]...)
		cmd.Env = envList
		cmd.Dir = t.TempDir() // no ./config.yaml to fall back on
		return cmd
	}
	command := append(slices.Clone(st.entrypoint), st.cmd...)

	t.Run("no file mounted: refuses to start", func(t *testing.T) {
		var stderr bytes.Buffer
		cmd := image(command)
		cmd.Stderr = &stderr
		if err := runBounded(t, cmd, 10*time.Second); exitCode(t, err) != 1 {
			t.Fatalf("%q exited %v, want 1\n%s", command, err, stderr.String())
		}
		if want := inDir(st.env["MANIFOLD_CONFIG"], etc); !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q does not name the missing file %s", stderr.String(), want)
		}
	})

	t.Run("an operator's file", func(t *testing.T) {
		port := freePort(t)
		mux := http.NewServeMux()
		mux.HandleFunc("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"id": %q}`, r.PathValue("id"))
		})
		up := httptest.NewServer(mux) // 127.0.0.1
		defer up.Close()
		upstream := up.URL
		mounted := inDir(st.env["MANIFOLD_CONFIG"], etc)
		if err := os.WriteFile(mounted, []byte(fmt.Sprintf(`server: {address: "127.0.0.1:%d", shutdown_timeout: 5s}
admin: {address: ""}
upstreams:
  users: {url: %q}
endpoints:
  - path: /api/users/{id}
    backends: [{upstream: users, path: "/users/{id}"}]
`, port, upstream)), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		cmd := image(command)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		stop := startBounded(t, cmd)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
		waitHealthy(t, client, base+"/__health", &logs)

		// The HEALTHCHECK command, with the image's environment.
		var hout, herr bytes.Buffer
		hc := image(st.healthcheck)
		hc.Stdout, hc.Stderr = &hout, &herr
		if err := runBounded(t, hc, 10*time.Second); err != nil {
			t.Errorf("HEALTHCHECK %q: %v\nstdout %q stderr %q", st.healthcheck, err, hout.String(), herr.String())
		}
		for path, want := range map[string]int{"/api/users/7": 200, "/__demo/users/7": 404, "/__demo/users/7?delay=1ms&fail=1": 404} {
			resp, err := client.Get(base + path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s = %d, want %d", path, resp.StatusCode, want)
			}
		}
		if code := stop(); code != 0 {
			t.Errorf("exit %d after SIGTERM\n%s", code, logs.String())
		}
		if strings.Contains(logs.String(), "admin listening") {
			t.Errorf("an admin listener started although the file says admin.address \"\":\n%s", logs.String())
		}
	})

	t.Run("the demo, for whoever asks", func(t *testing.T) {
		var demo []string
		for _, c := range st.copies {
			if strings.Contains(filepath.Base(c[1]), "demo") && strings.HasSuffix(c[1], ".yaml") {
				demo = append(demo, c[1])
			}
		}
		if len(demo) != 1 {
			t.Fatalf("the image should ship exactly one demo config, got %q", demo)
		}
		// docker run -e MANIFOLD_CONFIG=/etc/manifold/demo.yaml manifold, with
		// the listeners moved to loopback for the test.
		port := freePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		var logs syncBuffer
		cmd := image(command)
		cmd.Env = append(slices.Clone(envList), "MANIFOLD_CONFIG="+inDir(demo[0], etc),
			fmt.Sprintf("MANIFOLD_SERVER_ADDRESS=127.0.0.1:%d", port), "MANIFOLD_ADMIN_ADDRESS=", "DEMO_URL="+base)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		stop := startBounded(t, cmd)
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		waitHealthy(t, client, base+"/__health", &logs)
		for _, path := range []string{"/__demo/users/7", "/api/profile/7"} {
			resp, err := client.Get(base + path)
			if err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("demo: GET %s = %d, want 200", path, resp.StatusCode)
			}
		}
		if code := stop(); code != 0 {
			t.Errorf("exit %d after SIGTERM\n%s", code, logs.String())
		}
	})
}

// releaseBuild returns the command that runs the release build script to
// write out. The e2e package's TestMain builds the same binary with the
// same script, and go test runs the two packages at once; on a cold build
// cache two concurrent builds each compile every package (the cache does
// not share work in progress between processes), twice the CPU for one
// result, inside this test's -timeout. Both builds therefore take the same
// lock (flock(1), where it exists): whichever comes second links from a
// warm cache in about a second. The lock goes with the flock process,
// however the build ends.
func releaseBuild(script, out string) *exec.Cmd {
	if flock, err := exec.LookPath("flock"); err == nil {
		return exec.Command(flock, filepath.Join(os.TempDir(), "manifold-release-build.lock"), script, out)
	}
	return exec.Command(script, out)
}

func runBounded(t *testing.T, cmd *exec.Cmd, limit time.Duration) error {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%q did not finish within %v", cmd.Args, limit)
		return nil
	}
}

// startBounded starts a long-running cmd; the returned stop sends SIGTERM
// and returns the exit code. The process is killed if the test ends first.
func startBounded(t *testing.T, cmd *exec.Cmd) (stop func() int) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return func() int {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			exited = true
			return exitCode(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("no exit within 10s of the signal")
			return -1
		}
	}
}

func waitHealthy(t *testing.T, client *http.Client, url string, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200 (last error: %v)\n%s", url, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
