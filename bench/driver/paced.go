package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The paced generator measures latency where wrk would measure saturation.
// wrk keeps every connection busy, so the gateway's core runs flat out and
// queueing sets the percentiles; a hedge sent after 10ms would then fire
// on queueing, not on the slow instance. The paced generator sends a fixed
// number of requests per second instead, each on a free keep-alive
// connection, and times each from the moment it is sent to its last byte
// (not from when it was due: the generator's own timer wake-ups, late by up
// to a millisecond, are not the gateway's).
// It opens at most pacedConns connections (a new one only when all are
// busy, so a slow answer delays no other request while fewer are in
// flight): without a bound, a stall of the machine (other work on it)
// piles up requests that then arrive as a storm of new connections, which
// the gateway and the stub spend their CPU accepting, and the run may
// never recover. With it, requests beyond the bound wait for a connection,
// and that wait is part of their time.
// The driver runs it as its own child process, pinned to core 1 beside the
// stub as wrk is: `driver -pace URL,RATE,DURATION` prints one JSON result.

// pacedConns bounds the paced generator's connections: like wrk's -c64,
// and far above what 1000 requests per second need (about 1 ms each, 50 ms
// for a tenth of them: some 6 at once).
const pacedConns = 64

// pacedResult is what a paced child reports.
type pacedResult struct {
	Sent      int       `json:"sent"`
	Errors    int       `json:"errors"`
	Seconds   float64   `json:"seconds"` // from the first send to the last answer
	Latencies []float64 `json:"latencies_ms"`
}

// paced runs the generator pinned to core 1 and reads its result.
func paced(url string, rate int, d time.Duration) (run, error) {
	self, err := os.Executable()
	if err != nil {
		return run{}, err
	}
	ctx, cancel := context.WithTimeout(runCtx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "taskset", "-c", "1", self, "-pace", fmt.Sprintf("%s,%d,%s", url, rate, d))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return run{}, fmt.Errorf("paced generator: %w", err)
	}
	var p pacedResult
	if err := json.Unmarshal(out, &p); err != nil {
		return run{}, fmt.Errorf("paced generator printed %.200q: %w", out, err)
	}
	r := run{Requests: p.Sent, Errors: p.Errors}
	if p.Seconds > 0 {
		r.RPS = float64(p.Sent) / p.Seconds
	}
	r.P50Millis, r.P90Millis, r.P99Millis = quantile(p.Latencies, 0.50), quantile(p.Latencies, 0.90), quantile(p.Latencies, 0.99)
	r.P999Millis, r.MaxMillis = quantile(p.Latencies, 0.999), quantile(p.Latencies, 1)
	return r, nil
}

// quantile is the q-quantile of vs (nearest rank), 0 for none.
func quantile(vs []float64, q float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	vs = slices.Sorted(slices.Values(vs))
	i := int(q*float64(len(vs))+0.5) - 1
	return vs[min(max(i, 0), len(vs)-1)]
}

// paceMain is the child: -pace URL,RATE,DURATION. It sends RATE×DURATION
// requests in all, waits for the last (each bounded by the client's 5 s
// timeout) and prints a pacedResult.
func paceMain(spec string) {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fatalf("-pace %q: want URL,RATE,DURATION", spec)
	}
	rate, err := strconv.Atoi(parts[1])
	if err != nil || rate < 1 || rate > 20000 {
		fatalf("-pace: rate %q: want 1 to 20000 requests per second", parts[1])
	}
	d, err := time.ParseDuration(parts[2])
	if err != nil || d <= 0 || d > 10*time.Minute {
		fatalf("-pace: duration %q: want a positive duration up to 10m", parts[2])
	}
	url := parts[0]
	tr := &http.Transport{MaxConnsPerHost: pacedConns, MaxIdleConnsPerHost: pacedConns, IdleConnTimeout: time.Minute, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	n := int(float64(rate) * d.Seconds())
	lat := make([]float64, n) // each request's goroutine writes its own slot
	bad := make([]bool, n)
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		// Late wake-ups are caught up at once, so the mean rate is exact.
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		wg.Go(func() {
			t0 := time.Now()
			resp, err := c.Get(url) // waits here while all pacedConns are busy
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			lat[i] = float64(time.Since(t0)) / 1e6
			bad[i] = err != nil
		})
	}
	wg.Wait()
	res := pacedResult{Sent: n, Seconds: time.Since(start).Seconds(), Latencies: lat}
	for _, b := range bad {
		if b {
			res.Errors++
		}
	}
	must(json.NewEncoder(os.Stdout).Encode(res))
}
