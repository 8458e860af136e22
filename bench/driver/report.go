package main

import (
	"fmt"
	"slices"
	"strings"
)

// report is everything one run measured, as results.json holds it.
type report struct {
	Date       string     `json:"date"`
	Command    string     `json:"command"`
	Commit     string     `json:"commit"`
	Machine    string     `json:"machine"`
	LoadBefore string     `json:"load_average_before"` // 1, 5, 15 min, before the first measured run
	LoadAfter  string     `json:"load_average_after"`  // and after the last
	Duration   string     `json:"duration"`
	Reps       int        `json:"reps"`
	Gateways   []*gateway `json:"gateways"` // Manifold first, then the peer if any
	// Pools is the second Manifold process, with bench/pools.yaml, when
	// pool scenarios ran (their results name it "manifold").
	Pools   *gateway `json:"pools_gateway,omitempty"`
	Results []result `json:"results"`
	Ratios  []ratio  `json:"ratios"`
	// Concurrency (S8) and OpenLoop (FR): how those ran, when they did.
	Concurrency *concurrencyInfo `json:"concurrency,omitempty"`
	OpenLoop    *openLoopInfo    `json:"open_loop,omitempty"`
}

// span is a median with the min and max it was taken from.
type span struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spanOf(vs []float64) *span {
	if len(vs) == 0 {
		return nil
	}
	vs = slices.Sorted(slices.Values(vs))
	n := len(vs)
	m := vs[n/2]
	if n%2 == 0 {
		m = (vs[n/2-1] + vs[n/2]) / 2
	}
	return &span{m, vs[0], vs[n-1]}
}

// ratio is one gateway scenario read against the run's floors and, with a
// peer, peer against Manifold.
type ratio struct {
	Scenario string `json:"scenario"`
	// CPU per request ÷ the median CPU per request of this run's S1 (the
	// stub alone); each run is divided by the same S1 median.
	ManifoldCPUxS1 *span `json:"manifold_cpu_x_s1,omitempty"`
	PeerCPUxS1     *span `json:"peer_cpu_x_s1,omitempty"`
	// Peer ÷ Manifold, per repetition from the two adjacent runs.
	PeerOverManifoldCPU *span `json:"peer_over_manifold_cpu,omitempty"`
	PeerOverManifoldRPS *span `json:"peer_over_manifold_rps,omitempty"`
	PeerOverManifoldP99 *span `json:"peer_over_manifold_p99,omitempty"`
	// Manifold ÷ peer CPU per request: with an older Manifold as the peer,
	// what the newer build costs relative to it.
	ManifoldOverPeerCPU *span `json:"manifold_over_peer_cpu,omitempty"`
	// S3 is latency-bound: its p50 and p99 ÷ those of its floor, S3f.
	LatencyFloor      string `json:"latency_floor,omitempty"`
	ManifoldP50xFloor *span  `json:"manifold_p50_x_floor,omitempty"`
	ManifoldP99xFloor *span  `json:"manifold_p99_x_floor,omitempty"`
	PeerP50xFloor     *span  `json:"peer_p50_x_floor,omitempty"`
	PeerP99xFloor     *span  `json:"peer_p99_x_floor,omitempty"`
}

func find(rs []result, id, gw string) *result {
	for i := range rs {
		if rs[i].Scenario.ID == id && rs[i].Gateway == gw {
			return &rs[i]
		}
	}
	return nil
}

func each(r *result, f func(run) float64) []float64 {
	if r == nil {
		return nil
	}
	var vs []float64
	for _, x := range r.Runs {
		vs = append(vs, f(x))
	}
	return vs
}

func scaled(r *result, f func(run) float64, unit float64) *span {
	if r == nil || unit == 0 {
		return nil
	}
	return spanOf(each(r, func(x run) float64 { return f(x) / unit }))
}

func paired(p, m *result, f func(run) float64) *span {
	if p == nil || m == nil || len(p.Runs) != len(m.Runs) {
		return nil
	}
	var vs []float64
	for i := range p.Runs {
		if d := f(m.Runs[i]); d > 0 {
			vs = append(vs, f(p.Runs[i])/d)
		}
	}
	return spanOf(vs)
}

func cpu(r run) float64 { return r.CPUMicros }
func rps(r run) float64 { return r.RPS }
func p50(r run) float64 { return r.P50Millis }
func p99(r run) float64 { return r.P99Millis }

