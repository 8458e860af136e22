package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// demoJWKS is the repository's demo key set, a real JWK set, by absolute
// path: relative ones are read from the config file's directory.
var demoJWKS = func() string {
	p, err := filepath.Abs("../docs/examples/jwt/demo-jwks.json")
	if err != nil {
		panic(err)
	}
	return p
}()

var jwtBlock = "auth:\n  jwt: {jwks_file: " + demoJWKS + ", issuer: i, audience: [a]}\n"

// The edge's keys: every validation rule with its path and message.
func TestEdgeRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	notJWKS := filepath.Join(dir, "keys.json")
	if err := os.WriteFile(notJWKS, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cors := func(body string) string { return withTop("server:\n  cors: {" + body + "}\n") }
	jwt := func(body string) string { return withTop("auth:\n  jwt: {" + body + "}\n") }
	runProblemCases(t, []problemCase{
		{name: "tls without key", yaml: withTop("server:\n  tls: {cert_file: " + notPEM + "}\n"), path: "server.tls",
			words: []string{"give both cert_file and key_file"}},
		{name: "tls pair that does not load", yaml: withTop("server:\n  tls: {cert_file: " + notPEM + ", key_file: " + notPEM + "}\n"), path: "server.tls",
			words: []string{"cannot load the certificate and key"}},
		{name: "negative min_bytes", yaml: withTop("server:\n  compression: {min_bytes: -1}\n"), path: "server.compression.min_bytes",
			words: []string{"must not be negative"}},
		{name: "negative cache_bytes", yaml: withTop("server:\n  cache_bytes: -1\n"), path: "server.cache_bytes",
			words: []string{"must not be negative"}},
		{name: "cors without origins", yaml: cors("allow_methods: [GET]"), path: "server.cors.allow_origins",
			words: []string{"list the origins"}},
		{name: "star with credentials", yaml: cors(`allow_origins: ["*"], allow_credentials: true`), path: "server.cors.allow_origins[0]",
			words: []string{`"*" cannot be used with allow_credentials`}},
		{name: "origin with a path", yaml: cors(`allow_origins: ["https://app.example.com/x"]`), path: "server.cors.allow_origins[0]",
			words: []string{"is not an origin"}},
		{name: "origin with a trailing slash", yaml: cors(`allow_origins: ["https://app.example.com/"]`), path: "server.cors.allow_origins[0]",
			words: []string{`an origin has no path; write "https://app.example.com"`}},
		{name: "wildcard inside an origin", yaml: cors(`allow_origins: ["https://*.example.com"]`), path: "server.cors.allow_origins[0]",
			words: []string{"a wildcard inside an origin matches nothing"}},
		{name: "no methods", yaml: cors(`allow_origins: ["https://a.example"], allow_methods: []`), path: "server.cors.allow_methods",
			words: []string{"list the methods"}},
		{name: "lower-case method", yaml: cors(`allow_origins: ["https://a.example"], allow_methods: [get]`), path: "server.cors.allow_methods[0]",
			words: []string{`"get" is not a method name`}},
		{name: "bad header", yaml: cors(`allow_origins: ["https://a.example"], allow_headers: ["X Bad"]`), path: "server.cors.allow_headers[0]",
			words: []string{"not a valid header name"}},
		{name: "private network for any origin", yaml: cors(`allow_origins: ["*"], allow_private_network: true`), path: "server.cors.allow_private_network",
			words: []string{`with allow_origins "*", any public website could reach this gateway's private network address; list the origins`}},
		{name: "private network not a bool", yaml: cors(`allow_origins: ["https://a.example"], allow_private_network: sometimes`), path: "server.cors.allow_private_network",
			words: []string{"expected"}},
		{name: "two key sources", yaml: jwt("jwks_file: " + demoJWKS + ", jwks_url: https://idp.example/jwks"), path: "auth.jwt",
			words: []string{"give exactly one key source"}},
		{name: "no key source", yaml: jwt("issuer: i"), path: "auth.jwt", words: []string{"give exactly one key source"}},
		{name: "jwks_url not http", yaml: jwt("jwks_url: ftp://idp.example/jwks"), path: "auth.jwt.jwks_url",
			words: []string{"must be an http:// or https:// URL"}},
		{name: "jwks_file not a key set", yaml: jwt("jwks_file: " + notJWKS), path: "auth.jwt.jwks_file",
			words: []string{"is not a JWK set"}},
		{name: "none", yaml: jwt("jwks_file: " + demoJWKS + ", algorithms: [RS256, none]"), path: "auth.jwt.algorithms[1]",
			words: []string{`"none" accepts unsigned tokens`}},
		{name: "unknown algorithm", yaml: jwt("jwks_file: " + demoJWKS + ", algorithms: [RS257]"), path: "auth.jwt.algorithms[0]",
			words: []string{`"RS257" is not a supported algorithm`}},
		{name: "HS beside a key set", yaml: jwt("jwks_file: " + demoJWKS + ", algorithms: [HS256]"), path: "auth.jwt.algorithms[0]",
			words: []string{"HS256 needs secret"}},
		{name: "RS with a secret", yaml: jwt("secret: 0123456789abcdef0123456789abcdef, algorithms: [RS256]"), path: "auth.jwt.algorithms[0]",
			words: []string{"RS256 needs a key set"}},
		{name: "short secret", yaml: jwt("secret: short, algorithms: [HS256]"), path: "auth.jwt.secret",
			words: []string{"is 5 bytes; an HMAC secret needs at least 32"}},
		{name: "refresh zero", yaml: jwt("jwks_file: " + demoJWKS + ", refresh: 0s"), path: "auth.jwt.refresh",
			words: []string{"must be positive"}},
		{name: "endpoint auth without auth.jwt", yaml: withEndpointKeys("    auth: {scopes: [a]}\n"), path: "endpoints[0].auth",
			words: []string{"needs auth.jwt at the top level"}},
		{name: "scope with a space", yaml: jwtBlock + withEndpointKeys("    auth: {scopes: [\"a b\"]}\n"), path: "endpoints[0].auth.scopes[0]",
			words: []string{`"a b" is not a scope`}},
		{name: "claim to a managed header", yaml: jwtBlock + withEndpointKeys("    auth: {claims_to_headers: {sub: X-Forwarded-For}}\n"),
			path: "endpoints[0].auth.claims_to_headers.sub", words: []string{"X-Forwarded-For is set by Manifold"}},
		{name: "claim key without auth", yaml: withEndpointKeys("    rate_limit: {client_key: \"claim:sub\"}\n"), path: "endpoints[0].rate_limit.client_key",
			words: []string{`"claim:sub" reads the token's claim, but this endpoint has no auth`}},
		{name: "cache ttl zero", yaml: withEndpointKeys("    cache: {ttl: 0s}\n"), path: "endpoints[0].cache.ttl",
			words: []string{"must be positive"}},
		{name: "cache on POST", yaml: withEndpointKeys("    method: POST\n    cache: {ttl: 1s}\n"), path: "endpoints[0].cache",
			words: []string{"only answers to GET are cached; this endpoint is POST"}},
		{name: "cache without memory", yaml: "server:\n  cache_bytes: 0\n" + withEndpointKeys("    cache: {ttl: 1s}\n"), path: "endpoints[0].cache",
			words: []string{"server.cache_bytes is 0"}},
		{name: "auth with no value", yaml: jwtBlock + withEndpointKeys("    auth:\n"), path: "endpoints[0].auth",
			words: []string{"has no value: write auth: {} to require a valid token, or remove the key for no token check"}},
		{name: "two claims to one header", yaml: jwtBlock + withEndpointKeys("    auth: {claims_to_headers: {sub: X-User, uid: x-user}}\n"),
			path: "endpoints[0].auth.claims_to_headers.uid", words: []string{`x-user already carries the claim "sub"`}},
		{name: "claim header that a static header replaces", yaml: jwtBlock + "upstreams:\n  users: {url: \"http://users.test\", headers: {x-user: fixed}}\nendpoints:\n" +
			"  - path: /u/{id}\n    auth: {claims_to_headers: {sub: X-User}}\n    backends:\n      - {upstream: users, path: \"/users/{id}\"}\n",
			path: "endpoints[0].auth.claims_to_headers.sub", words: []string{"X-User is also a static header of upstreams.users, which would replace the claim"}},
		{name: "a bad cache_bytes is one problem", yaml: "server:\n  cache_bytes: 1.5\n" + withEndpointKeys("    cache: {ttl: 1s}\n"), path: "server.cache_bytes",
			words: []string{"expected a whole number"}},
		{name: "cache with a backend that forwards the body", yaml: withEndpoints("  - path: /s\n    cache: {ttl: 1s}\n    backends:\n      - {upstream: users, path: /search, method: POST}\n"),
			path: "endpoints[0].cache", words: []string{"backends[0] is a POST call, which forwards the request body; an answer built from a body is not cached"}},
		{name: "CORS header in response_headers", yaml: withEndpointKeys("    response_headers: {Access-Control-Allow-Origin: \"*\"}\n"),
			path: "endpoints[0].response_headers.Access-Control-Allow-Origin", words: []string{"is a CORS header: configure server.cors instead"}},
		{name: "response header Manifold sets", yaml: withEndpointKeys("    response_headers: {Content-Type: text/plain}\n"),
			path: "endpoints[0].response_headers.Content-Type", words: []string{"is set by Manifold on every answer"}},
		{name: "hop-by-hop response header", yaml: withEndpointKeys("    response_headers: {Connection: close}\n"),
			path: "endpoints[0].response_headers.Connection", words: []string{"is set by Manifold on every answer"}},
		{name: "response header Manifold sets, in another case", yaml: withEndpointKeys("    response_headers: {content-TYPE: text/plain}\n"),
			path: "endpoints[0].response_headers.content-TYPE", words: []string{"content-TYPE is set by Manifold on every answer"}},
		{name: "X-Request-ID in lower case", yaml: withEndpointKeys("    response_headers: {x-request-id: fixed}\n"),
			path: "endpoints[0].response_headers.x-request-id", words: []string{"is set by Manifold on every answer"}},
		{name: "two spellings of one response header", yaml: withEndpointKeys("    response_headers: {X-Frame-Options: DENY, x-frame-options: SAMEORIGIN}\n"),
			path: "endpoints[0].response_headers.x-frame-options", words: []string{`header "x-frame-options" is also given as "X-Frame-Options"`}},
	})
}

