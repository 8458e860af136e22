package handlers

// Bearer token validation (SPEC §9): auth.jwt says how tokens are checked,
// an endpoint's auth whether it needs one, which scopes, and which claims
// go to its backends as headers.
//
// The JOSE work (signature verification, the key set's JSON, the registered
// claims exp, nbf, iat, iss) is lestrrat-go/jwx's; this file holds the
// policy around it:
//
//   - The algorithm allowlist is checked on the token's header before any
//     key is looked at: "none" and anything not configured are refused. A
//     key verifies only the algorithms its own type allows (RSA: RS*, PS*;
//     EC: ES* of its curve; Ed25519: EdDSA), or its own "alg" when the key
//     set gives one; symmetric ("oct") keys of a key set are never used, so
//     a public key can never serve as an HMAC secret. jwx checks once more
//     that the header's alg is the one verified with.
//   - Keys are parsed once per key set (jwks_file when the Gateway is built,
//     so on every reload; jwks_url on every fetch), never per request.
//   - jwks_url is fetched by one goroutine per key store, owned by the
//     Gateway that made it (or carried over to the next one on a reload when
//     jwks_url and refresh are unchanged) and stopped by Close or Retire.
//     See keyStore for the schedule and its bounds.
//   - Rejections answer 401 with WWW-Authenticate (RFC 6750), 403 for a
//     missing scope, 503 while no key set has ever arrived, always with the
//     gateway's JSON error, before rate limiting and before any upstream is
//     called; each is counted in manifold_auth_rejected_total by a reason
//     of a fixed set.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/lestrrat-go/jwx/v3/jws/jwsbb"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/tidwall/gjson"
	"golang.org/x/net/http/httpguts"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

const (
	// maxTokenBytes bounds a bearer token: real ones are a few hundred
	// bytes to a few KiB; anything longer is refused before it is decoded.
	maxTokenBytes = 16 << 10
	// maxJWKSBytes bounds a fetched key set.
	maxJWKSBytes = 1 << 20
	// minRSABits: smaller RSA keys of a key set are not used.
	minRSABits = 2048
)

// jwksTiming is the schedule of a jwks_url key store.
type jwksTiming struct {
	// fetch bounds one fetch, connection to last byte.
	fetch time.Duration
	// wait is the longest a request waits for a fetch in progress (or one
	// it asked for) when its kid is unknown or no key set has arrived yet.
	wait time.Duration
	// cooldown spaces the fetches that requests ask for (an unknown kid):
	// at most one per cooldown, whatever the number of kids, so made-up
	// kids cannot hammer the identity provider.
	cooldown time.Duration
	// retryMin and retryMax bound the wait after a failed fetch: it
	// doubles from retryMin to retryMax (and never beyond refresh).
	retryMin, retryMax time.Duration
}

// defaultJWKSTiming: a fetch takes at most 5s; a request waits at most 1s
// for one; requests trigger at most one fetch per 30s; a failed fetch is
// retried after 1s, 2s, 4s ... up to 30s.
var defaultJWKSTiming = jwksTiming{fetch: 5 * time.Second, wait: time.Second, cooldown: 30 * time.Second, retryMin: time.Second, retryMax: 30 * time.Second}

// jwksTimings is what new key stores use; tests shorten it.
var jwksTimings = defaultJWKSTiming

// The reasons of manifold_auth_rejected_total: a fixed set, so the label
// is bounded whatever clients send.
const (
	reasonMissing         = "missing"          // no bearer token
	reasonMalformed       = "malformed"        // not a compact JWS, bad encoding, bad claims, no exp
	reasonExpired         = "expired"          // exp passed (beyond leeway)
	reasonNotYetValid     = "not_yet_valid"    // nbf or iat in the future (beyond leeway)
	reasonSignature       = "signature"        // the signature does not verify
	reasonIssuer          = "issuer"           // iss is not auth.jwt.issuer
	reasonAudience        = "audience"         // aud holds none of auth.jwt.audience
	reasonAlgorithm       = "algorithm"        // alg not allowed, or not the key's
	reasonUnknownKey      = "unknown_key"      // no key of the set has the token's kid
	reasonKeysUnavailable = "keys_unavailable" // no key set has arrived yet (503)
	reasonScope           = "scope"            // a required scope is missing (403)
)

// authFailure is why a request was refused: a reason of the fixed set, the
// client-facing message, and the internal detail that only the log sees.
type authFailure struct {
	reason  string
	message string
	err     error
}

var (
	errAudience    = errors.New("aud holds none of the accepted audiences")
	errNoKeys      = errors.New("no key set has arrived yet")
	errUnknownKey  = errors.New("no key with the token's kid")
	errKeyMismatch = errors.New("the token's alg is not one its key verifies")
)