// s1 is the run's S1 floor in CPU µs per request (0 when S1 did not run).
func s1(rs []result) float64 {
	if r := find(rs, "S1", "stub"); r != nil {
		return r.Median.CPUMicros
	}
	return 0
}

func ratios(rs []result, gws []*gateway) []ratio {
	var out []ratio
	unit := s1(rs)
	peer := ""
	if len(gws) > 1 {
		peer = gws[1].Name
	}
	for _, sc := range scenarios {
		m := find(rs, sc.ID, "manifold")
		if m == nil || sc.Target != "gateway" {
			continue
		}
		p := find(rs, sc.ID, peer)
		r := ratio{Scenario: sc.ID, ManifoldCPUxS1: scaled(m, cpu, unit), PeerCPUxS1: scaled(p, cpu, unit),
			PeerOverManifoldCPU: paired(p, m, cpu), PeerOverManifoldRPS: paired(p, m, rps), PeerOverManifoldP99: paired(p, m, p99),
			ManifoldOverPeerCPU: paired(m, p, cpu)}
		if sc.Floor != "S1" {
			if f := find(rs, sc.Floor, "stub"); f != nil {
				r.LatencyFloor = sc.Floor
				r.ManifoldP50xFloor, r.ManifoldP99xFloor = scaled(m, p50, f.Median.P50Millis), scaled(m, p99, f.Median.P99Millis)
				r.PeerP50xFloor, r.PeerP99xFloor = scaled(p, p50, f.Median.P50Millis), scaled(p, p99, f.Median.P99Millis)
			}
		}
		out = append(out, r)
	}
	return out
}

