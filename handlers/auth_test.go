package handlers_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// The tests sign their tokens and write their key sets by hand, with the
// standard library's crypto, so that what the gateway accepts is checked
// against an independent encoder rather than against jwx itself.

var b64 = base64.RawURLEncoding

// testKey is a signing key with its kid and algorithm.
type testKey struct {
	kid  string
	alg  string
	priv crypto.Signer
}

var (
	keysOnce          sync.Once
	rsaKey, rsaOther  *testKey // same kid, different key: a forged signature
	ecKey, rsaRotated *testKey
	rsaSmall          *testKey // 1024 bits: below the minimum
	rs384SameAsRSAKey *testKey
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		r1, err1 := rsa.GenerateKey(rand.Reader, 2048)
		r2, err2 := rsa.GenerateKey(rand.Reader, 2048)
		r3, err3 := rsa.GenerateKey(rand.Reader, 2048)
		r4, err4 := rsa.GenerateKey(rand.Reader, 1024)
		e1, err5 := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		for _, err := range []error{err1, err2, err3, err4, err5} {
			if err != nil {
				panic(err)
			}
		}
		rsaKey = &testKey{"rsa-1", "RS256", r1}
		rsaOther = &testKey{"rsa-1", "RS256", r2}
		rsaRotated = &testKey{"rsa-2", "RS256", r3}
		rsaSmall = &testKey{"rsa-small", "RS256", r4}
		ecKey = &testKey{"ec-1", "ES256", e1}
		rs384SameAsRSAKey = &testKey{"rsa-1", "RS384", r1}
	})
}

// jwk is the public JWK of k, with its alg when withAlg.
func (k *testKey) jwk(withAlg bool) map[string]any {
	m := map[string]any{"kid": k.kid, "use": "sig"}
	switch p := k.priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64.EncodeToString(p.N.Bytes())
		m["e"] = b64.EncodeToString(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		m["kty"] = "EC"
		m["crv"] = "P-256"
		m["x"] = b64.EncodeToString(p.X.FillBytes(make([]byte, 32)))
		m["y"] = b64.EncodeToString(p.Y.FillBytes(make([]byte, 32)))
	}
	if withAlg {
		m["alg"] = k.alg
	}
	return m
}

func jwkSet(keys ...map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// sign makes a compact JWS of header and claims with k (header alg and
// kid from k unless header sets them).
func (k *testKey) sign(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	h := map[string]any{"alg": k.alg, "kid": k.kid, "typ": "JWT"}
	for name, v := range header {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	input := encodeSegment(t, h) + "." + encodeSegment(t, claims)
	var hash crypto.Hash
	switch k.alg {
	case "RS256", "ES256":
		hash = crypto.SHA256
	case "RS384":
		hash = crypto.SHA384
	}
	hh := hash.New()
	hh.Write([]byte(input))
	digest := hh.Sum(nil)
	var sig []byte
	switch p := k.priv.(type) {
	case *rsa.PrivateKey:
		s, err := rsa.SignPKCS1v15(rand.Reader, p, hash, digest)
		if err != nil {
			t.Fatal(err)
		}
		sig = s
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, p, digest)
		if err != nil {
			t.Fatal(err)
		}
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	}
	return input + "." + b64.EncodeToString(sig)
}

func encodeSegment(t testing.TB, v any) string {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

const (
	testIssuer = "https://idp.test/"
	testAud    = "api"
)

// claims are a valid token's claims, with overrides (nil deletes).
func claims(over map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": testIssuer, "aud": []string{"other", testAud}, "sub": "42",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// jwksServer serves a key set and counts the fetches; fail makes it answer
// 503, hang makes it hold every request until the client leaves.
type jwksServer struct {
	url  string
	hits atomic.Int64
	mu   sync.Mutex
	body []byte
	fail bool
	hang bool
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	s.url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, fail, hang := s.body, s.fail, s.hang
		s.mu.Unlock()
		switch {
		case hang:
			<-r.Context().Done()
		case fail:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	})
	return s
}

func (s *jwksServer) set(body []byte, fail, hang bool) {
	s.mu.Lock()
	s.body, s.fail, s.hang = body, fail, hang
	s.mu.Unlock()
}

// authUpstream is an upstream that counts its calls and keeps the headers of
// the last one.
type authUpstream struct {
	url   string
	calls atomic.Int64
	mu    sync.Mutex
	last  http.Header
}

func newAuthUpstream(t *testing.T) *authUpstream {
	rec := &authUpstream{}
	rec.url = upstream(t, func(w http.ResponseWriter, r *http.Request) {
		rec.calls.Add(1)
		rec.mu.Lock()
		rec.last = r.Header.Clone()
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	return rec
}

func (rec *authUpstream) header() http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.last
}

const authYAML = `
auth:
  jwt:
    {{source}}
    issuer: https://idp.test/
    audience: [api, mobile]
    algorithms: [RS256, ES256]
    leeway: 30s
upstreams:
  up: {url: "{{up}}"}
endpoints:
  - path: /me
    forward_headers: [X-User-ID, X-Other]
    auth:
      claims_to_headers: {sub: X-User-ID, tenant: X-Tenant, n: X-Num, admin: X-Admin, obj: X-Obj, bad: X-Bad}
    backends: [{upstream: up, path: /me}]
  - path: /fwd
    forward_headers: [Authorization]
    auth: {claims_to_headers: {sub: X-User-ID}}
    backends: [{upstream: up, path: /fwd}]
  - path: /scoped
    auth: {scopes: ["profile:read", "orders:read"]}
    backends: [{upstream: up, path: /scoped}]
  - path: /optional
    forward_headers: [X-User-ID]
    auth: {required: false, claims_to_headers: {sub: X-User-ID}}
    backends: [{upstream: up, path: /optional}]
  - path: /optional-fwd
    forward_headers: [Authorization]
    auth: {required: false}
    backends: [{upstream: up, path: /optional-fwd}]
  - path: /open
    backends: [{upstream: up, path: /open}]
  - path: /limited
    auth: {required: false}
    rate_limit: {rps: 0.001, burst: 1, per: client, client_key: "claim:sub"}
    backends: [{upstream: up, path: /limited}]
`

// authGateway serves authYAML with the key source line source (jwks_url:
// or jwks_file:).
func authGateway(t *testing.T, source string, up *authUpstream, opts handlers.Options) (string, *handlers.Gateway) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	y := strings.Replace(authYAML, "{{source}}", source, 1)
	return gatewayWith(t, y, map[string]string{"up": up.url}, opts)
}

func bearerHdr(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// checkRejected checks a refusal: status, WWW-Authenticate, the JSON error.
func checkRejected(t *testing.T, a answer, status int, challenge string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, a.body)
	}
	a.errorOf(t)
	if got := a.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, challenge) || (challenge == "" && got != "") {
		t.Errorf("WWW-Authenticate %q, want %q...", got, challenge)
	}
}

