// Command driver runs Manifold's load benchmark: it builds and starts the
// stub upstream and the gateway pinned to their own cores, checks that the
// answers are right, drives wrk through scenarios S1–S5, and records per
// scenario and repetition the throughput, latency percentiles, errors, the
// gateway's CPU time per request and its peak RSS. It writes
// results.json, results.md and chart.svg into bench/.
//
// With -peer krakend, -peer nginx or -peer-cmd, it also starts that gateway
// pinned to the same core, checks its answers the same way, and measures it
// in the same run, interleaved per repetition (Manifold, peer, Manifold,
// peer, ...), so that both see the same conditions; the report then gives
// each scenario's CPU per request as a multiple of the run's S1 floor and
// the peer÷Manifold ratios. Those files are named results-PEER.json,
// results-PEER.md and chart-PEER.svg.
//
// Run it through bench/run.sh, which installs wrk and time when missing.
// Everything runs on 127.0.0.1; every process it starts is stopped by PID,
// also on error, interrupt, or when the run exceeds its time bound.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scenario is one row of the benchmark table.
type scenario struct {
	ID, Name    string
	Target      string // "stub" or "gateway"
	Path        string
	Connections int
	Floor       string `json:",omitempty"` // the stub-alone scenario this one is read against
}

var scenarios = []scenario{
	{ID: "S1", Name: "stub alone", Target: "stub", Path: "/a", Connections: 64},
	{ID: "S2", Name: "/agg: 3 backends merged", Target: "gateway", Path: "/agg", Connections: 64, Floor: "S1"},
	{ID: "S3f", Name: "stub alone, 20ms, 48 conns (S3's floor)", Target: "stub", Path: "/a?delay=20ms", Connections: 48},
	{ID: "S3", Name: "/agg, 20ms backends, 16 conns", Target: "gateway", Path: "/agg-slow", Connections: 16, Floor: "S3f"},
	{ID: "S4", Name: "/single: 1 backend", Target: "gateway", Path: "/single", Connections: 64, Floor: "S1"},
	{ID: "S5", Name: "/raw: passthrough", Target: "gateway", Path: "/raw", Connections: 64, Floor: "S1"},
}

