package config

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// jwtAlgorithms are the signature algorithms auth.jwt accepts by name;
// "none" is never one of them.
var jwtAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"}

// answerHeaders are set by Manifold on answers; response_headers cannot
// replace them.
var answerHeaders = []string{"Content-Length", "Content-Type", "Content-Encoding", "Vary", "X-Request-Id", "X-Manifold-Completed", "X-Manifold-Cache"}

// corsHeader reports whether name is an Access-Control-* header: those
// come from server.cors only, or a static one would let any origin in.
func corsHeader(name string) bool {
	return strings.HasPrefix(http.CanonicalHeaderKey(name), "Access-Control-")
}

// validateEdge checks the keys of the edge: the listener's TLS, h2c,
// compression, CORS and cache memory, and auth.jwt.
func validateEdge(cfg *Config, c *collector) {
	s := &cfg.Server
	// Files the config names are read relative to the config file's own
	// directory, so that a config works from any working directory (a
	// systemd unit, a container's WORKDIR) beside the files it ships with.
	s.TLS.CertFile = relativeToConfig(cfg.File, s.TLS.CertFile)
	s.TLS.KeyFile = relativeToConfig(cfg.File, s.TLS.KeyFile)
	if j := cfg.Auth.JWT; j != nil {
		j.JWKSFile = relativeToConfig(cfg.File, j.JWKSFile)
	}
	switch t := s.TLS; {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		c.add("server.tls", "give both cert_file and key_file for HTTPS, or neither for plain HTTP")
	default:
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			c.add("server.tls", "cannot load the certificate and key: %v", err)
		}
		if s.H2C {
			c.add("server.h2c", "h2c is cleartext HTTP/2; with tls, HTTP/2 is negotiated by ALPN: remove h2c")
		}
	}
	if s.Compression.MinBytes < 0 {
		c.add("server.compression.min_bytes", "must not be negative, got %d", s.Compression.MinBytes)
	}
	if s.CacheBytes < 0 {
		c.add("server.cache_bytes", "must not be negative, got %d", s.CacheBytes)
	}
	if cors := s.CORS; cors != nil {
		validateCORS(cors, c)
	}
	if j := cfg.Auth.JWT; j != nil {
		validateJWT(j, c)
	}
}

func validateCORS(cors *CORS, c *collector) {
	const p = "server.cors"
	if len(cors.AllowOrigins) == 0 {
		c.add(p+".allow_origins", `list the origins browsers may call from (https://app.example.com), or "*" for any`)
	}
	for i, o := range cors.AllowOrigins {
		op := fmt.Sprintf("%s.allow_origins[%d]", p, i)
		if o == "*" {
			if cors.AllowCredentials {
				c.add(op, `"*" cannot be used with allow_credentials: browsers refuse credentials for any origin; list the origins`)
			}
			continue
		}
		if strings.Contains(o, "*") {
			c.add(op, `%q: origins match exactly; a wildcard inside an origin matches nothing; list each origin, or use "*" alone for any`, o)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			c.add(op, "%q is not an origin: write scheme://host[:port], e.g. https://app.example.com", o)
		} else if u.Path == "/" {
			c.add(op, "%q: an origin has no path; write %q", o, strings.TrimSuffix(o, "/"))
		} else if want := serializedOrigin(u); want != o {
			// Origins are matched exactly, against what browsers send.
			c.add(op, "%q: browsers send origins in lower case without the default port; write %q", o, want)
		}
	}
	if len(cors.AllowMethods) == 0 {
		c.add(p+".allow_methods", "list the methods browsers may use, e.g. [GET, POST]; leave the key out for GET, POST, PUT, PATCH, DELETE")
	}
	for i, m := range cors.AllowMethods {
		if !httpguts.ValidHeaderFieldName(m) || strings.ToUpper(m) != m {
			c.add(fmt.Sprintf("%s.allow_methods[%d]", p, i), "%q is not a method name (GET, POST, ...)", m)
		}
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"allow_headers", cors.AllowHeaders}, {"expose_headers", cors.ExposeHeaders}} {
		for i, h := range list.names {
			if h != "*" && !httpguts.ValidHeaderFieldName(h) {
				c.add(fmt.Sprintf("%s.%s[%d]", p, list.key, i), "%q is not a valid header name", h)
			}
		}
	}
	if cors.MaxAge < 0 {
		c.add(p+".max_age", "must not be negative")
	}
	if cors.AllowPrivateNetwork && slices.Contains(cors.AllowOrigins, "*") {
		// Private Network Access exists so that a public page cannot reach
		// what only the network protects; granting it to every origin
		// would undo that for this gateway.
		c.add(p+".allow_private_network", `with allow_origins "*", any public website could reach this gateway's private network address; list the origins`)
	}
}

