package handlers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// A reload keeps an upstream's runtime only when its tls block is the
// same, the files' contents included: a changed server_name or
// insecure_skip_verify, or a CA bundle rewritten in place, builds a new one.
func TestSameUpstreamComparesTLS(t *testing.T) {
	dir := t.TempDir()
	writeCA := func(name string) {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	load := func(tls string) *config.Upstream {
		t.Helper()
		yaml := "upstreams:\n  users: {url: \"https://users.test\", tls: {" + tls + "}}\nendpoints:\n  - path: /e\n    backends: [{upstream: users, path: /}]\n"
		p := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(p, func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Upstreams["users"]
	}
	writeCA("first")
	base := "ca_file: ca.pem, server_name: a.internal"
	a := load(base)
	if !sameUpstream(a, load(base)) {
		t.Error("identical tls blocks compare different")
	}
	if sameUpstream(a, load("ca_file: ca.pem, server_name: b.internal")) {
		t.Error("a changed server_name compares the same")
	}
	if sameUpstream(a, load(base+", insecure_skip_verify: true")) {
		t.Error("insecure_skip_verify compares the same")
	}
	writeCA("second") // same path, new contents
	if sameUpstream(a, load(base)) {
		t.Error("a CA bundle rewritten in place compares the same")
	}
}
