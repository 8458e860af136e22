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
// results-PEER.md and chart-PEER.svg (or -name's).
//
// The pool scenarios (-only pools: P1–P4, C1, C2; see pools.go) run on a
// second Manifold process with bench/pools.yaml: hedging off and on against
// three instances of which one is slow on 10 % of its calls, measured at a
// fixed request rate, and coalescing on and off under 64 identical
// requests at once, with the upstream calls counted at the stub.
//
// The growth scenarios (-only S6,S7; not in the default selection) show
// how cost grows: S6 merges 1, 3, 10 and 30 backends of ~700 B with
// distinct keys, S7 three backends of 1, 10, 100 and 1000 KiB; the report
// adds a table per family with the increment per extra backend or KiB.
//
// The concurrency scenario (-only S8; s8.go) holds 1,000, 5,000 and 10,000
// client connections (-s8-levels) on an endpoint whose three backends
// answer after 200 ms, and reports per level the throughput, latency,
// errors, RSS per connection and the gateway's goroutines before, at peak
// and after the level drains. The fixed-rate scenario (-only FR;
// openloop.go) drives S2's /agg open loop, with vegeta's library, at
// -fr-percent (50 %) of the saturation measured in the same run, and
// reports p50, p99, p99.9 and max; with a peer, both at the same rate.
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
	"maps"
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
	// Rate, when set, drives the scenario with the paced generator at this
	// many requests per second instead of wrk (latency, not saturation).
	Rate int `json:",omitempty"`
	// Group: selected scenarios next to each other with the same group
	// have their repetitions interleaved (P1, P2, P1, P2, ...), so that the
	// two sides of a comparison see the same conditions.
	Group string `json:",omitempty"`
	// Growth scenarios (S6 width, S7 size; not in the default selection,
	// -only S6,S7 picks each family whole): Backends are the stub paths the
	// endpoint merges, which the answer check unions; Size is the number of
	// backends (S6) or each backend's body in KiB (S7), the x of the
	// growth table.
	Backends []string `json:",omitempty"`
	Size     int      `json:",omitempty"`
}

var scenarios = []scenario{
	{ID: "S1", Name: "stub alone", Target: "stub", Path: "/a", Connections: 64},
	{ID: "S2", Name: "/agg: 3 backends merged", Target: "gateway", Path: "/agg", Connections: 64, Floor: "S1"},
	{ID: "S3f", Name: "stub alone, 20ms, 48 conns (S3's floor)", Target: "stub", Path: "/a?delay=20ms", Connections: 48},
	{ID: "S3", Name: "/agg, 20ms backends, 16 conns", Target: "gateway", Path: "/agg-slow", Connections: 16, Floor: "S3f"},
	{ID: "S4", Name: "/single: 1 backend", Target: "gateway", Path: "/single", Connections: 64, Floor: "S1"},
	{ID: "S5", Name: "/raw: passthrough", Target: "gateway", Path: "/raw", Connections: 64, Floor: "S1"},
	// The pool scenarios (pools.go): not in the default selection; -only pools.
	// The growth scenarios (not in the default selection; -only S6,S7).
	growth("S6", 1), growth("S6", 3), growth("S6", 10), growth("S6", 30),
	growth("S7", 1), growth("S7", 10), growth("S7", 100), growth("S7", 1000),
	{ID: "P1", Name: "/pool-agg: 3 backends merged, 3 instances, hedging off, 1000 rps", Target: "pools", Path: "/pool-agg", Rate: 1000, Group: "hedge"},
	{ID: "P2", Name: "/pool-agg-hedged: the same, hedge after 10ms, max 5 %", Target: "pools", Path: "/pool-agg-hedged", Rate: 1000, Group: "hedge"},
	{ID: "P3", Name: "/pool-rr-agg: P1 with balance: round_robin", Target: "pools", Path: "/pool-rr-agg", Rate: 1000, Group: "hedge-rr"},
	{ID: "P4", Name: "/pool-rr-agg-hedged: P2 with balance: round_robin", Target: "pools", Path: "/pool-rr-agg-hedged", Rate: 1000, Group: "hedge-rr"},
	{ID: "C1", Name: "/coal: 64 conns, one URL, 20ms backend, coalesce on", Target: "pools", Path: "/coal", Connections: 64, Group: "coalesce"},
	{ID: "C2", Name: "/nocoal: the same, coalesce off", Target: "pools", Path: "/nocoal", Connections: 64, Group: "coalesce"},
}

