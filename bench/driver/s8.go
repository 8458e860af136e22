package main

import (
	"bufio"
	"fmt"
	"log"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// S8, concurrency (-only S8; not in the default selection): how many
// client connections the gateway holds at once, and what each costs. One
// level per -s8-levels value (default 1,000, 5,000 and 10,000 connections)
// drives /agg-200 of bench/manifold.yaml, three backends the stub holds
// 200 ms each, with wrk -t2 -cN pinned to core 1 beside the stub; so up to
// N requests and 3N upstream calls are in flight at once. Each level is one
// wrk run of -duration (its latencies as wrk measures them, its errors the
// non-2xx answers plus wrk's socket errors), and around it:
//
//   - the gateway's RSS just before (VmRSS, idle) and its peak during the
//     level (VmHWM, reset before), so that (peak − idle) ÷ N is the memory
//     one more connection with a request in flight costs;
//   - go_goroutines and manifold_inflight_requests from the gateway's
//     admin listener (turned on for S8 only, at adminAddr), scraped before,
//     every s8Poll during the level (the peak is the highest sample), and
//     after wrk has stopped until the count is back within s8Margin of the
//     level's baseline, or s8Drain has passed: the value reached and how
//     long it took are reported, so a leak shows as "not drained";
//   - the open file descriptors of the gateway and of the stub, sampled
//     with the goroutines.
//
// The gateway is a Go program: Go raises its own soft RLIMIT_NOFILE to the
// hard limit at start-up, but gives the processes it starts the soft limit
// it found, so wrk (C) would keep the shell's. The driver therefore sets
// its own soft limit to the hard one before starting anything (raiseFDLimit),
// and every process it starts inherits that; bench/run.sh raises the hard
// limit first where it may (ulimit -n 65536). A level of N connections
// needs N fds in the gateway for its clients and one per upstream
// connection, which bench/manifold.yaml caps at s8UpstreamConns per
// backend (max_connections): N + 3 × min(N, 2 500) + 1 024, so 10,000
// needs 18,524 (checkFDLimit).
//
// Levels run in the order given (ascending by default), after every other
// selected scenario, so that the gateway's heap after 10,000 connections
// does not weigh on them. KrakenD is not measured here: it has no
// /agg-200 and no go_goroutines to read.

const (
	adminAddr = "127.0.0.1:9290" // the main gateway's admin listener, on for S8 only
	s8Path    = "/agg-200"
	// s8Drain bounds the wait, after a level, for the goroutines to return.
	s8Drain = 10 * time.Second
	// s8Margin: goroutines above the level's baseline that still count as
	// drained (a scrape's own, the runtime's background workers).
	s8Margin = 10
	// s8Poll is how often goroutines, requests in flight and fds are sampled.
	s8Poll = 250 * time.Millisecond
	// s8WrkTimeout is wrk's request timeout: above the endpoint's 10 s, so
	// that a request the gateway gives up on is its 504, not wrk's timeout.
	s8WrkTimeout = 15 * time.Second
	// s8FDSpare is what a process needs besides its sockets: listeners,
	// files, the runtime's own.
	s8FDSpare = 1024
	// s8UpstreamConns is max_connections of /agg-200's upstreams (s8a, s8b,
	// s8c) in bench/manifold.yaml: the most connections the gateway opens
	// to each; calls beyond them wait for one. Keep the two equal.
	s8UpstreamConns = 2500
)

// s8FDNeed is the open files a level of n connections can need in the
// gateway: n client connections and up to s8UpstreamConns per backend.
// The stub, one process for the three listeners, needs the upstream part.
func s8FDNeed(n int) int { return n + 3*min(n, s8UpstreamConns) + s8FDSpare }

// s8Levels is -s8-levels, parsed: the connections of each S8 level.
func s8Levels(spec string) []int {
	var out []int
	for f := range strings.SplitSeq(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 100000 {
			log.Fatalf("-s8-levels %q: %q is not a number of connections from 1 to 100000", spec, f)
		}
		if slices.Contains(out, n) {
			log.Fatalf("-s8-levels %q: %d twice", spec, n)
		}
		out = append(out, n)
	}
	return out
}

// s8Scenarios are the S8 levels as scenarios (family S8: -only S8 picks
// them all, -only S8.1000 one).
func s8Scenarios(levels []int) []scenario {
	var out []scenario
	for _, n := range levels {
		out = append(out, scenario{ID: fmt.Sprintf("S8.%d", n), Name: fmt.Sprintf("%s: 3 backends of 200 ms merged, %d connections", s8Path, n),
			Target: "concurrency", Path: s8Path, Connections: n, Backends: []string{"/a?delay=200ms", "/b?delay=200ms", "/c?delay=200ms"}})
	}
	return out
}

// s8Bound is how long the S8 levels may take in all: per level and
// repetition the wrk run, wrk's own margin past it, the drain and the
// scrapes around it; plus one warm-up.
func s8Bound(levels []int, reps int, dur, warm time.Duration) time.Duration {
	per := dur + 30*time.Second + s8Drain + 3*adminClient.Timeout
	return time.Duration(len(levels)*reps)*per + warm + 30*time.Second + s8Drain + 3*adminClient.Timeout
}

// concurrencyInfo is what the report says about S8 as a whole.
type concurrencyInfo struct {
	Levels []int `json:"levels"`
	// FDLimit is the soft RLIMIT_NOFILE every started process had.
	FDLimit uint64 `json:"fd_limit"`
	// FDWorstCase is what the gateway needs at the highest level with
	// every connection's three upstream calls open at once (4N + spare);
	// FDFitsUpTo the most connections the limit allows so; FDShortLevels
	// the levels run below their worst case (-s8-fd-shortfall).
	FDWorstCase   int      `json:"fd_worst_case"`
	FDFitsUpTo    int      `json:"fd_fits_up_to"`
	FDShortLevels []string `json:"fd_short_levels,omitempty"`
	WrkThreads    int      `json:"wrk_threads"`
	WrkTimeout    string   `json:"wrk_timeout"`
	Poll          string   `json:"poll"`
	DrainBound    string   `json:"drain_bound"`
	DrainMargin   int      `json:"drain_margin"`
	AdminAddress  string   `json:"admin_address"`
}

// raiseFDLimit sets the driver's soft RLIMIT_NOFILE to its hard limit, so
// that the processes it starts inherit it, and returns it.
func raiseFDLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fatalf("getrlimit(RLIMIT_NOFILE): %v", err)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fatalf("setrlimit(RLIMIT_NOFILE, %d): %v", rl.Max, err)
	}
	return rl.Cur
}

