package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/http/httpguts"
)

// HopByHop lists the headers that describe one connection, not the message;
// they are never forwarded and may not be configured for forwarding.
var HopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// IsHopByHop reports whether name (any case) is a hop-by-hop header,
// including any Proxy-* header.
func IsHopByHop(name string) bool {
	c := http.CanonicalHeaderKey(name)
	return slices.Contains(HopByHop, c) || strings.HasPrefix(c, "Proxy-")
}

// managedHeaders are set by Manifold on every upstream call; a static header
// may not replace or duplicate them.
var managedHeaders = []string{"Host", "Content-Length", "Content-Type", "Accept-Encoding", "X-Request-Id", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Traceparent"}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// validate checks every rule of the schema, records each problem with its
// YAML path, and fills the compiled fields of cfg as it goes.
func validate(cfg *Config, c *collector) {
	validateServer(cfg, c)
	validateEdge(cfg, c)
	validateRedis(cfg, c)
	validateShadowPool(cfg, c)
	validateTracing(cfg, c)
	names := make([]string, 0, len(cfg.Upstreams))
	for name, u := range cfg.Upstreams {
		names = append(names, name)
		if u == nil {
			c.add("upstreams."+name, "expected a map of settings with at least url (or urls)")
			continue
		}
		u.Name = name
		validateUpstream(u, "upstreams."+name, c)
	}
	sort.Strings(names)
	cfg.UpstreamNames = names

	if len(cfg.Endpoints) == 0 && !c.failed("endpoints") {
		c.add("endpoints", "no endpoints configured: add at least one under endpoints:")
	}
	seen := map[string]int{}
	for i, ep := range cfg.Endpoints {
		p := fmt.Sprintf("endpoints[%d]", i)
		if ep == nil {
			c.add(p, "expected a map of settings with path and backends")
			continue
		}
		ep.Index = i
		validateEndpoint(cfg, ep, p, c)
		validateEndpointEdge(cfg, ep, p, c)
		if ep.Route == "" {
			continue
		}
		key := ep.Method + " " + ep.Route
		if j, dup := seen[key]; dup {
			c.add(p+".path", "%s %s is already served by endpoints[%d]; each method and path may appear once", ep.Method, ep.Path, j)
			continue
		}
		seen[key] = i
	}
	validateShadowUpstreams(cfg, c)
	checkRoutes(cfg, c)
}

func validateServer(cfg *Config, c *collector) {
	s := &cfg.Server
	checkAddress(s.Address, "server.address", false, c)
	checkAddress(cfg.Admin.Address, "admin.address", true, c)
	positive(s.ReadHeaderTimeout > 0, "server.read_header_timeout", c)
	positive(s.ReadTimeout > 0, "server.read_timeout", c)
	positive(s.WriteTimeout > 0, "server.write_timeout", c)
	positive(s.IdleTimeout > 0, "server.idle_timeout", c)
	positive(s.ShutdownTimeout > 0, "server.shutdown_timeout", c)
	if s.DrainDelay < 0 {
		c.add("server.drain_delay", "must not be negative (0s = close at once)")
	}
	if s.MaxBodyBytes <= 0 {
		c.add("server.max_body_bytes", "must be a positive number of bytes, e.g. 1048576")
	}
	s.TrustedPrefixes = nil
	for i, tp := range s.TrustedProxies {
		p := fmt.Sprintf("server.trusted_proxies[%d]", i)
		pfx, err := netip.ParsePrefix(tp)
		if err != nil {
			if ip, ipErr := netip.ParseAddr(tp); ipErr == nil && ip.Zone() == "" {
				pfx, err = netip.PrefixFrom(ip, ip.BitLen()), nil
			}
		}
		// An IPv4-mapped IPv6 form (::ffff:10.0.0.5) means the IPv4 address:
		// peers are compared unmapped.
		if err == nil && pfx.Addr().Is4In6() {
			if pfx.Bits() < 96 {
				err = fmt.Errorf("mapped prefix too wide")
			} else {
				pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
			}
		}
		if err != nil {
			c.add(p, "%q is not an IP address or CIDR (e.g. 10.0.0.7 or 10.0.0.0/8)", tp)
			continue
		}
		s.TrustedPrefixes = append(s.TrustedPrefixes, pfx.Masked())
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.Log.Level) {
		c.add("log.level", "%q is not a level: use debug, info, warn or error", cfg.Log.Level)
	}
	if !slices.Contains([]string{"json", "text"}, cfg.Log.Format) {
		c.add("log.format", "%q is not a format: use json or text", cfg.Log.Format)
	}
	if cfg.Log.BackendFailuresPerSecond < 0 {
		c.add("log.backend_failures_per_second", "must not be negative (warn lines per upstream per second; 0 = every failure), got %v", cfg.Log.BackendFailuresPerSecond)
	}
}

func checkAddress(addr, path string, emptyOK bool, c *collector) {
	if addr == "" {
		if !emptyOK {
			c.add(path, "is required, e.g. \":8080\"")
		}
		return
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		c.add(path, "%q is not host:port (%s)", addr, addressHint(addr, path))
	}
}

// isListenAddress reports whether the key at path is a listen address
// (host:port), whose problems suggest the address meant.
func isListenAddress(path string) bool {
	return path == "server.address" || path == "admin.address"
}

// addressHint suggests a listen address for addr, which is not host:port:
// a bare port gets ":PORT" (the admin listener, which has no
// authentication, is offered this host only first).
func addressHint(addr, path string) string {
	port, err := strconv.Atoi(addr)
	if err != nil || port < 1 || port > 65535 || strconv.Itoa(port) != addr {
		return `e.g. ":8080" or "127.0.0.1:9091"`
	}
	if path == "admin.address" {
		return fmt.Sprintf(`did you mean "127.0.0.1:%d" for this host only, or ":%d" for every interface?`, port, port)
	}
	return fmt.Sprintf(`did you mean ":%d"?`, port)
}

func positive(ok bool, path string, c *collector) {
	if !ok {
		c.add(path, "must be positive, e.g. \"2s\"")
	}
}

// Balance policies of upstreams.NAME.balance.
const (
	// BalanceLeastInflight picks, of two instances chosen at random, the
	// one with fewer calls in flight (the default).
	BalanceLeastInflight = "least_inflight"
	// BalanceRoundRobin takes the instances in turn.
	BalanceRoundRobin = "round_robin"
)

func validateUpstream(u *Upstream, p string, c *collector) {
	validateInstances(u, p, c)
	validatePool(u, p, c)
	positive(u.Timeout > 0, p+".timeout", c)
	if u.MaxConcurrent < 0 {
		c.add(p+".max_concurrent", "must be 0 (unlimited) or more")
	}
	if u.MaxConnections < 0 {
		c.add(p+".max_connections", "must be 0 (unlimited) or more")
	}
	if u.MaxResponseBytes <= 0 {
		c.add(p+".max_response_bytes", "must be a positive number of bytes, e.g. 4194304")
	}
	for name, val := range u.Headers {
		hp := p + ".headers." + name
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			c.add(hp, "%q is not a valid header name", name)
		case IsHopByHop(name):
			c.add(hp, "%s is a hop-by-hop header and is never forwarded", name)
		case slices.Contains(managedHeaders, http.CanonicalHeaderKey(name)):
			c.add(hp, "%s is set by Manifold itself and cannot be configured", name)
		case !httpguts.ValidHeaderFieldValue(val):
			c.add(hp, "the value contains characters not allowed in a header (CR, LF or NUL)")
		}
	}
	validateUpstreamTLS(u, p, c)
	if u.Client != "lean" && u.Client != "stdlib" {
		c.add(p+".client", "%q: use lean (Manifold's HTTP/1.1 client, the default) or stdlib (Go's http.Transport)", u.Client)
	}
	if u.Retry.Attempts < 0 || u.Retry.Attempts > 10 {
		c.add(p+".retry.attempts", "must be between 0 and 10, got %d", u.Retry.Attempts)
	}
	if u.Retry.Backoff < 0 {
		c.add(p+".retry.backoff", "must not be negative")
	}
	cb := u.CircuitBreaker
	cp := p + ".circuit_breaker"
	if cb.ConsecutiveFailures < 1 {
		c.add(cp+".consecutive_failures", "must be at least 1")
	}
	if !(cb.FailureRatio >= 0 && cb.FailureRatio <= 1) { // NaN too
		c.add(cp+".failure_ratio", "must be between 0 (off) and 1, got %v", cb.FailureRatio)
	}
	if cb.FailureRatio > 0 && cb.MinRequests < 1 {
		c.add(cp+".min_requests", "must be at least 1 when failure_ratio is set")
	}
	if cb.Interval < 0 {
		c.add(cp+".interval", "must not be negative")
	}
	positive(cb.OpenTimeout > 0, cp+".open_timeout", c)
	if cb.HalfOpenRequests < 1 {
		c.add(cp+".half_open_requests", "must be at least 1")
	}
}