// verifier checks tokens for auth.jwt: the allowlist, the keys and the
// claims every token must satisfy. It is built once per Gateway.
type verifier struct {
	cfg      *config.JWT
	algs     map[string]jwa.SignatureAlgorithm // auth.jwt.algorithms
	keys     *keyStore
	validate []jwt.ParseOption // leeway, exp required, iss, aud
	// handedOver: a reload carried keys over to the next Gateway.
	handedOver atomic.Bool
}

// newAuth builds g's verifier from auth.jwt (nothing without it). A key
// store fetching the same jwks_url at the same refresh is carried over from
// prev, keys and goroutine; a jwks_file is read again.
func (g *Gateway) newAuth(prev *Gateway) error {
	jc := g.cfg.Auth.JWT
	if jc == nil {
		return nil
	}
	v := &verifier{cfg: jc, algs: make(map[string]jwa.SignatureAlgorithm, len(jc.Algorithms))}
	for _, name := range jc.Algorithms {
		alg, ok := jwa.LookupSignatureAlgorithm(name)
		if !ok || alg == jwa.NoSignature() { // config validation refuses both
			return fmt.Errorf("auth.jwt.algorithms: %q is not supported", name)
		}
		v.algs[name] = alg
	}
	v.validate = []jwt.ParseOption{jwt.WithAcceptableSkew(jc.Leeway), jwt.WithRequiredClaim(jwt.ExpirationKey)}
	if jc.Issuer != "" {
		v.validate = append(v.validate, jwt.WithIssuer(jc.Issuer))
	}
	if len(jc.Audience) > 0 {
		accepted := slices.Clone(jc.Audience)
		v.validate = append(v.validate, jwt.WithValidator(jwt.ValidatorFunc(func(_ context.Context, t jwt.Token) error {
			aud, _ := t.Audience()
			for _, a := range aud {
				if slices.Contains(accepted, a) {
					return nil
				}
			}
			return errAudience
		})))
	}

	switch {
	case jc.Secret != "":
		v.keys = staticKeys(secretKeySet([]byte(jc.Secret)))
	case jc.JWKSFile != "":
		set, err := loadKeyFile(g.cfg, g.logger)
		if err != nil {
			return err
		}
		v.keys = staticKeys(set)
	default:
		if prev != nil && prev.auth != nil && prev.auth.keys.url == jc.JWKSURL && prev.auth.keys.refresh == jc.Refresh {
			v.keys = prev.auth.keys
		} else {
			v.keys = startKeyStore(jc.JWKSURL, jc.Refresh, jwksTimings, g.logger)
		}
	}
	g.auth = v
	return nil
}

// retireAuth stops g's key store unless next carried it over; once handed
// over, the store is next's to stop, even if g is closed later.
func (g *Gateway) retireAuth(next *Gateway) {
	if g.auth == nil {
		return
	}
	if next != nil && next.auth != nil && next.auth.keys == g.auth.keys {
		g.auth.handedOver.Store(true)
		return
	}
	if !g.auth.handedOver.Load() {
		g.auth.keys.close()
	}
}

// CheckKeys reads and parses cfg's auth.jwt.jwks_file as building a
// Gateway does, and refuses it for the same reasons, without building
// anything: config validation only sees that the file is a JWK set, so
// `manifold check` (and run, before it starts anything) calls this to
// refuse a set whose keys the gateway cannot use, rather than passing a
// file that run would then stop on. The error is config.Problems, one
// problem at auth.jwt.jwks_file; nil without a jwks_file.
func CheckKeys(cfg *config.Config) error {
	if jc := cfg.Auth.JWT; jc == nil || jc.JWKSFile == "" {
		return nil
	}
	_, err := loadKeyFile(cfg, slog.New(slog.DiscardHandler))
	return err
}

