package main

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/manifold-gw/manifold/config"
)

// certStore holds the main listener's certificate. Reload swaps it
// atomically: connections already open keep the certificate they were
// handshaken with, and new handshakes get the new one, so a renewed
// certificate is picked up on SIGHUP without dropping a connection.
type certStore struct {
	cfg  config.TLS
	cert atomic.Pointer[tls.Certificate]
}

// newCertStore loads the pair named by cfg.
func newCertStore(cfg config.TLS) (*certStore, error) {
	s := &certStore{cfg: cfg}
	if err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// reload reads the certificate and key again; on failure the one in use
// stays.
func (s *certStore) reload() error {
	c, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s and key %s: %w", s.cfg.CertFile, s.cfg.KeyFile, err)
	}
	s.cert.Store(&c)
	return nil
}

func (s *certStore) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

// configureProtocols sets what the main listener speaks: HTTP/1.1 always;
// with TLS also HTTP/2, negotiated by ALPN; with h2c also cleartext HTTP/2
// with prior knowledge. It returns the certificate store (nil without TLS).
func configureProtocols(srv *http.Server, s config.Server) (*certStore, error) {
	var p http.Protocols
	p.SetHTTP1(true)
	var store *certStore
	if s.TLS.Enabled() {
		var err error
		if store, err = newCertStore(s.TLS); err != nil {
			return nil, err
		}
		p.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: store.get}
	}
	if s.H2C {
		p.SetUnencryptedHTTP2(true)
	}
	srv.Protocols = &p
	return store, nil
}