// validateInstances checks url or urls and fills Instances (one per
// address, in the order written) and BaseURL (the first instance's URL).
// Both stay empty unless every address is valid.
func validateInstances(u *Upstream, p string, c *collector) {
	u.BaseURL, u.Instances = nil, nil
	switch {
	case u.URL != "" && len(u.URLs) > 0:
		at := p + ".urls"
		if c.envSource(p+".url") != "" && c.envSource(at) == "" {
			at = p + ".url" // the variable is what added the second key
		}
		c.add(at, "url and urls are both set: use url for one instance or urls for several, not both")
		return
	case u.URL != "":
		if in, ok := parseInstance(u.URL, p+".url", c); ok {
			u.Instances = []Instance{in}
		}
	case u.URLs == nil:
		if c.failed(p + ".urls") {
			return // urls is there, but not a list
		}
		c.add(p+".url", "is required, e.g. http://users.internal:8080 (or urls: [...] with several instances)")
		return
	case len(u.URLs) == 0:
		c.add(p+".urls", "is empty: list the instances, e.g. [http://users-1:8080, http://users-2:8080], or use url for one")
		return
	default:
		var instances []Instance
		var first *Instance       // the first valid entry, which the others are compared with
		firstAt := 0              // its index
		addrs := map[string]int{} // sameAddr -> its entry
		for i, raw := range u.URLs {
			ip := fmt.Sprintf("%s.urls[%d]", p, i)
			in, ok := parseInstance(raw, ip, c)
			if !ok {
				continue
			}
			key := sameAddr(in)
			j, dup := addrs[key]
			switch {
			case first == nil:
				first, firstAt = &in, i
			case in.URL.Scheme != first.URL.Scheme:
				c.add(ip, "%q is %s:// but urls[%d] is %s://: the instances of an upstream share one scheme (give the others an upstream of their own)", raw, in.URL.Scheme, firstAt, first.URL.Scheme)
				continue
			case in.URL.EscapedPath() != first.URL.EscapedPath():
				c.add(ip, "%q has %s but urls[%d] has %s: the instances of an upstream share one path prefix, which every backend path is appended to", raw, prefixName(in.URL), firstAt, prefixName(first.URL))
				continue
			case dup:
				c.add(ip, "%q is the same instance as urls[%d] (%s): list each host:port once", raw, j, in.Addr)
				continue
			}
			addrs[key] = i
			instances = append(instances, in)
		}
		if len(instances) == len(u.URLs) {
			u.Instances = instances
		}
	}
	if len(u.Instances) > 0 {
		base := *u.Instances[0].URL
		u.BaseURL = &base
	}
}