// growth is one S6 scenario (n backends of ~700 B, /wN) or S7 scenario
// (3 backends of n KiB each, /sizeN), as bench/manifold.yaml serves them.
func growth(family string, n int) scenario {
	sc := scenario{Target: "gateway", Connections: 64, Floor: "S1", Size: n}
	if family == "S6" {
		sc.ID, sc.Name, sc.Path = fmt.Sprintf("S6.%d", n), fmt.Sprintf("/w%d: %d backend%s of ~700 B merged", n, n, map[bool]string{true: "s"}[n > 1]), fmt.Sprintf("/w%d", n)
		for i := range n {
			sc.Backends = append(sc.Backends, fmt.Sprintf("/w/%d", i))
		}
		return sc
	}
	sc.ID, sc.Name, sc.Path = fmt.Sprintf("S7.%d", n), fmt.Sprintf("/size%d: 3 backends of %d KiB merged", n, n), fmt.Sprintf("/size%d", n)
	for _, p := range []string{"a", "b", "c"} {
		sc.Backends = append(sc.Backends, fmt.Sprintf("/sized?kb=%d&p=%s", n, p))
	}
	return sc
}

// family is a scenario's ID before the dot: S6.10 is in family S6.
func family(id string) string {
	f, _, _ := strings.Cut(id, ".")
	return f
}

