package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"maps"
	"math"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// FR, fixed rate, open loop (-only FR; not in the default selection): S2's
// /agg driven at a constant request rate, a fraction (-fr-percent, 50 %) of
// the saturation throughput measured in the same run, to read the latency
// percentiles of a gateway that is busy but not overloaded: p50, p99,
// p99.9 and the slowest request.
//
// The saturation is S2's: a closed-loop wrk run, 64 connections, as S2
// measures it. When S2 ran earlier in this run for the gateway, its median
// is taken; otherwise it is measured here the same way (a warm-up, then
// -reps runs of -duration, interleaved between the gateways, the median).
//
// With a peer, both gateways are driven at the SAME rate: -fr-percent of
// the LOWER of the two saturations. Each at a fraction of its own would
// compare them at different loads (the faster gateway would answer more
// requests per second) and the percentiles would not say which one queues
// less; at one rate both face the same arrivals. The report states both
// saturations and the rate.
//
// The generator is vegeta's library (github.com/tsenart/vegeta/v12),
// open loop: it sends on schedule whatever the answers, starting another
// worker (and connection) whenever all are busy, so a slow answer does not
// delay the requests after it and its wait is measured, not hidden
// (closed loop, as wrk is, would send less while the gateway is slow). Each
// request is timed from its send to its last byte. The driver runs it as
// its own child process pinned to core 1 beside the stub, as wrk is:
// `driver -openloop URL,RATE,DURATION` prints one openLoopResult.

const (
	// openLoopMaxWorkers bounds vegeta's workers (and so its connections):
	// about 5 s of arrivals at 2,000 requests per second. Only a gateway
	// that stalls for seconds reaches it; past it the generator waits.
	openLoopMaxWorkers = 10000
	openLoopTimeout    = 5 * time.Second
	vegetaModule       = "github.com/tsenart/vegeta/v12"
)

// openLoopInfo is what the report says about FR as a whole.
type openLoopInfo struct {
	Percent int `json:"percent"`
	// Saturation is each gateway's S2 throughput (closed loop, wrk -c64)
	// in this run; Source says whether S2's results or FR's own runs.
	Saturation map[string]float64 `json:"saturation_rps"`
	Source     string             `json:"saturation_source"`
	Rate       int                `json:"rate"`
	Rule       string             `json:"rule"`
	Generator  string             `json:"generator"`
}

// openLoopResult is what an open-loop child reports.
type openLoopResult struct {
	Sent       int            `json:"sent"`
	Errors     int            `json:"errors"`      // not 2xx, or no answer
	Rate       float64        `json:"rate"`        // sent per second, first send to last
	Throughput float64        `json:"throughput"`  // answered 2xx/3xx per second, to the last answer
	Codes      map[string]int `json:"codes"`       // by status, "0" for no answer
	ErrorText  []string       `json:"error_texts"` // the distinct errors, at most 5
	Latencies  []float64      `json:"latencies_ms"`
}

// frTarget is one gateway FR drives.
type frTarget struct{ name, url string }