// loadKeyFile reads and parses auth.jwt.jwks_file. The set must hold a key
// that verifies one of auth.jwt.algorithms: otherwise every token would be
// refused. A failure is a config.Problem at auth.jwt.jwks_file naming the
// file, why each key was left out, and the fix.
func loadKeyFile(cfg *config.Config, logger *slog.Logger) (*keySet, error) {
	jc := cfg.Auth.JWT
	problem := func(format string, args ...any) error {
		return config.Problems{{File: cfg.File, Path: "auth.jwt.jwks_file", Message: fmt.Sprintf(format, args...)}}
	}
	algs := strings.Join(jc.Algorithms, ", ")
	b, err := readFileLimited(jc.JWKSFile, maxJWKSBytes)
	if err != nil {
		return nil, problem("cannot read the key set: %v", err)
	}
	set, err := parseKeySet(b, logger)
	var none *noUsableKeyError
	switch {
	case errors.As(err, &none):
		return nil, problem("%s has no usable signature key: %s; give at least one public key that verifies %s (RSA of 2048 bits or more for RS*/PS*, EC P-256, P-384 or P-521 for ES256/384/512, Ed25519 for EdDSA), with use \"sig\" or no use, and no alg or one of those",
			jc.JWKSFile, strings.Join(none.skipped, "; "), algs)
	case err != nil:
		return nil, problem("%s: %v", jc.JWKSFile, err)
	}
	for _, e := range set.all {
		for _, a := range jc.Algorithms {
			if e.verifies(a) {
				return set, nil
			}
		}
	}
	var have []string
	for _, e := range set.all {
		have = append(have, fmt.Sprintf("%s verifies only %s", e.label, strings.Join(slices.Sorted(maps.Keys(e.opts)), ", ")))
	}
	return nil, problem("%s has no key for auth.jwt.algorithms (%s): %s; give at least one key for %s, or list the algorithms its keys verify in auth.jwt.algorithms",
		jc.JWKSFile, algs, strings.Join(have, "; "), algs)
}

func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: over %d bytes", path, limit)
	}
	return b, nil
}

// verify checks a bearer token: its form, header, algorithm, key,
// signature and registered claims. It returns the token's payload (the
// claims' JSON) when every check passed.
func (v *verifier) verify(ctx context.Context, token string) ([]byte, *authFailure) {
	if len(token) > maxTokenBytes {
		return nil, &authFailure{reasonMalformed, "malformed token", fmt.Errorf("token of %d bytes, over %d", len(token), maxTokenBytes)}
	}
	if !compactJWS(token) {
		return nil, &authFailure{reasonMalformed, "malformed token", errors.New("not three base64url segments")}
	}
	buf := []byte(token)
	hdr, payload, _, err := jwsbb.SplitCompact(buf)
	if err != nil {
		return nil, &authFailure{reasonMalformed, "malformed token", err}
	}
	ph := jwsbb.HeaderParseCompact(hdr)
	algName, err := jwsbb.HeaderGetString(ph, "alg")
	if err != nil {
		return nil, &authFailure{reasonMalformed, "malformed token", fmt.Errorf("header alg: %w", err)}
	}
	if jwsbb.HeaderHas(ph, "crit") || jwsbb.HeaderHas(ph, "b64") {
		// No JWS extension is supported (RFC 7515 §4.1.11, RFC 7797).
		return nil, &authFailure{reasonMalformed, "malformed token", errors.New("header with crit or b64")}
	}
	alg, ok := v.algs[algName]
	if !ok {
		return nil, &authFailure{reasonAlgorithm, "token algorithm not allowed", fmt.Errorf("alg %.32q not in %v", algName, v.cfg.Algorithms)}
	}
	kid, err := jwsbb.HeaderGetString(ph, "kid")
	if err != nil && !errors.Is(err, jwsbb.ErrHeaderNotFound()) {
		return nil, &authFailure{reasonMalformed, "malformed token", fmt.Errorf("header kid: %w", err)}
	}

	key, err := v.keys.find(ctx, kid, algName)
	switch {
	case errors.Is(err, errNoKeys):
		return nil, &authFailure{reasonKeysUnavailable, "token keys unavailable", err}
	case errors.Is(err, errKeyMismatch):
		return nil, &authFailure{reasonAlgorithm, "token algorithm not allowed", fmt.Errorf("kid %.64q, alg %s: %w", kid, algName, err)}
	case err != nil:
		return nil, &authFailure{reasonUnknownKey, "unknown token key", fmt.Errorf("kid %.64q: %w", kid, err)}
	}

	var opts [8]jwt.ParseOption
	parse := append(append(opts[:0], key.withKey(alg)), v.validate...)
	if _, err := jwt.Parse(buf, parse...); err != nil {
		return nil, classify(err)
	}
	claims, err := base64.RawURLEncoding.AppendDecode(nil, payload)
	if err != nil { // jwx decoded it already
		return nil, &authFailure{reasonMalformed, "malformed token", err}
	}
	return claims, nil
}