func TestAuthValidTokensReachUpstreamWithClaims(t *testing.T) {
	t.Parallel()
	keys(t)
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true), ecKey.jwk(false)))
	up := newAuthUpstream(t)
	base, _ := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{})

	extra := map[string]any{"tenant": "acme", "n": json.Number("9007199254740993"), "admin": true, "obj": map[string]any{"a": 1}, "bad": "a\x01b"}
	for _, k := range []*testKey{rsaKey, ecKey} {
		t.Run(k.alg, func(t *testing.T) {
			tok := k.sign(t, nil, claims(extra))
			hdr := bearerHdr(tok)
			hdr["X-User-ID"] = "evil" // forward_headers lists it; the claim wins, always
			hdr["X-Other"] = "kept"
			a := do(t, "GET", base+"/me", nil, hdr)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.body)
			}
			h := up.header()
			for name, want := range map[string]string{"X-User-Id": "42", "X-Tenant": "acme", "X-Num": "9007199254740993", "X-Admin": "true", "X-Other": "kept"} {
				if got := h.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("upstream %s = %q, want [%q]", name, got, want)
				}
			}
			for _, name := range []string{"X-Obj", "X-Bad", "Authorization"} {
				if v, ok := h[name]; ok {
					t.Errorf("upstream got %s %q; want none", name, v)
				}
			}
		})
	}
	// forward_headers: [Authorization] forwards the token as it came.
	tok := rsaKey.sign(t, nil, claims(nil))
	if a := do(t, "GET", base+"/fwd", nil, bearerHdr(tok)); a.status != 200 {
		t.Fatalf("/fwd: %d %s", a.status, a.body)
	}
	if got := up.header().Get("Authorization"); got != "Bearer "+tok {
		t.Errorf("/fwd upstream Authorization %q", got)
	}
	// The scheme is case-insensitive.
	if a := do(t, "GET", base+"/me", nil, map[string]string{"Authorization": "bEaReR " + tok}); a.status != 200 {
		t.Errorf("lower-case scheme: %d %s", a.status, a.body)
	}
}

