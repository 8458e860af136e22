package handlers

import (
	"encoding/hex"
	"iter"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/http/httpguts"

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
	if conn := r.Header["Connection"]; len(conn) > 0 && len(h) > 0 {
		dropConnectionNamed(h, conn)
	}
	peer := c.RemoteIP()
	xf := xForwarded(peer, g.trusted(peer), r.Header, r.Host, r.TLS != nil)
	// One backing array for the single-valued headers: one allocation, not five.
	vals := [5]string{requestIDOf(c), xf.For, xf.Host, xf.Proto}
	h[headerRequestID] = vals[0:1:1]
	if xf.For != "" {
		h["X-Forwarded-For"] = vals[1:2:2]
	}
	if xf.Host != "" {
		h["X-Forwarded-Host"] = vals[2:3:3]
	}
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

// dropConnectionNamed removes from h (the forwarded client headers) every
// header the client's Connection header names: RFC 9110 §7.6.1 makes them
// hop-by-hop, meant for the gateway's connection only, whatever
// forward_headers says. Names compare case-insensitively.
func dropConnectionNamed(h http.Header, conn []string) {
	for name := range connectionNamed(conn) {
		for k := range h {
			if strings.EqualFold(k, name) {
				delete(h, k)
			}
		}
	}
}

// connectionNamed yields the header names a Connection header's values
// list (comma-separated, whitespace trimmed, empty elements skipped), for
// both directions: the client's request and a relayed upstream answer.
func connectionNamed(conn []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range conn {
			for name := range strings.SplitSeq(v, ",") {
				if name = textproto.TrimString(name); name != "" && !yield(name) {
					return
				}
			}
		}
	}
}

// forwardedHeaders are the X-Forwarded-* values of the backend calls.
type forwardedHeaders struct{ For, Host, Proto string }

const (
	// maxForwardedHops bounds the X-Forwarded-For entries kept from a trusted
	// proxy's request (the right-most ones; the peer is added after them).
	maxForwardedHops = 16
	// maxForwardedHost bounds X-Forwarded-Host: a 253-byte DNS name and a
	// port, ":65535".
	maxForwardedHost = 260
)

// xForwarded computes the X-Forwarded-For, -Host and -Proto values sent
// upstream from the peer address (Gin's RemoteIP), whether the peer is a
// trusted proxy, the client's request headers, its Host and whether it came
// over TLS. It is pure, and every value it returns is one line of printable
// ASCII of bounded length:
//
//   - For is the peer in canonical form (zone dropped), after, when the peer
//     is trusted, the entries of its X-Forwarded-For (all header lines, in
//     order) read from the right while each is an IP address without port
//     or zone, at most maxForwardedHops of them, each in canonical form. An
//     entry that is not an IP ends the chain: it and everything left of it
//     were written by the client, not by a proxy. For is "" only when the
//     peer is not an IP (there is then no header).
//   - Host is the trusted proxy's X-Forwarded-Host when it is a valid host
//     of at most maxForwardedHost bytes, else the request's Host if that is
//     (else "": no header).
//   - Proto is the trusted proxy's X-Forwarded-Proto when it is http or
//     https, else the scheme the request came in with.
func xForwarded(peer string, trusted bool, hdr http.Header, host string, tls bool) forwardedHeaders {
	var f forwardedHeaders
	if a, err := netip.ParseAddr(peer); err == nil {
		// ParseAddr accepts IPv4 only in its one canonical form, so an IPv4
		// peer is used as is (no allocation); IPv6 is canonicalised.
		f.For = peer
		if !a.Is4() {
			f.For = a.WithZone("").String()
		}
		if trusted {
			f.For = forwardedChain(hdr.Values("X-Forwarded-For"), f.For)
		}
	}
	f.Host = host
	if v := hdr.Get("X-Forwarded-Host"); trusted && v != "" && saneHost(v) {
		f.Host = v
	} else if !saneHost(host) {
		f.Host = ""
	}
	f.Proto = "http"
	if tls {
		f.Proto = "https"
	}
	if v := hdr.Get("X-Forwarded-Proto"); trusted && (v == "http" || v == "https") {
		f.Proto = v
	}
	return f
}

// forwardedChain is the valid right-hand part of the X-Forwarded-For lines
// prior, followed by peer (see xForwarded).
func forwardedChain(prior []string, peer string) string {
	var kept [maxForwardedHops]string
	n := 0
scan:
	for i := len(prior) - 1; i >= 0; i-- {
		line := prior[i]
		for n < maxForwardedHops {
			j := strings.LastIndexByte(line, ',')
			a, err := netip.ParseAddr(strings.TrimSpace(line[j+1:])) // as Gin's ClientIP reads them
			if err != nil || a.Zone() != "" {
				break scan
			}
			kept[n] = a.String()
			n++
			if j < 0 {
				continue scan
			}
			line = line[:j]
		}
		break
	}
	if n == 0 {
		return peer
	}
	var b strings.Builder
	for i := n - 1; i >= 0; i-- {
		b.WriteString(kept[i])
		b.WriteString(", ")
	}
	b.WriteString(peer)
	return b.String()
}

// saneHost reports whether h is a Host value fit to forward: the bytes
// net/http accepts in a Host header (no spaces or control characters), and
// short.
func saneHost(h string) bool {
	return len(h) <= maxForwardedHost && httpguts.ValidHostHeader(h)
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
