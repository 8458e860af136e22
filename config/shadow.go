package config

import "fmt"

// Shadow backends (`shadow: true`) send a copy of an endpoint's call to
// another upstream, typically a new version of a service (orders-v2), off
// the request path: the copy goes through the one process-wide pool of
// server.shadow, its answer is read up to max_response_bytes and
// discarded. Nothing about the copy may reach the client, so every key
// that would let it shape, decide or feed the answer is refused on a
// shadow backend, and nothing else may wait for it.
//
// Reshaping keys (group, target, allow, deny, rename) are accepted and do
// nothing, so that a backend block copied to shadow it needs only its
// upstream changed and shadow: true added; for the same reason a shadow
// backend may repeat a real backend's group, and a name it takes by
// default (its group, else its upstream) does not make a reference to the
// real backend ambiguous.

// Upper bounds of server.shadow: both are allocated when the process
// starts (a goroutine per worker, a channel slot per queued copy), so a
// value a few zeros too long would be an out-of-memory kill at start, not
// a config error.
const (
	maxShadowWorkers = 10000
	maxShadowQueue   = 1000000
)

// validateShadowPool checks server.shadow: 1 to maxShadowWorkers workers,
// and a queue of 0 to maxShadowQueue. A queue of 0 is allowed: a shadow
// call then goes to a worker that is idle at that moment, or is dropped.
func validateShadowPool(cfg *Config, c *collector) {
	s := cfg.Server.Shadow
	switch {
	case s.Workers < 1:
		c.add("server.shadow.workers", "must be at least 1 (shadow calls sent at once), got %d", s.Workers)
	case s.Workers > maxShadowWorkers:
		c.add("server.shadow.workers", "must be at most %d (a goroutine and a connection each, started with the process), got %d", maxShadowWorkers, s.Workers)
	}
	switch {
	case s.Queue < 0:
		c.add("server.shadow.queue", "must not be negative (shadow calls waiting for a worker; 0 = only to an idle worker, else dropped), got %d", s.Queue)
	case s.Queue > maxShadowQueue:
		c.add("server.shadow.queue", "must be at most %d (each queued copy holds its headers and body; the queue is allocated at start), got %d", maxShadowQueue, s.Queue)
	}
}

// validateShadowBackends checks an endpoint's shadow backends, once each
// was validated as a backend and before its call graph is compiled (which
// leaves them out): a shadow backend is an independent copy of a call.
func validateShadowBackends(ep *Endpoint, p string, c *collector) {
	shadows, backends := 0, 0
	for j, be := range ep.Backends {
		if be == nil {
			continue
		}
		backends++
		if !be.Shadow {
			continue
		}
		shadows++
		bp := fmt.Sprintf("%s.backends[%d]", p, j)
		const discarded = "a shadow backend's answer is discarded"
		if be.Passthrough {
			c.add(bp+".passthrough", "%s, it cannot be relayed: remove passthrough (or shadow)", discarded)
		}
		if be.Required {
			c.add(bp+".required", "%s and can never fail the request: remove required (or shadow)", discarded)
		}
		if be.FallbackJSON != nil {
			c.add(bp+".fallback", "%s, so nothing stands in for it: remove fallback (or shadow)", discarded)
		}
		if be.Hedge != nil {
			c.add(bp+".hedge", "%s: hedging it would only double its calls; remove hedge", discarded)
		}
		// A shadow call is sent as the fan-out starts, from what the
		// client's request gives; it waits for no other backend.
		if be.Foreach != "" {
			c.add(bp+".foreach", "a shadow backend is one copy of the call, sent as the request's fan-out starts: it cannot call once per element of another backend's answer; remove foreach (or shadow)")
		}
		for i := range be.DependsOn {
			c.add(fmt.Sprintf("%s.depends_on[%d]", bp, i), "a shadow backend is sent as the request's fan-out starts and waits for no other backend: remove depends_on (or shadow)")
		}
		for _, r := range be.Refs {
			c.add(bp+"."+r.field, "%s: a shadow backend is sent as the request's fan-out starts, before any answer, so it cannot read another backend's (or a foreach element's); use the endpoint's path parameters only", r.Text)
		}
	}
	if shadows > 0 && shadows == backends {
		c.add(p+".backends", "every backend of this endpoint is a shadow backend, whose answer is discarded: the client would get none; add a backend without shadow")
	}
}

// shadowNamed finds a shadow backend of ep that references or depends_on
// could mean by name: its name, or the default it takes (group, else
// upstream). It is how a reference to one is told from an unknown name.
func shadowNamed(ep *Endpoint, name string) (int, bool) {
	for j, be := range ep.Backends {
		if be != nil && be.Shadow && be.ID == name {
			return j, true
		}
	}
	return 0, false
}

// validateShadowUpstreams refuses a shadow backend whose upstream also
// serves real calls: the copy would go through that upstream's bulkhead,
// circuit breaker and outlier ejection, so shadow load could reject, trip
// or eject the real calls, and a shadow call must never change an answer.
func validateShadowUpstreams(cfg *Config, c *collector) {
	realUse := map[string]string{} // upstream -> the first real backend calling it
	for i, ep := range cfg.Endpoints {
		if ep == nil {
			continue
		}
		for j, be := range ep.Backends {
			if be != nil && !be.Shadow {
				if _, ok := realUse[be.Upstream]; !ok {
					realUse[be.Upstream] = fmt.Sprintf("endpoints[%d].backends[%d]", i, j)
				}
			}
		}
	}
	for i, ep := range cfg.Endpoints {
		if ep == nil {
			continue
		}
		for j, be := range ep.Backends {
			if be == nil || !be.Shadow {
				continue
			}
			if by, ok := realUse[be.Upstream]; ok {
				c.add(fmt.Sprintf("endpoints[%d].backends[%d].upstream", i, j),
					"%q also serves real calls (%s): a shadow copy would share its bulkhead, circuit breaker and outlier ejection and could change their answers; give the shadow an upstream of its own (e.g. %s-shadow with the same url)",
					be.Upstream, by, be.Upstream)
			}
		}
	}
}