// parseInstance parses one instance address, written at path: http or
// https, a host (and port), an optional path prefix whose trailing slash is
// dropped, and nothing else. Addr gets the scheme's default port when the
// address has none.
func parseInstance(raw, path string, c *collector) (Instance, bool) {
	parsed, err := url.Parse(raw)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		c.add(path, "%q must be an http:// or https:// URL with a host", raw)
		return Instance{}, false
	}
	if parsed.RawQuery != "" || parsed.Fragment != "" || parsed.User != nil {
		c.add(path, "%q: an upstream URL carries scheme, host and an optional path prefix only (put queries in backend paths, credentials in headers)", raw)
		return Instance{}, false
	}
	parsed.Path = strings.TrimSuffix(parsed.Path, "/")
	parsed.RawPath = strings.TrimSuffix(parsed.RawPath, "/")
	port := parsed.Port()
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			c.add(path, "%q: port %s is out of range (1-65535)", raw, port)
			return Instance{}, false
		}
	}
	if port == "" {
		port = "80"
		if parsed.Scheme == "https" {
			port = "443"
		}
	}
	return Instance{URL: parsed, Addr: net.JoinHostPort(parsed.Hostname(), port)}, true
}

// sameAddr is in's host:port in one spelling for each address: host
// names lower-cased, IP literals in their canonical form ([0:0::1] is
// [::1]), so that one instance cannot be listed twice.
func sameAddr(in Instance) string {
	host, port, _ := net.SplitHostPort(in.Addr)
	if ip, err := netip.ParseAddr(host); err == nil {
		return net.JoinHostPort(ip.String(), port)
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

// prefixName describes a URL's path prefix for a message.
func prefixName(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return fmt.Sprintf("the path prefix %q", p)
	}
	return "no path prefix"
}

// validatePool checks how calls are spread over the instances: balance,
// outlier ejection and health checks.
func validatePool(u *Upstream, p string, c *collector) {
	if u.Balance != BalanceLeastInflight && u.Balance != BalanceRoundRobin {
		c.add(p+".balance", "%q: use least_inflight (the default: of two instances picked at random, the one with fewer calls in flight) or round_robin (the instances in turn)", u.Balance)
	}
	o := u.Outlier
	op := p + ".outlier"
	if o.ConsecutiveFailures < 0 {
		c.add(op+".consecutive_failures", "must be 0 (never eject) or more, got %d", o.ConsecutiveFailures)
	}
	switch {
	case o.ConsecutiveFailures > 0 && o.EjectFor <= 0:
		c.add(op+".eject_for", "must be positive, e.g. \"30s\" (or set consecutive_failures: 0 to never eject)")
	case o.EjectFor < 0:
		c.add(op+".eject_for", "must not be negative, e.g. \"30s\"")
	}
	if o.MaxEjectedPercent < 0 || o.MaxEjectedPercent > 100 {
		c.add(op+".max_ejected_percent", "must be between 0 and 100 (the most instances out of rotation at once, in percent), got %d", o.MaxEjectedPercent)
	}
	hc := u.HealthCheck
	if hc == nil {
		return
	}
	hp := p + ".health_check"
	switch {
	case hc.Path == "":
		c.add(hp+".path", "is required: the path checked with GET on every instance, e.g. /healthz")
	case !strings.HasPrefix(hc.Path, "/"):
		c.add(hp+".path", "%q must start with /, e.g. /healthz", hc.Path)
	case strings.ContainsFunc(hc.Path, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }):
		c.add(hp+".path", "%q: write a path and an optional query only, without spaces, control characters or #fragment, e.g. /healthz?full=1", hc.Path)
	}
	positive(hc.Interval > 0, hp+".interval", c)
	switch {
	case hc.Timeout <= 0:
		positive(false, hp+".timeout", c)
	case hc.Interval > 0 && hc.Timeout >= hc.Interval:
		c.add(hp+".timeout", "%v is not below interval (%v): a check must end before the next one is due; lower timeout or raise interval", hc.Timeout, hc.Interval)
	}
	if hc.UnhealthyAfter < 1 {
		c.add(hp+".unhealthy_after", "must be at least 1 (failed checks in a row that take an instance out), got %d", hc.UnhealthyAfter)
	}
	if hc.HealthyAfter < 1 {
		c.add(hp+".healthy_after", "must be at least 1 (passed checks in a row that bring an instance back), got %d", hc.HealthyAfter)
	}
}

