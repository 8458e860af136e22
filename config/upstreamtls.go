package config

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// validateUpstreamTLS checks an upstream's tls block: it applies to
// https:// upstreams only (url, or the instances of urls), ca_file is a
// readable PEM bundle with at least one certificate, and cert_file and
// key_file are given together and load as a pair. Relative paths are resolved against the config file's
// directory; the files' contents are kept for the runtime (see UpstreamTLS).
func validateUpstreamTLS(u *Upstream, p string, c *collector) {
	t := &u.TLS
	p += ".tls"
	t.CAFile = relativeToConfig(c.file, t.CAFile)
	t.CertFile = relativeToConfig(c.file, t.CertFile)
	t.KeyFile = relativeToConfig(c.file, t.KeyFile)
	set := t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
	// The instances share one scheme (validateInstances sees to it), so
	// the first one's is every one's.
	if set && len(u.Instances) > 0 && u.Instances[0].URL.Scheme != "https" {
		if len(u.URLs) > 0 {
			c.add(p, "tls applies to https:// upstreams; the urls are http:// (urls[0] is %q): remove tls or use https", u.URLs[0])
		} else {
			c.add(p, "tls applies to https:// upstreams; %q is http://: remove tls or use https", u.URL)
		}
		return
	}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		switch {
		case err != nil:
			c.add(p+".ca_file", "cannot read the CA bundle: %v", err)
		case !x509.NewCertPool().AppendCertsFromPEM(b):
			c.add(p+".ca_file", "%s holds no PEM certificate", t.CAFile)
		default:
			t.CAPEM = b
		}
	}
	switch {
	case t.CertFile == "" && t.KeyFile == "":
	case t.CertFile == "" || t.KeyFile == "":
		c.add(p, "give both cert_file and key_file for a client certificate, or neither")
	default:
		cert, err := os.ReadFile(t.CertFile)
		if err != nil {
			c.add(p+".cert_file", "cannot read the client certificate: %v", err)
			return
		}
		key, err := os.ReadFile(t.KeyFile)
		if err != nil {
			c.add(p+".key_file", "cannot read the client key: %v", err)
			return
		}
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			c.add(p, "cannot load the client certificate and key: %v", err)
			return
		}
		t.CertPEM, t.KeyPEM = cert, key
	}
}