func TestAuthRejectsBadTokensBeforeAnyUpstream(t *testing.T) {
	t.Parallel()
	keys(t)
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true), ecKey.jwk(true), rsaSmall.jwk(true)))
	up := newAuthUpstream(t)
	m := handlers.NewMetrics()
	base, _ := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{Metrics: m})

	now := time.Now()
	valid := rsaKey.sign(t, nil, claims(nil))
	parts := strings.Split(valid, ".")
	der := x509.MarshalPKCS1PublicKey(rsaKey.priv.Public().(*rsa.PublicKey))
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: der})
	hs256 := func(secret []byte) string {
		input := encodeSegment(t, map[string]any{"alg": "HS256", "kid": rsaKey.kid, "typ": "JWT"}) + "." + parts[1]
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		return input + "." + b64.EncodeToString(mac.Sum(nil))
	}
	tampered := parts[0] + "." + encodeSegment(t, claims(map[string]any{"sub": "1"})) + "." + parts[2]
	big := strings.Repeat("a", 100<<10)

	cases := []struct {
		name, auth, reason, challenge string
		status                        int
	}{
		{"no header", "", "missing", "Bearer", 401},
		{"basic scheme", "Basic dXNlcjpwYXNz", "missing", "Bearer", 401},
		{"empty bearer", "Bearer ", "malformed", `Bearer error="invalid_token"`, 401},
		{"bad base64", "Bearer " + parts[0] + ".*notbase64*." + parts[2], "malformed", `Bearer error="invalid_token"`, 401},
		{"padding", "Bearer " + parts[0] + "=." + parts[1] + "." + parts[2], "malformed", `Bearer error="invalid_token"`, 401},
		{"two segments", "Bearer " + parts[0] + "." + parts[1], "malformed", `Bearer error="invalid_token"`, 401},
		{"four segments", "Bearer " + valid + ".x", "malformed", `Bearer error="invalid_token"`, 401},
		{"100 KB", "Bearer " + big + "." + big + "." + big, "malformed", `Bearer error="invalid_token"`, 401},
		{"header not JSON", "Bearer " + b64.EncodeToString([]byte("{nope")) + "." + parts[1] + "." + parts[2], "malformed", `Bearer error="invalid_token"`, 401},
		{"payload not JSON", "Bearer " + rsaKey.signRaw(t, []byte("[1,2")), "malformed", `Bearer error="invalid_token"`, 401},
		{"no exp", "Bearer " + rsaKey.sign(t, nil, claims(map[string]any{"exp": nil})), "malformed", `Bearer error="invalid_token"`, 401},
		{"expired beyond leeway", "Bearer " + rsaKey.sign(t, nil, claims(map[string]any{"exp": now.Add(-time.Minute).Unix()})), "expired", `Bearer error="invalid_token", error_description="token expired"`, 401},
		{"nbf beyond leeway", "Bearer " + rsaKey.sign(t, nil, claims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), "not_yet_valid", `Bearer error="invalid_token"`, 401},
		{"iat beyond leeway", "Bearer " + rsaKey.sign(t, nil, claims(map[string]any{"iat": now.Add(time.Minute).Unix()})), "not_yet_valid", `Bearer error="invalid_token"`, 401},
		{"wrong iss", "Bearer " + rsaKey.sign(t, nil, claims(map[string]any{"iss": "https://evil.test/"})), "issuer", `Bearer error="invalid_token"`, 401},
		{"wrong aud", "Bearer " + rsaKey.sign(t, nil, claims(map[string]any{"aud": "web"})), "audience", `Bearer error="invalid_token"`, 401},
		{"no aud", "Bearer " + rsaKey.sign(t, nil, claims(map[string]any{"aud": nil})), "audience", `Bearer error="invalid_token"`, 401},
		{"alg none", "Bearer " + encodeSegment(t, map[string]any{"alg": "none"}) + "." + parts[1] + ".", "algorithm", `Bearer error="invalid_token"`, 401},
		{"alg None", "Bearer " + encodeSegment(t, map[string]any{"alg": "None", "kid": "rsa-1"}) + "." + parts[1] + "." + parts[2], "algorithm", `Bearer error="invalid_token"`, 401},
		{"HS256 with the RSA key's DER", "Bearer " + hs256(der), "algorithm", `Bearer error="invalid_token"`, 401},
		{"HS256 with the RSA key's PEM", "Bearer " + hs256(pemBytes), "algorithm", `Bearer error="invalid_token"`, 401},
		{"RS384, not allowed", "Bearer " + rs384SameAsRSAKey.sign(t, nil, claims(nil)), "algorithm", `Bearer error="invalid_token"`, 401},
		{"ES256 naming the RSA key", "Bearer " + ecKey.sign(t, map[string]any{"kid": rsaKey.kid}, claims(nil)), "algorithm", `Bearer error="invalid_token"`, 401},
		{"forged signature", "Bearer " + rsaOther.sign(t, nil, claims(nil)), "signature", `Bearer error="invalid_token"`, 401},
		{"tampered payload", "Bearer " + tampered, "signature", `Bearer error="invalid_token"`, 401},
		{"no signature", "Bearer " + parts[0] + "." + parts[1] + ".", "signature", `Bearer error="invalid_token"`, 401},
		{"crit header", "Bearer " + rsaKey.sign(t, map[string]any{"crit": []string{"foo"}, "foo": 1}, claims(nil)), "malformed", `Bearer error="invalid_token"`, 401},
		{"b64 header", "Bearer " + rsaKey.sign(t, map[string]any{"b64": false}, claims(nil)), "malformed", `Bearer error="invalid_token"`, 401},
		{"1024-bit key", "Bearer " + rsaSmall.sign(t, nil, claims(nil)), "unknown_key", `Bearer error="invalid_token"`, 401},
		{"unknown kid", "Bearer " + rsaKey.sign(t, map[string]any{"kid": "nope"}, claims(nil)), "unknown_key", `Bearer error="invalid_token"`, 401},
	}
	want := map[string]int{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := up.calls.Load()
			hdr := map[string]string{}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			a := do(t, "GET", base+"/me", nil, hdr)
			checkRejected(t, a, tc.status, tc.challenge)
			if n := up.calls.Load() - before; n != 0 {
				t.Errorf("%d upstream calls for a refused request", n)
			}
		})
		want[tc.reason]++
	}
	// Two headers are ambiguous: refused, whichever is valid.
	req, _ := http.NewRequest("GET", base+"/me", nil)
	req.Header.Add("Authorization", "Bearer "+valid)
	req.Header.Add("Authorization", "Bearer "+valid)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("two Authorization headers: %d", resp.StatusCode)
	}
	want["malformed"]++

	// Within leeway (30s) is valid: exp 10s ago, nbf and iat 10s ahead.
	for name, over := range map[string]map[string]any{
		"exp":     {"exp": now.Add(-10 * time.Second).Unix()},
		"nbf/iat": {"nbf": now.Add(10 * time.Second).Unix(), "iat": now.Add(10 * time.Second).Unix()},
	} {
		if a := do(t, "GET", base+"/me", nil, bearerHdr(rsaKey.sign(t, nil, claims(over)))); a.status != 200 {
			t.Errorf("%s within leeway: %d %s", name, a.status, a.body)
		}
	}
	if a := do(t, "GET", base+"/me", nil, bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"aud": "mobile"})))); a.status != 200 {
		t.Errorf("aud as a string naming an accepted audience: %d %s", a.status, a.body)
	}

	lines := scrape(t, m, "manifold_auth_rejected_total")
	for reason, n := range want {
		line := fmt.Sprintf(`manifold_auth_rejected_total{endpoint="/me",reason="%s"} %d`, reason, n)
		if !hasLine(lines, line) {
			t.Errorf("no %s in\n%s", line, strings.Join(lines, "\n"))
		}
	}
	if len(lines) != len(want) {
		t.Errorf("%d series, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
}

// signRaw signs payload bytes as they are.
func (k *testKey) signRaw(t testing.TB, payload []byte) string {
	t.Helper()
	input := encodeSegment(t, map[string]any{"alg": k.alg, "kid": k.kid}) + "." + b64.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.priv.(*rsa.PrivateKey), crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

func TestAuthScopes(t *testing.T) {
	t.Parallel()
	keys(t)
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
	up := newAuthUpstream(t)
	base, _ := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{})

	for _, tc := range []struct {
		name   string
		claims map[string]any
		status int
	}{
		{"scope string", map[string]any{"scope": "openid orders:read profile:read"}, 200},
		{"scp array", map[string]any{"scp": []string{"profile:read", "orders:read"}}, 200},
		{"scp string", map[string]any{"scp": "orders:read profile:read"}, 200},
		{"one missing", map[string]any{"scope": "profile:read"}, 403},
		{"none", nil, 403},
		{"not a prefix match", map[string]any{"scope": "profile:read:x orders:read"}, 403},
		{"scp array of non-strings", map[string]any{"scp": []any{1, true}}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := up.calls.Load()
			a := do(t, "GET", base+"/scoped", nil, bearerHdr(rsaKey.sign(t, nil, claims(tc.claims))))
			if tc.status == 200 {
				if a.status != 200 {
					t.Fatalf("status %d: %s", a.status, a.body)
				}
				return
			}
			checkRejected(t, a, 403, `Bearer error="insufficient_scope", scope="profile:read orders:read"`)
			if up.calls.Load() != before {
				t.Error("a 403 called the upstream")
			}
		})
	}
}

