package fetch

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// healthCheckBodyLimit is how much of a health answer is read (and
// discarded) so that its connection can be reused.
const healthCheckBodyLimit = 64 << 10

// healthChecker owns the active health checks of one upstream: a single
// goroutine that, every interval (jittered), checks every instance at once
// and moves instances out of rotation and back. It ends when stop is
// called: when a reload drops or changes the upstream, or at shutdown.
type healthChecker struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startHealthChecks starts u's checker; u.cfg.HealthCheck is set.
func startHealthChecks(u *Upstream) *healthChecker {
	ctx, cancel := context.WithCancel(context.Background())
	hc := &healthChecker{cancel: cancel, done: make(chan struct{})}
	go hc.run(ctx, u)
	return hc
}

// stop ends the checker and waits for it, checks in flight included (they
// are cancelled).
func (hc *healthChecker) stop() {
	hc.cancel()
	<-hc.done
}

// jittered is d ± 10%, so that replicas started together drift apart.
func jittered(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

func (hc *healthChecker) run(ctx context.Context, u *Upstream) {
	defer close(hc.done)
	cfg := u.cfg.HealthCheck
	n := len(u.instances)
	passes := make([]int, n)
	fails := make([]int, n)
	ok := make([]bool, n)
	header := make(http.Header, len(u.headers)+1)
	for k, v := range u.headers {
		header[k] = v
	}
	if !u.hasUserAgent {
		header["User-Agent"] = u.userAgent
	}
	uri := u.pathPrefix + cfg.Path
	// The first round comes at a random point of the first interval.
	timer := time.NewTimer(rand.N(cfg.Interval) + 1)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		var wg sync.WaitGroup
		for i, in := range u.instances {
			wg.Go(func() { ok[i] = u.check(ctx, in, uri, header) })
		}
		wg.Wait()
		if ctx.Err() != nil {
			return // stopped mid-round: the cancelled checks prove nothing
		}
		for i, in := range u.instances {
			if ok[i] {
				passes[i], fails[i] = passes[i]+1, 0
			} else {
				passes[i], fails[i] = 0, fails[i]+1
			}
			healthy := in.healthy.Load()
			switch {
			case in.refs.Load() > 1:
				// A reload's build holds it too, until one of the two
				// upstreams is closed: the one left decides (the counts
				// go on), so this checker cannot undo what the new
				// configuration set (no health_check: in rotation).
			case healthy && fails[i] >= cfg.UnhealthyAfter:
				in.healthy.Store(false)
				in.hooks.Load().logger.Warn("upstream instance failed its health checks: out of rotation", "failed_checks", fails[i])
				in.report()
			case !healthy && passes[i] >= cfg.HealthyAfter:
				in.healthy.Store(true)
				in.hooks.Load().logger.Info("upstream instance passed its health checks: back in rotation", "passed_checks", passes[i])
				in.report()
			}
		}
		timer.Reset(jittered(cfg.Interval))
	}
}

// check makes one health check of in: GET of the check's path, under its
// timeout; a 2xx answer passes.
func (u *Upstream) check(ctx context.Context, in *instance, uri string, header http.Header) bool {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.HealthCheck.Timeout)
	defer cancel()
	var resp *http.Response
	var err error
	// With max_connections, through the instance's check client: a check
	// must not wait behind the calls holding every allowed connection.
	if u.stdlib {
		tr := in.transport
		if in.checkTransport != nil {
			tr = in.checkTransport
		}
		resp, err = u.stdRoundTripOn(ctx, tr, in, http.MethodGet, uri, header, nil)
	} else {
		c := in.lean
		if in.checkLean != nil {
			c = in.checkLean
		}
		resp, err = u.leanRoundTripOn(ctx, c, in, http.MethodGet, uri, header, nil)
	}
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, healthCheckBodyLimit))
	resp.Body.Close()
	return err == nil && resp.StatusCode >= 200 && resp.StatusCode <= 299
}
