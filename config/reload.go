package config

import "fmt"

// CheckReload reports what makes next unsafe to apply by a reload of a
// process that started with running, though next is valid on its own. A
// reload applies endpoint timeouts at once, but a new server.write_timeout
// only at the next restart: an endpoint timeout that is not below the
// running write_timeout would have its slow answers cut by the listener,
// the client left with an empty reply. file names the configuration file
// in the problems.
func CheckReload(next, running *Config, file string) error {
	w := running.Server.WriteTimeout
	if w <= 0 || next.Server.WriteTimeout == w {
		return nil // the file's own validation already compared with w
	}
	var ps Problems
	for i := range next.Endpoints {
		ep := next.Endpoints[i]
		if ep.Timeout < w {
			continue
		}
		p := fmt.Sprintf("endpoints[%d]", i)
		ps = append(ps, Problem{File: file, Path: p + ".timeout", Message: fmt.Sprintf(
			"%v is not below the running server.write_timeout (%v): a reload applies %s.timeout now but server.write_timeout (%v in the file) only at the next restart, "+
				"and until then an answer still being written at %v is cut, leaving the client an empty reply; restart to apply both, or keep %s.timeout below %v until then",
			ep.Timeout, w, p, next.Server.WriteTimeout, w, p, w)})
	}
	if len(ps) == 0 {
		return nil
	}
	return ps
}