// classify maps a jwt.Parse error (after the key was found) to a reason.
func classify(err error) *authFailure {
	switch {
	case errors.Is(err, jwt.TokenExpiredError()):
		return &authFailure{reasonExpired, "token expired", err}
	case errors.Is(err, jwt.TokenNotYetValidError()), errors.Is(err, jwt.InvalidIssuedAtError()):
		return &authFailure{reasonNotYetValid, "token not valid yet", err}
	case errors.Is(err, jwt.InvalidIssuerError()):
		return &authFailure{reasonIssuer, "token issuer not accepted", err}
	case errors.Is(err, errAudience):
		return &authFailure{reasonAudience, "token audience not accepted", err}
	case errors.Is(err, jwt.MissingRequiredClaimError()):
		return &authFailure{reasonMalformed, "token has no expiry", err}
	case errors.Is(err, jws.VerifyError()):
		return &authFailure{reasonSignature, "invalid token signature", err}
	}
	return &authFailure{reasonMalformed, "malformed token", err}
}

// compactJWS reports whether s is three dot-separated base64url segments
// (no padding), the first two non-empty; the third may be empty, so an
// unsigned token is refused for its alg, not its form.
func compactJWS(s string) bool {
	dots := 0
	seg := 0
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == '.':
			if seg == 0 || dots == 2 {
				return false
			}
			dots++
			seg = 0
		case b >= 'A' && b <= 'Z', b >= 'a' && b <= 'z', b >= '0' && b <= '9', b == '-', b == '_':
			seg++
		default:
			return false
		}
	}
	return dots == 2
}

// bearer extracts the token of an Authorization: Bearer header (scheme
// case-insensitive). ok is false when there is no bearer credential at all
// (no header, or another scheme); a bearer header with no usable token, or
// more than one Authorization header, is malformed.
func bearer(values []string) (token string, ok bool, malformed bool) {
	if len(values) == 0 {
		return "", false, false
	}
	if len(values) > 1 {
		return "", true, true
	}
	v := values[0]
	scheme, rest := v, ""
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		scheme, rest = v[:i], v[i+1:] // RFC 9110 allows any whitespace after the scheme
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false, false
	}
	token = strings.Trim(rest, " \t")
	if token == "" || strings.ContainsAny(token, " \t") {
		return "", true, true
	}
	return token, true, false
}

// ---- endpoints ----

// endpointAuth is an endpoint's auth, pre-computed: what it requires and
// which claims it reads.
type endpointAuth struct {
	route    string // metric label and log field: the path template
	required bool
	scopes   []string
	// scopeChallenge is the 403's WWW-Authenticate value.
	scopeChallenge []string
	// claims are the claim names read from a token: claims_to_headers'
	// and the rate limit's claim, sorted, without duplicates.
	claims []string
	// headers are claims_to_headers: the claim's index in claims, the
	// header name as written and in canonical form.
	headers []claimHeader
	// subject: the endpoint caches, and its key takes the token's sub (or,
	// without one, a hash of the token: subjectOf).
	subject bool
}

// quotedString escapes s for an HTTP quoted-string: backslash and quote
// are escaped, control characters dropped.
func quotedString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

type claimHeader struct {
	claim     int
	name      string
	canonical string
}

// newEndpointAuth pre-computes ec's auth, or returns nil when it has none.
func newEndpointAuth(ec *config.Endpoint) *endpointAuth {
	a := ec.Auth
	if a == nil {
		return nil
	}
	ea := &endpointAuth{route: ec.Path, required: a.Required, scopes: slices.Clone(a.Scopes), subject: ec.Cache != nil}
	if len(a.Scopes) > 0 {
		ea.scopeChallenge = []string{`Bearer error="insufficient_scope", scope="` + quotedString(strings.Join(a.Scopes, " ")) + `"`}
	}
	for claim := range a.ClaimsToHeaders {
		ea.claims = append(ea.claims, claim)
	}
	if rl := ec.RateLimit; rl != nil && rl.KeyClaim != "" {
		ea.claims = append(ea.claims, rl.KeyClaim)
	}
	slices.Sort(ea.claims)
	ea.claims = slices.Compact(ea.claims)
	for claim, name := range a.ClaimsToHeaders {
		i, _ := slices.BinarySearch(ea.claims, claim)
		ea.headers = append(ea.headers, claimHeader{claim: i, name: name, canonical: http.CanonicalHeaderKey(name)})
	}
	slices.SortFunc(ea.headers, func(x, y claimHeader) int { return strings.Compare(x.name, y.name) })
	return ea
}

// identity is what a request's token said, for its endpoint: the values of
// endpointAuth.claims ("" when absent or not a string, number or bool). A
// request without a token (auth.required: false) has no values.
type identity struct {
	ea     *endpointAuth
	values []string
}

// claim returns the value of claim name, if the token had it.
func (id *identity) claim(name string) (string, bool) {
	if id == nil || id.values == nil {
		return "", false
	}
	i, ok := slices.BinarySearch(id.ea.claims, name)
	if !ok || id.values[i] == "" {
		return "", false
	}
	return id.values[i], true
}