// checkFDLimit makes sure every process can hold each level, N
// connections, and returns the top level's worst case (s8FDNeed). The
// gateway needs N client connections plus one per upstream connection, of
// which there would be one per call in flight, 3N, without the config's
// max_connections: the worst case is reached, not only in theory, because
// wrk opens its N connections at once and the gateway starts the three
// calls of every request as soon as it has read it, long before it has
// answered many (seen on 2 cores without the cap: 29,000 goroutines at
// once at 10,000 connections, and dials refused with EMFILE past a limit
// of 20,000). Without -s8-fd-shortfall the driver fails when the limit is
// below a level's need; with it, such levels run anyway and a call
// refused for want of an fd is a 5xx, counted as an error (the report says
// which levels ran short).
func checkFDLimit(levels []int, limit uint64, shortfall bool, info *concurrencyInfo) {
	lim := int(min(limit, 1<<30))
	fits := 0 // the most connections that fit
	if lim >= s8FDNeed(s8UpstreamConns) {
		fits = lim - s8FDSpare - 3*s8UpstreamConns
	} else {
		fits = max((lim-s8FDSpare)/4, 0)
	}
	info.FDFitsUpTo = fits
	info.FDWorstCase = s8FDNeed(slices.Max(levels))
	var short []string
	for _, n := range levels {
		if n > fits {
			short = append(short, strconv.Itoa(n))
		}
	}
	if len(short) == 0 {
		return
	}
	info.FDShortLevels = short
	if !shortfall {
		fatalf("S8 at %s connections can need %d open files per process (N client connections and up to %d upstream connections per backend, N + 3 × min(N, %[3]d) + %d); RLIMIT_NOFILE is %d, enough for %d connections: raise the hard limit (ulimit -Hn as root with CAP_SYS_RESOURCE, or limits.conf), lower -s8-levels, or pass -s8-fd-shortfall to run them anyway (calls refused for want of an fd are then 5xx answers, counted as errors)",
			strings.Join(short, ", "), info.FDWorstCase, s8UpstreamConns, s8FDSpare, limit, fits)
	}
	log.Printf("S8: -s8-fd-shortfall: levels %s run with RLIMIT_NOFILE %d, below their worst case (N + 3 × min(N, %d) + %d; enough for %d connections): calls refused for want of an fd are counted as errors",
		strings.Join(short, ", "), limit, s8UpstreamConns, s8FDSpare, fits)
}

