// Command driver runs Manifold's load benchmark: it builds and starts the
// stub upstream and the gateway pinned to their own cores, checks that the
// answers are right, drives wrk through scenarios S1–S5, and records per
// scenario and repetition the throughput, latency percentiles, errors, the
// gateway's CPU time per request and its peak RSS. It writes
// bench/results.json, bench/results.md and bench/chart.svg.
//
// Run it through bench/run.sh, which installs wrk and time when missing.
// Everything runs on 127.0.0.1; every process it starts is stopped by PID.
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
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// scenario is one row of the benchmark table.
type scenario struct {
	ID, Name    string
	Target      string // "stub" or "gateway"
	Path        string
	Connections int
	// Targets from the issue, for the chart and the table (0 = none).
	TargetCPUMicros float64
	TargetP99Millis float64
}

var scenarios = []scenario{
	{ID: "S1", Name: "stub alone", Target: "stub", Path: "/a", Connections: 64},
	{ID: "S2", Name: "/agg: 3 backends merged", Target: "gateway", Path: "/agg", Connections: 64, TargetCPUMicros: 250},
	{ID: "S3f", Name: "stub alone, 20ms, 48 conns (S3's floor)", Target: "stub", Path: "/a?delay=20ms", Connections: 48},
	{ID: "S3", Name: "/agg, 20ms backends, 16 conns", Target: "gateway", Path: "/agg-slow", Connections: 16, TargetP99Millis: 25},
	{ID: "S4", Name: "/single: 1 backend", Target: "gateway", Path: "/single", Connections: 64, TargetCPUMicros: 110},
	{ID: "S5", Name: "/raw: passthrough", Target: "gateway", Path: "/raw", Connections: 64, TargetCPUMicros: 100},
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
}

type result struct {
	Scenario scenario `json:"scenario"`
	Runs     []run    `json:"runs"`
	Median   run      `json:"median"`
	Min      run      `json:"min"`
	Max      run      `json:"max"`
}

const (
	stubAddr    = "127.0.0.1:9100"
	gatewayAddr = "127.0.0.1:9200"
	clockTicks  = 100 // USER_HZ: /proc/PID/stat reports CPU time in 1/100 s
)

