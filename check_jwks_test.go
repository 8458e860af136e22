package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// testJWK is the JSON of one JWK for pub (a public key, or a raw secret
// for kty oct), with the members of extra added.
func testJWK(t *testing.T, pub any, extra map[string]any) json.RawMessage {
	t.Helper()
	k, err := jwk.Import(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for name, v := range extra {
		m[name] = v
	}
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return b
}

// smallRSA is k's public key as a JWK, by hand: jwx refuses to make one
// under 2048 bits.
func smallRSA(k *rsa.PrivateKey, kid string) json.RawMessage {
	enc := base64.RawURLEncoding.EncodeToString
	b, _ := json.Marshal(map[string]string{"kty": "RSA", "kid": kid, "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes())})
	return b
}

func testJWKSet(t *testing.T, keys ...json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkJWKSConfig is a config whose auth.jwt reads the key set file
// keys.json beside it, accepting algs.
func checkJWKSConfig(algs string) string {
	return `server: {address: "127.0.0.1:0"}
admin: {address: ""}
auth:
  jwt: {jwks_file: keys.json, issuer: https://idp.test/, audience: [api], algorithms: [` + algs + `]}
upstreams:
  users: {url: "http://users.test"}
endpoints:
  - path: /me
    auth: {}
    backends: [{upstream: users, path: /me}]
`
}

// TestCheckRefusesUnusableKeySet: a jwks_file that parses as a JWK set but
// holds no key the gateway can verify a token with (every key symmetric,
// for encryption, too small, or of an alg the key cannot have), or none
// for the configured algorithms, is refused by check exactly as run
// refuses it: one line FILE: auth.jwt.jwks_file: naming the key set file,
// why each key was left out and what to put there, exit 1; and run never
// listens. The real binary runs both.
func TestCheckRefusesUnusableKeySet(t *testing.T) {
	bin := buildBinary(t)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("0123456789abcdef0123456789abcdef")

	for _, tc := range []struct {
		name  string
		algs  string
		keys  []byte
		valid bool
		words []string // besides the file's name and the fix
	}{
		{name: "usable", algs: "RS256", valid: true,
			keys: testJWKSet(t, testJWK(t, &rsa2048.PublicKey, map[string]any{"kid": "a", "use": "sig"}))},
		{name: "every key unusable", algs: "RS256, ES256",
			keys: testJWKSet(t,
				testJWK(t, secret, map[string]any{"kid": "hmac"}),
				testJWK(t, &rsa2048.PublicKey, map[string]any{"kid": "enc", "use": "enc"}),
				smallRSA(rsa1024, "small"),
				testJWK(t, &ec.PublicKey, map[string]any{"kid": "mismatch", "alg": "RS256"})),
			words: []string{`"hmac"`, `"enc"`, `"small"`, `"mismatch"`}},
		{name: "no key for the configured algorithms", algs: "ES256",
			keys:  testJWKSet(t, testJWK(t, &rsa2048.PublicKey, map[string]any{"kid": "rsa", "use": "sig"})),
			words: []string{"ES256", `"rsa"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := writeConfig(t, dir, "gw.yaml", checkJWKSConfig(tc.algs))
			keyFile := filepath.Join(dir, "keys.json")
			if err := os.WriteFile(keyFile, tc.keys, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			runBin := func(cmdName string) (int, string, string) {
				var stdout, stderr bytes.Buffer
				cmd := exec.CommandContext(ctx, bin, cmdName, "-c", file)
				cmd.Env = os.Environ()
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				return exitCode(t, cmd.Run()), stdout.String(), stderr.String()
			}

			code, stdout, stderr := runBin("check")
			if tc.valid {
				if code != 0 || stderr != "" {
					t.Fatalf("check: exit %d, stderr %q; want 0 and nothing", code, stderr)
				}
				return
			}
			if code != 1 || stdout != "" {
				t.Errorf("check: exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			t.Logf("check: %s", stderr)
			prefix := file + ": auth.jwt.jwks_file: "
			if !strings.HasPrefix(stderr, prefix) || strings.Count(stderr, "\n") != 1 {
				t.Fatalf("check: stderr\n%s\nwant one line starting %q", stderr, prefix)
			}
			for _, w := range append([]string{keyFile, "give at least one"}, tc.words...) {
				if !strings.Contains(stderr, w) {
					t.Errorf("check: %q does not say %q", stderr, w)
				}
			}

			// run, before it listens: the same line, the same exit code.
			runCode, runOut, runErr := runBin("run")
			if ctx.Err() != nil {
				t.Fatalf("run served the key set instead of refusing it; its log:\n%s", runErr)
			}
			if runCode != 1 || runOut != "" || runErr != stderr {
				t.Errorf("run: exit %d, stdout %q, stderr\n%s\nwant 1, nothing and check's\n%s", runCode, runOut, runErr, stderr)
			}
		})
	}
}
