package e2e_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/manifold-gw/manifold/config"
)

// composeDir is the Docker Compose example of docs/deploy.md §7.
const composeDir = "../docs/examples/compose"

// composeFile is what the test reads of docker-compose.yml.
type composeFile struct {
	Services map[string]struct {
		Image           string            `yaml:"image"`
		Command         string            `yaml:"command"`
		Environment     map[string]string `yaml:"environment"`
		Volumes         []string          `yaml:"volumes"`
		Ports           []string          `yaml:"ports"`
		StopGracePeriod string            `yaml:"stop_grace_period"`
		Networks        map[string]struct {
			IPv4 string `yaml:"ipv4_address"`
		} `yaml:"networks"`
	} `yaml:"services"`
}

// The Compose example cannot run here (no Docker in CI), so its three
// files are checked against Manifold and against each other: the real
// binary's `manifold check` accepts the replicas' config (and refuses it
// without REDIS_PASSWORD), haproxy -c accepts haproxy.cfg, and the
// addresses, ports, mounts and timings agree.
func TestComposeExample(t *testing.T) {
	t.Parallel()
	cfgPath := filepath.Join(composeDir, "manifold", "config.yaml")

	// manifold check, the real binary.
	check := func(env ...string) (int, string) {
		cmd := exec.Command(binary, "check", "-c", cfgPath)
		cmd.Env = append(cleanEnv(), env...)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := check("REDIS_PASSWORD=s3cret"); code != 0 {
		t.Fatalf("manifold check %s: exit %d\n%s", cfgPath, code, out)
	}
	if code, out := check(); code != 1 || !strings.Contains(out, "redis.password: environment variable REDIS_PASSWORD is not set") {
		t.Errorf("without REDIS_PASSWORD: exit %d, want 1 naming redis.password:\n%s", code, out)
	}
	cfg, err := config.Load(cfgPath, func(name string) (string, bool) { return "s3cret", name == "REDIS_PASSWORD" })
	if err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(composeDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose composeFile
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	ipOf := func(service string) string {
		for _, n := range compose.Services[service].Networks {
			return n.IPv4
		}
		return ""
	}
	var replicas []string
	for name, s := range compose.Services {
		if s.Image == "manifold:compose" {
			replicas = append(replicas, name)
		}
	}
	slices.Sort(replicas)
	if !slices.Equal(replicas, []string{"manifold-1", "manifold-2"}) {
		t.Fatalf("replicas %q, want manifold-1 and manifold-2", replicas)
	}

	// Redis: the config names the service, on the port it listens on, and
	// both use the same password variable.
	host, port, _ := net.SplitHostPort(cfg.Redis.Address)
	if _, ok := compose.Services[host]; !ok || port != "6379" || strings.Contains(compose.Services[host].Command, "--port") {
		t.Errorf("redis.address %q: want the compose service redis on its default port 6379", cfg.Redis.Address)
	}
	if !strings.Contains(compose.Services[host].Command, `--requirepass "${REDIS_PASSWORD`) {
		t.Errorf("the redis service does not require ${REDIS_PASSWORD}: %q", compose.Services[host].Command)
	}
	if ep := cfg.Endpoints[0].RateLimit; ep == nil || ep.Store != config.StoreRedis {
		t.Errorf("the example's endpoint has no store: redis limit")
	}

	_, listenPort, _ := net.SplitHostPort(cfg.Server.Address)
	drainAndShutdown := cfg.Server.DrainDelay + cfg.Server.ShutdownTimeout
	for _, r := range replicas {
		s := compose.Services[r]
		if !slices.Contains(s.Volumes, "./manifold:/etc/manifold:ro") {
			t.Errorf("%s: volumes %q, want ./manifold mounted at /etc/manifold (the image's MANIFOLD_CONFIG directory)", r, s.Volumes)
		}
		if s.Environment["REDIS_PASSWORD"] == "" {
			t.Errorf("%s: REDIS_PASSWORD not passed to the replica", r)
		}
		if grace, err := time.ParseDuration(s.StopGracePeriod); err != nil || grace <= drainAndShutdown {
			t.Errorf("%s: stop_grace_period %q, want more than drain_delay + shutdown_timeout (%v)", r, s.StopGracePeriod, drainAndShutdown)
		}
	}
	// The replicas trust exactly HAProxy's fixed address.
	if got, want := cfg.Server.TrustedProxies, []string{ipOf("haproxy")}; !slices.Equal(got, want) {
		t.Errorf("server.trusted_proxies %q, want HAProxy's address %q", got, want)
	}

	// haproxy.cfg: the replicas by service name, on the port they listen
	// on; the frontend on the port compose publishes.
	hc, err := os.Open(filepath.Join(composeDir, "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	var servers []string
	var bind string
	sc := bufio.NewScanner(hc)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[0] == "server":
			servers = append(servers, f[2])
		case len(f) >= 2 && f[0] == "bind":
			bind = f[1]
		}
	}
	var want []string
	for _, r := range replicas {
		want = append(want, net.JoinHostPort(r, listenPort))
	}
	if !slices.Equal(servers, want) {
		t.Errorf("haproxy.cfg servers %q, want %q", servers, want)
	}
	bindPort, ok := strings.CutPrefix(bind, ":")
	if _, err := strconv.Atoi(bindPort); !ok || err != nil {
		t.Errorf("haproxy.cfg bind %q: want :PORT", bind)
	}
	if ports := compose.Services["haproxy"].Ports; len(ports) != 1 || !strings.HasSuffix(ports[0], ":"+bindPort) {
		t.Errorf("haproxy publishes %q, its frontend binds %q", ports, bind)
	}

	// haproxy -c, where HAProxy is installed (CI installs it).
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("haproxy not found and CI is set")
		}
		t.Log("haproxy not installed: haproxy.cfg not checked by HAProxy itself")
		return
	}
	if out, err := exec.Command(bin, "-c", "-f", filepath.Join(composeDir, "haproxy.cfg")).CombinedOutput(); err != nil {
		t.Errorf("haproxy -c: %v\n%s", err, out)
	}
}
