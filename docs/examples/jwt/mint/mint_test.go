package main

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// The demo's tokens verify against the demo's public key set, which holds
// no private part.
func TestMintVerifiesWithDemoKeySet(t *testing.T) {
	raw, err := os.ReadFile("../demo-jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(`"d"`)) {
		t.Fatal("demo-jwks.json holds a private key part")
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, alg := range []string{"RS256", "ES256"} {
		var out bytes.Buffer
		if err := run(&out, "../demo-private-jwks.json", alg, "42", "profile:read", "manifold-demo", "manifold-demo", time.Hour, claims{"tenant": "acme"}); err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Parse(bytes.TrimSpace(out.Bytes()), jwt.WithKeySet(set), jwt.WithIssuer("manifold-demo"), jwt.WithAudience("manifold-demo"))
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		var tenant, scope string
		sub, _ := tok.Subject()
		if tok.Get("tenant", &tenant) != nil || tok.Get("scope", &scope) != nil || sub != "42" || tenant != "acme" || scope != "profile:read" {
			t.Errorf("%s: sub %q tenant %q scope %q", alg, sub, tenant, scope)
		}
	}
	if err := run(&bytes.Buffer{}, "../demo-private-jwks.json", "HS256", "42", "", "i", "a", time.Hour, claims{}); err == nil {
		t.Error("-alg HS256 minted a token")
	}
}
