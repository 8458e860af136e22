package config_test

import (
	"bytes"
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

// selfSigned writes a self-signed certificate and its key into dir as
// name.pem and name-key.pem.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, name+".pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = writeFile(t, dir, name+"-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	return certFile, keyFile
}

// An upstream's tls block: every validation rule with its path and message.
func TestUpstreamTLSRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "x.pem", "not a certificate")
	certA, _ := selfSigned(t, dir, "a")
	_, keyB := selfSigned(t, dir, "b")
	missing := filepath.Join(dir, "missing.pem")
	https := func(tls string) string { return withUpstream(`url: "https://users.test", tls: {` + tls + `}`) }
	runProblemCases(t, []problemCase{
		{name: "tls on an http upstream", yaml: withUpstream(`url: "http://users.test", tls: {server_name: users.internal}`),
			path: "upstreams.users.tls", words: []string{"tls applies to https:// upstreams"}},
		{name: "insecure on an http upstream", yaml: withUpstream(`url: "http://users.test", tls: {insecure_skip_verify: true}`),
			path: "upstreams.users.tls", words: []string{"tls applies to https:// upstreams"}},
		{name: "ca_file unreadable", yaml: https("ca_file: " + missing), path: "upstreams.users.tls.ca_file",
			words: []string{"cannot read the CA bundle"}},
		{name: "ca_file without a certificate", yaml: https("ca_file: " + notPEM), path: "upstreams.users.tls.ca_file",
			words: []string{"holds no PEM certificate"}},
		{name: "cert_file without key_file", yaml: https("cert_file: " + certA), path: "upstreams.users.tls",
			words: []string{"give both cert_file and key_file"}},
		{name: "key_file without cert_file", yaml: https("key_file: " + keyB), path: "upstreams.users.tls",
			words: []string{"give both cert_file and key_file"}},
		{name: "cert_file unreadable", yaml: https("cert_file: " + missing + ", key_file: " + keyB), path: "upstreams.users.tls.cert_file",
			words: []string{"cannot read the client certificate"}},
		{name: "key_file unreadable", yaml: https("cert_file: " + certA + ", key_file: " + missing), path: "upstreams.users.tls.key_file",
			words: []string{"cannot read the client key"}},
		{name: "a pair that does not match", yaml: https("cert_file: " + certA + ", key_file: " + keyB), path: "upstreams.users.tls",
			words: []string{"cannot load the client certificate and key"}},
	})
}

// Relative tls paths are read against the config file's directory, and the
// runtime gets the files' contents as validated.
func TestUpstreamTLSRelativePaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sub := filepath.Join(dir, "certs")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := selfSigned(t, sub, "client")
	yaml := withUpstream(`url: "https://users.test", tls: {ca_file: certs/client.pem, cert_file: certs/client.pem, key_file: certs/client-key.pem, server_name: users.internal, insecure_skip_verify: true}`)
	p := writeFile(t, dir, "config.yaml", yaml)
	cfg, err := config.Load(p, envOf(nil)) // the working directory is elsewhere
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Upstreams["users"].TLS
	if got.CAFile != certFile || got.CertFile != certFile || got.KeyFile != keyFile {
		t.Errorf("paths %q %q %q, want %q %q %q", got.CAFile, got.CertFile, got.KeyFile, certFile, certFile, keyFile)
	}
	wantCert, _ := os.ReadFile(certFile)
	wantKey, _ := os.ReadFile(keyFile)
	if !bytes.Equal(got.CAPEM, wantCert) || !bytes.Equal(got.CertPEM, wantCert) || !bytes.Equal(got.KeyPEM, wantKey) {
		t.Error("the files' contents were not kept")
	}
	if got.ServerName != "users.internal" || !got.InsecureSkipVerify {
		t.Errorf("server_name %q, insecure_skip_verify %v", got.ServerName, got.InsecureSkipVerify)
	}
	// No tls block: nothing set.
	plain := mustLoad(t, withUpstream(`url: "https://users.test"`), nil).Upstreams["users"].TLS
	if plain.CAFile != "" || plain.CAPEM != nil || plain.CertPEM != nil || plain.InsecureSkipVerify {
		t.Errorf("default tls = %+v, want zero", plain)
	}
}
