package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// gateway is one system under test: Manifold or the peer it is compared with.
type gateway struct {
	Name      string   `json:"name"`    // "manifold", "krakend", "nginx" or -peer's name
	Version   string   `json:"version"` // as the binary reports it
	Command   string   `json:"command"` // how it was started
	Scenarios []string `json:"scenarios"`
	addr      string
	health    string // a path answering 200 once it is up
	// byteExactSingle: /single must return the stub's bytes unchanged, not
	// only the same JSON (Manifold forwards an unreshaped body as is).
	byteExactSingle bool
	run             func() *proc
}

func (g *gateway) supports(id string) bool {
	for _, s := range g.Scenarios {
		if s == id {
			return true
		}
	}
	return false
}

// peerSetup prepares the -peer gateway: unpacks or finds its binary, writes
// its config with this run's addresses into tmp, and returns how to start it.
func peerSetup(name, peerCmd, peerDir, peerScenarios, tmp string) *gateway {
	pinned := func(bin string, args ...string) func() *proc {
		return func() *proc { return start(tmp, name, "0", bin, args...) }
	}
	switch {
	case peerCmd != "":
		if name == "" {
			name = "peer"
		}
		cmdline := strings.NewReplacer("{stub}", stubAddr, "{addr}", peerAddr, "{port}", port(peerAddr), "{dir}", tmp).Replace(peerCmd)
		g := &gateway{Name: name, Version: "(not known: -peer-cmd)", Command: cmdline, addr: peerAddr,
			Scenarios: strings.Split(peerScenarios, ",")}
		g.health = scenarioPath(g.Scenarios[0])
		g.run = func() *proc { return start(tmp, name, "0", "sh", "-c", cmdline) }
		return g
	case name == "krakend":
		xz := filepath.Join(peerDir, "krakend-ce-2.13.8-linux-amd64.xz")
		if m, _ := filepath.Glob(filepath.Join(peerDir, "krakend*.xz")); len(m) == 1 {
			xz = m[0]
		}
		bin := filepath.Join(tmp, "krakend")
		out, err := os.Create(bin)
		must(err)
		unxz := command(tmp, 2*time.Minute, "xz", "-dc", xz)
		unxz.Stdout = out
		if err := unxz.Run(); err != nil {
			fatalf("unpack %s: %v (is xz installed?)", xz, err)
		}
		must(out.Close())
		must(os.Chmod(bin, 0o755))
		cfg := filepath.Join(tmp, "krakend.json")
		must(os.WriteFile(cfg, krakendConfig(filepath.Join(peerDir, "krakend.json")), 0o644))
		return &gateway{Name: "krakend", Version: version(bin, "version"), Command: "krakend run -c krakend.json",
			addr: peerAddr, health: "/__health", Scenarios: []string{"S2", "S3", "S4", "S5"}, run: pinned(bin, "run", "-c", cfg)}
	case name == "nginx":
		bin, err := exec.LookPath("nginx")
		if err != nil {
			fatalf("-peer nginx: nginx is not installed (apt-get install nginx)")
		}
		src, err := os.ReadFile(filepath.Join(peerDir, "nginx.conf"))
		must(err)
		conf := strings.NewReplacer("127.0.0.1:8081", stubAddr, "127.0.0.1:8080", peerAddr).Replace(string(src))
		if !strings.Contains(conf, stubAddr) || !strings.Contains(conf, "listen "+peerAddr) {
			fatalf("%s/nginx.conf: could not point it at %s and %s", peerDir, stubAddr, peerAddr)
		}
		dir := filepath.Join(tmp, "nginx") + "/"
		must(os.MkdirAll(dir, 0o755))
		must(os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644))
		// nginx.conf proxies /single and /agg to /a only, so S5 (/raw) is the
		// one scenario where nginx does the same work as Manifold.
		return &gateway{Name: "nginx", Version: version(bin, "-v"), Command: "nginx -p DIR -c DIR/nginx.conf",
			addr: peerAddr, health: "/raw", Scenarios: []string{"S5"},
			run: pinned(bin, "-p", dir, "-e", dir+"error.log", "-c", dir+"nginx.conf")}
	default:
		fatalf("-peer %q: use krakend, nginx, or -peer-cmd 'COMMAND' with -peer NAME", name)
	}
	return nil
}

// krakendConfig is peers/krakend.json pointed at this run's stub, listening
// on peerAddr only, plus /agg-slow (S3): /agg with ?delay=20ms on every backend.
func krakendConfig(path string) []byte {
	src, err := os.ReadFile(path)
	must(err)
	var c map[string]any
	must(json.Unmarshal(src, &c))
	host, p, _ := strings.Cut(peerAddr, ":")
	c["port"] = json.Number(p)
	c["listen_ip"] = host
	eps, _ := c["endpoints"].([]any)
	var slow map[string]any
	for _, e := range eps {
		ep, _ := e.(map[string]any)
		bes, _ := ep["backend"].([]any)
		for _, b := range bes {
			be, _ := b.(map[string]any)
			be["host"] = []any{"http://" + stubAddr}
		}
		if ep["endpoint"] == "/agg" {
			js, _ := json.Marshal(ep)
			must(json.Unmarshal(js, &slow))
		}
	}
	if slow == nil {
		fatalf("%s: no /agg endpoint", path)
	}
	slow["endpoint"] = "/agg-slow"
	for _, b := range slow["backend"].([]any) {
		be := b.(map[string]any)
		be["url_pattern"] = fmt.Sprint(be["url_pattern"]) + "?delay=20ms"
	}
	c["endpoints"] = append(eps, slow)
	out, err := json.MarshalIndent(c, "", "  ")
	must(err)
	return out
}

// version is the first line of what bin prints for its version flag.
func version(bin string, arg string) string {
	cmd := command("", 30*time.Second, bin, arg)
	cmd.Stdout, cmd.Stderr = nil, nil
	out, _ := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if m := regexp.MustCompile(`(?m)^(KrakenD Version:.*|nginx version:.*)$`).FindString(s); m != "" {
		return strings.TrimSpace(m)
	}
	first, _, _ := strings.Cut(s, "\n")
	return first
}

func port(addr string) string {
	_, p, _ := strings.Cut(addr, ":")
	return p
}

func scenarioPath(id string) string {
	for _, s := range scenarios {
		if s.ID == id {
			return s.Path
		}
	}
	fatalf("-peer-scenarios: no scenario %s", id)
	return ""
}
