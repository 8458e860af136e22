// Command mint prints a signed DEMO token for Manifold's JWT example.
//
// DEMO ONLY: it signs with docs/examples/jwt/demo-private-jwks.json, a
// private key set that is public in this repository. Anyone can mint tokens
// with it; never configure a gateway that guards anything real with
// demo-jwks.json.
//
//	go run ./docs/examples/jwt/mint -sub 42 -scope profile:read
//	go run ./docs/examples/jwt/mint -alg ES256 -sub 42 -claim tenant=acme
//
// The token goes to stdout, one line, so that
//
//	curl -H "Authorization: Bearer $(go run ./docs/examples/jwt/mint -sub 42)" localhost:8080/api/me
//
// works from the repository's root.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
)

// kids are the demo set's key IDs by algorithm.
var kids = map[string]string{"RS256": "demo-rs256", "ES256": "demo-es256"}

type claims map[string]string

func (c claims) String() string { return fmt.Sprint(map[string]string(c)) }

func (c claims) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	c[name] = value
	return nil
}

func main() {
	extra := claims{}
	keys := flag.String("keys", "docs/examples/jwt/demo-private-jwks.json", "the DEMO private key set")
	alg := flag.String("alg", "RS256", "RS256 or ES256")
	sub := flag.String("sub", "42", "the sub claim")
	scope := flag.String("scope", "", "the scope claim: space-separated scopes, e.g. \"profile:read orders:read\"")
	iss := flag.String("iss", "manifold-demo", "the iss claim (auth.jwt.issuer)")
	aud := flag.String("aud", "manifold-demo", "the aud claim (one of auth.jwt.audience)")
	ttl := flag.Duration("ttl", time.Hour, "lifetime: exp is now + ttl")
	flag.Var(extra, "claim", "an extra string claim name=value (repeatable), e.g. tenant=acme")
	flag.Parse()

	if err := run(os.Stdout, *keys, *alg, *sub, *scope, *iss, *aud, *ttl, extra); err != nil {
		fmt.Fprintln(os.Stderr, "mint:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, keysFile, algName, sub, scope, iss, aud string, ttl time.Duration, extra claims) error {
	kid, ok := kids[algName]
	if !ok {
		return fmt.Errorf("-alg %q: use RS256 or ES256", algName)
	}
	alg, _ := jwa.LookupSignatureAlgorithm(algName)
	set, err := jwk.ReadFile(keysFile)
	if err != nil {
		return fmt.Errorf("%w (run from the repository's root, or give -keys)", err)
	}
	key, ok := set.LookupKeyID(kid)
	if !ok {
		return fmt.Errorf("%s has no key %q", keysFile, kid)
	}
	now := time.Now()
	b := jwt.NewBuilder().Issuer(iss).Audience([]string{aud}).Subject(sub).
		IssuedAt(now).NotBefore(now).Expiration(now.Add(ttl))
	if scope != "" {
		b = b.Claim("scope", scope)
	}
	for name, value := range extra {
		b = b.Claim(name, value)
	}
	tok, err := b.Build()
	if err != nil {
		return err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(alg, key))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(signed))
	return err
}