// run is one repetition's measurements.
type run struct {
	RPS          float64 `json:"rps"`
	Requests     int     `json:"requests"`
	Errors       int     `json:"errors"`
	P50Millis    float64 `json:"p50_ms"`
	P90Millis    float64 `json:"p90_ms"`
	P99Millis    float64 `json:"p99_ms"`
	CPUMicros    float64 `json:"cpu_us_per_req"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	// IdleCPUMillis is the CPU the other gateway(s), idle on the same core,
	// used during this run: a check that they did not disturb it.
	IdleCPUMillis float64 `json:"idle_gateways_cpu_ms"`
	// Load1 is the machine's 1-minute load average at the end of the run:
	// other work on the machine shows here (rps and latency feel it first).
	Load1 float64 `json:"load1_after"`
}

type result struct {
	Scenario scenario `json:"scenario"`
	Gateway  string   `json:"gateway"` // "stub" for S1 and S3f
	Runs     []run    `json:"runs"`
	Median   run      `json:"median"`
	Min      run      `json:"min"`
	Max      run      `json:"max"`
}

const (
	stubAddr    = "127.0.0.1:9100"
	gatewayAddr = "127.0.0.1:9200"
	peerAddr    = "127.0.0.1:9300"
	clockTicks  = 100 // USER_HZ: /proc/PID/stat reports CPU time in 1/100 s
)

var client = &http.Client{Timeout: 5 * time.Second}

func main() {
	dur := flag.Duration("duration", 10*time.Second, "length of each measured wrk run")
	warm := flag.Duration("warmup", 2*time.Second, "unmeasured wrk run per gateway before each scenario")
	reps := flag.Int("reps", 3, "repetitions per scenario and gateway (medians are reported)")
	only := flag.String("only", "", "comma-separated scenario IDs to run (default all)")
	outDir := flag.String("out", "bench", "where the results and the chart go")
	peer := flag.String("peer", "", "also measure this gateway in the same run: krakend, nginx, or a name for -peer-cmd")
	peerCmd := flag.String("peer-cmd", "", "shell command starting another gateway on {addr} (host:port; {port} alone) that proxies to the stub at {stub}; it must serve the paths of -peer-scenarios")
	peerScen := flag.String("peer-scenarios", "S2,S3,S4,S5", "with -peer-cmd: the scenarios the peer serves")
	peerDir := flag.String("peer-dir", "../shared/peers", "where the krakend binary (.xz), krakend.json and nginx.conf are")
	flag.Parse()
	if *reps < 1 || *dur < time.Second {
		log.Fatal("need -reps >= 1 and -duration >= 1s")
	}
	if flag.NArg() > 0 {
		log.Fatalf("unexpected arguments %q (flags: -h)", flag.Args())
	}
	handleSignals()
	selected := selectScenarios(*only)
	root, err := os.Getwd()
	must(err)
	tmp, err := os.MkdirTemp("", "manifold-bench-")
	must(err)
	cleanups = append(cleanups, func() { os.RemoveAll(tmp) })
	defer cleanup()
	for _, a := range []string{stubAddr, gatewayAddr, peerAddr} {
		portFree(a)
	}

	log.Printf("building manifold (scripts/build.sh) and the stub")
	gwBin, stubBin := filepath.Join(tmp, "manifold"), filepath.Join(tmp, "stub")
	must(command(root, 10*time.Minute, "scripts/build.sh", gwBin).Run())
	must(command(root, 10*time.Minute, "go", "build", "-o", stubBin, "./bench/stub").Run())

	gws := []*gateway{{Name: "manifold", Version: version(gwBin, "--version"), Command: "manifold run -c bench/manifold.yaml",
		addr: gatewayAddr, health: "/__health", byteExactSingle: true, Scenarios: []string{"S2", "S3", "S4", "S5"},
		run: func() *proc { return start(root, "manifold", "0", gwBin, "run", "-c", "bench/manifold.yaml") }}}
	if *peer != "" || *peerCmd != "" {
		dir, err := filepath.Abs(*peerDir)
		must(err)
		gws = append(gws, peerSetup(*peer, *peerCmd, dir, *peerScen, tmp))
	}
	watchdog(bound(selected, gws, *reps, *dur, *warm))

	stub := start(root, "stub", "1", stubBin, "-addr", stubAddr)
	waitUp(stub, "http://"+stubAddr+"/a")
	procsOf := map[string]*proc{}
	for _, g := range gws {
		p := g.run()
		procsOf[g.Name] = p
		waitUp(p, "http://"+g.addr+g.health)
		if err := checkAnswers(g); err != nil {
			fatalf("%s gives wrong answers: %v", g.Name, err)
		}
		log.Printf("%s (%s) answers verified for %s; pid %d on core 0", g.Name, g.Version, strings.Join(g.Scenarios, ","), p.pid())
	}
	log.Printf("stub pid %d on core 1 (with wrk)", stub.pid())
	loadBefore := loadavg()
	log.Printf("load average before: %s", loadBefore)

	var results []result
	for _, sc := range selected {
		type target struct {
			name string
			p    *proc
			url  string
			res  *result
		}
		var ts []*target
		if sc.Target == "stub" {
			ts = append(ts, &target{"stub", stub, "http://" + stubAddr + sc.Path, &result{Scenario: sc, Gateway: "stub"}})
		} else {
			for _, g := range gws {
				if g.supports(sc.ID) {
					ts = append(ts, &target{g.Name, procsOf[g.Name], "http://" + g.addr + sc.Path, &result{Scenario: sc, Gateway: g.Name}})
				}
			}
		}
		for _, t := range ts {
			if _, err := wrk(t.url, sc.Connections, *warm); err != nil {
				fatalf("%s %s warm-up: %v", sc.ID, t.name, err)
			}
		}
		for i := range *reps {
			for _, t := range ts { // interleaved: Manifold, peer, Manifold, peer, ...
				var idle []*proc
				for _, g := range gws {
					if p := procsOf[g.Name]; p != t.p {
						idle = append(idle, p)
					}
				}
				t.p.resetPeakRSS()
				cpu0, idle0 := t.p.cpuTicks(), ticks(idle)
				r, err := wrk(t.url, sc.Connections, *dur)
				if err != nil {
					fatalf("%s %s run %d: %v", sc.ID, t.name, i+1, err)
				}
				cpu := t.p.cpuTicks() - cpu0
				r.IdleCPUMillis = float64(ticks(idle)-idle0) * 1000 / clockTicks
				if r.Requests > 0 {
					r.CPUMicros = float64(cpu) * (1e6 / clockTicks) / float64(r.Requests)
				}
				r.PeakRSSBytes = t.p.peakRSS()
				r.Load1, _ = strconv.ParseFloat(strings.Fields(loadavg() + " 0")[0], 64)
				log.Printf("%s %s run %d: %.0f rps, p50 %.2fms p99 %.2fms, %.1f µs CPU/req, errors %d, peak RSS %.1f MB, idle gateways %.0f ms CPU, load %.2f",
					sc.ID, t.name, i+1, r.RPS, r.P50Millis, r.P99Millis, r.CPUMicros, r.Errors, float64(r.PeakRSSBytes)/1e6, r.IdleCPUMillis, r.Load1)
				t.res.Runs = append(t.res.Runs, r)
			}
		}
		for _, t := range ts {
			t.res.Median, t.res.Min, t.res.Max = summarise(t.res.Runs)
			results = append(results, *t.res)
		}
	}
	loadAfter := loadavg()
	log.Printf("load average after: %s", loadAfter)

	rep := report{
		Date: time.Now().UTC().Format(time.RFC3339), Duration: dur.String(), Reps: *reps,
		Machine: machine(), Commit: commit(root), Command: "bench/run.sh " + strings.Join(os.Args[1:], " "),
		LoadBefore: loadBefore, LoadAfter: loadAfter, Gateways: gws, Results: results,
	}
	rep.Ratios = ratios(results, gws)
	base, chartName := "results", "chart"
	if len(gws) > 1 {
		base, chartName = base+"-"+gws[1].Name, chartName+"-"+gws[1].Name
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	must(os.WriteFile(filepath.Join(*outDir, base+".json"), append(js, '\n'), 0o644))
	table := markdown(rep)
	must(os.WriteFile(filepath.Join(*outDir, base+".md"), []byte(table), 0o644))
	must(os.WriteFile(filepath.Join(*outDir, chartName+".svg"), []byte(chart(rep)), 0o644))
	fmt.Print(table)
	log.Printf("wrote %s.json, %s.md and %s.svg in %s", base, base, chartName, *outDir)
}

func selectScenarios(only string) []scenario {
	var sel []scenario
	want := strings.Split(only, ",")
	for _, sc := range scenarios {
		if only == "" || slices.Contains(want, sc.ID) {
			sel = append(sel, sc)
		}
	}
	for _, id := range want {
		if only != "" && !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.ID == id }) {
			log.Fatalf("-only: no scenario %q", id)
		}
	}
	if len(sel) == 0 {
		log.Fatal("no scenario selected")
	}
	return sel
}

// bound is how long the whole run may take: twice the measuring time, plus
// ten minutes for the builds and start-ups.
func bound(sel []scenario, gws []*gateway, reps int, dur, warm time.Duration) time.Duration {
	var d time.Duration
	for _, sc := range sel {
		n := 1
		if sc.Target == "gateway" {
			n = 0
			for _, g := range gws {
				if g.supports(sc.ID) {
					n++
				}
			}
		}
		d += time.Duration(n) * (warm + time.Duration(reps)*(dur+time.Second))
	}
	return 2*d + 10*time.Minute
}

func ticks(ps []*proc) int64 {
	var sum int64
	for _, p := range ps {
		sum += p.cpuTicks()
	}
	return sum
}

func waitUp(p *proc, url string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !p.alive() {
			fatalf("%s exited before answering %s", p.name, url)
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	fatalf("%s did not answer %s within 30s", p.name, url)
}

func get(url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// checkAnswers makes sure every scenario g serves measures a correct answer:
// the merge is exactly the union of the stub's three objects (numbers
// compared as exact decimals, so 9007199254740993 and
// 0.1000000000000000055511151231257827 must survive), /single is the stub's
// /a as JSON (byte for byte for Manifold) and /raw is its bytes unchanged.
func checkAnswers(g *gateway) error {
	var stubBodies [][]byte
	union := map[string]any{}
	for _, p := range []string{"/a", "/b", "/c"} {
		b, err := get("http://" + stubAddr + p)
		if err != nil {
			return err
		}
		stubBodies = append(stubBodies, b)
		v, err := decode(b)
		if err != nil {
			return fmt.Errorf("stub %s: %v", p, err)
		}
		for k, x := range v.(map[string]any) {
			union[k] = x
		}
	}
	for _, sc := range scenarios {
		if sc.Target != "gateway" || !g.supports(sc.ID) {
			continue
		}
		b, err := get("http://" + g.addr + sc.Path)
		if err != nil {
			return err
		}
		switch sc.Path {
		case "/agg", "/agg-slow":
			v, err := decode(b)
			if err != nil {
				return fmt.Errorf("%s: %v", sc.Path, err)
			}
			if !sameJSON(v, union) {
				return fmt.Errorf("%s: not the union of /a, /b and /c:\n%s", sc.Path, b)
			}
		case "/single":
			v, err := decode(b)
			if err != nil {
				return fmt.Errorf("%s: %v", sc.Path, err)
			}
			a, _ := decode(stubBodies[0])
			if !sameJSON(v, a) || (g.byteExactSingle && !bytes.Equal(b, stubBodies[0])) {
				return fmt.Errorf("%s: answer differs from the stub's /a:\n%s\n%s", sc.Path, b, stubBodies[0])
			}
		case "/raw":
			if !bytes.Equal(b, stubBodies[0]) {
				return fmt.Errorf("%s: answer differs from the stub's /a:\n%s\n%s", sc.Path, b, stubBodies[0])
			}
		}
	}
	return nil
}

func decode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("not a JSON object: %.80s", b)
	}
	return v, nil
}

// sameJSON compares decoded JSON, numbers as exact decimals (10.00 == 10,
// 9007199254740993 != 9007199254740992).
func sameJSON(x, y any) bool {
	switch a := x.(type) {
	case map[string]any:
		b, ok := y.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			w, ok := b[k]
			if !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := y.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameJSON(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := y.(json.Number)
		if !ok {
			return false
		}
		ra, oka := new(big.Rat).SetString(string(a))
		rb, okb := new(big.Rat).SetString(string(b))
		return oka && okb && ra.Cmp(rb) == 0
	default:
		return reflect.DeepEqual(x, y)
	}
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reTotal    = regexp.MustCompile(`(\d+) requests in`)
	reLatency  = regexp.MustCompile(`(?m)^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	reSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	errNoStats = errors.New("wrk printed no statistics")
)