// validateHedge checks a backend's hedge: GET or HEAD only, after below
// the upstream's timeout, max_percent in (0, 100].
func validateHedge(cfg *Config, be *Backend, bp string, c *collector) {
	h := be.Hedge
	if h == nil {
		return
	}
	hp := bp + ".hedge"
	if be.Method != http.MethodGet && be.Method != http.MethodHead && slices.Contains(methods, be.Method) {
		c.add(hp, "only GET and HEAD calls may be hedged: a hedge repeats the call, and a %s must not be sent twice; remove hedge", be.Method)
	}
	switch u := cfg.Upstreams[be.Upstream]; {
	case h.After == 0:
		c.add(hp+".after", "is required: how long the first try may go unanswered before the hedge is sent, e.g. \"50ms\"")
	case h.After < 0:
		c.add(hp+".after", "must be positive, e.g. \"50ms\"")
	case u != nil && u.Timeout > 0 && h.After >= u.Timeout:
		c.add(hp+".after", "%v is not below upstreams.%s.timeout (%v): a hedge sent after the first try has timed out is useless; lower after (a little above the upstream's usual answer time) or raise the timeout", h.After, be.Upstream, u.Timeout)
	}
	if !(h.MaxPercent > 0 && h.MaxPercent <= 100) {
		c.add(hp+".max_percent", "must be above 0 and at most 100 (hedges as a percentage of the backend's calls), got %v", h.MaxPercent)
	}
}