// openLoopRate picks FR's rate: the saturation of each target (S2's median
// from results when S2 ran for it in this run, else measured for the
// others with measure), then percent of the lowest.
func openLoopRate(results []result, ts []frTarget, percent int, measure func([]frTarget) map[string]float64) *openLoopInfo {
	info := &openLoopInfo{Percent: percent, Saturation: map[string]float64{}, Generator: generatorVersion()}
	var fromS2, measured []string
	var missing []frTarget
	for _, t := range ts {
		if r := find(results, "S2", t.name); r != nil {
			info.Saturation[t.name] = r.Median.RPS
			fromS2 = append(fromS2, label(t.name))
		} else {
			missing = append(missing, t)
			measured = append(measured, label(t.name))
		}
	}
	if len(missing) > 0 {
		maps.Copy(info.Saturation, measure(missing))
	}
	var parts []string
	if len(fromS2) > 0 {
		parts = append(parts, strings.Join(fromS2, ", ")+": S2's median in this run")
	}
	if len(measured) > 0 {
		parts = append(parts, strings.Join(measured, ", ")+": measured for FR as S2 is, wrk -t1 -c64 on /agg, median of the repetitions")
	}
	info.Source = strings.Join(parts, "; ")
	low := math.Inf(1)
	for _, t := range ts {
		low = min(low, info.Saturation[t.name])
	}
	info.Rate = int(low * float64(percent) / 100)
	if info.Rate < 1 {
		fatalf("FR: saturation %.0f rps gives no rate at %d %%", low, percent)
	}
	info.Rule = fmt.Sprintf("%d %% of the lowest saturation, the same rate for every gateway", percent)
	if len(ts) > 1 {
		info.Rule = fmt.Sprintf("%d %% of the lower of the two saturations, so that both face the same constant rate", percent)
	}
	return info
}

// measureSaturation measures S2's saturation as S2 does: per target a
// warm-up, then reps closed-loop wrk runs of d, 64 connections,
// interleaved between the targets; the median of each.
func measureSaturation(reps int, d, warm time.Duration) func([]frTarget) map[string]float64 {
	return func(ts []frTarget) map[string]float64 {
		for _, t := range ts {
			if _, err := wrk(t.url, 64, warm); err != nil {
				fatalf("FR saturation %s warm-up: %v", t.name, err)
			}
		}
		rps := map[string][]float64{}
		for i := range reps {
			for _, t := range ts {
				r, err := wrk(t.url, 64, d)
				if err != nil {
					fatalf("FR saturation %s run %d: %v", t.name, i+1, err)
				}
				log.Printf("FR saturation %s run %d: %.0f rps, errors %d", t.name, i+1, r.RPS, r.Errors)
				rps[t.name] = append(rps[t.name], r.RPS)
			}
		}
		out := map[string]float64{}
		for n, vs := range rps {
			out[n] = spanOf(vs).Median
		}
		return out
	}
}

// generatorVersion names vegeta and its version, as this binary was built with it.
func generatorVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == vegetaModule {
				return vegetaModule + " " + d.Version
			}
		}
	}
	return vegetaModule
}

// openLoop runs the open-loop generator pinned to core 1 and reads its result.
func openLoop(url string, rate int, d time.Duration) (run, error) {
	self, err := os.Executable()
	if err != nil {
		return run{}, fmt.Errorf("open-loop generator: %w", err)
	}
	ctx, cancel := context.WithTimeout(runCtx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", "-c", "1", self, "-openloop", fmt.Sprintf("%s,%d,%s", url, rate, d))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return run{}, fmt.Errorf("open-loop generator: %w", err)
	}
	var o openLoopResult
	if err := json.Unmarshal(out, &o); err != nil {
		return run{}, fmt.Errorf("open-loop generator printed %.200q: %w", out, err)
	}
	r := run{Requests: o.Sent, Errors: o.Errors, RPS: o.Rate}
	r.P50Millis, r.P90Millis, r.P99Millis = quantile(o.Latencies, 0.50), quantile(o.Latencies, 0.90), quantile(o.Latencies, 0.99)
	r.P999Millis, r.MaxMillis = quantile(o.Latencies, 0.999), quantile(o.Latencies, 1)
	if o.Errors > 0 {
		r.ErrorDetail = fmt.Sprintf("status %v; %s", o.Codes, strings.Join(o.ErrorText, "; "))
	}
	log.Printf("FR %s at %d rps: sent %d at %.1f rps, %.1f answered per second, p99.9 %.2fms, max %.2fms, codes %v",
		url, rate, o.Sent, o.Rate, o.Throughput, r.P999Millis, r.MaxMillis, o.Codes)
	return r, nil
}