func TestAuthOptional(t *testing.T) {
	t.Parallel()
	keys(t)
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
	up := newAuthUpstream(t)
	base, _ := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{})

	// No token: served, without claims, and the client's copy of a claim
	// header is dropped even though forward_headers lists it.
	a := do(t, "GET", base+"/optional", nil, map[string]string{"X-User-ID": "evil"})
	if a.status != 200 {
		t.Fatalf("no token: %d %s", a.status, a.body)
	}
	if v, ok := up.header()["X-User-Id"]; ok {
		t.Errorf("client's X-User-ID reached the upstream: %q", v)
	}
	// A token, even where none is needed, must be valid.
	before := up.calls.Load()
	checkRejected(t, do(t, "GET", base+"/optional", nil, bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})))), 401, `Bearer error="invalid_token"`)
	checkRejected(t, do(t, "GET", base+"/optional", nil, map[string]string{"Authorization": "Bearer x.y"}), 401, `Bearer error="invalid_token"`)
	if up.calls.Load() != before {
		t.Error("a refused request called the upstream")
	}
	// A valid one sets the claims.
	if a := do(t, "GET", base+"/optional", nil, bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"sub": "7"})))); a.status != 200 {
		t.Fatalf("valid token: %d %s", a.status, a.body)
	}
	if got := up.header().Get("X-User-ID"); got != "7" {
		t.Errorf("X-User-ID %q, want 7", got)
	}
	// A token whose claim is absent: the header is absent, the client's
	// copy dropped all the same.
	a = do(t, "GET", base+"/optional", nil, map[string]string{"Authorization": "Bearer " + rsaKey.sign(t, nil, claims(map[string]any{"sub": nil})), "X-User-ID": "evil"})
	if a.status != 200 {
		t.Fatalf("token without sub: %d %s", a.status, a.body)
	}
	if v, ok := up.header()["X-User-Id"]; ok {
		t.Errorf("X-User-ID %q without a sub claim", v)
	}
}

