package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/internal/h1"
)

// newLeanClient builds the upstream's pooled HTTP/1.1 client: the same
// pool size, connection limit and dial bounds as the stdlib transport, TLS
// (HTTP/1.1 only) for https upstreams.
func newLeanClient(cfg *config.Upstream, inst config.Instance, idle, maxConns int, dialTimeout time.Duration) *h1.Client {
	host, port := inst.URL.Hostname(), inst.URL.Port()
	var tlsConfig *tls.Config
	if inst.URL.Scheme == "https" {
		tlsConfig = upstreamTLSConfig(cfg)
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = host
		}
		if port == "" {
			port = "443"
		}
	} else if port == "" {
		port = "80"
	}
	return h1.New(h1.Options{
		Addr:           net.JoinHostPort(host, port),
		TLS:            tlsConfig,
		DialTimeout:    dialTimeout,
		MaxIdleConns:   idle,
		MaxConns:       maxConns,
		IdleTimeout:    90 * time.Second,
		MaxHeaderBytes: 64 << 10,
	})
}

// newTransport builds the stdlib client of an upstream with client: stdlib:
// an http.Transport with the same pool size, connection limit and dial
// bounds as the lean client, no environment proxies, HTTP/2 attempted for
// https.
func newTransport(cfg *config.Upstream, idle, maxConns int, dialTimeout time.Duration) *http.Transport {
	return &http.Transport{
		DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      cfg.BaseURL.Scheme == "https",
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    idle,
		MaxConnsPerHost:        maxConns,
		IdleConnTimeout:        90 * time.Second,
		TLSClientConfig:        upstreamTLSConfig(cfg),
		TLSHandshakeTimeout:    dialTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// compression: true leaves the Transport to ask for gzip and
		// decode it (not with a Range header); false sends no
		// Accept-Encoding.
		DisableCompression: !cfg.Compression,
	}
}

// upstreamTLSConfig builds the TLS configuration of cfg's tls block, shared
// by both clients: RootCAs from ca_file (nil: the system roots), the client
// certificate, the server_name override, insecure_skip_verify, TLS 1.2 at
// least. Load validated the PEM it reads, so it cannot fail here.
func upstreamTLSConfig(cfg *config.Upstream) *tls.Config {
	t := cfg.TLS
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opted into, warned at start-up and reload
	}
	if len(t.CAPEM) > 0 {
		tc.RootCAs = x509.NewCertPool()
		tc.RootCAs.AppendCertsFromPEM(t.CAPEM)
	}
	if len(t.CertPEM) > 0 {
		if cert, err := tls.X509KeyPair(t.CertPEM, t.KeyPEM); err == nil {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	return tc
}

// leanRoundTrip makes one call through the lean client and presents the
// answer as an *http.Response so the rest of fetch is client-agnostic.
func (u *Upstream) leanRoundTrip(ctx context.Context, in *instance, method, uri string, header http.Header, body []byte) (*http.Response, error) {
	return u.leanRoundTripOn(ctx, in.lean, in, method, uri, header, body)
}

// leanRoundTripOn is leanRoundTrip through c, one of in's lean clients.
func (u *Upstream) leanRoundTripOn(ctx context.Context, c *h1.Client, in *instance, method, uri string, header http.Header, body []byte) (*http.Response, error) {
	resp, err := c.Do(ctx, &h1.Request{Method: method, Host: in.host, RequestURI: uri, Header: header, Body: body})
	if err != nil {
		if errors.Is(err, h1.ErrMalformedResponse) {
			return nil, fmt.Errorf("%w: %w", ErrConnect, err)
		}
		if errors.Is(err, h1.ErrConnLimit) {
			return nil, fmt.Errorf("%w: %w", errConnLimit, err)
		}
		return nil, err
	}
	return &http.Response{
		StatusCode:    resp.StatusCode,
		Header:        resp.Header,
		ContentLength: resp.ContentLength,
		Uncompressed:  resp.Uncompressed,
		Body:          resp.Body,
	}, nil
}

var acceptGzip = []string{"gzip"}

// hasRange reports whether header holds Range under any spelling.
func hasRange(header http.Header) bool {
	for k := range header {
		if len(k) == 5 && strings.EqualFold(k, "Range") {
			return true
		}
	}
	return false
}

// stdRoundTrip makes one call through the upstream's http.Transport.
func (u *Upstream) stdRoundTrip(ctx context.Context, in *instance, method, uri string, header http.Header, body []byte) (*http.Response, error) {
	return u.stdRoundTripOn(ctx, in.transport, in, method, uri, header, body)
}

// stdRoundTripOn is stdRoundTrip through tr, one of in's transports.
func (u *Upstream) stdRoundTripOn(ctx context.Context, tr *http.Transport, in *instance, method, uri string, header http.Header, body []byte) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.origin+uri, r)
	if err != nil {
		return nil, fmt.Errorf("%w: build request: %w", ErrConnect, err)
	}
	req.Header = header
	return tr.RoundTrip(req)
}
