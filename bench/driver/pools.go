package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The pool scenarios (P1–P4, C1, C2) run on a second Manifold process with
// bench/pools.yaml, so that bench/manifold.yaml stays the one-url config
// that S2 and S4 measure, and that an older build can serve as a peer.
//
//   - P1/P2: /pool-agg and /pool-agg-hedged merge /a, /b and /c from the
//     upstream "pool": three stub listeners, of which poolSlow answers 50 ms
//     late on every 10th call. P2's backends hedge after 10ms within 5 %.
//     Both are paced (a fixed request rate), so latency is measured, not
//     saturation. The pool balances least_inflight (the default), which
//     already sends the slow instance fewer calls; P3/P4 are the same with
//     round_robin, where it gets its third.
//   - C1/C2: 64 wrk connections on one URL whose backend answers after
//     20ms, with coalesce: true (C1) and without (C2).
//
// Each run reads the stub's call counts and the gateway's hedging and
// coalescing counters (admin /metrics) before and after.

const (
	poolsAddr      = "127.0.0.1:9201"
	poolsAdminAddr = "127.0.0.1:9291"
	poolSlow       = "127.0.0.1:9103"
)

// stubAddrs are every listener of the stub: stubAddr for S1–S5 and C1/C2,
// the other three the instances of P1–P4's upstreams.
var stubAddrs = []string{stubAddr, "127.0.0.1:9101", "127.0.0.1:9102", poolSlow}

// counters are the cumulative counts a pool run reads before and after.
type counters struct {
	calls, hedges, hedgesWon, coalesced int
	per                                 map[string]int // calls by stub listener
}

func (c counters) minus(o counters) counters {
	d := counters{c.calls - o.calls, c.hedges - o.hedges, c.hedgesWon - o.hedgesWon, c.coalesced - o.coalesced, map[string]int{}}
	for k, v := range c.per {
		if v != o.per[k] {
			d.per[k] = v - o.per[k]
		}
	}
	return d
}

// readCounters sums the stub's calls over its listeners and the gateway's
// hedges_total and coalesced_total over their label values.
func readCounters() counters {
	var c counters
	b, err := get("http://" + stubAddr + "/__count")
	must(err)
	if err := json.Unmarshal(b, &c.per); err != nil {
		fatalf("stub /__count: %v", err)
	}
	for _, n := range c.per {
		c.calls += n
	}
	b, err = get("http://" + poolsAdminAddr + "/metrics")
	must(err)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := strings.Cut(line, "{")
		if !ok || (name != "manifold_backend_hedges_total" && name != "manifold_backend_coalesced_total") {
			continue
		}
		labels, val, _ := strings.Cut(rest, "} ")
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			fatalf("admin /metrics: %q: %v", line, err)
		}
		if name == "manifold_backend_coalesced_total" {
			c.coalesced += int(v)
			continue
		}
		c.hedges += int(v)
		if strings.Contains(labels, `result="won"`) {
			c.hedgesWon += int(v)
		}
	}
	must(sc.Err())
	return c
}

// checkPools makes sure the pool gateway answers each of its scenarios with
// the same content as S2 (the union of /a, /b and /c) or S4 (/a's bytes).
func checkPools(sel []scenario) error {
	var union map[string]any
	var a []byte
	for _, p := range []string{"/a", "/b", "/c"} {
		b, err := get("http://" + stubAddr + p)
		if err != nil {
			return err
		}
		if p == "/a" {
			a = b
		}
		v, err := decode(b)
		if err != nil {
			return err
		}
		if union == nil {
			union = map[string]any{}
		}
		for k, x := range v.(map[string]any) {
			union[k] = x
		}
	}
	for _, sc := range sel {
		if sc.Target != "pools" {
			continue
		}
		b, err := get("http://" + poolsAddr + sc.Path)
		if err != nil {
			return err
		}
		if sc.Rate > 0 { // the merged endpoints
			v, err := decode(b)
			if err != nil {
				return fmt.Errorf("%s: %v", sc.Path, err)
			}
			if !sameJSON(v, any(union)) {
				return fmt.Errorf("%s: not the union of /a, /b and /c:\n%s", sc.Path, b)
			}
		} else if !bytes.Equal(b, a) {
			return fmt.Errorf("%s: answer differs from the stub's /a:\n%s\n%s", sc.Path, b, a)
		}
	}
	return nil
}