// openLoopMain is the child: -openloop URL,RATE,DURATION. vegeta sends
// RATE requests per second for DURATION, waits for the last answer (each
// bounded by openLoopTimeout) and the child prints an openLoopResult.
func openLoopMain(spec string) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fatalf("-openloop %q: want URL,RATE,DURATION", spec)
	}
	rate, err := strconv.Atoi(parts[1])
	if err != nil || rate < 1 || rate > 100000 {
		fatalf("-openloop: rate %q: want 1 to 100000 requests per second", parts[1])
	}
	d, err := time.ParseDuration(parts[2])
	if err != nil || d <= 0 || d > 10*time.Minute {
		fatalf("-openloop: duration %q: want a positive duration up to 10m", parts[2])
	}
	atk := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.Timeout(openLoopTimeout), vegeta.MaxBody(0),
		vegeta.MaxWorkers(openLoopMaxWorkers), vegeta.HTTP2(false), vegeta.Redirects(vegeta.NoFollow))
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: parts[0]})
	var m vegeta.Metrics
	res := openLoopResult{Codes: map[string]int{}}
	seen := map[string]bool{}
	for r := range atk.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, "FR") {
		m.Add(r)
		res.Latencies = append(res.Latencies, float64(r.Latency)/1e6)
		res.Codes[strconv.Itoa(int(r.Code))]++
		if r.Code < 200 || r.Code >= 300 {
			res.Errors++
			if r.Error != "" && !seen[r.Error] && len(seen) < 5 {
				seen[r.Error] = true
				res.ErrorText = append(res.ErrorText, r.Error)
			}
		}
	}
	m.Close()
	res.Sent, res.Rate, res.Throughput = int(m.Requests), m.Rate, m.Throughput
	must(json.NewEncoder(os.Stdout).Encode(res))
}

// openLoopMarkdown is the report's FR section; "" when FR did not run.
func openLoopMarkdown(rep report) string {
	var rs []*result
	for i := range rep.Results {
		if rep.Results[i].Scenario.Target == "openloop" {
			rs = append(rs, &rep.Results[i])
		}
	}
	if len(rs) == 0 || rep.OpenLoop == nil {
		return ""
	}
	o := rep.OpenLoop
	var b strings.Builder
	b.WriteString("\n## FR, fixed rate, open loop: /agg (S2) at a constant request rate\n\n")
	var sat []string
	for _, g := range rep.Gateways {
		if v, ok := o.Saturation[g.Name]; ok {
			sat = append(sat, fmt.Sprintf("%s %.0f rps", label(g.Name), v))
		}
	}
	fmt.Fprintf(&b, "S2's saturation throughput in this run (closed loop, wrk, 64 connections): %s (%s). ", strings.Join(sat, ", "), o.Source)
	fmt.Fprintf(&b, "FR's rate: %s, **%d requests per second**. ", o.Rule, o.Rate)
	fmt.Fprintf(&b, "Open loop: %s sends on schedule whatever the answers (a new worker and connection whenever all are busy, at most %d), pinned to core 1 beside the stub; each request timed from its send to its last byte, %s per run; errors = answers other than 2xx and requests with no answer within %s; achieved = requests sent ÷ the time from the first send to the last.", o.Generator, openLoopMaxWorkers, rep.Duration, openLoopTimeout)
	if len(rs) > 1 {
		b.WriteString(" Each repetition runs Manifold, then the peer, back to back.")
	}
	b.WriteString("\n\n| gateway | rate | achieved rps | requests | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | CPU µs/req | peak RSS MB | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		m, l, h := r.Median, r.Min, r.Max
		fmt.Fprintf(&b, "| %s | %d | %.1f | %d | **%.2f** (%.2f–%.2f) | %.2f | **%.2f** (%.2f–%.2f) | **%.2f** (%.2f–%.2f) | %.1f (%.1f–%.1f) | %d | %.1f | %.1f | %.1f–%.1f |\n",
			label(r.Gateway), r.Scenario.Rate, m.RPS, m.Requests, m.P50Millis, l.P50Millis, h.P50Millis, m.P90Millis,
			m.P99Millis, l.P99Millis, h.P99Millis, m.P999Millis, l.P999Millis, h.P999Millis, m.MaxMillis, l.MaxMillis, h.MaxMillis,
			h.Errors, m.CPUMicros, float64(m.PeakRSSBytes)/1e6, l.Load1, h.Load1)
	}
	if len(rs) == 2 {
		mf, p := rs[0], rs[1]
		if p.Gateway == "manifold" {
			mf, p = p, mf
		}
		p999 := func(r run) float64 { return r.P999Millis }
		fmt.Fprintf(&b, "\n%s ÷ Manifold at the same rate, from the two adjacent runs of each repetition: p50 %s, p99 %s, p99.9 %s, CPU/req %s.\n",
			label(p.Gateway), paired(p, mf, p50), paired(p, mf, p99), paired(p, mf, p999), paired(p, mf, cpu))
	}
	for _, r := range rs {
		for i, x := range r.Runs {
			if x.ErrorDetail != "" {
				fmt.Fprintf(&b, "\n%s run %d errors: %s.\n", label(r.Gateway), i+1, x.ErrorDetail)
			}
		}
	}
	return b.String()
}