// gatewayMetrics are the admin listener's values S8 reads.
type gatewayMetrics struct{ goroutines, inflight int }

var adminClient = &http.Client{Timeout: 5 * time.Second}

// scrapeAdmin reads go_goroutines and manifold_inflight_requests from the
// gateway's admin /metrics.
func scrapeAdmin() (gatewayMetrics, error) {
	resp, err := adminClient.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		return gatewayMetrics{}, fmt.Errorf("scrape admin /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return gatewayMetrics{}, fmt.Errorf("scrape admin /metrics: status %d", resp.StatusCode)
	}
	var m gatewayMetrics
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || (name != "go_goroutines" && name != "manifold_inflight_requests") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return gatewayMetrics{}, fmt.Errorf("admin /metrics: %s %q: %w", name, val, err)
		}
		found++
		if name == "go_goroutines" {
			m.goroutines = int(v)
		} else {
			m.inflight = int(v)
		}
	}
	if err := sc.Err(); err != nil {
		return gatewayMetrics{}, fmt.Errorf("read admin /metrics: %w", err)
	}
	if found < 2 {
		return gatewayMetrics{}, fmt.Errorf("admin /metrics: go_goroutines or manifold_inflight_requests missing")
	}
	return m, nil
}

// rss is the sum of VmRSS over p's process group, in bytes.
func (p *proc) rss() int64 {
	var sum int64
	for _, pid := range group(p.pid()) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				sum += kb * 1024
			}
		}
	}
	return sum
}

// fds is the number of open file descriptors over p's process group.
func (p *proc) fds() int {
	n := 0
	for _, pid := range group(p.pid()) {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err == nil {
			n += len(ents)
		}
	}
	return n
}