// setHeaders applies claims_to_headers to the headers of the backend
// calls: whatever the client sent under those names is removed (even when
// forward_headers lists them, even when the token lacks the claim), then
// each claim present is set under its name as written.
func (id *identity) setHeaders(h http.Header) {
	if id == nil {
		return
	}
	for _, ch := range id.ea.headers {
		delete(h, ch.canonical)
		if ch.name != ch.canonical {
			for k := range h {
				if strings.EqualFold(k, ch.name) {
					delete(h, k)
				}
			}
		}
	}
	if id.values == nil {
		// No token was validated (auth.required: false): a credential the
		// gateway did not check must not reach an upstream that trusts
		// the gateway to have checked it, even when forward_headers lists
		// Authorization.
		delete(h, "Authorization")
		return
	}
	for _, ch := range id.ea.headers {
		if v := id.values[ch.claim]; v != "" {
			h[ch.name] = []string{v}
		}
	}
}

// authenticate validates the request's token for ea. It answers the
// request and returns false when the request is refused.
func (g *Gateway) authenticate(c *gin.Context, ea *endpointAuth) (*identity, bool) {
	token, present, malformed := bearer(c.Request.Header["Authorization"])
	switch {
	case !present && !ea.required:
		return &identity{ea: ea}, true
	case !present:
		g.rejectAuth(c, ea, &authFailure{reasonMissing, "bearer token required", nil})
		return nil, false
	case malformed:
		g.rejectAuth(c, ea, &authFailure{reasonMalformed, "malformed token", errors.New("malformed Authorization header")})
		return nil, false
	}
	payload, fail := g.auth.verify(c.Request.Context(), token)
	if fail != nil {
		g.rejectAuth(c, ea, fail)
		return nil, false
	}
	id := &identity{ea: ea, values: make([]string, len(ea.claims))}
	var granted []string
	var sub string
	if len(ea.claims) > 0 || len(ea.scopes) > 0 || ea.subject {
		gjson.ParseBytes(payload).ForEach(func(k, v gjson.Result) bool {
			name := k.String()
			if i, ok := slices.BinarySearch(ea.claims, name); ok {
				id.values[i] = claimValue(v)
			}
			switch name {
			case "scope", "scp":
				if len(ea.scopes) > 0 {
					granted = appendScopes(granted, v)
				}
			case "sub":
				sub = v.String()
			}
			return true
		})
	}
	for _, s := range ea.scopes {
		if !slices.Contains(granted, s) {
			g.rejectAuth(c, ea, &authFailure{reasonScope, "insufficient scope: " + strings.Join(ea.scopes, " ") + " required", nil})
			return nil, false
		}
	}
	if ea.subject {
		c.Set(subjectKey, subjectOf(sub, token))
	}
	return id, true
}

// claimValue is a claim as a header value: a string as it is, a number as
// the token wrote it (no float rounding), a bool as true or false; "" for
// anything else, or a string a header cannot carry.
func claimValue(v gjson.Result) string {
	var s string
	switch v.Type {
	case gjson.String:
		s = v.String()
	case gjson.Number, gjson.True, gjson.False:
		s = v.Raw
	default:
		return ""
	}
	if !httpguts.ValidHeaderFieldValue(s) {
		return ""
	}
	return strings.TrimSpace(s)
}

// appendScopes adds the scopes of a scope or scp claim: a space-separated
// string, or (scp) an array of strings.
func appendScopes(granted []string, v gjson.Result) []string {
	switch {
	case v.Type == gjson.String:
		granted = append(granted, strings.Fields(v.String())...)
	case v.IsArray():
		for _, e := range v.Array() {
			if e.Type == gjson.String {
				granted = append(granted, e.String())
			}
		}
	}
	return granted
}

// rejectAuth answers a refused request: 401 with a Bearer challenge (with
// error="invalid_token" for a token that is bad), 403 with
// error="insufficient_scope" for a missing scope, 503 while no key set has
// arrived; it counts and logs the reason.
func (g *Gateway) rejectAuth(c *gin.Context, ea *endpointAuth, f *authFailure) {
	g.metrics.authRejected(ea.route, f.reason)
	attrs := []slog.Attr{
		slog.String("request_id", requestIDOf(c)),
		slog.String("route", ea.route),
		slog.String("reason", f.reason),
	}
	if f.err != nil {
		attrs = append(attrs, slog.String("error", f.err.Error()))
	}
	g.logger.LogAttrs(c.Request.Context(), slog.LevelDebug, "auth rejected", attrs...)
	h := c.Writer.Header()
	status := http.StatusUnauthorized
	switch f.reason {
	case reasonMissing:
		h["Www-Authenticate"] = []string{"Bearer"}
	case reasonScope:
		status = http.StatusForbidden
		h["Www-Authenticate"] = ea.scopeChallenge
	case reasonKeysUnavailable:
		status = http.StatusServiceUnavailable
	default:
		h["Www-Authenticate"] = []string{`Bearer error="invalid_token", error_description="` + f.message + `"`}
	}
	writeError(c, status, f.message, nil)
}