func validateEndpoint(cfg *Config, ep *Endpoint, p string, c *collector) {
	ep.Method = strings.ToUpper(ep.Method)
	if !slices.Contains(methods, ep.Method) {
		c.add(p+".method", "%q is not supported: use GET, POST, PUT, PATCH or DELETE", ep.Method)
	}
	positive(ep.Timeout > 0, p+".timeout", c)
	checkWriteTimeout(cfg, ep, p, c)
	before := len(c.list)
	switch {
	case ep.Path == "":
		c.add(p+".path", "is required, e.g. /api/profile/{id}")
	case !strings.HasPrefix(ep.Path, "/"):
		c.add(p+".path", "%q must start with /", ep.Path)
	case strings.HasPrefix(ep.Path, "/__"):
		c.add(p+".path", "%q: paths starting with /__ are reserved for Manifold (/__health, /__ready, /__demo)", ep.Path)
	case strings.ContainsAny(ep.Path, ":*?#"):
		c.add(p+".path", "%q: use {name} for parameters; ':', '*', '?' and '#' are not allowed in endpoint paths", ep.Path)
	default:
		parts, names, err := splitTemplate(ep.Path)
		if err != nil {
			c.add(p+".path", "%v", err)
			break
		}
		if d := firstDuplicate(names); d != "" {
			c.add(p+".path", "parameter {%s} appears twice", d)
			break
		}
		// The router matches the canonical escaped path (pathescape.go):
		// literals are written in that form, so /städte/{id} matches
		// /st%C3%A4dte/a%2Fb as it matches /städte/oslo.
		var route strings.Builder
		for _, part := range parts {
			if part.param >= 0 {
				route.WriteString(":" + part.literal)
			} else {
				route.WriteString(routeLiteral(part.literal))
			}
		}
		if r := route.String(); strings.HasPrefix(r, "/__") {
			// Written escaped (/%5F%5Fhealth), a reserved path.
			c.add(p+".path", "%q is %s decoded: paths starting with /__ are reserved for Manifold (/__health, /__ready, /__demo)", ep.Path, r)
		} else {
			ep.Route, ep.Params = r, names
		}
	}
	ep.badPath = len(c.list) > before // only path problems since before
	ep.ForwardHeaderKeys = nil
	for i, h := range ep.ForwardHeaders {
		hp := fmt.Sprintf("%s.forward_headers[%d]", p, i)
		switch {
		case !httpguts.ValidHeaderFieldName(h):
			c.add(hp, "%q is not a valid header name", h)
		case IsHopByHop(h):
			c.add(hp, "%s is a hop-by-hop header: it describes the client's connection and is never forwarded", h)
		case slices.Contains([]string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}, http.CanonicalHeaderKey(h)):
			c.add(hp, "%s is set by Manifold for each upstream call and cannot be forwarded: a client's own X-Forwarded-* are believed only from server.trusted_proxies; remove it from forward_headers", http.CanonicalHeaderKey(h))
		case slices.Contains(managedHeaders, http.CanonicalHeaderKey(h)):
			c.add(hp, "%s is set by Manifold for each upstream call and cannot be forwarded (X-Request-Id and Traceparent are passed on by themselves, Content-Type with a forwarded body); remove it from forward_headers", http.CanonicalHeaderKey(h))
		default:
			ep.ForwardHeaderKeys = append(ep.ForwardHeaderKeys, http.CanonicalHeaderKey(h))
		}
	}
	ep.ForwardAllQuery = false
	for i, q := range ep.ForwardQuery {
		if q == "*" {
			if len(ep.ForwardQuery) > 1 {
				c.add(fmt.Sprintf("%s.forward_query[%d]", p, i), "\"*\" forwards every parameter; list no others beside it")
			}
			ep.ForwardAllQuery = true
		} else if q == "" {
			c.add(fmt.Sprintf("%s.forward_query[%d]", p, i), "empty parameter name")
		}
	}
	if rl := ep.RateLimit; rl != nil {
		rp := p + ".rate_limit"
		if !(rl.RPS > 0) || math.IsInf(rl.RPS, 0) { // NaN and +Inf too
			c.add(rp+".rps", "must be positive (tokens per second, fractions allowed), got %v", rl.RPS)
		}
		if rl.Burst < 1 {
			c.add(rp+".burst", "must be at least 1, got %d", rl.Burst)
		}
		if rl.Per != "global" && rl.Per != "client" {
			c.add(rp+".per", "%q: use global or client", rl.Per)
		}
		switch name, isHeader := strings.CutPrefix(rl.ClientKey, "header:"); {
		case rl.ClientKey == "ip":
			rl.KeyHeader = ""
		case isHeader && httpguts.ValidHeaderFieldName(name):
			rl.KeyHeader = http.CanonicalHeaderKey(name)
		case strings.HasPrefix(rl.ClientKey, "claim:") && len(rl.ClientKey) > len("claim:"):
			rl.KeyClaim = strings.TrimPrefix(rl.ClientKey, "claim:")
			if ep.Auth == nil {
				c.add(rp+".client_key", "%q reads the token's claim, but this endpoint has no auth: add auth (and auth.jwt)", rl.ClientKey)
			}
		default:
			c.add(rp+".client_key", "%q: use ip, header:NAME (e.g. header:X-Api-Key) or claim:NAME (e.g. claim:sub)", rl.ClientKey)
		}
		validateRateLimitStore(cfg, rl, rp, c)
	}
	ep.Deep = false
	switch ep.Merge {
	case MergeShallow:
	case MergeDeep:
		ep.Deep = true
	default:
		c.add(p+".merge", "%q: use shallow (later top-level keys replace earlier ones, the default) or deep (objects merge recursively, arrays concatenate)", ep.Merge)
	}
	if len(ep.Backends) == 0 && !c.failed(p+".backends") {
		c.add(p+".backends", "at least one backend is required")
	}
	groups := map[string]int{}
	labels := map[string]bool{}
	for j, be := range ep.Backends {
		bp := fmt.Sprintf("%s.backends[%d]", p, j)
		if be == nil {
			c.add(bp, "expected a map of settings with upstream and path")
			continue
		}
		be.Index = j
		validateBackend(cfg, ep, be, bp, c)
		if be.Group != "" && !be.Shadow { // a shadow's group places nothing
			if be.Group == "_errors" && ep.ExposeErrors {
				c.add(bp+".group", `"_errors" is where expose_errors puts the failed backends' reasons, so this backend's answer would be replaced by them (or read as them); choose another group`)
			}
			if k, dup := groups[be.Group]; dup {
				c.add(bp+".group", "group %q is already used by backends[%d]; each backend of an endpoint needs its own group", be.Group, k)
			}
			groups[be.Group] = j
		}
		if be.Passthrough && len(ep.Backends) > 1 {
			c.add(bp+".passthrough", "a passthrough backend must be the only backend of its endpoint (this one has %d)", len(ep.Backends))
		}
		be.Label = be.Group
		if be.Label == "" {
			be.Label = be.Upstream
		}
		if labels[be.Label] {
			be.Label = fmt.Sprintf("%s#%d", be.Label, j)
		}
		if !be.Shadow { // never renames a real backend in error bodies
			labels[be.Label] = true
		}
	}
	validateShadowBackends(ep, p, c)
	compileGraph(ep, p, c)
}