func TestAuthRateLimitByClaim(t *testing.T) {
	t.Parallel()
	keys(t)
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
	up := newAuthUpstream(t)
	base, _ := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{})

	alice := bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"sub": "alice"})))
	bob := bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"sub": "bob"})))
	// A token whose sub looks like an IP cannot take that IP's bucket.
	ipLike := bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"sub": "127.0.0.1"})))
	steps := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"alice", alice, 200},
		{"alice again", alice, 429},
		{"bob", bob, 200},
		{"sub 127.0.0.1", ipLike, 200},
		{"no token: by IP", nil, 200},
		{"no token again", nil, 429},
		{"bad token: 401, not 429", map[string]string{"Authorization": "Bearer a.b.c"}, 401},
	}
	for _, s := range steps {
		if a := do(t, "GET", base+"/limited", nil, s.hdr); a.status != s.want {
			t.Errorf("%s: %d, want %d: %s", s.name, a.status, s.want, a.body)
		}
	}
}

// TestAuthUnknownKidFlood sends a flood of made-up kids: the key set is
// fetched again at most once per cooldown whatever their number; a real new
// key (rotation) is found by such a fetch, long before refresh (10m).
func TestAuthUnknownKidFlood(t *testing.T) {
	keys(t)
	const cooldown = 25 * time.Millisecond
	defer handlers.SetJWKSTiming(5*time.Second, time.Second, cooldown, 50*time.Millisecond)()
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
	up := newAuthUpstream(t)
	base, _ := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{})
	if a := do(t, "GET", base+"/me", nil, bearerHdr(rsaKey.sign(t, nil, claims(nil)))); a.status != 200 {
		t.Fatalf("valid token: %d %s", a.status, a.body)
	}

	const workers, each = 8, 40
	var toks [workers][each]string
	for w := range workers {
		for i := range each {
			toks[w][i] = rsaKey.sign(t, map[string]any{"kid": fmt.Sprintf("made-up-%d-%d", w, i)}, claims(nil))
		}
	}
	start := time.Now()
	hits0 := jwks.hits.Load()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for _, tok := range toks[w] {
				req, _ := http.NewRequest("GET", base+"/me", nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 401 {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	fetches := jwks.hits.Load() - hits0
	if n := bad.Load(); n != 0 {
		t.Errorf("%d of %d made-up kids were not answered 401", n, workers*each)
	}
	// Each fetch starts at least cooldown after the one before.
	if limit := int64(elapsed/cooldown) + 1; fetches > limit {
		t.Errorf("%d key set fetches in %v for %d unknown kids; at most %d allowed by a %v cooldown", fetches, elapsed, workers*each, limit, cooldown)
	}
	t.Logf("%d unknown kids in %v made %d fetches", workers*each, elapsed, fetches)
	if up.calls.Load() != 1 {
		t.Errorf("%d upstream calls, want 1 (the valid token's)", up.calls.Load())
	}

	// Rotation: the identity provider publishes a new key and signs with it.
	jwks.set(jwkSet(rsaKey.jwk(true), rsaRotated.jwk(true)), false, false)
	tok := rsaRotated.sign(t, nil, claims(nil))
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := do(t, "GET", base+"/me", nil, bearerHdr(tok))
		if a.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a token of the rotated key still %d after 10s: %s", a.status, a.body)
		}
		time.Sleep(cooldown / 4) // the next request may fetch once the cooldown has passed
	}
}

// TestAuthJWKSDownAtStart: the gateway starts while the key set cannot be
// fetched, serves its other endpoints, answers tokens 503 (quickly, and
// calling no upstream), logs at warn, and takes tokens as soon as a fetch
// succeeds.
func TestAuthJWKSDownAtStart(t *testing.T) {
	keys(t)
	defer handlers.SetJWKSTiming(5*time.Second, 500*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond)()
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
	jwks.set(nil, true, false)
	up := newAuthUpstream(t)
	logs := &logBuffer{}
	m := handlers.NewMetrics()
	base, _ := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{Metrics: m, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})

	tok := bearerHdr(rsaKey.sign(t, nil, claims(nil)))
	a := do(t, "GET", base+"/me", nil, tok)
	checkRejected(t, a, 503, "")
	if a.took > 500*time.Millisecond+2*time.Second {
		t.Errorf("503 took %v; a request waits at most 500ms for the key set", a.took)
	}
	if up.calls.Load() != 0 {
		t.Error("a request without keys called the upstream")
	}
	if a := get(t, base+"/open"); a.status != 200 {
		t.Errorf("an endpoint without auth: %d", a.status)
	}
	eventually(t, func() bool { return strings.Contains(logs.String(), "jwks fetch failed") }, "a warn log of the failed fetch")
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the failed fetch is not logged at warn:\n%s", logs)
	}
	if !hasLine(scrape(t, m, "manifold_auth_rejected_total"), `manifold_auth_rejected_total{endpoint="/me",reason="keys_unavailable"} 1`) {
		t.Errorf("no keys_unavailable in %v", scrape(t, m, "manifold_auth_rejected_total"))
	}

	jwks.set(jwkSet(rsaKey.jwk(true)), false, false)
	eventually(t, func() bool { return do(t, "GET", base+"/me", nil, tok).status == 200 }, "a token accepted once the key set is up")
	if !strings.Contains(logs.String(), "jwks loaded") {
		t.Error("no log of the key set's arrival")
	}
}