// ---- keys ----

// keyEntry is one verification key with the algorithms it may verify.
type keyEntry struct {
	kid string
	// label names the key in messages: its kid quoted, else keys[i].
	label string
	// opts holds jwt.WithKey(alg, key) for each algorithm the key verifies.
	opts map[string]jwt.ParseOption
}

func (k *keyEntry) withKey(alg jwa.SignatureAlgorithm) jwt.ParseOption { return k.opts[alg.String()] }

func (k *keyEntry) verifies(alg string) bool { _, ok := k.opts[alg]; return ok }

// keySet is one parsed key set, immutable.
type keySet struct {
	byKID map[string][]*keyEntry
	all   []*keyEntry
	// secret, for auth.jwt.secret, verifies every HS* token whatever its kid.
	secret *keyEntry
}

// find returns the key for a token's kid and alg (alg is allowed). A token
// without kid takes the one key of the set that verifies alg, if there is
// exactly one.
func (s *keySet) find(kid, alg string) (*keyEntry, error) {
	if s.secret != nil {
		if s.secret.verifies(alg) {
			return s.secret, nil
		}
		return nil, errKeyMismatch
	}
	if kid == "" {
		var found *keyEntry
		for _, k := range s.all {
			if k.verifies(alg) {
				if found != nil {
					return nil, fmt.Errorf("%w: the token has no kid and several keys verify %s", errUnknownKey, alg)
				}
				found = k
			}
		}
		if found == nil {
			return nil, errUnknownKey
		}
		return found, nil
	}
	keys, ok := s.byKID[kid]
	if !ok {
		return nil, errUnknownKey
	}
	for _, k := range keys {
		if k.verifies(alg) {
			return k, nil
		}
	}
	return nil, errKeyMismatch
}

func secretKeySet(secret []byte) *keySet {
	e := &keyEntry{opts: map[string]jwt.ParseOption{}}
	for _, alg := range []jwa.SignatureAlgorithm{jwa.HS256(), jwa.HS384(), jwa.HS512()} {
		e.opts[alg.String()] = jwt.WithKey(alg, secret)
	}
	return &keySet{secret: e}
}

// noUsableKeyError is parseKeySet's error for a set with no key it keeps:
// why each key was left out, one entry per key.
type noUsableKeyError struct{ skipped []string }

func (e *noUsableKeyError) Error() string {
	if len(e.skipped) == 0 {
		return "no usable signature key in the set: it has no keys"
	}
	return "no usable signature key in the set: " + strings.Join(e.skipped, "; ")
}