// validateComposition checks and compiles a backend's call-graph keys:
// its name, foreach, headers and fallback. Names are resolved later, by
// compileGraph, once every backend of the endpoint is known.
func validateComposition(be *Backend, bp string, c *collector) {
	be.ID = be.Name
	if be.ID == "" {
		be.ID = be.Group
	}
	if be.ID == "" {
		be.ID = be.Upstream
	}
	if be.Name != "" && strings.ContainsAny(be.Name, ".{}") {
		c.add(bp+".name", "%q: a name cannot contain '.', '{' or '}': references read {NAME.field}", be.Name)
	}
	be.ForeachRef = nil
	if be.Foreach != "" {
		ref, isRef, err := parseRef(be.Foreach, false)
		switch {
		case err != nil:
			c.add(bp+".foreach", "%v", err)
		case !isRef:
			c.add(bp+".foreach", "%q: name an array in another backend's answer as NAME.path, e.g. order.lines", be.Foreach)
		default:
			ref.Text, ref.field = "{"+be.Foreach+"}", "foreach"
			be.ForeachRef = ref
		}
		if be.Group == "" {
			c.add(bp+".group", "is required with foreach: the results, one per element, go under it as an array")
		}
		if be.Passthrough {
			c.add(bp+".foreach", "a passthrough backend relays one answer; it cannot call once per element")
		}
	}
	if be.MaxParallel < 1 {
		c.add(bp+".max_parallel", "must be at least 1, got %d", be.MaxParallel)
	}
	if be.MaxItems < 1 {
		c.add(bp+".max_items", "must be at least 1, got %d", be.MaxItems)
	}
	be.HeaderTemplates = nil
	for _, name := range slices.Sorted(maps.Keys(be.Headers)) {
		hp := bp + ".headers." + name
		value := be.Headers[name]
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			c.add(hp, "%q is not a valid header name", name)
			continue
		case IsHopByHop(name) || slices.Contains(managedHeaders, http.CanonicalHeaderKey(name)):
			c.add(hp, "%s is set by Manifold for each call and cannot be set here", name)
			continue
		case !httpguts.ValidHeaderFieldValue(value):
			// As for an upstream's headers: the stdlib client would refuse
			// the call, the lean one send the byte.
			c.add(hp, "the value holds a control character (CR, LF, NUL, DEL or another: only tab is allowed)")
			continue
		}
		h, err := compileHeader(name, value, be)
		if err != nil {
			c.add(hp, "%v", err)
			continue
		}
		be.HeaderTemplates = append(be.HeaderTemplates, h)
	}
	if be.FallbackJSON != nil && be.Passthrough {
		c.add(bp+".fallback", "a passthrough backend relays the upstream's answer as it is; it has no fallback")
	}
}

// checkWriteTimeout refuses an endpoint timeout that is not below
// server.write_timeout. net/http sets a connection's write deadline to
// write_timeout after the request headers are read, and the endpoint's
// deadline starts later still (after the body is read); an answer written
// at or after the endpoint deadline, the 504 included, would be cut at the
// socket: the client would get an empty reply while the access log shows
// the status the handler chose. Equal is refused too, since writing the
// answer takes time after the deadline.
func checkWriteTimeout(cfg *Config, ep *Endpoint, p string, c *collector) {
	w := cfg.Server.WriteTimeout
	if ep.Timeout <= 0 || w <= 0 || ep.Timeout < w {
		return
	}
	which := ""
	if !c.inFile(p+".timeout") && ep.Timeout == defaultEndpointTimeout && c.envSource(p+".timeout") == "" {
		which = " (the default: the key is not set)"
	}
	wFrom := ""
	if name := c.envSource("server.write_timeout"); name != "" {
		wFrom = ", from $" + name
	}
	c.add(p+".timeout", "%v%s is not below server.write_timeout (%v%s): the answer is written after the endpoint deadline, "+
		"and a response still being written at write_timeout is cut, leaving the client an empty reply; "+
		"lower %s.timeout or raise server.write_timeout above it, with room to write the answer",
		ep.Timeout, which, w, wFrom, p)
}

