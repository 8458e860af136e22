package config

import (
	"fmt"
	"maps"
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
	names := make([]string, 0, len(cfg.Upstreams))
	for name, u := range cfg.Upstreams {
		names = append(names, name)
		if u == nil {
			c.add("upstreams."+name, "expected a map of settings with at least url")
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

func validateUpstream(u *Upstream, p string, c *collector) {
	switch {
	case u.URL == "":
		c.add(p+".url", "is required, e.g. http://users.internal:8080")
	default:
		parsed, err := url.Parse(u.URL)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			c.add(p+".url", "%q must be an http:// or https:// URL with a host", u.URL)
			break
		}
		if parsed.RawQuery != "" || parsed.Fragment != "" || parsed.User != nil {
			c.add(p+".url", "%q: an upstream URL carries scheme, host and an optional path prefix only (put queries in backend paths, credentials in headers)", u.URL)
			break
		}
		parsed.Path = strings.TrimSuffix(parsed.Path, "/")
		parsed.RawPath = strings.TrimSuffix(parsed.RawPath, "/")
		u.BaseURL = parsed
	}
	positive(u.Timeout > 0, p+".timeout", c)
	if u.MaxConcurrent < 0 {
		c.add(p+".max_concurrent", "must be 0 (unlimited) or more")
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
	if cb.FailureRatio < 0 || cb.FailureRatio > 1 {
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

func validateEndpoint(cfg *Config, ep *Endpoint, p string, c *collector) {
	ep.Method = strings.ToUpper(ep.Method)
	if !slices.Contains(methods, ep.Method) {
		c.add(p+".method", "%q is not supported: use GET, POST, PUT, PATCH or DELETE", ep.Method)
	}
	positive(ep.Timeout > 0, p+".timeout", c)
	checkWriteTimeout(cfg, ep, p, c)
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
		var route strings.Builder
		for _, part := range parts {
			if part.param < 0 {
				route.WriteString(part.literal)
			} else {
				route.WriteString(":" + part.literal)
			}
		}
		ep.Route, ep.Params = route.String(), names
	}
	ep.ForwardHeaderKeys = nil
	for i, h := range ep.ForwardHeaders {
		hp := fmt.Sprintf("%s.forward_headers[%d]", p, i)
		switch {
		case !httpguts.ValidHeaderFieldName(h):
			c.add(hp, "%q is not a valid header name", h)
		case IsHopByHop(h):
			c.add(hp, "%s is a hop-by-hop header: it describes the client's connection and is never forwarded", h)
		case slices.Contains([]string{"Host", "Content-Length", "Accept-Encoding"}, http.CanonicalHeaderKey(h)):
			c.add(hp, "%s is set by Manifold for each upstream call and cannot be forwarded", h)
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
		if rl.RPS <= 0 {
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
		if be.Group != "" {
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
		labels[be.Label] = true
	}
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
			c.add(bp+".path", "%v", err)
		}
		if len(errs) == 0 {
			be.Template = t
		}
	}
	validateComposition(be, bp, c)
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
	for i, ep := range cfg.Endpoints {
		if ep == nil || ep.Route == "" || !slices.Contains(methods, ep.Method) {
			continue
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