// parseKeySet parses a JWK set and keeps its signature keys: public RSA
// (2048 bits or more), EC (P-256, P-384, P-521) and Ed25519 keys, each with
// the algorithms its type allows, or only its own alg when it has one.
// Each key is parsed on its own (jwx), so that one the gateway cannot use
// (a symmetric key, an encryption key, a type or size jwx refuses) is
// skipped with a warning rather than taking the others down with it; a set
// left with no key is a *noUsableKeyError saying why each was left out.
func parseKeySet(b []byte, logger *slog.Logger) (*keySet, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JWK set: %w", err)
	}
	ks := &keySet{byKID: map[string][]*keyEntry{}}
	var skipped []string
	for i, rawKey := range set.Keys {
		k, err := jwk.ParseKey(rawKey)
		if err != nil {
			logger.Warn("jwks: key skipped", "index", i, "error", err.Error())
			var named struct {
				Kid string `json:"kid"`
			}
			_ = json.Unmarshal(rawKey, &named)
			skipped = append(skipped, fmt.Sprintf("%s: %v", keyLabel(i, named.Kid), err))
			continue
		}
		kid, _ := k.KeyID()
		label := keyLabel(i, kid)
		if use, ok := k.KeyUsage(); ok && use != "sig" {
			skipped = append(skipped, fmt.Sprintf("%s: use %q, not \"sig\"", label, use))
			continue
		}
		var raw any
		if err := jwk.Export(k, &raw); err != nil {
			logger.Warn("jwks: key skipped", "kid", kid, "error", err.Error())
			skipped = append(skipped, fmt.Sprintf("%s: %v", label, err))
			continue
		}
		var algs []jwa.SignatureAlgorithm
		why := fmt.Sprintf("kty %s is not a public signature key (a symmetric key is never taken from a key set)", k.KeyType())
		switch pk := raw.(type) {
		case *rsa.PrivateKey:
			raw = &pk.PublicKey
			algs, why = rsaAlgs(&pk.PublicKey), fmt.Sprintf("an RSA key of %d bits, under %d", pk.N.BitLen(), minRSABits)
		case *rsa.PublicKey:
			algs, why = rsaAlgs(pk), fmt.Sprintf("an RSA key of %d bits, under %d", pk.N.BitLen(), minRSABits)
		case *ecdsa.PrivateKey:
			raw = &pk.PublicKey
			algs, why = ecAlgs(&pk.PublicKey), "an EC curve other than P-256, P-384 or P-521"
		case *ecdsa.PublicKey:
			algs, why = ecAlgs(pk), "an EC curve other than P-256, P-384 or P-521"
		case ed25519.PrivateKey:
			raw = pk.Public()
			algs = []jwa.SignatureAlgorithm{jwa.EdDSA()}
		case ed25519.PublicKey:
			algs = []jwa.SignatureAlgorithm{jwa.EdDSA()}
		}
		if own, ok := k.Algorithm(); ok && len(algs) > 0 {
			verifies := algNames(algs)
			algs = slices.DeleteFunc(algs, func(a jwa.SignatureAlgorithm) bool { return a.String() != own.String() })
			why = fmt.Sprintf("alg %s, which its kty %s cannot verify (it verifies %s)", own, k.KeyType(), verifies)
		}
		if len(algs) == 0 {
			logger.Warn("jwks: key skipped: not a usable signature key", "kid", kid, "kty", k.KeyType().String())
			skipped = append(skipped, label+": "+why)
			continue
		}
		e := &keyEntry{kid: kid, label: label, opts: make(map[string]jwt.ParseOption, len(algs))}
		for _, alg := range algs {
			e.opts[alg.String()] = jwt.WithKey(alg, raw)
		}
		ks.all = append(ks.all, e)
		if kid != "" {
			ks.byKID[kid] = append(ks.byKID[kid], e)
		}
	}
	if len(ks.all) == 0 {
		return nil, &noUsableKeyError{skipped: skipped}
	}
	return ks, nil
}

// keyLabel names the i-th key of a set in messages: its kid, quoted, else
// its index.
func keyLabel(i int, kid string) string {
	if kid != "" {
		return fmt.Sprintf("%.64q", kid)
	}
	return fmt.Sprintf("keys[%d]", i)
}

func algNames(algs []jwa.SignatureAlgorithm) string {
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = a.String()
	}
	return strings.Join(names, ", ")
}

func rsaAlgs(k *rsa.PublicKey) []jwa.SignatureAlgorithm {
	if k.N.BitLen() < minRSABits {
		return nil
	}
	return []jwa.SignatureAlgorithm{jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512()}
}

func ecAlgs(k *ecdsa.PublicKey) []jwa.SignatureAlgorithm {
	switch k.Curve {
	case elliptic.P256():
		return []jwa.SignatureAlgorithm{jwa.ES256()}
	case elliptic.P384():
		return []jwa.SignatureAlgorithm{jwa.ES384()}
	case elliptic.P521():
		return []jwa.SignatureAlgorithm{jwa.ES512()}
	}
	return nil
}