// Present blocks get their defaults; absent ones stay nil, so a feature
// not configured has nothing to run.
func TestEdgeDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withTop(""), nil)
	if cfg.Server.CORS != nil || cfg.Auth.JWT != nil || cfg.Endpoints[0].Auth != nil || cfg.Endpoints[0].Cache != nil {
		t.Errorf("absent blocks are set: cors %v jwt %v auth %v cache %v", cfg.Server.CORS, cfg.Auth.JWT, cfg.Endpoints[0].Auth, cfg.Endpoints[0].Cache)
	}
	cfg = mustLoad(t, "server:\n  cors: {allow_origins: [\"https://app.example.com\"]}\n"+jwtBlock+
		withEndpointKeys("    auth: {claims_to_headers: {tenantId: X-Tenant}}\n    rate_limit: {client_key: \"claim:sub\"}\n    response_headers: {X-Frame-Options: DENY}\n"), nil)
	wantCORS := &config.CORS{
		AllowOrigins:  []string{"https://app.example.com"},
		AllowMethods:  []string{"GET", "POST", "PUT", "PATCH", "DELETE"},
		AllowHeaders:  []string{},
		ExposeHeaders: []string{"X-Request-ID", "X-Manifold-Completed"},
		MaxAge:        10 * time.Minute,
	}
	if !reflect.DeepEqual(cfg.Server.CORS, wantCORS) {
		t.Errorf("cors = %+v\nwant %+v", cfg.Server.CORS, wantCORS)
	}
	if on := mustLoad(t, withTop("server:\n  cors: {allow_origins: [\"https://app.example.com\"], allow_private_network: true}\n"), nil); !on.Server.CORS.AllowPrivateNetwork {
		t.Error("allow_private_network: true did not load")
	}
	j := cfg.Auth.JWT
	if !reflect.DeepEqual(j.Algorithms, []string{"RS256", "ES256"}) || j.Refresh != 10*time.Minute || j.Leeway != 30*time.Second {
		t.Errorf("jwt defaults = %+v", j)
	}
	ep := cfg.Endpoints[0]
	if !ep.Auth.Required || ep.Auth.ClaimsToHeaders["tenantId"] != "X-Tenant" {
		t.Errorf("endpoint auth = %+v, want required and the claim's case kept", ep.Auth)
	}
	if ep.RateLimit.KeyClaim != "sub" {
		t.Errorf("KeyClaim = %q, want sub", ep.RateLimit.KeyClaim)
	}
	if ep.ResponseHeaders["X-Frame-Options"] != "DENY" {
		t.Errorf("response_headers = %v, want the name as written", ep.ResponseHeaders)
	}
}

// response_headers names are canonical once loaded, however they were
// written, so that an answer never carries one header under two
// spellings; the values are kept as written.
func TestResponseHeadersCanonical(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withEndpointKeys("    response_headers: {x-frame-options: DENY, cache-CONTROL: \"public, max-age=60\", X-Served-By: Manifold, www-authenticate: Basic}\n"), nil)
	want := map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "public, max-age=60", "X-Served-By": "Manifold", "Www-Authenticate": "Basic"}
	if got := cfg.Endpoints[0].ResponseHeaders; !reflect.DeepEqual(got, want) {
		t.Errorf("response_headers = %v, want %v", got, want)
	}
}