func validateBackend(cfg *Config, ep *Endpoint, be *Backend, bp string, c *collector) {
	switch {
	case be.Upstream == "":
		c.add(bp+".upstream", "is required: name one of upstreams (known: %s)", knownUpstreams(cfg))
	case cfg.Upstreams[be.Upstream] == nil:
		if _, present := cfg.Upstreams[be.Upstream]; !present {
			c.add(bp+".upstream", "unknown upstream %q (known: %s)", be.Upstream, knownUpstreams(cfg))
		}
	}
	be.Method = strings.ToUpper(be.Method)
	if !slices.Contains(methods, be.Method) && be.Method != http.MethodHead {
		c.add(bp+".method", "%q is not supported: use GET, HEAD, POST, PUT, PATCH or DELETE", be.Method)
	}
	switch {
	case be.Path == "":
		c.add(bp+".path", "is required, e.g. /users/{id}")
	case !strings.HasPrefix(be.Path, "/"):
		c.add(bp+".path", "%q must start with /", be.Path)
	default:
		be.Refs = nil
		t, errs := compileTemplate(be.Path, ep.Params, be)
		for _, err := range errs {
			if _, unknown := errors.AsType[*unknownParamError](err); unknown && ep.badPath {
				continue // the endpoint path's problem is reported; its parameters are not known
			}
			c.add(bp+".path", "%v", err)
		}
		if len(errs) == 0 {
			be.Template = t
		}
	}
	validateComposition(be, bp, c)
	validateHedge(cfg, be, bp, c)
	if be.Target != "" {
		checkDotPath(be.Target, bp+".target", "target", c)
	}
	for i, a := range be.Allow {
		checkDotPath(a, fmt.Sprintf("%s.allow[%d]", bp, i), "allow", c)
	}
	for i, d := range be.Deny {
		checkDotPath(d, fmt.Sprintf("%s.deny[%d]", bp, i), "deny", c)
	}
	olds := slices.Sorted(maps.Keys(be.Rename))
	targets := map[string]string{}
	for _, old := range olds {
		nw := be.Rename[old]
		switch prev, dup := targets[nw]; {
		case old == "":
			c.add(bp+".rename", "a key to rename cannot be empty")
		case nw == "":
			c.add(bp+".rename."+old, "the new name is empty")
		case dup:
			c.add(bp+".rename."+old, "%q and %q are both renamed to %q; the new names must differ", prev, old, nw)
		}
		targets[nw] = old
	}
	if be.Passthrough && (be.Target != "" || len(be.Allow) > 0 || len(be.Deny) > 0 || len(be.Rename) > 0 || be.Group != "") {
		c.add(bp+".passthrough", "a passthrough backend relays the answer unchanged: remove group, target, allow, deny and rename")
	}
}

// checkDotPath checks a dot path of a backend's target, allow or deny (field
// names which). Reshaping (fetch/reshape.go) splits it at '.' and compares each
// segment with the answer's keys literally: nothing else is syntax. So the
// syntaxes users bring from gjson and JSONPath (items[0], items.*.id,
// items.#.id, a|b, a\.b) would load and then silently match nothing; they
// are refused with what to write instead. Keys such as "@id" or "#text"
// are plain keys and are kept.
func checkDotPath(path, yamlPath, field string, c *collector) {
	segs := strings.Split(path, ".")
	for _, seg := range segs {
		if seg == "" {
			c.add(yamlPath, "%q is not a dot path: segments must not be empty (e.g. address.city)", path)
			return
		}
	}
	var what string
	switch {
	case strings.ContainsAny(path, "[]"):
		what = "array indexes are not supported in dot paths"
	case strings.ContainsAny(path, "*?"):
		what = "wildcards are not supported in dot paths"
	case slices.ContainsFunc(segs, func(seg string) bool { return seg == "#" || strings.HasPrefix(seg, "#(") }):
		what = "'#' (array length or query) is not supported in dot paths"
	case strings.Contains(path, "|"):
		what = "'|' is not supported in dot paths"
	case strings.Contains(path, "\\"):
		c.add(yamlPath, "%q: escapes are not supported in dot paths; a key that contains '.' cannot be addressed", path)
		return
	default:
		return
	}
	hint := " (target descends through objects, not into arrays)"
	if field != "target" {
		hint = ""
		if keys := objectKeysOnly(segs); keys != "" {
			hint = fmt.Sprintf(" (on an array, %s applies to every element: %q)", field, keys)
		}
	}
	c.add(yamlPath, "%q: %s; name object keys only%s", path, what, hint)
}

// objectKeysOnly is a dot path with its array syntax taken out (items[0].id,
// items.*.id and items.#.id become items.id), or "" when no plain path is
// left.
func objectKeysOnly(segs []string) string {
	var keys []string
	for _, seg := range segs {
		if i := strings.IndexByte(seg, '['); i >= 0 {
			seg = seg[:i]
		}
		if seg == "" || seg == "*" || seg == "#" {
			continue
		}
		if strings.ContainsAny(seg, "[]*?#|\\") {
			return ""
		}
		keys = append(keys, seg)
	}
	return strings.Join(keys, ".")
}

