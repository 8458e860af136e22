package fetch_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/fetch"
)

// testCA is a private certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "manifold test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.file = ca.write(t, "ca.pem", "CERTIFICATE", der)
	return ca
}

func (ca *testCA) write(t *testing.T, name, kind string, der []byte) string {
	t.Helper()
	p := filepath.Join(ca.dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue signs a leaf certificate for the DNS names and IPs given (a client
// certificate with none); it returns the pair and its files.
func (ca *testCA) issue(t *testing.T, name string, dns []string, ips []net.IP, usage x509.ExtKeyUsage) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := ca.write(t, name+".pem", "CERTIFICATE", der)
	keyFile := ca.write(t, name+"-key.pem", "PRIVATE KEY", kder)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, certFile, keyFile
}

// serveTLS starts a loopback HTTPS server with cert; clientCAs, when set,
// makes it require and verify a client certificate.
func serveTLS(t *testing.T, cert tls.Certificate, clientCAs *x509.CertPool) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"proto":%q,"clients":%d}`, r.Proto, len(r.TLS.PeerCertificates))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if clientCAs != nil {
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = clientCAs
	}
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// An upstream's tls block is honoured by both clients: a private CA
// trusted through ca_file, a client certificate for mTLS, a server_name
// override, insecure_skip_verify; without them the same servers are
// unreachable (their certificates are not trusted, or they refuse us).
func TestUpstreamTLS(t *testing.T) {
	ca := newTestCA(t)
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	server, _, _ := ca.issue(t, "server", nil, loopback, x509.ExtKeyUsageServerAuth)
	named, _, _ := ca.issue(t, "named", []string{"users.internal"}, nil, x509.ExtKeyUsageServerAuth)
	_, clientCert, clientKey := ca.issue(t, "client", nil, nil, x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	plain := serveTLS(t, server, nil)
	mtls := serveTLS(t, server, pool)
	byName := serveTLS(t, named, nil)

	tests := []struct {
		name string
		url  string
		tls  string // the tls block, flow style
		ok   bool
	}{
		{"private CA via ca_file", plain, fmt.Sprintf("{ca_file: %q}", ca.file), true},
		{"private CA not trusted without ca_file", plain, "{}", false},
		{"mTLS with a client certificate", mtls, fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q}", ca.file, clientCert, clientKey), true},
		{"mTLS without a client certificate", mtls, fmt.Sprintf("{ca_file: %q}", ca.file), false},
		{"server_name names the certificate", byName, fmt.Sprintf("{ca_file: %q, server_name: users.internal}", ca.file), true},
		{"certificate for another name without server_name", byName, fmt.Sprintf("{ca_file: %q}", ca.file), false},
		{"insecure_skip_verify", plain, "{insecure_skip_verify: true}", true},
	}
	for _, client := range []string{"lean", "stdlib"} {
		for _, tt := range tests {
			t.Run(client+"/"+tt.name, func(t *testing.T) {
				ep := build(t, fmt.Sprintf(`
upstreams:
  u:
    url: "%s"
    client: %s
    tls: %s
endpoints:
  - path: /e
    backends: [{upstream: u, path: /}]
`, tt.url, client, tt.tls), nil)
				res := ep.Fetch(context.Background(), inbound())
				err := res[0].Err
				if !tt.ok {
					if !errors.Is(err, fetch.ErrConnect) {
						t.Fatalf("err = %v, want the upstream unreachable (status %d, body %s)", err, res[0].Status, res[0].Body)
					}
					return
				}
				if err != nil || res[0].Status != http.StatusOK {
					t.Fatalf("err = %v, status %d", err, res[0].Status)
				}
				wantProto := "HTTP/1.1"
				if client == "stdlib" {
					wantProto = "HTTP/2.0" // the custom TLS config keeps HTTP/2 by ALPN
				}
				clients := 0
				if tt.url == mtls {
					clients = 1
				}
				if want := fmt.Sprintf(`{"proto":%q,"clients":%d}`, wantProto, clients); string(res[0].Body) != want {
					t.Errorf("body %s, want %s", res[0].Body, want)
				}
			})
		}
	}
}