// s8Level runs one level: conns wrk connections on url for d, with the
// gateway gw's goroutines, requests in flight, RSS and fds (and the stub's
// fds) read around and during it, then waits for the goroutines to drain.
func s8Level(gw, stub *proc, url string, conns int, d time.Duration) (run, error) {
	before, err := scrapeAdmin()
	if err != nil {
		return run{}, err
	}
	idleRSS := gw.rss()
	peak := before
	peakFDs, stubFDs, samples, failed := gw.fds(), stub.fds(), 0, 0
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s8Poll)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			peakFDs, stubFDs = max(peakFDs, gw.fds()), max(stubFDs, stub.fds())
			m, err := scrapeAdmin()
			if err != nil { // the admin listener shares the loaded core: a scrape may time out
				failed++
				continue
			}
			samples++
			peak.goroutines, peak.inflight = max(peak.goroutines, m.goroutines), max(peak.inflight, m.inflight)
		}
	}()
	r, err := wrkRun(url, conns, min(2, conns), s8WrkTimeout, d)
	close(stop)
	<-done
	if err != nil {
		return run{}, err
	}
	// Drained: back within s8Margin of the baseline, or s8Drain has passed.
	t0 := time.Now()
	after, drained := gatewayMetrics{goroutines: -1}, false
	for {
		if m, err := scrapeAdmin(); err == nil {
			after = m
			if m.goroutines <= before.goroutines+s8Margin {
				drained = true
				break
			}
		}
		if time.Since(t0) > s8Drain {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.IdleRSSBytes = idleRSS
	if pk := gw.peakRSS(); conns > 0 {
		r.RSSPerConnKB = float64(pk-idleRSS) / float64(conns) / 1024
	}
	r.GoroutinesBefore, r.GoroutinesPeak, r.GoroutinesAfter = before.goroutines, peak.goroutines, after.goroutines
	r.InflightPeak, r.DrainMillis, r.NotDrained = peak.inflight, float64(time.Since(t0).Milliseconds()), !drained
	r.PeakFDs, r.StubPeakFDs = peakFDs, stubFDs
	errs := r.ErrorDetail
	if errs == "" {
		errs = "none"
	}
	log.Printf("S8 %d connections: goroutines %d before, %d at peak (%d samples, %d scrapes failed), %d after %.1fs (drained: %v); %d requests in flight at peak; fds gateway %d, stub %d; RSS idle %.1f MB; errors %s",
		conns, before.goroutines, peak.goroutines, samples, failed, after.goroutines, r.DrainMillis/1000, drained, peak.inflight, peakFDs, stubFDs, float64(idleRSS)/1e6, errs)
	return r, nil
}

// concurrencyMarkdown is the report's S8 section; "" when S8 did not run.
func concurrencyMarkdown(rep report) string {
	rs := levelResults(rep)
	if len(rs) == 0 || rep.Concurrency == nil {
		return ""
	}
	c := rep.Concurrency
	var b strings.Builder
	fmt.Fprintf(&b, "\n## S8, concurrency: %s, 3 backends the stub holds 200 ms each, merged\n\n", s8Path)
	fmt.Fprintf(&b, "wrk -t%d -cN --timeout %s, pinned to core 1 beside the stub, for %s per level (%d repetition(s), medians, min–max in brackets); Manifold alone (KrakenD has no %s and no goroutine count). ", c.WrkThreads, c.WrkTimeout, rep.Duration, rep.Reps, s8Path)
	fmt.Fprintf(&b, "Errors = non-2xx answers + wrk's socket errors (connect, read, write, timeout), the most of any repetition, with its breakdown; every backend is required, so a failed upstream call is a 5xx, never a partial 200. ")
	fmt.Fprintf(&b, "RSS per connection = (peak RSS − RSS just before the level) ÷ connections: levels run in ascending order and Go keeps the heap it grew, so a level after a bigger one reads low. ")
	fmt.Fprintf(&b, "Goroutines (`go_goroutines`) and requests in flight (`manifold_inflight_requests`) from the admin listener (%s): before the level, the highest of the samples taken every %s during it, and after wrk stopped, the first value within %d of the baseline, or the last one at %s (then marked not drained). ", c.AdminAddress, c.Poll, c.DrainMargin, c.DrainBound)
	fmt.Fprintf(&b, "Open fds sampled likewise; every process had RLIMIT_NOFILE %d, enough for %d connections with up to %d upstream connections per backend (max_connections; the gateway's need at the top level: %d).", c.FDLimit, c.FDFitsUpTo, s8UpstreamConns, c.FDWorstCase)
	if len(c.FDShortLevels) > 0 {
		fmt.Fprintf(&b, " **Ran short of fds** (-s8-fd-shortfall), at %s connections: the errors include upstream dials refused with EMFILE (too many open files), and their sampled peak fds may miss the moment the limit was hit.", strings.Join(c.FDShortLevels, ", "))
	}
	b.WriteString("\n\n")
	b.WriteString("| connections | rps | p50 ms | p99 ms | errors | in flight at peak | peak RSS MB | RSS before MB | RSS per connection KB | goroutines before | at peak | after (drain s) | peak fds gateway / stub | CPU µs/req | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		m, l, h := r.Median, r.Min, r.Max
		worst := r.Runs[0]
		for _, x := range r.Runs {
			if x.Errors > worst.Errors {
				worst = x
			}
		}
		errs := fmt.Sprintf("%d", h.Errors)
		if worst.ErrorDetail != "" && h.Errors > 0 {
			errs += " (" + worst.ErrorDetail + ")"
		}
		drain := fmt.Sprintf("%d (%.1f)", m.GoroutinesAfter, m.DrainMillis/1000)
		if !allDrained(r.Runs) {
			drain += " **not drained**"
		}
		fmt.Fprintf(&b, "| %d | %.0f (%.0f–%.0f) | %.1f | **%.1f** (%.1f–%.1f) | %s | %d | %.1f | %.1f | **%.1f** (%.1f–%.1f) | %d | %d | %s | %d / %d | %.1f | %.1f–%.1f |\n",
			r.Scenario.Connections, m.RPS, l.RPS, h.RPS, m.P50Millis, m.P99Millis, l.P99Millis, h.P99Millis, errs, m.InflightPeak,
			float64(m.PeakRSSBytes)/1e6, float64(m.IdleRSSBytes)/1e6, m.RSSPerConnKB, l.RSSPerConnKB, h.RSSPerConnKB,
			m.GoroutinesBefore, m.GoroutinesPeak, drain, h.PeakFDs, h.StubPeakFDs, m.CPUMicros, l.Load1, h.Load1)
	}
	b.WriteString("\nWith N connections each waiting 200 ms, the most a gateway can answer is N ÷ 0.2 s; below that, it is CPU-bound on its one core, and the rest of each request's time is queueing (Little's law: connections = rps × latency).\n")
	return b.String()
}

func allDrained(runs []run) bool {
	for _, r := range runs {
		if r.NotDrained {
			return false
		}
	}
	return true
}

// levelResults are the S8 results, in the order they ran.
func levelResults(rep report) []*result {
	var rs []*result
	for i := range rep.Results {
		if rep.Results[i].Scenario.Target == "concurrency" {
			rs = append(rs, &rep.Results[i])
		}
	}
	return rs
}

// concurrencyChart draws p99 latency and throughput against the number of
// connections, one point per level; "" when S8 did not run.
func concurrencyChart(rep report) string {
	rs := levelResults(rep)
	if len(rs) == 0 {
		return ""
	}
	const w, h, panelH, left = 760, 560, 190, 80
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="%d" y="18" fill="#555">S8 %s, Manifold, %s, load average %s → %s; medians of %d × %s</text>`+"\n",
		left, s8Path, rep.Date, rep.LoadBefore, rep.LoadAfter, rep.Reps, rep.Duration)
	panel := func(top int, title string, val func(run) float64) {
		maxV := 0.0
		for _, r := range rs {
			maxV = max(maxV, val(r.Median)*1.15)
		}
		if maxV == 0 {
			maxV = 1
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", left, top-8, title)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, top+panelH, w-20, top+panelH)
		for i := 0; i <= 4; i++ {
			v := maxV * float64(i) / 4
			y := top + panelH - int(float64(panelH)*float64(i)/4)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#555">%s</text>`+"\n", left-6, y+4, short(v))
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#eee"/>`+"\n", left, y, w-20, y)
		}
		// x: connections on a log scale, so 1,000 to 10,000 spread evenly.
		lo, hi := math.Log10(float64(rs[0].Scenario.Connections)), math.Log10(float64(rs[0].Scenario.Connections))
		for _, r := range rs {
			lo, hi = min(lo, math.Log10(float64(r.Scenario.Connections))), max(hi, math.Log10(float64(r.Scenario.Connections)))
		}
		xOf := func(n int) int {
			if hi == lo {
				return (left + w - 20) / 2
			}
			return left + 40 + int(float64(w-left-100)*(math.Log10(float64(n))-lo)/(hi-lo))
		}
		var pts []string
		sorted := slices.Clone(rs)
		slices.SortFunc(sorted, func(a, b *result) int { return a.Scenario.Connections - b.Scenario.Connections })
		for _, r := range sorted {
			x, v := xOf(r.Scenario.Connections), val(r.Median)
			y := top + panelH - int(float64(panelH)*v/maxV)
			pts = append(pts, fmt.Sprintf("%d,%d", x, y))
			fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="4" fill="#3b7dd8"/><text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x, y, x, y-8, short(v))
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%d conns</text>`+"\n", x, top+panelH+16, r.Scenario.Connections)
		}
		fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#3b7dd8" stroke-width="2"/>`+"\n", strings.Join(pts, " "))
	}
	panel(70, "p99 latency (ms) against connections (log scale)", func(r run) float64 { return r.P99Millis })
	panel(70+panelH+80, "requests per second against connections", func(r run) float64 { return r.RPS })
	b.WriteString("</svg>\n")
	return b.String()
}

// short prints v with 3 significant digits at most, as a chart label.
func short(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// errorDetail is wrk's error breakdown, as the report prints it.
func errorDetail(non2xx int, socket [4]int) string {
	return fmt.Sprintf("non-2xx %d, connect %d, read %d, write %d, timeout %d", non2xx, socket[0], socket[1], socket[2], socket[3])
}