func validateJWT(j *JWT, c *collector) {
	const p = "auth.jwt"
	sources := 0
	for _, set := range []bool{j.JWKSURL != "", j.JWKSFile != "", j.Secret != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		c.add(p, "give exactly one key source: jwks_url (a key set to fetch), jwks_file (a local key set) or secret (HS256/384/512)")
	}
	if j.JWKSURL != "" {
		u, err := url.Parse(j.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			c.add(p+".jwks_url", "%q must be an http:// or https:// URL", j.JWKSURL)
		}
	}
	if j.JWKSFile != "" {
		checkJWKSFile(j.JWKSFile, p+".jwks_file", c)
	}
	if len(j.Algorithms) == 0 {
		c.add(p+".algorithms", "list the accepted algorithms, e.g. [RS256, ES256]")
	}
	for i, a := range j.Algorithms {
		ap := fmt.Sprintf("%s.algorithms[%d]", p, i)
		switch {
		case strings.EqualFold(a, "none"):
			c.add(ap, `"none" accepts unsigned tokens: anyone could forge one; it is never allowed`)
		case !slices.Contains(jwtAlgorithms, a):
			c.add(ap, "%q is not a supported algorithm (known: %s)", a, strings.Join(jwtAlgorithms, ", "))
		case strings.HasPrefix(a, "HS") && j.Secret == "":
			c.add(ap, "%s needs secret: an HMAC algorithm beside a public key set would let a public key sign tokens", a)
		case !strings.HasPrefix(a, "HS") && j.Secret != "":
			c.add(ap, "%s needs a key set (jwks_url or jwks_file), not secret", a)
		}
	}
	if j.Secret != "" && len(j.Secret) < 32 {
		c.add(p+".secret", "is %d bytes; an HMAC secret needs at least 32 random bytes", len(j.Secret))
	}
	if j.Refresh <= 0 {
		c.add(p+".refresh", "must be positive, e.g. 10m")
	}
	if j.Leeway < 0 {
		c.add(p+".leeway", "must not be negative")
	}
	for i, a := range j.Audience {
		if a == "" {
			c.add(fmt.Sprintf("%s.audience[%d]", p, i), "empty audience")
		}
	}
}

// staticHeaderOf names the upstream or backend of ep whose static headers
// include name (any spelling), or "".
func staticHeaderOf(cfg *Config, ep *Endpoint, name string) string {
	for j, be := range ep.Backends {
		if be == nil {
			continue
		}
		for h := range be.Headers {
			if strings.EqualFold(h, name) {
				return fmt.Sprintf("backends[%d]", j)
			}
		}
		if u := cfg.Upstreams[be.Upstream]; u != nil {
			for h := range u.Headers {
				if strings.EqualFold(h, name) {
					return "upstreams." + be.Upstream
				}
			}
		}
	}
	return ""
}

// relativeToConfig resolves a relative path against the directory of the
// config file; "" and absolute paths are kept.
func relativeToConfig(configFile, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(configFile), path)
}

// checkJWKSFile checks that a local key set is readable JSON with keys.
func checkJWKSFile(path, yp string, c *collector) {
	b, err := os.ReadFile(path)
	if err != nil {
		c.add(yp, "cannot read the key set: %v", err)
		return
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) == 0 {
		c.add(yp, "%s is not a JWK set: want a JSON object with a non-empty \"keys\" array", path)
	}
}