// keyStore holds the current key set: a fixed one (secret, jwks_file), or
// one fetched from jwks_url by the store's goroutine, which:
//
//   - fetches at once on start, then every refresh (auth.jwt.refresh);
//   - after a failed fetch keeps the keys it has (if any), logs at warn and
//     retries after retryMin, doubling up to retryMax;
//   - fetches early when a request meets an unknown kid (or finds no keys),
//     but at most once per cooldown: a flood of made-up kids makes at most
//     one fetch per cooldown;
//   - bounds every fetch by jwksTiming.fetch and 1 MiB.
//
// A request whose kid is unknown waits for the fetch in progress (or the
// one it asked for) at most jwksTiming.wait, then is refused: 401 if keys
// are loaded but none has its kid, 503 if no key set has arrived yet. While
// the identity provider is down at start, the gateway starts and serves
// every other endpoint; tokens get 503 until the first set arrives.
type keyStore struct {
	url     string
	refresh time.Duration
	timing  jwksTiming
	client  *http.Client
	logger  *slog.Logger
	// userAgent is fetch.UserAgent when the store started.
	userAgent []string
	set       atomic.Pointer[keySet]

	mu        sync.Mutex
	round     chan struct{} // closed when the fetch in progress (or asked for) ends
	lastStart time.Time
	closed    bool
	kick      chan struct{}
	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

func staticKeys(set *keySet) *keyStore {
	s := &keyStore{}
	s.set.Store(set)
	return s
}

// startKeyStore starts the goroutine that fetches url; close stops it.
func startKeyStore(url string, refresh time.Duration, timing jwksTiming, logger *slog.Logger) *keyStore {
	ctx, cancel := context.WithCancel(context.Background())
	s := &keyStore{
		url:     url,
		refresh: refresh,
		timing:  timing,
		// No keep-alive: fetches are minutes apart, and a closed store
		// leaves no idle connection behind.
		client: &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DisableKeepAlives:   true,
			TLSHandshakeTimeout: timing.fetch,
		}},
		logger:    logger,
		userAgent: []string{fetch.UserAgent},
		kick:      make(chan struct{}, 1),
		stop:      cancel,
		done:      make(chan struct{}),
	}
	go s.run(ctx)
	return s
}

// close stops the fetching goroutine and waits for it; requests in flight
// keep the keys already loaded. Safe to call more than once, and on a
// fixed store.
func (s *keyStore) close() {
	if s.stop == nil {
		return
	}
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.stop()
		<-s.done
	})
}

func (s *keyStore) run(ctx context.Context) {
	defer func() {
		s.mu.Lock()
		if s.round != nil {
			close(s.round)
			s.round = nil
		}
		s.mu.Unlock()
		close(s.done)
	}()
	var retry time.Duration
	for {
		err := s.fetchRound(ctx)
		if ctx.Err() != nil {
			return
		}
		next := s.refresh
		if err != nil {
			retry = min(max(2*retry, s.timing.retryMin), s.timing.retryMax, s.refresh)
			next = retry
			args := []any{"url", s.url, "error", err.Error(), "retry_in", next.String()}
			if s.set.Load() == nil {
				args = append(args, "effect", "tokens answered 503 until a key set arrives")
			} else {
				args = append(args, "effect", "the keys fetched before stay in use")
			}
			s.logger.Warn("jwks fetch failed", args...)
		} else {
			retry = 0
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-s.kick:
			t.Stop()
		}
	}
}

// fetchRound fetches the key set once, and wakes the requests waiting for
// it when done.
func (s *keyStore) fetchRound(ctx context.Context) error {
	s.mu.Lock()
	if s.round == nil {
		s.round = make(chan struct{})
	}
	s.lastStart = time.Now()
	select {
	case <-s.kick: // this fetch serves it: no second one right after
	default:
	}
	s.mu.Unlock()

	set, err := s.fetch(ctx)
	if err == nil {
		first := s.set.Load() == nil
		s.set.Store(set)
		if first {
			s.logger.Info("jwks loaded", "url", s.url, "keys", len(set.all))
		}
	}

	s.mu.Lock()
	close(s.round)
	s.round = nil
	s.mu.Unlock()
	return err
}

func (s *keyStore) fetch(ctx context.Context) (*keySet, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timing.fetch)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header["Accept"] = []string{"application/jwk-set+json, application/json"}
	req.Header["User-Agent"] = s.userAgent
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJWKSBytes {
		return nil, fmt.Errorf("key set over %d bytes", maxJWKSBytes)
	}
	return parseKeySet(b, s.logger)
}

// refetch asks for an early fetch and returns a channel closed when it
// ends: the fetch in progress if there is one, else a new one unless the
// last began less than cooldown ago (then nil: no fetch to wait for).
func (s *keyStore) refetch() <-chan struct{} {
	if s.stop == nil {
		return nil // a fixed set
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	if s.round != nil {
		return s.round
	}
	if time.Since(s.lastStart) < s.timing.cooldown {
		return nil
	}
	s.round = make(chan struct{})
	s.lastStart = time.Now()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return s.round
}

// find returns the key for kid and alg, waiting (bounded) for a fetch
// when the kid is unknown or no set has arrived yet.
func (s *keyStore) find(ctx context.Context, kid, alg string) (*keyEntry, error) {
	set := s.set.Load()
	if set != nil {
		k, err := set.find(kid, alg)
		if !errors.Is(err, errUnknownKey) || kid == "" {
			return k, err
		}
	}
	if ch := s.refetch(); ch != nil {
		t := time.NewTimer(s.timing.wait)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		set = s.set.Load()
	}
	if set == nil {
		return nil, errNoKeys
	}
	return set.find(kid, alg)
}