func main() {
	dur := flag.Duration("duration", 10*time.Second, "length of each measured wrk run")
	warm := flag.Duration("warmup", 2*time.Second, "unmeasured wrk run before each scenario")
	reps := flag.Int("reps", 3, "repetitions per scenario (medians are reported)")
	only := flag.String("only", "", "comma-separated scenario IDs to run (default all)")
	outDir := flag.String("out", "bench", "where results.json, results.md and chart.svg go")
	flag.Parse()
	if *reps < 1 || *dur < time.Second {
		log.Fatal("need -reps >= 1 and -duration >= 1s")
	}
	root, err := os.Getwd()
	must(err)
	tmp, err := os.MkdirTemp("", "manifold-bench-")
	must(err)
	defer os.RemoveAll(tmp)

	log.Printf("building manifold (scripts/build.sh) and the stub")
	gwBin, stubBin := filepath.Join(tmp, "manifold"), filepath.Join(tmp, "stub")
	must(command(root, nil, "scripts/build.sh", gwBin).Run())
	must(command(root, nil, "go", "build", "-o", stubBin, "./bench/stub").Run())

	stub := start(root, "1", stubBin, "-addr", stubAddr)
	defer stop(stub)
	gw := start(root, "0", gwBin, "run", "-c", "bench/manifold.yaml")
	defer stop(gw)
	waitUp("http://" + stubAddr + "/a")
	waitUp("http://" + gatewayAddr + "/__health")
	must(checkAnswers())
	log.Printf("answers verified; stub pid %d on core 1, gateway pid %d on core 0", stub.Process.Pid, gw.Process.Pid)

	var results []result
	for _, sc := range scenarios {
		if *only != "" && !slices.Contains(strings.Split(*only, ","), sc.ID) {
			continue
		}
		pid, base := gw.Process.Pid, "http://"+gatewayAddr
		if sc.Target == "stub" {
			pid, base = stub.Process.Pid, "http://"+stubAddr
		}
		url := base + sc.Path
		if _, err := wrk(url, sc.Connections, *warm); err != nil {
			log.Fatalf("%s warm-up: %v", sc.ID, err)
		}
		res := result{Scenario: sc}
		for i := range *reps {
			_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) // reset VmHWM
			cpu0 := cpuTicks(pid)
			r, err := wrk(url, sc.Connections, *dur)
			if err != nil {
				log.Fatalf("%s run %d: %v", sc.ID, i+1, err)
			}
			cpu := cpuTicks(pid) - cpu0
			if r.Requests > 0 {
				r.CPUMicros = float64(cpu) * (1e6 / clockTicks) / float64(r.Requests)
			}
			r.PeakRSSBytes = peakRSS(pid)
			log.Printf("%s run %d: %.0f rps, p50 %.2fms p99 %.2fms, %.1f µs CPU/req, errors %d, peak RSS %.1f MB",
				sc.ID, i+1, r.RPS, r.P50Millis, r.P99Millis, r.CPUMicros, r.Errors, float64(r.PeakRSSBytes)/1e6)
			res.Runs = append(res.Runs, r)
		}
		res.Median, res.Min, res.Max = summarise(res.Runs)
		results = append(results, res)
	}
	if len(results) == 0 {
		log.Fatal("no scenario selected")
	}

	js, _ := json.MarshalIndent(map[string]any{
		"date": time.Now().UTC().Format(time.RFC3339), "duration": dur.String(), "reps": *reps,
		"machine": machine(), "results": results,
	}, "", "  ")
	must(os.WriteFile(filepath.Join(*outDir, "results.json"), append(js, '\n'), 0o644))
	table := markdown(results, *reps, *dur)
	must(os.WriteFile(filepath.Join(*outDir, "results.md"), []byte(table), 0o644))
	must(os.WriteFile(filepath.Join(*outDir, "chart.svg"), []byte(chart(results)), 0o644))
	fmt.Print(table)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func command(dir string, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// start runs bin pinned to core with taskset.
func start(dir, core, bin string, args ...string) *exec.Cmd {
	cmd := command(dir, nil, "taskset", append([]string{"-c", core, bin}, args...)...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	must(cmd.Start())
	return cmd
}

// stop ends a process the driver started: SIGTERM, then SIGKILL after 10s.
func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func waitUp(url string) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	log.Fatalf("%s did not come up", url)
}

func get(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// checkAnswers makes sure every scenario measures a correct answer: the
// merge has all three objects with numbers exactly as the stub wrote them,
// /single and /raw return the stub's bytes.
func checkAnswers() error {
	var stubBodies [][]byte
	for _, p := range []string{"/a", "/b", "/c"} {
		b, err := get("http://" + stubAddr + p)
		if err != nil {
			return err
		}
		stubBodies = append(stubBodies, b)
	}
	for _, p := range []string{"/agg", "/agg-slow"} {
		b, err := get("http://" + gatewayAddr + p)
		if err != nil {
			return err
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
		for _, k := range []string{"a_id", "b_id", "c_id", "a_items", "c_total"} {
			if _, ok := m[k]; !ok {
				return fmt.Errorf("%s: key %s missing in %s", p, k, b)
			}
		}
		if string(m["c_total"]) != "9007199254740993" {
			return fmt.Errorf("%s: c_total is %s, not exactly 9007199254740993", p, m["c_total"])
		}
	}
	for _, p := range []string{"/single", "/raw"} {
		b, err := get("http://" + gatewayAddr + p)
		if err != nil {
			return err
		}
		if !bytes.Equal(b, stubBodies[0]) {
			return fmt.Errorf("%s: answer differs from the stub's /a:\n%s\n%s", p, b, stubBodies[0])
		}
	}
	return nil
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
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
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

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	must(err)
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// peakRSS is VmHWM of pid in bytes.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
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
	return med, lo, hi
}

func machine() string {
	out, _ := exec.Command("sh", "-c", "nproc; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2; uname -r; go version").Output()
	return strings.Join(strings.Fields(strings.ReplaceAll(string(out), "\n", " | ")), " ")
}

func markdown(rs []result, reps int, d time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Medians of %d runs of %s each (min–max in brackets). CPU = the measured process's utime+stime per request.\n\n", reps, d)
	b.WriteString("| scenario | rps | p50 ms | p90 ms | p99 ms | errors | CPU µs/req | peak RSS MB |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		m, l, h := r.Median, r.Min, r.Max
		fmt.Fprintf(&b, "| %s %s | %.0f (%.0f–%.0f) | %.2f | %.2f | %.2f (%.2f–%.2f) | %d | **%.1f** (%.1f–%.1f) | %.1f |\n",
			r.Scenario.ID, r.Scenario.Name, m.RPS, l.RPS, h.RPS, m.P50Millis, m.P90Millis, m.P99Millis, l.P99Millis, h.P99Millis,
			h.Errors, m.CPUMicros, l.CPUMicros, h.CPUMicros, float64(m.PeakRSSBytes)/1e6)
	}
	return b.String()
}

// chart draws two bar panels as SVG: CPU µs per request and p99 latency per
// scenario, with the targets as marks.
func chart(rs []result) string {
	const w, h, panelH, left, barW = 760, 590, 220, 70, 60
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	panel := func(top int, title, unit string, val func(result) float64, target func(result) float64) {
		maxV := 0.0
		for _, r := range rs {
			maxV = max(maxV, val(r)*1.15, target(r)*1.15)
		}
		if maxV == 0 {
			maxV = 1
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", left, top-8, title)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, top+panelH, w-20, top+panelH)
		for i := 0; i <= 4; i++ {
			v := maxV * float64(i) / 4
			y := top + panelH - int(float64(panelH)*float64(i)/4)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#555">%.0f %s</text>`+"\n", left-6, y+4, v, unit)
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#eee"/>`+"\n", left, y, w-20, y)
		}
		step := (w - left - 40) / len(rs)
		for i, r := range rs {
			x := left + 20 + i*step
			v := val(r)
			bh := int(float64(panelH) * v / maxV)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#3b7dd8"/>`+"\n", x, top+panelH-bh, barW, bh)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%.1f</text>`+"\n", x+barW/2, top+panelH-bh-4, v)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+barW/2, top+panelH+16, r.Scenario.ID+" "+r.Scenario.Path)
			if t := target(r); t > 0 {
				y := top + panelH - int(float64(panelH)*t/maxV)
				fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d33" stroke-width="2" stroke-dasharray="4 3"/>`+"\n", x-8, y, x+barW+8, y)
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#d33">target %.0f</text>`+"\n", x+barW+10, y+4, t)
			}
		}
	}
	panel(40, "Gateway CPU per request (µs, lower is better; S1 = the stub itself)", "µs",
		func(r result) float64 { return r.Median.CPUMicros }, func(r result) float64 { return r.Scenario.TargetCPUMicros })
	panel(40+panelH+70, "p99 latency (ms)", "ms",
		func(r result) float64 { return r.Median.P99Millis }, func(r result) float64 { return r.Scenario.TargetP99Millis })
	b.WriteString("</svg>\n")
	return b.String()
}