// validateEndpointEdge checks an endpoint's auth, cache and
// response_headers.
func validateEndpointEdge(cfg *Config, ep *Endpoint, p string, c *collector) {
	if a := ep.Auth; a != nil {
		if cfg.Auth.JWT == nil {
			c.add(p+".auth", "needs auth.jwt at the top level: it says how tokens are checked")
		}
		for i, sc := range a.Scopes {
			if sc == "" || strings.ContainsAny(sc, " \t") {
				c.add(fmt.Sprintf("%s.auth.scopes[%d]", p, i), "%q is not a scope (one word, no spaces)", sc)
			}
		}
		claimed := map[string]string{}
		for _, claim := range slices.Sorted(maps.Keys(a.ClaimsToHeaders)) {
			h := a.ClaimsToHeaders[claim]
			hp := p + ".auth.claims_to_headers." + claim
			prev, dup := claimed[http.CanonicalHeaderKey(h)]
			claimed[http.CanonicalHeaderKey(h)] = claim
			switch {
			case dup:
				c.add(hp, "%s already carries the claim %q; each claim needs its own header", h, prev)
			case staticHeaderOf(cfg, ep, h) != "":
				c.add(hp, "%s is also a static header of %s, which would replace the claim; rename one of them", h, staticHeaderOf(cfg, ep, h))
			case claim == "":
				c.add(p+".auth.claims_to_headers", "a claim name cannot be empty")
			case !httpguts.ValidHeaderFieldName(h):
				c.add(hp, "%q is not a valid header name", h)
			case IsHopByHop(h) || slices.Contains(managedHeaders, http.CanonicalHeaderKey(h)):
				c.add(hp, "%s is set by Manifold for each upstream call and cannot carry a claim", h)
			}
		}
	}
	if ca := ep.Cache; ca != nil {
		switch {
		case ca.TTL <= 0:
			c.add(p+".cache.ttl", "must be positive, e.g. 30s")
		case ep.Method != http.MethodGet:
			c.add(p+".cache", "only answers to GET are cached; this endpoint is %s", ep.Method)
		case cfg.Server.CacheBytes == 0 && !c.failed("server.cache_bytes"):
			c.add(p+".cache", "server.cache_bytes is 0: there is no memory to cache in")
		}
		for j, be := range ep.Backends {
			if be != nil && be.Passthrough {
				c.add(p+".cache", "a passthrough answer is streamed as it arrives and is not cached")
				break
			}
			if be != nil && be.Method != http.MethodGet && be.Method != http.MethodHead {
				// The request body would reach that backend but not the
				// cache key: one client's body would be served to all.
				c.add(p+".cache", "backends[%d] is a %s call, which forwards the request body; an answer built from a body is not cached", j, be.Method)
				break
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(ep.ResponseHeaders)) {
		hp := p + ".response_headers." + name
		v := ep.ResponseHeaders[name]
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			c.add(hp, "%q is not a valid header name", name)
		case IsHopByHop(name) || slices.Contains(answerHeaders, http.CanonicalHeaderKey(name)):
			c.add(hp, "%s is set by Manifold on every answer and cannot be set here", name)
		case corsHeader(name):
			c.add(hp, "%s is a CORS header: configure server.cors instead, which checks the origin", name)
		case !httpguts.ValidHeaderFieldValue(v):
			c.add(hp, "the value holds a control character")
		}
	}
	// Names are kept canonical from here on (x-frame-options ->
	// X-Frame-Options), the form the gateway sets its own headers in and
	// stores a relayed upstream's under: written otherwise, a name would go
	// out as a second line beside the gateway's header of that name instead
	// of giving way to it. Two spellings of one name were refused above
	// (keptCase), so no entry is lost; problems keep the name as written.
	if len(ep.ResponseHeaders) > 0 {
		canonical := make(map[string]string, len(ep.ResponseHeaders))
		for name, v := range ep.ResponseHeaders {
			canonical[textproto.CanonicalMIMEHeaderKey(name)] = v
		}
		ep.ResponseHeaders = canonical
	}
}

// serializedOrigin is u as a browser writes it in an Origin header: the
// scheme and host in lower case, no port when it is the scheme's default.
func serializedOrigin(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
		port = ""
	}
	o := strings.ToLower(u.Scheme) + "://" + host
	if port != "" {
		o += ":" + port
	}
	return o
}
