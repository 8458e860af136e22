package handlers_test

import (
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/handlers"
	"github.com/manifold-gw/manifold/internal/freeport"
)

// failLines returns the "backend failed" lines of upstream up, and the
// failures they account for: each line is one failure plus the
// "suppressed" failures it reports.
func failLines(t *testing.T, logs *logLines, up string) (lines []logLine, accounted int) {
	t.Helper()
	for _, l := range logs.with("backend failed") {
		if l.attrs["upstream"] != up {
			continue
		}
		if l.level != slog.LevelWarn {
			t.Errorf("backend failure logged at %v, want warn", l.level)
		}
		lines = append(lines, l)
		accounted++
		if s, ok := l.attrs["suppressed"]; ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				t.Errorf("suppressed = %q, want a count of at least 1", s)
			}
			accounted += n
		}
	}
	return lines, accounted
}

// An outage at a high request rate must not flood the log with one warn
// line per failed call: log.backend_failures_per_second thins each
// upstream's failure lines to that rate, the next line logged says how many
// were left out since the previous one, so every failure is accounted for,
// and one upstream's flood does not hide another's first failure.
func TestBackendFailureLinesAreThinnedPerUpstream(t *testing.T) {
	t.Parallel()
	dead := "http://" + freeport.Addr(t) // nothing listens: every call fails at once
	yaml := `
log: {backend_failures_per_second: 0.5}
upstreams:
  a: {url: "{{dead}}"}
  b: {url: "{{dead}}"}
endpoints:
  - path: /a
    backends: [{upstream: a, path: /x}]
  - path: /b
    backends: [{upstream: b, path: /x}]
`
	logs := &logLines{}
	base, _ := gatewayWith(t, yaml, map[string]string{"dead": dead}, handlers.Options{Logger: slog.New(logs)})
	call := func(path string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// A burst of 20 failures: at 0.5 lines per second (a burst of one
	// line), the first is logged and nearly all the others are not.
	start := time.Now()
	const burst = 20
	for range burst {
		call("/a")
	}
	elapsed := time.Since(start)
	waitFor(t, "the first failure line", func() bool { l, _ := failLines(t, logs, "a"); return len(l) >= 1 })
	lines, _ := failLines(t, logs, "a")
	if allowed := 1 + int(elapsed.Seconds()*0.5) + 1; len(lines) > allowed {
		t.Fatalf("%d failure lines for %d failures in %v at 0.5 lines/s, want at most %d", len(lines), burst, elapsed, allowed)
	}
	if _, ok := lines[0].attrs["suppressed"]; ok {
		t.Errorf("the first line reports suppressed failures: %v", lines[0].attrs)
	}

	// Upstream b has its own budget: its first failure is logged at once.
	call("/b")
	waitFor(t, "b's failure line", func() bool { l, _ := failLines(t, logs, "b"); return len(l) == 1 })

	// Failing on, a line comes again once the budget refills, and it
	// carries the count of what was left out: every failure accounted for.
	sent := burst
	deadline := time.Now().Add(10 * time.Second)
	for {
		call("/a")
		sent++
		l, accounted := failLines(t, logs, "a")
		if len(l) > len(lines) && accounted == sent {
			if _, ok := l[len(l)-1].attrs["suppressed"]; !ok {
				t.Fatalf("the line after a thinned burst has no suppressed count: %v", l[len(l)-1].attrs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d failures: %d lines accounting for %d failures", sent, len(l), accounted)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With log.backend_failures_per_second: 0 every failure has its own line.
func TestBackendFailureLinesUnthinned(t *testing.T) {
	t.Parallel()
	dead := "http://" + freeport.Addr(t)
	logs := &logLines{}
	base, _ := gatewayWith(t, `
log: {backend_failures_per_second: 0}
upstreams:
  a: {url: "{{dead}}"}
endpoints:
  - path: /a
    backends: [{upstream: a, path: /x}]
`, map[string]string{"dead": dead}, handlers.Options{Logger: slog.New(logs)})
	const n = 30
	for range n {
		resp, err := http.Get(base + "/a")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	waitFor(t, "a line per failure", func() bool { l, _ := failLines(t, logs, "a"); return len(l) == n })
	if _, accounted := failLines(t, logs, "a"); accounted != n {
		t.Errorf("lines account for %d failures, want %d", accounted, n)
	}
}

// A reload keeps each upstream's budget when the rate is unchanged: the
// old and the new Gateway share it while the old one drains, and the
// failures left out just before the reload are reported by the next line.
func TestBackendFailureLinesSurviveReload(t *testing.T) {
	t.Parallel()
	dead := "http://" + freeport.Addr(t)
	yaml := `
log: {backend_failures_per_second: 0.5}
upstreams:
  a: {url: "{{dead}}"}
endpoints:
  - path: /a
    backends: [{upstream: a, path: /x}]
`
	logs := &logLines{}
	opts := handlers.Options{Logger: slog.New(logs)}
	base1, gw1 := gatewayWith(t, yaml, map[string]string{"dead": dead}, opts)
	call := func(base string) {
		t.Helper()
		resp, err := http.Get(base + "/a")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	const before = 5
	for range before {
		call(base1)
	}
	waitFor(t, "the first line", func() bool { l, _ := failLines(t, logs, "a"); return len(l) == 1 })
	opts.Previous = gw1 // a reload of the same file
	base2, _ := gatewayWith(t, yaml, map[string]string{"dead": dead}, opts)
	// At 0.5 lines per second the next line comes within ~2 s; failing
	// on until it does, every failure is accounted for.
	sent := before
	deadline := time.Now().Add(20 * time.Second)
	for {
		call(base2)
		sent++
		l, accounted := failLines(t, logs, "a")
		if len(l) == 2 {
			if accounted != sent {
				t.Fatalf("%d failures, the lines account for %d", sent, accounted)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second line after %d failures", sent)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