// openLoopChart draws FR's percentiles, one group of bars per gateway, on
// a log scale (p50 and max are orders of magnitude apart); "" when FR did
// not run.
func openLoopChart(rep report) string {
	var rs []*result
	for i := range rep.Results {
		if rep.Results[i].Scenario.Target == "openloop" {
			rs = append(rs, &rep.Results[i])
		}
	}
	if len(rs) == 0 || rep.OpenLoop == nil {
		return ""
	}
	const w, h, panelH, left, barW = 760, 380, 260, 70, 40
	type pct struct {
		name string
		get  func(run) float64
	}
	pcts := []pct{{"p50", p50}, {"p90", func(r run) float64 { return r.P90Millis }}, {"p99", p99},
		{"p99.9", func(r run) float64 { return r.P999Millis }}, {"max", func(r run) float64 { return r.MaxMillis }}}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, r := range rs {
		for _, p := range pcts {
			if v := p.get(r.Median); v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1
	}
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 <= d0 {
		d1 = d0 + 1
	}
	yOf := func(v float64) int {
		if v <= 0 {
			return 0
		}
		return int(float64(panelH) * (math.Log10(v) - d0) / (d1 - d0))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="%d" y="18" fill="#555">%s, load average %s → %s; medians of %d × %s</text>`+"\n", left, rep.Date, rep.LoadBefore, rep.LoadAfter, rep.Reps, rep.Duration)
	top := 70
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">FR: /agg at %d rps, open loop: latency (ms, log scale), lower is better</text>`+"\n", left, top-16, rep.OpenLoop.Rate)
	colours := []string{"#3b7dd8", "#e08a2c"}
	for i, r := range rs {
		x := left + 420 + i*130
		fmt.Fprintf(&b, `<rect x="%d" y="28" width="12" height="12" fill="%s"/><text x="%d" y="39">%s</text>`+"\n", x, colours[i%2], x+16, label(r.Gateway))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, top+panelH, w-20, top+panelH)
	for e := d0; e <= d1; e++ {
		v := math.Pow(10, e)
		y := top + panelH - yOf(v)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#555">%s</text>`+"\n", left-6, y+4, strconv.FormatFloat(v, 'g', -1, 64))
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#eee"/>`+"\n", left, y, w-20, y)
	}
	step := (w - left - 40) / len(pcts)
	for i, p := range pcts {
		x0 := left + 20 + i*step
		for j, r := range rs {
			x := x0 + j*(barW+6)
			v := p.get(r.Median)
			bh := yOf(v)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x, top+panelH-bh, barW, bh, colours[j%2])
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", x+barW/2, top+panelH-bh-4, short(v))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x0, top+panelH+16, p.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