// poolsMarkdown is the report's section on the pool scenarios; "" when
// none ran.
func poolsMarkdown(rep report) string {
	var b strings.Builder
	var ps []result
	for _, r := range rep.Results {
		if r.Scenario.Target == "pools" {
			ps = append(ps, r)
		}
	}
	if len(ps) == 0 {
		return ""
	}
	fmt.Fprintf(&b, "\n## Upstream pools (bench/pools.yaml, on a second Manifold process pinned to core 0)\n\n")
	b.WriteString("Hedging (P1–P4: paced; per request 3 upstream calls, each to one of 3 instances, one of which, " + poolSlow + ", answers 50 ms late on every 10th of its calls). Upstream calls are counted at the stub; slow share = the slow instance's part of them; extra load = (calls − 3 × requests) ÷ (3 × requests); hedges from `manifold_backend_hedges_total`, ÷ the calls that were not hedges (what max_percent bounds):\n\n")
	b.WriteString("| scenario | requests | rps | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | upstream calls | slow share | extra upstream load | hedges (won) | hedges ÷ other calls | CPU µs/req | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range ps {
		if r.Scenario.Rate == 0 {
			continue
		}
		m, l, h := r.Median, r.Min, r.Max
		x, hs := spanOf(each(&r, extraLoad)), spanOf(each(&r, hedgeShare))
		slow := spanOf(each(&r, func(x run) float64 { return ratioOf(x.InstanceCalls[poolSlow], x.UpstreamCalls) }))
		fmt.Fprintf(&b, "| %s %s | %d | %.0f | **%.2f** (%.2f–%.2f) | %.2f | **%.2f** (%.2f–%.2f) | %.2f | %.1f (%.1f–%.1f) | %d | %d | %s | **%s** (%s–%s) | %d (%d) | %s (%s–%s) | %.1f | %.1f–%.1f |\n",
			r.Scenario.ID, r.Scenario.Name, m.Requests, m.RPS, m.P50Millis, l.P50Millis, h.P50Millis, m.P90Millis,
			m.P99Millis, l.P99Millis, h.P99Millis, m.P999Millis, m.MaxMillis, l.MaxMillis, h.MaxMillis, h.Errors, m.UpstreamCalls, pct(slow.Median),
			pct(x.Median), pct(x.Min), pct(x.Max), m.Hedges, m.HedgesWon, pct(hs.Median), pct(hs.Min), pct(hs.Max),
			m.CPUMicros, l.Load1, h.Load1)
	}
	for _, pair := range [][2]string{{"P1", "P2"}, {"P3", "P4"}} {
		if off, on := find(rep.Results, pair[0], "manifold"), find(rep.Results, pair[1], "manifold"); off != nil && on != nil {
			fmt.Fprintf(&b, "\nHedging on ÷ off, %s ÷ %s, per repetition: p50 %s, p90 %s, p99 %s.\n", pair[1], pair[0],
				paired(on, off, p50), paired(on, off, func(r run) float64 { return r.P90Millis }), paired(on, off, p99))
		}
	}
	b.WriteString("\nCoalescing (C1, C2: wrk, 64 connections on one URL, the backend answers after 20 ms). Upstream calls counted at the stub; joined from `manifold_backend_coalesced_total`; saved = joined ÷ requests:\n\n")
	b.WriteString("| scenario | requests | rps | p50 ms | p99 ms | errors | upstream calls | calls per request | joined | saved | CPU µs/req | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range ps {
		if r.Scenario.Rate > 0 {
			continue
		}
		m, l, h := r.Median, r.Min, r.Max
		perReq := spanOf(each(&r, func(x run) float64 { return ratioOf(x.UpstreamCalls, x.Requests) }))
		saved := spanOf(each(&r, func(x run) float64 { return ratioOf(x.Coalesced, x.Requests) }))
		fmt.Fprintf(&b, "| %s %s | %d | %.0f | %.2f | %.2f | %d | %d | %.4f (%.4f–%.4f) | %d | **%s** (%s–%s) | %.1f | %.1f–%.1f |\n",
			r.Scenario.ID, r.Scenario.Name, m.Requests, m.RPS, m.P50Millis, m.P99Millis, h.Errors, m.UpstreamCalls,
			perReq.Median, perReq.Min, perReq.Max, m.Coalesced, pct(saved.Median), pct(saved.Min), pct(saved.Max),
			m.CPUMicros, l.Load1, h.Load1)
	}
	b.WriteString("\n(Medians of the repetitions, each column on its own; min–max in brackets.)\n")
	return b.String()
}

// extraLoad is the share of upstream calls beyond the 3 per request of a
// merged pool endpoint.
func extraLoad(r run) float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.UpstreamCalls-3*r.Requests) / float64(3*r.Requests)
}

// hedgeShare is hedges ÷ the tries that were not hedges: what max_percent bounds.
func hedgeShare(r run) float64 {
	if r.UpstreamCalls-r.Hedges <= 0 {
		return 0
	}
	return float64(r.Hedges) / float64(r.UpstreamCalls-r.Hedges)
}

func ratioOf(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func pct(f float64) string { return fmt.Sprintf("%.2f %%", 100*f) }