func (s *span) String() string {
	if s == nil {
		return "—"
	}
	return fmt.Sprintf("**%.2f×** (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

// label is how a gateway is named in the tables.
func label(name string) string {
	switch name {
	case "manifold":
		return "Manifold"
	case "krakend":
		return "KrakenD"
	}
	return name
}

func markdown(rep report) string {
	var b strings.Builder
	peer := ""
	if len(rep.Gateways) > 1 {
		peer = rep.Gateways[1].Name
	}
	fmt.Fprintf(&b, "Run of `%s` on %s, commit %s.\n\n", strings.TrimSpace(rep.Command), rep.Date, rep.Commit)
	fmt.Fprintf(&b, "- Machine: %s\n", rep.Machine)
	fmt.Fprintf(&b, "- Load average (1, 5, 15 min): %s before the first measured run, %s after the last\n", rep.LoadBefore, rep.LoadAfter)
	for _, g := range rep.Gateways {
		fmt.Fprintf(&b, "- %s: %s (`%s`), pinned to core 0; scenarios %s\n", label(g.Name), g.Version, g.Command, strings.Join(g.Scenarios, ", "))
	}
	if peer != "" {
		fmt.Fprintf(&b, "- Each repetition measures Manifold, then %s, back to back, under the same conditions\n", label(peer))
	}
	fmt.Fprintf(&b, "- Medians of %d runs of %s each per gateway (min–max in brackets)\n\n", rep.Reps, rep.Duration)

	unit := s1(rep.Results)
	if len(rep.Ratios) > 0 {
		if unit > 0 {
			fmt.Fprintf(&b, "CPU per request as a multiple of this run's S1 floor (the stub alone answering one request: %.1f µs of CPU)", unit)
		} else {
			b.WriteString("CPU per request (S1 was not run, so there is no floor to divide by)")
		}
		if peer != "" {
			fmt.Fprintf(&b, "; %s ÷ Manifold from the two adjacent runs of each repetition", label(peer))
		}
		b.WriteString(":\n\n")
		if peer != "" {
			P := label(peer)
			fmt.Fprintf(&b, "| scenario | Manifold CPU ×S1 | %s CPU ×S1 | %s ÷ Manifold, CPU/req | %s ÷ Manifold, rps | %s ÷ Manifold, p99 |\n|---|---|---|---|---|---|\n", P, P, P, P)
		} else {
			b.WriteString("| scenario | Manifold CPU ×S1 |\n|---|---|\n")
		}
		for _, r := range rep.Ratios {
			sc := scenarioByID(r.Scenario)
			fmt.Fprintf(&b, "| %s %s | %s |", sc.ID, sc.Name, r.ManifoldCPUxS1)
			if peer != "" {
				fmt.Fprintf(&b, " %s | %s | %s | %s |", r.PeerCPUxS1, r.PeerOverManifoldCPU, r.PeerOverManifoldRPS, r.PeerOverManifoldP99)
			}
			b.WriteString("\n")
		}
		if peer != "" {
			var parts []string
			for _, r := range rep.Ratios {
				if r.ManifoldOverPeerCPU != nil {
					parts = append(parts, r.Scenario+" "+r.ManifoldOverPeerCPU.String())
				}
			}
			fmt.Fprintf(&b, "\nThe other way round, Manifold ÷ %s, CPU/req: %s.\n", label(peer), strings.Join(parts, ", "))
		}
		for _, r := range rep.Ratios {
			if r.LatencyFloor == "" {
				continue
			}
			fmt.Fprintf(&b, "\n%s is latency-bound; its latency as a multiple of its floor %s's: Manifold p50 %s, p99 %s",
				r.Scenario, r.LatencyFloor, r.ManifoldP50xFloor, r.ManifoldP99xFloor)
			if r.PeerP50xFloor != nil {
				fmt.Fprintf(&b, "; %s p50 %s, p99 %s", label(peer), r.PeerP50xFloor, r.PeerP99xFloor)
			}
			b.WriteString(".\n")
		}
		b.WriteString("\n")
	}

	b.WriteString("All measurements of this run. CPU = the measured process's utime+stime per request; ×S1 = that ÷ this run's S1 median. Idle = CPU the other gateway, idle on the same core, used meanwhile; load = the 1-minute load average after each run (min–max).\n\n")
	b.WriteString("| scenario | measured | rps | p50 ms | p90 ms | p99 ms | errors | CPU µs/req | CPU ×S1 | peak RSS MB | idle ms | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Results {
		m, l, h := r.Median, r.Min, r.Max
		x := "—"
		if unit > 0 {
			x = fmt.Sprintf("%.2f", m.CPUMicros/unit)
		}
		fmt.Fprintf(&b, "| %s %s | %s | %.0f (%.0f–%.0f) | %.2f | %.2f | %.2f (%.2f–%.2f) | %d | **%.1f** (%.1f–%.1f) | %s | %.1f | %.0f | %.1f–%.1f |\n",
			r.Scenario.ID, r.Scenario.Name, label(r.Gateway), m.RPS, l.RPS, h.RPS, m.P50Millis, m.P90Millis, m.P99Millis, l.P99Millis, h.P99Millis,
			h.Errors, m.CPUMicros, l.CPUMicros, h.CPUMicros, x, float64(m.PeakRSSBytes)/1e6, m.IdleCPUMillis, l.Load1, h.Load1)
	}
	b.WriteString(growthMarkdown(rep))
	b.WriteString(poolsMarkdown(rep))
	b.WriteString(openLoopMarkdown(rep))
	b.WriteString(concurrencyMarkdown(rep))
	return b.String()
}

func scenarioByID(id string) scenario {
	for _, s := range scenarios {
		if s.ID == id {
			return s
		}
	}
	return scenario{ID: id}
}

// chart draws two panels as SVG: each gateway scenario's CPU per request as
// a multiple of the run's S1 floor, and its p99 latency, one bar per gateway.
func chart(rep report) string {
	const w, h, panelH, left, barW = 760, 620, 220, 70, 40
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	colours := []string{"#3b7dd8", "#e08a2c"}
	var names []string
	for _, g := range rep.Gateways {
		names = append(names, g.Name)
	}
	var ids []string
	for _, sc := range scenarios {
		if sc.Target == "gateway" && find(rep.Results, sc.ID, "manifold") != nil {
			ids = append(ids, sc.ID)
		}
	}
	if len(ids) == 0 {
		ids = []string{"-"}
	}
	unit := s1(rep.Results)
	fmt.Fprintf(&b, `<text x="%d" y="18" fill="#555">%s, load average %s → %s; medians of %d × %s</text>`+"\n",
		left, rep.Date, rep.LoadBefore, rep.LoadAfter, rep.Reps, rep.Duration)
	for i, n := range names {
		x := left + 420 + i*130
		fmt.Fprintf(&b, `<rect x="%d" y="28" width="12" height="12" fill="%s"/><text x="%d" y="39">%s</text>`+"\n", x, colours[i%2], x+16, label(n))
	}
	panel := func(top int, title, unit string, val func(*result) float64) {
		maxV := 0.0
		for _, id := range ids {
			for _, n := range names {
				if r := find(rep.Results, id, n); r != nil {
					maxV = max(maxV, val(r)*1.15)
				}
			}
		}
		if maxV == 0 {
			maxV = 1
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", left, top-8, title)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", left, top+panelH, w-20, top+panelH)
		for i := 0; i <= 4; i++ {
			v := maxV * float64(i) / 4
			y := top + panelH - int(float64(panelH)*float64(i)/4)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#555">%.1f%s</text>`+"\n", left-6, y+4, v, unit)
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#eee"/>`+"\n", left, y, w-20, y)
		}
		step := (w - left - 40) / len(ids)
		for i, id := range ids {
			x0 := left + 20 + i*step
			for j, n := range names {
				r := find(rep.Results, id, n)
				if r == nil {
					continue
				}
				x := x0 + j*(barW+6)
				v := val(r)
				bh := int(float64(panelH) * v / maxV)
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x, top+panelH-bh, barW, bh, colours[j%2])
				fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">%.1f</text>`+"\n", x+barW/2, top+panelH-bh-4, v)
			}
			sc := scenarioByID(id)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", x0, top+panelH+16, sc.ID+" "+sc.Path)
		}
	}
	if unit > 0 {
		panel(70, fmt.Sprintf("CPU per request as a multiple of this run's S1 floor (%.1f µs), lower is better", unit), "×",
			func(r *result) float64 { return r.Median.CPUMicros / unit })
	} else {
		panel(70, "CPU per request (µs; S1 not run), lower is better", "",
			func(r *result) float64 { return r.Median.CPUMicros })
	}
	panel(70+panelH+80, "p99 latency in this run (ms)", "",
		func(r *result) float64 { return r.Median.P99Millis })
	b.WriteString("</svg>\n")
	return b.String()
}

// growthMarkdown is how cost grows, for the S6 and S7 scenarios that ran:
// CPU per request and peak RSS against the number of backends (S6) and the
// body size (S7), with the increments between neighbours, so that one can
// read the cost of one more backend against S1 (one upstream exchange) and
// whether the cost per KiB stays flat (linear) as bodies grow.
func growthMarkdown(rep report) string {
	var b strings.Builder
	unit := s1(rep.Results)
	for _, f := range []struct{ family, x, per string }{
		{"S6", "backends", "per extra backend"},
		{"S7", "KiB per backend (3 backends)", "per extra KiB of merged body (3 × Δsize)"},
	} {
		var rs []*result
		for _, sc := range scenarios {
			if sc.Size > 0 && family(sc.ID) == f.family {
				if r := find(rep.Results, sc.ID, "manifold"); r != nil {
					rs = append(rs, r)
				}
			}
		}
		if len(rs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s, how cost grows (medians; Δ = the increment from the row above, %s):\n\n", f.family, f.per)
		fmt.Fprintf(&b, "| %s | rps | p99 ms | CPU µs/req | CPU ×S1 | Δ CPU µs | Δ ×S1 | peak RSS MB |\n|---|---|---|---|---|---|---|---|\n", f.x)
		for i, r := range rs {
			m := r.Median
			x, d, dx := "—", "—", "—"
			if unit > 0 {
				x = fmt.Sprintf("%.2f", m.CPUMicros/unit)
			}
			if i > 0 {
				p := rs[i-1]
				n := float64(r.Scenario.Size - p.Scenario.Size)
				if f.family == "S7" {
					n *= 3
				}
				per := (m.CPUMicros - p.Median.CPUMicros) / n
				d = fmt.Sprintf("%.3g", per)
				if unit > 0 {
					dx = fmt.Sprintf("%.3g", per/unit)
				}
			}
			fmt.Fprintf(&b, "| %d | %.0f | %.2f | **%.1f** (%.1f–%.1f) | %s | %s | %s | %.1f |\n",
				r.Scenario.Size, m.RPS, m.P99Millis, m.CPUMicros, r.Min.CPUMicros, r.Max.CPUMicros, x, d, dx, float64(m.PeakRSSBytes)/1e6)
		}
	}
	return b.String()
}