// TestAuthJWKSSlow: a key set server that never answers holds no request
// longer than the wait bound, and does not hold up Close.
func TestAuthJWKSSlow(t *testing.T) {
	keys(t)
	const wait = 300 * time.Millisecond
	defer handlers.SetJWKSTiming(time.Minute, wait, time.Hour, time.Hour)()
	jwks := newJWKSServer(t, nil)
	jwks.set(nil, false, true)
	up := newAuthUpstream(t)
	base, gw := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{})
	eventually(t, func() bool { return jwks.hits.Load() == 1 }, "the first fetch to be in progress")

	tok := bearerHdr(rsaKey.sign(t, nil, claims(nil)))
	for range 3 {
		a := do(t, "GET", base+"/me", nil, tok)
		checkRejected(t, a, 503, "")
		if a.took < wait || a.took > wait+2*time.Second {
			t.Errorf("answered in %v; want the wait bound %v (plus scheduling)", a.took, wait)
		}
	}
	if jwks.hits.Load() != 1 {
		t.Errorf("%d fetches; the one in progress should have been awaited", jwks.hits.Load())
	}
	start := time.Now()
	gw.Close() // cancels the hung fetch (the cleanup's Close is then a no-op)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close took %v with a fetch in progress", took)
	}
}

func TestAuthReloads(t *testing.T) {
	t.Parallel()
	keys(t)
	up := newAuthUpstream(t)
	parse := func(source string) *config.Config {
		t.Helper()
		y := strings.Replace(strings.Replace(authYAML, "{{source}}", source, 1), "{{up}}", up.url, 1)
		cfg, err := config.Parse("test.yaml", []byte(y), func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	serve := func(gw *handlers.Gateway) string {
		srv := httptest.NewServer(gw)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	rsaTok := bearerHdr(rsaKey.sign(t, nil, claims(nil)))
	ecTok := bearerHdr(ecKey.sign(t, nil, claims(nil)))

	t.Run("jwks_url carried over", func(t *testing.T) {
		jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
		cfg := parse("jwks_url: " + jwks.url)
		a, err := handlers.New(cfg, handlers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if got := do(t, "GET", serve(a)+"/me", nil, rsaTok); got.status != 200 {
			t.Fatalf("%d %s", got.status, got.body)
		}
		hits := jwks.hits.Load()
		b, err := handlers.New(parse("jwks_url: "+jwks.url), handlers.Options{Previous: a})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		a.Retire(b)
		if !handlers.SameKeyStore(a, b) {
			t.Error("an unchanged jwks_url got a new key store")
		}
		if got := do(t, "GET", serve(b)+"/me", nil, rsaTok); got.status != 200 {
			t.Fatalf("after reload: %d %s", got.status, got.body)
		}
		if jwks.hits.Load() != hits {
			t.Errorf("the reload fetched the key set again")
		}
		a.Close() // a retired Gateway closed late must not stop what it handed over
		if !handlers.KeyStoreRunning(b) {
			t.Error("closing the retired Gateway stopped the key store it handed over")
		}
		c, err := handlers.New(parse("jwks_url: "+jwks.url+"?v=2"), handlers.Options{Previous: b})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b.Retire(c)
		if handlers.SameKeyStore(b, c) || handlers.KeyStoreRunning(b) {
			t.Error("a changed jwks_url kept the old key store running")
		}
		if !handlers.KeyStoreRunning(c) {
			t.Error("the new jwks_url's store is not running")
		}
	})

	t.Run("jwks_file read again", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(file, jwkSet(rsaKey.jwk(true)), 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := handlers.New(parse("jwks_file: "+file), handlers.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		baseA := serve(a)
		if got := do(t, "GET", baseA+"/me", nil, rsaTok); got.status != 200 {
			t.Fatalf("%d %s", got.status, got.body)
		}
		if got := do(t, "GET", baseA+"/me", nil, ecTok); got.status != 401 {
			t.Fatalf("a key not in the file: %d", got.status)
		}
		if err := os.WriteFile(file, jwkSet(ecKey.jwk(true)), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := handlers.New(parse("jwks_file: "+file), handlers.Options{Previous: a})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		a.Retire(b)
		baseB := serve(b)
		if got := do(t, "GET", baseB+"/me", nil, ecTok); got.status != 200 {
			t.Errorf("the file's new key: %d %s", got.status, got.body)
		}
		if got := do(t, "GET", baseB+"/me", nil, rsaTok); got.status != 401 {
			t.Errorf("the file's removed key: %d", got.status)
		}
	})

	t.Run("secret", func(t *testing.T) {
		secret := strings.Repeat("k", 32)
		y := strings.Replace(authYAML, "{{source}}", "secret: "+secret, 1)
		y = strings.Replace(y, "algorithms: [RS256, ES256]", "algorithms: [HS256]", 1)
		base := gateway(t, y, map[string]string{"up": up.url})
		input := encodeSegment(t, map[string]any{"alg": "HS256", "typ": "JWT"}) + "." + encodeSegment(t, claims(nil))
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(input))
		if got := do(t, "GET", base+"/me", nil, bearerHdr(input+"."+b64.EncodeToString(mac.Sum(nil)))); got.status != 200 {
			t.Errorf("HS256: %d %s", got.status, got.body)
		}
		if got := do(t, "GET", base+"/me", nil, rsaTok); got.status != 401 {
			t.Errorf("RS256 with a secret: %d", got.status)
		}
	})
}

// eventually polls cond until it holds, for at most 10s.
func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *logBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *logBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// BenchmarkAuth measures an S2-like /agg (three backends over loopback)
// with auth off against the same fan-out behind auth (an RS256, then an
// ES256 token checked on every request, with a scope and a claim header).
// Each iteration sends one request of each kind, alternately, so that both
// see the same load (the machine is shared); it reports their mean
// latencies (off-ns, auth-ns) and auth's as a multiple of off's (x-off).
// ns/op is the pair's.
func BenchmarkAuth(b *testing.B) {
	keys(b)
	bodies := map[string]string{"/a": benchBody("a"), "/b": benchBody("b"), "/c": benchBody("c")}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"application/json"}
		io.WriteString(w, bodies[r.URL.Path])
	}))
	defer up.Close()
	file := filepath.Join(b.TempDir(), "jwks.json")
	if err := os.WriteFile(file, jwkSet(rsaKey.jwk(true), ecKey.jwk(true)), 0o600); err != nil {
		b.Fatal(err)
	}
	yaml := strings.NewReplacer("{{stub}}", up.URL, "{{file}}", file).Replace(`
auth:
  jwt: {jwks_file: "{{file}}", issuer: "https://idp.test/", audience: [api]}
upstreams:
  stub: {url: "{{stub}}", circuit_breaker: {consecutive_failures: 1000}}
endpoints:
  - path: /agg
    backends: [{upstream: stub, path: /a}, {upstream: stub, path: /b}, {upstream: stub, path: /c}]
  - path: /agg-auth
    auth: {scopes: [profile:read], claims_to_headers: {sub: X-User-ID}}
    backends: [{upstream: stub, path: /a}, {upstream: stub, path: /b}, {upstream: stub, path: /c}]
`)
	cfg, err := config.Parse("bench.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	gw, err := handlers.New(cfg, handlers.Options{Metrics: handlers.NewMetrics()})
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close()
	srv := httptest.NewServer(gw)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer hc.CloseIdleConnections()

	call := func(b *testing.B, path, token string) time.Duration {
		start := time.Now()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if token != "" {
			req.Header["Authorization"] = []string{"Bearer " + token}
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Manifold-Completed") == "false" {
			b.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		return time.Since(start)
	}
	c := claims(map[string]any{"scope": "profile:read", "exp": time.Now().Add(24 * time.Hour).Unix()})
	for _, k := range []*testKey{rsaKey, ecKey} {
		token := k.sign(b, nil, c)
		b.Run(k.alg, func(b *testing.B) {
			b.ReportAllocs()
			var off, on atomic.Int64
			var flip atomic.Uint32
			b.RunParallel(func(pb *testing.PB) {
				first := flip.Add(1)%2 == 0 // half the goroutines start with the other kind
				for pb.Next() {
					if first {
						off.Add(int64(call(b, "/agg", "")))
						on.Add(int64(call(b, "/agg-auth", token)))
					} else {
						on.Add(int64(call(b, "/agg-auth", token)))
						off.Add(int64(call(b, "/agg", "")))
					}
				}
			})
			offNs, onNs := float64(off.Load())/float64(b.N), float64(on.Load())/float64(b.N)
			b.ReportMetric(offNs, "off-ns")
			b.ReportMetric(onNs, "auth-ns")
			b.ReportMetric(onNs/offNs, "x-off")
		})
	}
}

// TestAuthWithCache: the token is checked before the cache is looked at,
// and two subjects never share an entry.
func TestAuthWithCache(t *testing.T) {
	t.Parallel()
	keys(t)
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
	up := newAuthUpstream(t)
	base := gateway(t, `
auth:
  jwt: {jwks_url: "{{jwks}}", issuer: "https://idp.test/", audience: [api]}
upstreams:
  up: {url: "{{up}}"}
endpoints:
  - path: /me
    auth: {}
    cache: {ttl: 1h}
    backends: [{upstream: up, path: /me}]
`, map[string]string{"jwks": jwks.url, "up": up.url})

	alice := bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"sub": "alice"})))
	bob := bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"sub": "bob"})))
	for _, s := range []struct {
		name  string
		hdr   map[string]string
		cache string
		calls int64
	}{
		{"alice", alice, "miss", 1},
		{"alice again", alice, "hit", 1},
		{"bob", bob, "miss", 2},
		{"bob again", bob, "hit", 2},
	} {
		a := do(t, "GET", base+"/me", nil, s.hdr)
		if a.status != 200 || a.header.Get("X-Manifold-Cache") != s.cache || up.calls.Load() != s.calls {
			t.Errorf("%s: %d, X-Manifold-Cache %q, %d upstream calls; want 200, %s, %d", s.name, a.status, a.header.Get("X-Manifold-Cache"), up.calls.Load(), s.cache, s.calls)
		}
	}
	expired := bearerHdr(rsaKey.sign(t, nil, claims(map[string]any{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()})))
	checkRejected(t, do(t, "GET", base+"/me", nil, expired), 401, `Bearer error="invalid_token"`)
	checkRejected(t, get(t, base+"/me"), 401, "Bearer")
}

