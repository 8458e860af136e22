package handlers

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

const (
	headerRequestID = "X-Request-Id"
	headerCompleted = "X-Manifold-Completed"
)

// requestID keeps the client's X-Request-ID when it is sane (at most 128
// characters of [A-Za-z0-9._-]) and otherwise makes a new one; either way it
// is echoed on the response and forwarded upstream.
func (g *Gateway) requestID(c *gin.Context) {
	id := c.GetHeader(headerRequestID)
	if !saneRequestID(id) {
		id = newRequestID()
	}
	c.Writer.Header()[headerRequestID] = []string{id}
	c.Next()
}

// requestIDOf is the request's ID, kept on the response header where
// requestID put it (no per-request context map is needed).
func requestIDOf(c *gin.Context) string {
	if v := c.Writer.Header()[headerRequestID]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// newRequestID returns 32 random hex characters. Uniqueness, not secrecy, is
// what matters, so the fast per-goroutine generator is enough.
func newRequestID() string {
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// inbound extracts what the backend calls need from the client's request,
// applying the endpoint's forwarding rules: only forward_headers, the
// X-Forwarded-* set, X-Request-ID and traceparent go upstream, and only
// forward_query parameters.
func (g *Gateway) inbound(c *gin.Context, ec *config.Endpoint, params []string, body []byte) *fetch.Inbound {
	r := c.Request
	h := make(http.Header, len(ec.ForwardHeaderKeys)+5)
	for _, k := range ec.ForwardHeaderKeys {
		if v, ok := r.Header[k]; ok {
			h[k] = v
		}
	}
	peer := c.RemoteIP()
	trusted := g.trusted(peer)
	xff := peer
	if prior := r.Header.Values("X-Forwarded-For"); trusted && len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + peer
	}
	host, proto := r.Host, "http"
	if r.TLS != nil {
		proto = "https"
	}
	if trusted {
		if v := r.Header.Get("X-Forwarded-Host"); v != "" {
			host = v
		}
		if v := r.Header.Get("X-Forwarded-Proto"); v == "http" || v == "https" {
			proto = v
		}
	}
	// One backing array for the single-valued headers: one allocation, not five.
	vals := [5]string{requestIDOf(c), xff, host, proto}
	h[headerRequestID] = vals[0:1:1]
	h["X-Forwarded-For"] = vals[1:2:2]
	h["X-Forwarded-Host"] = vals[2:3:3]
	h["X-Forwarded-Proto"] = vals[3:4:4]
	if tp := r.Header.Get("Traceparent"); tp != "" && len(tp) <= 128 {
		vals[4] = tp
		h["Traceparent"] = vals[4:5:5]
	}

	in := &fetch.Inbound{Params: params, Header: h, Body: body}
	if body != nil {
		in.ContentType = r.Header.Get("Content-Type")
	}
	switch {
	case ec.ForwardAllQuery:
		if r.URL.RawQuery != "" {
			in.Query = r.URL.Query().Encode()
		}
	case len(ec.ForwardQuery) > 0 && r.URL.RawQuery != "":
		all := r.URL.Query()
		keep := url.Values{}
		for _, name := range ec.ForwardQuery {
			if v, ok := all[name]; ok {
				keep[name] = v
			}
		}
		in.Query = keep.Encode()
	}
	return in
}

// trusted reports whether the peer address is one of server.trusted_proxies.
func (g *Gateway) trusted(peer string) bool {
	if len(g.cfg.Server.TrustedPrefixes) == 0 {
		return false
	}
	ip, err := netip.ParseAddr(peer)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return slices.ContainsFunc(g.cfg.Server.TrustedPrefixes, func(p netip.Prefix) bool { return p.Contains(ip) })
}