// run is one repetition's measurements.
type run struct {
	RPS       float64 `json:"rps"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	P50Millis float64 `json:"p50_ms"`
	P90Millis float64 `json:"p90_ms"`
	P99Millis float64 `json:"p99_ms"`
	// Paced runs only (wrk does not give them): the 99.9th percentile and
	// the slowest request.
	P999Millis   float64 `json:"p999_ms,omitempty"`
	MaxMillis    float64 `json:"max_ms,omitempty"`
	CPUMicros    float64 `json:"cpu_us_per_req"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	// IdleCPUMillis is the CPU the other gateway(s), idle on the same core,
	// used during this run: a check that they did not disturb it.
	IdleCPUMillis float64 `json:"idle_gateways_cpu_ms"`
	// Load1 is the machine's 1-minute load average at the end of the run:
	// other work on the machine shows here (rps and latency feel it first).
	Load1 float64 `json:"load1_after"`
	// Pool scenarios only: the calls the stub served during the run, and
	// the gateway's hedges (of which won) and coalesced (joined) calls.
	UpstreamCalls int `json:"upstream_calls,omitempty"`
	Hedges        int `json:"hedges,omitempty"`
	HedgesWon     int `json:"hedges_won,omitempty"`
	Coalesced     int `json:"coalesced,omitempty"`
	// InstanceCalls splits UpstreamCalls by stub listener (not summarised).
	InstanceCalls map[string]int `json:"instance_calls,omitempty"`
	// ErrorDetail breaks Errors down (wrk: non-2xx and socket errors;
	// vegeta: status codes and error texts); not summarised.
	ErrorDetail string `json:"error_detail,omitempty"`
	// S8 only (s8.go): the gateway's RSS just before the level, (peak −
	// that) ÷ connections, its goroutines before, at peak (sampled) and
	// after the level drained, how long that took and whether it came back
	// within s8Margin, the most requests in flight seen, and the peak open
	// fds of the gateway and of the stub.
	IdleRSSBytes     int64   `json:"idle_rss_bytes,omitempty"`
	RSSPerConnKB     float64 `json:"rss_per_conn_kb,omitempty"`
	GoroutinesBefore int     `json:"goroutines_before,omitempty"`
	GoroutinesPeak   int     `json:"goroutines_peak,omitempty"`
	GoroutinesAfter  int     `json:"goroutines_after,omitempty"`
	DrainMillis      float64 `json:"drain_ms,omitempty"`
	NotDrained       bool    `json:"not_drained,omitempty"`
	InflightPeak     int     `json:"inflight_peak,omitempty"`
	PeakFDs          int     `json:"peak_fds,omitempty"`
	StubPeakFDs      int     `json:"stub_peak_fds,omitempty"`
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
	name := flag.String("name", "", "base name of the result files (default results, or results-PEER with a peer)")
	pace := flag.String("pace", "", "internal: be the paced load generator, URL,RATE,DURATION (the driver runs itself so, pinned to core 1)")
	levels := flag.String("s8-levels", "1000,5000,10000", "S8: the client connections of each level, in the order they run")
	fdShortfall := flag.Bool("s8-fd-shortfall", false, "S8: run levels whose worst case (4 fds per connection) exceeds RLIMIT_NOFILE anyway; refused dials count as errors")
	frPercent := flag.Int("fr-percent", 50, "FR: the rate, as a percentage of the lowest S2 saturation of the run's gateways")
	openloop := flag.String("openloop", "", "internal: be the open-loop generator (vegeta), URL,RATE,DURATION (the driver runs itself so, pinned to core 1)")
	flag.Parse()
	if *pace != "" {
		paceMain(*pace)
		return
	}
	if *openloop != "" {
		openLoopMain(*openloop)
		return
	}
	if *frPercent < 1 || *frPercent > 100 {
		log.Fatal("-fr-percent: want 1 to 100")
	}
	// FR, then the S8 levels, last in the table: they run after the other
	// selected scenarios, S8 at the very end (see s8.go).
	scenarios = append(scenarios, scenario{ID: "FR", Name: fmt.Sprintf("/agg at %d %% of S2's saturation, open loop", *frPercent),
		Target: "openloop", Path: "/agg"})
	scenarios = append(scenarios, s8Scenarios(s8Levels(*levels))...)
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
	withPools := slices.ContainsFunc(selected, func(s scenario) bool { return s.Target == "pools" })
	for _, a := range append(slices.Clone(stubAddrs), gatewayAddr, peerAddr, poolsAddr, poolsAdminAddr, adminAddr) {
		portFree(a)
	}
	// S8: every process the driver starts inherits its fd limit, raised to
	// the hard one (see s8.go); the main gateway gets its admin listener.
	var conc *concurrencyInfo
	var gwEnv []string
	var s8Sel []int
	for _, sc := range selected {
		if sc.Target == "concurrency" {
			s8Sel = append(s8Sel, sc.Connections)
		}
	}
	if len(s8Sel) > 0 {
		limit := raiseFDLimit()
		conc = &concurrencyInfo{Levels: s8Sel, FDLimit: limit, WrkThreads: min(2, slices.Min(s8Sel)),
			WrkTimeout: s8WrkTimeout.String(), Poll: s8Poll.String(), DrainBound: s8Drain.String(), DrainMargin: s8Margin, AdminAddress: adminAddr}
		checkFDLimit(s8Sel, limit, *fdShortfall, conc)
		gwEnv = []string{"env", "MANIFOLD_ADMIN_ADDRESS=" + adminAddr}
		log.Printf("S8: RLIMIT_NOFILE %d for every process started; levels %v", limit, s8Sel)
	}

	log.Printf("building manifold (scripts/build.sh) and the stub")
	gwBin, stubBin := filepath.Join(tmp, "manifold"), filepath.Join(tmp, "stub")
	must(command(root, 10*time.Minute, "scripts/build.sh", gwBin).Run())
	must(command(root, 10*time.Minute, "go", "build", "-o", stubBin, "./bench/stub").Run())

	gwCmd := append(slices.Clone(gwEnv), gwBin, "run", "-c", "bench/manifold.yaml")
	gws := []*gateway{{Name: "manifold", Version: version(gwBin, "--version"), Command: strings.Join(append(gwEnv, "manifold run -c bench/manifold.yaml"), " "),
		addr: gatewayAddr, health: "/__health", byteExactSingle: true, Scenarios: manifoldScenarios(),
		run: func() *proc { return start(root, "manifold", "0", gwCmd[0], gwCmd[1:]...) }}}
	if *peer != "" || *peerCmd != "" {
		dir, err := filepath.Abs(*peerDir)
		must(err)
		g := peerSetup(*peer, *peerCmd, dir, *peerScen, tmp)
		if g.supports("S2") { // FR drives S2's /agg
			g.Scenarios = append(g.Scenarios, "FR")
		}
		gws = append(gws, g)
	}
	watchdog(bound(selected, gws, *reps, *dur, *warm))

	stub := start(root, "stub", "1", stubBin, "-addr", strings.Join(stubAddrs, ","), "-slow", poolSlow, "-slow-every", "10", "-slow-by", "50ms")
	for _, a := range stubAddrs {
		waitUp(stub, "http://"+a+"/__count")
	}
	procsOf := map[string]*proc{}
	for _, g := range gws {
		p := g.run()
		procsOf[g.Name] = p
		waitUp(p, "http://"+g.addr+g.health)
		if g.Name == "manifold" && conc != nil {
			waitUp(p, "http://"+adminAddr+"/metrics")
		}
		if err := checkAnswers(g); err != nil {
			fatalf("%s gives wrong answers: %v", g.Name, err)
		}
		log.Printf("%s (%s) answers verified for %s; pid %d on core 0", g.Name, g.Version, strings.Join(g.Scenarios, ","), p.pid())
	}
	var pools *gateway
	if withPools {
		pools = &gateway{Name: "manifold", Version: gws[0].Version, Command: "manifold run -c bench/pools.yaml", addr: poolsAddr,
			health: "/__health", run: func() *proc { return start(root, "manifold-pools", "0", gwBin, "run", "-c", "bench/pools.yaml") }}
		for _, sc := range selected {
			if sc.Target == "pools" {
				pools.Scenarios = append(pools.Scenarios, sc.ID)
			}
		}
		p := pools.run()
		procsOf["manifold-pools"] = p
		waitUp(p, "http://"+poolsAddr+pools.health)
		waitUp(p, "http://"+poolsAdminAddr+"/metrics")
		if err := checkPools(selected); err != nil {
			fatalf("manifold (bench/pools.yaml) gives wrong answers: %v", err)
		}
		log.Printf("manifold with bench/pools.yaml answers verified for %s; pid %d on core 0", strings.Join(pools.Scenarios, ","), p.pid())
	}
	log.Printf("stub pid %d on core 1 (with wrk)", stub.pid())
	loadBefore := loadavg()
	log.Printf("load average before: %s", loadBefore)

	var results []result
	var fr *openLoopInfo
	var s8Deadline time.Time
	for _, batch := range batches(selected) {
		type target struct {
			sc   scenario
			name string
			p    *proc
			url  string
			res  *result
		}
		var ts []*target
		for _, sc := range batch {
			switch sc.Target {
			case "stub":
				ts = append(ts, &target{sc, "stub", stub, "http://" + stubAddr + sc.Path, &result{Scenario: sc, Gateway: "stub"}})
			case "pools":
				ts = append(ts, &target{sc, "manifold", procsOf["manifold-pools"], "http://" + poolsAddr + sc.Path, &result{Scenario: sc, Gateway: "manifold"}})
			default:
				for _, g := range gws {
					if g.supports(sc.ID) {
						ts = append(ts, &target{sc, g.Name, procsOf[g.Name], "http://" + g.addr + sc.Path, &result{Scenario: sc, Gateway: g.Name}})
					}
				}
			}
		}
		load := func(t *target, d time.Duration) (run, error) {
			switch {
			case t.sc.Target == "concurrency":
				if time.Now().After(s8Deadline) {
					fatalf("S8 took longer than its bound (%s)", s8Bound(s8Sel, *reps, *dur, *warm).Round(time.Second))
				}
				return s8Level(t.p, stub, t.url, t.sc.Connections, d)
			case t.sc.Target == "openloop":
				return openLoop(t.url, t.sc.Rate, d)
			case t.sc.Rate > 0:
				return paced(t.url, t.sc.Rate, d)
			}
			return wrk(t.url, t.sc.Connections, d)
		}
		if batch[0].Target == "openloop" && len(ts) > 0 {
			// FR's rate: -fr-percent of the lowest saturation (openloop.go).
			var fts []frTarget
			for _, t := range ts {
				fts = append(fts, frTarget{t.name, t.url})
			}
			fr = openLoopRate(results, fts, *frPercent, measureSaturation(*reps, *dur, *warm))
			for _, t := range ts {
				t.sc.Rate, t.res.Scenario.Rate = fr.Rate, fr.Rate
			}
			log.Printf("FR: saturation %v (%s); rate %d rps (%s)", fr.Saturation, fr.Source, fr.Rate, fr.Rule)
		}
		for _, t := range ts {
			if t.sc.Target == "concurrency" {
				// One warm-up before the first level only: each level
				// starts from the state the previous one drained to.
				if !s8Deadline.IsZero() {
					continue
				}
				s8Deadline = time.Now().Add(s8Bound(s8Sel, *reps, *dur, *warm))
			}
			if _, err := load(t, *warm); err != nil {
				fatalf("%s %s warm-up: %v", t.sc.ID, t.name, err)
			}
		}
		for i := range *reps {
			// Interleaved: Manifold, peer, Manifold, peer, ...; or within a
			// group, P1, P2, P1, P2, ...
			for _, t := range ts {
				sc := t.sc
				var idle []*proc
				for _, p := range procsOf {
					if p != t.p {
						idle = append(idle, p)
					}
				}
				var c0 counters
				if sc.Target == "pools" {
					c0 = readCounters()
				}
				t.p.resetPeakRSS()
				cpu0, idle0 := t.p.cpuTicks(), ticks(idle)
				r, err := load(t, *dur)
				if err != nil {
					fatalf("%s %s run %d: %v", sc.ID, t.name, i+1, err)
				}
				cpu := t.p.cpuTicks() - cpu0
				if sc.Target == "pools" {
					c := readCounters().minus(c0)
					r.UpstreamCalls, r.Hedges, r.HedgesWon, r.Coalesced, r.InstanceCalls = c.calls, c.hedges, c.hedgesWon, c.coalesced, c.per
				}
				r.IdleCPUMillis = float64(ticks(idle)-idle0) * 1000 / clockTicks
				if r.Requests > 0 {
					r.CPUMicros = float64(cpu) * (1e6 / clockTicks) / float64(r.Requests)
				}
				r.PeakRSSBytes = t.p.peakRSS()
				r.Load1, _ = strconv.ParseFloat(strings.Fields(loadavg() + " 0")[0], 64)
				log.Printf("%s %s run %d: %.0f rps, p50 %.2fms p99 %.2fms, %.1f µs CPU/req, errors %d, peak RSS %.1f MB, idle gateways %.0f ms CPU, load %.2f",
					sc.ID, t.name, i+1, r.RPS, r.P50Millis, r.P99Millis, r.CPUMicros, r.Errors, float64(r.PeakRSSBytes)/1e6, r.IdleCPUMillis, r.Load1)
				if sc.Target == "pools" {
					log.Printf("%s %s run %d: %d requests, %d upstream calls %v, %d hedges (%d won), %d coalesced",
						sc.ID, t.name, i+1, r.Requests, r.UpstreamCalls, r.InstanceCalls, r.Hedges, r.HedgesWon, r.Coalesced)
				}
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
		LoadBefore: loadBefore, LoadAfter: loadAfter, Gateways: gws, Pools: pools, Results: results,
		Concurrency: conc, OpenLoop: fr,
	}
	rep.Ratios = ratios(results, gws)
	base, chartName := "results", "chart"
	if len(gws) > 1 {
		base, chartName = base+"-"+gws[1].Name, chartName+"-"+gws[1].Name
	}
	if *name != "" {
		base, chartName = *name, "chart"+strings.TrimPrefix(*name, "results")
	}
	js, _ := json.MarshalIndent(rep, "", "  ")
	must(os.WriteFile(filepath.Join(*outDir, base+".json"), append(js, '\n'), 0o644))
	table := markdown(rep)
	must(os.WriteFile(filepath.Join(*outDir, base+".md"), []byte(table), 0o644))
	wrote := []string{base + ".json", base + ".md"}
	suffixed := func(sfx string) string { // -name results-s8: chart-s8.svg, not chart-s8-s8.svg
		if strings.HasSuffix(chartName, sfx) {
			return chartName + ".svg"
		}
		return chartName + sfx + ".svg"
	}
	charts := map[string]string{suffixed("-s8"): concurrencyChart(rep), suffixed("-fr"): openLoopChart(rep)}
	if slices.ContainsFunc(results, func(r result) bool { return r.Scenario.Target == "gateway" }) {
		charts[chartName+".svg"] = chart(rep)
	}
	for _, f := range slices.Sorted(maps.Keys(charts)) {
		if charts[f] != "" {
			must(os.WriteFile(filepath.Join(*outDir, f), []byte(charts[f]), 0o644))
			wrote = append(wrote, f)
		}
	}
	fmt.Print(table)
	log.Printf("wrote %s in %s", strings.Join(wrote, ", "), *outDir)
}

// manifoldScenarios are the gateway scenarios bench/manifold.yaml serves.
func manifoldScenarios() []string {
	var ids []string
	for _, sc := range scenarios {
		if onGateway(sc) {
			ids = append(ids, sc.ID)
		}
	}
	return ids
}

// onGateway: the scenario is measured on the -peer gateways that serve it
// (and on bench/manifold.yaml's Manifold), not on the stub or the pool one.
func onGateway(sc scenario) bool {
	return sc.Target == "gateway" || sc.Target == "concurrency" || sc.Target == "openloop"
}

// familied: -only picks the scenario by its family too (S6, S7, S8).
func familied(sc scenario) bool { return sc.Size > 0 || sc.Target == "concurrency" }

// selectScenarios picks -only's scenarios in table order: by default
// S1–S5, "pools" standing for P1–P4, C1 and C2, S6, S7 and S8 for their
// families.
func selectScenarios(only string) []scenario {
	var sel []scenario
	want := strings.Split(only, ",")
	for _, sc := range scenarios {
		grown := familied(sc) && slices.Contains(want, family(sc.ID))
		byDefault := sc.Target == "gateway" || sc.Target == "stub"
		if (only == "" && byDefault && sc.Size == 0) || slices.Contains(want, sc.ID) || grown || (sc.Target == "pools" && slices.Contains(want, "pools")) {
			sel = append(sel, sc)
		}
	}
	for _, id := range want {
		if only != "" && id != "pools" && !slices.ContainsFunc(scenarios, func(s scenario) bool { return s.ID == id || (familied(s) && family(s.ID) == id) }) {
			log.Fatalf("-only: no scenario %q", id)
		}
	}
	if len(sel) == 0 {
		log.Fatal("no scenario selected")
	}
	return sel
}

// batches splits the selected scenarios into runs of one scenario, or of
// neighbours sharing a Group, whose repetitions are interleaved.
func batches(sel []scenario) [][]scenario {
	var out [][]scenario
	for _, sc := range sel {
		if n := len(out); n > 0 && sc.Group != "" && out[n-1][0].Group == sc.Group {
			out[n-1] = append(out[n-1], sc)
			continue
		}
		out = append(out, []scenario{sc})
	}
	return out
}

// bound is how long the whole run may take: twice the measuring time, plus
// ten minutes for the builds and start-ups.
func bound(sel []scenario, gws []*gateway, reps int, dur, warm time.Duration) time.Duration {
	var d time.Duration
	for _, sc := range sel {
		n := 1 // the stub, or the pool gateway
		switch sc.Target {
		case "concurrency":
			d += s8Bound([]int{sc.Connections}, reps, dur, warm)
			continue
		case "openloop": // and the saturation runs, if S2 did not run
			d += time.Duration(len(gws)) * (warm + time.Duration(reps)*(dur+time.Second))
		}
		if onGateway(sc) {
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
	checked := map[string]bool{}
	for _, sc := range scenarios {
		if !onGateway(sc) || !g.supports(sc.ID) || checked[sc.Path] {
			continue
		}
		checked[sc.Path] = true
		b, err := get("http://" + g.addr + sc.Path)
		if err != nil {
			return err
		}
		if len(sc.Backends) > 0 {
			if err := checkUnion(sc, b); err != nil {
				return err
			}
			continue
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

// checkUnion makes sure b, a growth scenario's answer, is exactly the
// union of the stub's answers at sc.Backends.
func checkUnion(sc scenario, b []byte) error {
	union := map[string]any{}
	for _, p := range sc.Backends {
		sb, err := get("http://" + stubAddr + p)
		if err != nil {
			return err
		}
		v, err := decode(sb)
		if err != nil {
			return fmt.Errorf("stub %s: %v", p, err)
		}
		maps.Copy(union, v.(map[string]any))
	}
	v, err := decode(b)
	if err != nil {
		return fmt.Errorf("%s: %v", sc.Path, err)
	}
	if !sameJSON(v, union) {
		return fmt.Errorf("%s: not the union of %s (%d keys, want %d)", sc.Path, strings.Join(sc.Backends, ", "), len(v.(map[string]any)), len(union))
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
	return wrkRun(url, conns, 1, 0, d)
}

// wrkRun runs wrk pinned to core 1 with threads threads and, when timeout
// is not 0, that request timeout (wrk's default is 2 s).
func wrkRun(url string, conns, threads int, timeout, d time.Duration) (run, error) {
	ctx, cancel := context.WithTimeout(runCtx, d+30*time.Second)
	defer cancel()
	args := []string{"-c", "1", "wrk", "-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(int(d.Seconds())) + "s", "--latency"}
	if timeout > 0 {
		args = append(args, "--timeout", strconv.Itoa(int(timeout.Seconds()))+"s")
	}
	out, err := exec.CommandContext(ctx, "taskset", append(args, url)...).CombinedOutput()
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
	var socket [4]int
	if e := reSocket.FindStringSubmatch(s); e != nil {
		for i, n := range e[1:] {
			socket[i], _ = strconv.Atoi(n)
			r.Errors += socket[i]
		}
	}
	non2xx := 0
	if e := reNon2xx.FindStringSubmatch(s); e != nil {
		non2xx, _ = strconv.Atoi(e[1])
		r.Errors += non2xx
	}
	if r.Errors > 0 {
		r.ErrorDetail = errorDetail(non2xx, socket)
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
	set(func(r run) float64 { return r.P999Millis }, func(r *run, v float64) { r.P999Millis = v })
	set(func(r run) float64 { return r.MaxMillis }, func(r *run, v float64) { r.MaxMillis = v })
	set(func(r run) float64 { return r.CPUMicros }, func(r *run, v float64) { r.CPUMicros = v })
	set(func(r run) float64 { return float64(r.PeakRSSBytes) }, func(r *run, v float64) { r.PeakRSSBytes = int64(v) })
	set(func(r run) float64 { return r.IdleCPUMillis }, func(r *run, v float64) { r.IdleCPUMillis = v })
	set(func(r run) float64 { return r.Load1 }, func(r *run, v float64) { r.Load1 = v })
	set(func(r run) float64 { return float64(r.UpstreamCalls) }, func(r *run, v float64) { r.UpstreamCalls = int(v) })
	set(func(r run) float64 { return float64(r.Hedges) }, func(r *run, v float64) { r.Hedges = int(v) })
	set(func(r run) float64 { return float64(r.HedgesWon) }, func(r *run, v float64) { r.HedgesWon = int(v) })
	set(func(r run) float64 { return float64(r.Coalesced) }, func(r *run, v float64) { r.Coalesced = int(v) })
	set(func(r run) float64 { return float64(r.IdleRSSBytes) }, func(r *run, v float64) { r.IdleRSSBytes = int64(v) })
	set(func(r run) float64 { return r.RSSPerConnKB }, func(r *run, v float64) { r.RSSPerConnKB = v })
	set(func(r run) float64 { return float64(r.GoroutinesBefore) }, func(r *run, v float64) { r.GoroutinesBefore = int(v) })
	set(func(r run) float64 { return float64(r.GoroutinesPeak) }, func(r *run, v float64) { r.GoroutinesPeak = int(v) })
	set(func(r run) float64 { return float64(r.GoroutinesAfter) }, func(r *run, v float64) { r.GoroutinesAfter = int(v) })
	set(func(r run) float64 { return r.DrainMillis }, func(r *run, v float64) { r.DrainMillis = v })
	set(func(r run) float64 { return float64(r.InflightPeak) }, func(r *run, v float64) { r.InflightPeak = int(v) })
	set(func(r run) float64 { return float64(r.PeakFDs) }, func(r *run, v float64) { r.PeakFDs = int(v) })
	set(func(r run) float64 { return float64(r.StubPeakFDs) }, func(r *run, v float64) { r.StubPeakFDs = int(v) })
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