// wrk runs one pinned wrk (1 thread, keep-alive) on core 1, beside the stub.
func wrk(url string, conns int, d time.Duration) (run, error) {
	ctx, cancel := context.WithTimeout(runCtx, d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "taskset", "-c", "1", "wrk", "-t1", "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url).CombinedOutput()
	if err != nil {
		return run{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	s := string(out)
	var r run
	m := reRPS.FindStringSubmatch(s)
	t := reTotal.FindStringSubmatch(s)
	if m == nil || t == nil {
		return run{}, fmt.Errorf("%w:\n%s", errNoStats, s)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	r.Requests, _ = strconv.Atoi(t[1])
	for _, l := range reLatency.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		switch l[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		switch l[1] {
		case "50":
			r.P50Millis = v
		case "90":
			r.P90Millis = v
		case "99":
			r.P99Millis = v
		}
	}
	if e := reSocket.FindStringSubmatch(s); e != nil {
		for _, n := range e[1:] {
			k, _ := strconv.Atoi(n)
			r.Errors += k
		}
	}
	if e := reNon2xx.FindStringSubmatch(s); e != nil {
		k, _ := strconv.Atoi(e[1])
		r.Errors += k
	}
	return r, nil
}

func summarise(runs []run) (med, lo, hi run) {
	pick := func(get func(run) float64) (m, l, h float64) {
		vs := make([]float64, len(runs))
		for i, r := range runs {
			vs[i] = get(r)
		}
		slices.Sort(vs)
		n := len(vs)
		m = vs[n/2]
		if n%2 == 0 {
			m = (vs[n/2-1] + vs[n/2]) / 2
		}
		return m, vs[0], vs[n-1]
	}
	set := func(get func(run) float64, put func(*run, float64)) {
		m, l, h := pick(get)
		put(&med, m)
		put(&lo, l)
		put(&hi, h)
	}
	set(func(r run) float64 { return r.RPS }, func(r *run, v float64) { r.RPS = v })
	set(func(r run) float64 { return float64(r.Requests) }, func(r *run, v float64) { r.Requests = int(v) })
	set(func(r run) float64 { return float64(r.Errors) }, func(r *run, v float64) { r.Errors = int(v) })
	set(func(r run) float64 { return r.P50Millis }, func(r *run, v float64) { r.P50Millis = v })
	set(func(r run) float64 { return r.P90Millis }, func(r *run, v float64) { r.P90Millis = v })
	set(func(r run) float64 { return r.P99Millis }, func(r *run, v float64) { r.P99Millis = v })
	set(func(r run) float64 { return r.CPUMicros }, func(r *run, v float64) { r.CPUMicros = v })
	set(func(r run) float64 { return float64(r.PeakRSSBytes) }, func(r *run, v float64) { r.PeakRSSBytes = int64(v) })
	set(func(r run) float64 { return r.IdleCPUMillis }, func(r *run, v float64) { r.IdleCPUMillis = v })
	set(func(r run) float64 { return r.Load1 }, func(r *run, v float64) { r.Load1 = v })
	return med, lo, hi
}

func machine() string {
	out, _ := exec.Command("sh", "-c", "nproc; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; uname -r; go version").Output()
	return strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\n", " | ")), " ")
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:3], " ")
}

// commit is the checkout's commit, "+dirty" when tracked files differ.
func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty=+dirty", "--abbrev=12").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
