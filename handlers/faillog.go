package handlers

import (
	"math"
	"sync/atomic"

	"golang.org/x/time/rate"

	"github.com/manifold-gw/manifold/config"
)

// failureLog thins one upstream's "backend failed" warn lines to
// log.backend_failures_per_second. An upstream that is down fails every
// call at once, so at thousands of requests per second a line per failure
// is thousands of lines a second, each formatted and written while the
// gateway is under the most stress, saying the same thing. The metrics
// count every failure; the log keeps a sample and says how much it left
// out.
type failureLog struct {
	lines      *rate.Limiter
	suppressed atomic.Int64 // failures not logged since the last line
}

// newFailureLogs builds one failureLog per upstream of cfg, or nil when
// log.backend_failures_per_second is 0 (a line for every failure). An
// upstream's failureLog in prev (the Gateway a reload replaces) is kept
// when the rate is unchanged: the old and the new Gateway, both serving
// while the old one drains, share one budget, and the failures left out
// just before the reload are still reported by the next line.
func newFailureLogs(cfg *config.Config, prev *Gateway) map[string]*failureLog {
	r := cfg.Log.BackendFailuresPerSecond
	if r <= 0 {
		return nil
	}
	burst := max(int(min(math.Ceil(r), 1e6)), 1)
	m := make(map[string]*failureLog, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		if prev != nil {
			if old := prev.failLogs[name]; old != nil && old.lines.Limit() == rate.Limit(r) && old.lines.Burst() == burst {
				m[name] = old
				continue
			}
		}
		m[name] = &failureLog{lines: rate.NewLimiter(rate.Limit(r), burst)}
	}
	return m
}

// take reports whether a failure may have its line, and if so how many
// failures were left out before it. A nil failureLog logs every failure.
func (f *failureLog) take() (ok bool, suppressed int64) {
	if f == nil {
		return true, 0
	}
	if !f.lines.Allow() {
		f.suppressed.Add(1)
		return false, 0
	}
	return true, f.suppressed.Swap(0)
}