// TestAuthWithCacheNoSubject: tokens without a sub claim, or with an empty
// one, are each their own cache subject (a hash of the token), so that one
// caller's cached answer never reaches another even when nothing in the
// request that reaches the key (no claim header, no forwarded
// Authorization) tells them apart; the same token is still served from the
// cache, and tokens with one sub still share their entry.
func TestAuthWithCacheNoSubject(t *testing.T) {
	t.Parallel()
	keys(t)
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
	var calls atomic.Int64
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		// The answer is the caller's own: here, the call's number.
		n := calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"call":%d}`, n)
	})
	base := gateway(t, `
auth:
  jwt: {jwks_url: "{{jwks}}", issuer: "https://idp.test/", audience: [api]}
upstreams:
  up: {url: "{{up}}"}
endpoints:
  - path: /me
    auth: {}
    cache: {ttl: 1h}
    backends: [{upstream: up, path: /me}]
`, map[string]string{"jwks": jwks.url, "up": up})

	token := func(over map[string]any) map[string]string { return bearerHdr(rsaKey.sign(t, nil, claims(over))) }
	noSubA := token(map[string]any{"sub": nil, "tenant": "a"})
	noSubB := token(map[string]any{"sub": nil, "tenant": "b"})
	emptyA := token(map[string]any{"sub": "", "tenant": "a"})
	emptyB := token(map[string]any{"sub": "", "tenant": "b"})
	alice1 := token(map[string]any{"sub": "alice", "jti": "1"})
	alice2 := token(map[string]any{"sub": "alice", "jti": "2"})
	for _, s := range []struct {
		name  string
		hdr   map[string]string
		cache string
		call  int // the call whose answer it gets
	}{
		{"no sub, A", noSubA, "miss", 1},
		{"no sub, A again", noSubA, "hit", 1},
		{"no sub, B", noSubB, "miss", 2},
		{"no sub, B again", noSubB, "hit", 2},
		{"empty sub, A", emptyA, "miss", 3},
		{"empty sub, B", emptyB, "miss", 4},
		{"empty sub, A again", emptyA, "hit", 3},
		{"no sub, A once more", noSubA, "hit", 1},
		{"alice", alice1, "miss", 5},
		{"alice, another token", alice2, "hit", 5},
	} {
		a := do(t, "GET", base+"/me", nil, s.hdr)
		want := fmt.Sprintf(`{"call":%d}`, s.call)
		if a.status != 200 || a.header.Get("X-Manifold-Cache") != s.cache || string(a.body) != want {
			t.Errorf("%s: %d, X-Manifold-Cache %q, body %s; want 200, %s, %s", s.name, a.status, a.header.Get("X-Manifold-Cache"), a.body, s.cache, want)
		}
	}
	if n := calls.Load(); n != 5 {
		t.Errorf("upstream called %d times, want 5", n)
	}
}

// TestAuthDemoKeySet: the shipped demo key set (docs/examples/jwt) serves
// as a jwks_file, for tokens like the mint program's.
func TestAuthDemoKeySet(t *testing.T) {
	t.Parallel()
	up := newAuthUpstream(t)
	base := gateway(t, `
