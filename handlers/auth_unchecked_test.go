package handlers_test

import (
	"testing"

	"github.com/manifold-gw/manifold/handlers"
)

// On an endpoint where the token is optional, a credential the gateway did
// not validate never reaches the upstream, even with Authorization in
// forward_headers: the upstream would take it as checked. A bearer token
// after a tab is still a bearer token, and is validated like any other.
func TestAuthUncheckedCredentialsStayHere(t *testing.T) {
	t.Parallel()
	keys(t)
	jwks := newJWKSServer(t, jwkSet(rsaKey.jwk(true)))
	up := newAuthUpstream(t)
	base, _ := authGateway(t, "jwks_url: "+jwks.url, up, handlers.Options{})

	for _, cred := range []string{"Basic dXNlcjpwYXNz", "Token abc", "Negotiate xyz"} {
		a := do(t, "GET", base+"/optional-fwd", nil, map[string]string{"Authorization": cred})
		if a.status != 200 {
			t.Fatalf("%q: %d %s", cred, a.status, a.body)
		}
		if v, ok := up.header()["Authorization"]; ok {
			t.Errorf("%q: an unchecked credential reached the upstream as %q", cred, v)
		}
	}
	before := up.calls.Load()
	checkRejected(t, do(t, "GET", base+"/optional-fwd", nil, map[string]string{"Authorization": "Bearer\tforged.token.here"}), 401, `Bearer error="invalid_token"`)
	if up.calls.Load() != before {
		t.Error("a forged token after a tab reached the upstream")
	}
	// A validated token is forwarded where forward_headers asks for it.
	tok := rsaKey.sign(t, nil, claims(map[string]any{"sub": "7"}))
	if a := do(t, "GET", base+"/optional-fwd", nil, bearerHdr(tok)); a.status != 200 {
		t.Fatalf("valid token: %d %s", a.status, a.body)
	}
	if got := up.header().Get("Authorization"); got != "Bearer "+tok {
		t.Errorf("Authorization %q, want the validated token forwarded", got)
	}
}