func knownUpstreams(cfg *Config) string {
	if len(cfg.UpstreamNames) == 0 {
		return "none: define them under upstreams:"
	}
	return strings.Join(cfg.UpstreamNames, ", ")
}

func firstDuplicate(names []string) string {
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return n
		}
	}
	return ""
}

func init() {
	// The route check below registers routes on a throwaway Gin engine; in
	// Gin's default debug mode that prints every route to stdout, which would
	// pollute `manifold check`. Manifold runs Gin in release mode throughout.
	gin.SetMode(gin.ReleaseMode)
}

// checkRoutes asks the router itself whether the endpoint paths can live
// together: Gin refuses some combinations (e.g. /a/{x} beside /a/{y}) by
// panicking at registration, and that must be a config problem, not a crash.
// When one is refused, the earlier endpoint it clashes with is found by
// registering the two alone on a fresh engine, one earlier endpoint at a
// time (only on this failure path), and the clash is told in the file's
// {name} syntax.
func checkRoutes(cfg *Config, c *collector) {
	engine := gin.New()
	var routed []*Endpoint
	spelled := map[string]int{} // route -> the first endpoint routed on it
	for i, ep := range cfg.Endpoints {
		if ep == nil || ep.Route == "" || !slices.Contains(methods, ep.Method) {
			continue
		}
		// One route, one way of writing it: the access log, the metrics
		// and the spans name an endpoint by its path as written.
		if j, seen := spelled[ep.Route]; seen && cfg.Endpoints[j].Path != ep.Path {
			c.add(fmt.Sprintf("endpoints[%d].path", i), "%q is endpoints[%d].path %q written another way (the same path once decoded): write it the same way", ep.Path, j, cfg.Endpoints[j].Path)
			continue
		} else if !seen {
			spelled[ep.Route] = i
		}
		if reason := register(engine, ep); reason != "" {
			c.add(fmt.Sprintf("endpoints[%d].path", i), "%s", routeClash(ep, routed, reason))
			continue
		}
		routed = append(routed, ep)
	}
}

// register adds ep's route to engine; it returns the router's reason when
// the route is refused, "" when it is added.
func register(engine *gin.Engine, ep *Endpoint) (reason string) {
	defer func() {
		if r := recover(); r != nil {
			reason = fmt.Sprint(r)
		}
	}()
	engine.Handle(ep.Method, ep.Route, func(*gin.Context) {})
	return ""
}

// routeClash explains why ep cannot be routed beside the endpoints routed
// before it, naming the one it clashes with when a single one does. The
// earlier endpoints whose paths hold another parameter name where ep's
// holds one are asked first, so a file with many endpoints does not build
// an engine for each.
func routeClash(ep *Endpoint, routed []*Endpoint, reason string) string {
	for _, prev := range routed {
		if have, ok := paramClash(prev.Route, ep.Route); ok && prev.Method == ep.Method && pairReason(prev, ep) != "" {
			return fmt.Sprintf("%s clashes with endpoints[%d].path %s: a path segment can hold only one parameter name; name it {%s} in both",
				ep.Path, prev.Index, prev.Path, have)
		}
	}
	for _, prev := range routed {
		if prev.Method != ep.Method {
			continue // each method has its own tree
		}
		if r := pairReason(prev, ep); r != "" {
			return fmt.Sprintf("%s clashes with endpoints[%d].path %s: %s", ep.Path, prev.Index, prev.Path, userRouteSyntax(r))
		}
	}
	return fmt.Sprintf("%s cannot be routed beside the endpoints before it: %s", ep.Path, userRouteSyntax(reason))
}

// pairReason is the router's reason for refusing b beside a alone, "" when
// it takes both.
func pairReason(a, b *Endpoint) string {
	engine := gin.New()
	if register(engine, a) != "" {
		return ""
	}
	return register(engine, b)
}

// paramClash finds the first path segment where routes a and b (router
// syntax) both hold a parameter, under different names, with every segment
// before it alike: the router keeps one parameter name per segment of a
// shared prefix. It returns a's name there.
func paramClash(a, b string) (aName string, ok bool) {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for k := 0; k < len(as) && k < len(bs); k++ {
		pa, aParam := strings.CutPrefix(as[k], ":")
		pb, bParam := strings.CutPrefix(bs[k], ":")
		switch {
		case aParam && bParam && pa != pb:
			return pa, true
		case aParam != bParam || pa != pb:
			return "", false // the paths part here: no shared segment below
		}
	}
	return "", false
}

// routerParam is a parameter in the router's syntax (:name).
var routerParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// userRouteSyntax rewrites the router's :name parameters as {name}, the
// syntax of the file.
func userRouteSyntax(reason string) string {
	return routerParam.ReplaceAllString(reason, "{$1}")
}