auth:
  jwt: {jwks_file: ../docs/examples/jwt/demo-jwks.json, issuer: manifold-demo, audience: [manifold-demo]}
upstreams:
  up: {url: "{{up}}"}
endpoints:
  - path: /api/me
    auth: {scopes: ["profile:read"], claims_to_headers: {sub: X-User-ID}}
    backends: [{upstream: up, path: /me}]
`, map[string]string{"up": up.url})
	priv, err := jwk.ReadFile("../docs/examples/jwt/demo-private-jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, kid := range []string{"demo-rs256", "demo-es256"} {
		key, ok := priv.LookupKeyID(kid)
		if !ok {
			t.Fatalf("no %s in the demo's private set", kid)
		}
		alg, _ := key.Algorithm()
		tok, err := jwt.NewBuilder().Issuer("manifold-demo").Audience([]string{"manifold-demo"}).Subject("42").
			Expiration(time.Now().Add(time.Hour)).Claim("scope", "profile:read").Build()
		if err != nil {
			t.Fatal(err)
		}
		signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
		if err != nil {
			t.Fatal(err)
		}
		if a := do(t, "GET", base+"/api/me", nil, bearerHdr(string(signed))); a.status != 200 || up.header().Get("X-User-ID") != "42" {
			t.Errorf("%s: %d %s, X-User-ID %q", kid, a.status, a.body, up.header().Get("X-User-ID"))
		}
	}
}
