package handlers

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/rs/cors"

	"github.com/manifold-gw/manifold/config"
)

// edge is what an endpoint adds to each of its answers, whatever wrote
// them (merge, error, auth, rate limit, cache hit, passthrough, the
// recoverer's 500): its response_headers, the CORS headers of an actual
// request, and gzip.
type edge struct {
	headers      []answerHeader
	cacheControl bool       // headers set Cache-Control
	cors         *cors.Cors // nil without server.cors
	gzipMin      int        // -1: compression off
}

// answerHeader is one response_headers entry. Config load made its name
// canonical, the form the gateway's own headers and a relayed upstream's
// are stored under, so setting it replaces theirs and is replaced by the
// gateway's: one header line, never two spellings of one name.
type answerHeader struct {
	name  string
	value []string
}

// edgeHandlers are the handlers that run before ec's own: none when ec has
// no response_headers, there is no server.cors and compression is off, so
// such an endpoint's requests run exactly as before. The edge is kept for
// relay.
func (g *Gateway) edgeHandlers(ec *config.Endpoint) []gin.HandlerFunc {
	e := &edge{cors: g.cors, gzipMin: -1}
	if cc := g.cfg.Server.Compression; cc.Enabled {
		e.gzipMin = max(cc.MinBytes, 0)
	}
	for _, name := range slices.Sorted(maps.Keys(ec.ResponseHeaders)) {
		e.headers = append(e.headers, answerHeader{name, []string{ec.ResponseHeaders[name]}})
		e.cacheControl = e.cacheControl || name == "Cache-Control"
	}
	if e.cors == nil && e.gzipMin < 0 && len(e.headers) == 0 {
		return nil
	}
	if g.edges == nil {
		g.edges = map[*config.Endpoint]*edge{}
	}
	g.edges[ec] = e
	return []gin.HandlerFunc{e.handle}
}

// handle sets the endpoint's headers first, so that every answer carries
// them and the gateway's own headers of one answer, set later, win over a
// configured one of the same name (an error stays Cache-Control:
// no-store; a 429 keeps its Retry-After). A passthrough answer's upstream
// headers do not (copyRelayed).
func (e *edge) handle(c *gin.Context) {
	h := c.Writer.Header()
	e.setHeaders(h)
	if e.cors != nil {
		serveCORS(e.cors, c.Writer, c.Request) // an actual request: endpoints never serve OPTIONS
	}
	if e.gzipMin < 0 || !acceptsGzip(c.Request) {
		return // gin goes on to the endpoint's handler
	}
	w := c.Writer
	cw := &compressWriter{ResponseWriter: w, min: e.gzipMin}
	c.Writer = cw
	defer func() {
		c.Writer = w
		if cw.gz != nil && !w.Written() {
			// A panic before any compressed byte went out: the
			// recoverer's 500 is written plain.
			delete(h, "Content-Encoding")
		}
	}()
	c.Next()
	cw.finish()
}

// setHeaders sets the endpoint's response_headers on h, under their
// canonical names.
func (e *edge) setHeaders(h http.Header) {
	for _, ah := range e.headers {
		h[ah.name] = ah.value
	}
}

// copyRelayed copies a passthrough answer's end-to-end headers to dst
// (copyEndToEnd), except that the gateway's own win over the upstream's:
// the endpoint's response_headers replace an upstream header of the same
// name, and with server.cors the CORS headers are the gateway's alone (the
// upstream's Access-Control-* are dropped, so an upstream's own "*"
// cannot let in an origin the gateway refuses) and Vary lists both the
// upstream's fields and the gateway's.
//
// On an upstream error (status 400 and above) a configured Cache-Control
// is not applied: the upstream's own stands, or no-store when it sent
// none, so that a value meant for the endpoint's answers never tells a
// shared cache to keep an outage's 503.
func (g *Gateway) copyRelayed(dst, src http.Header, status int, ec *config.Endpoint) {
	e := g.edges[ec]
	if e == nil || (e.cors == nil && len(e.headers) == 0) {
		copyEndToEnd(dst, src)
		return
	}
	if status >= 400 && e.cacheControl {
		defer func() {
			if cc, ok := src["Cache-Control"]; ok {
				dst["Cache-Control"] = cc
			} else {
				// As on the gateway's own errors: no heuristic caching
				// of a relayed 404 or 410 either.
				dst["Cache-Control"] = []string{"no-store"}
			}
		}()
	}
	var vary []string
	var ours http.Header
	if e.cors != nil {
		vary = dst["Vary"]
		for k, vs := range dst {
			if strings.HasPrefix(k, "Access-Control-") {
				if ours == nil {
					ours = make(http.Header, 3)
				}
				ours[k] = vs
			}
		}
	}
	copyEndToEnd(dst, src)
	if e.cors != nil {
		for k := range src {
			if strings.HasPrefix(http.CanonicalHeaderKey(k), "Access-Control-") {
				delete(dst, k)
			}
		}
		maps.Copy(dst, ours)
		if uv := src["Vary"]; len(uv) > 0 {
			merged := uv[:len(uv):len(uv)]
			for _, v := range vary {
				for tok := range strings.SplitSeq(v, ",") {
					if tok = strings.TrimSpace(tok); tok != "" {
						merged = addVary(merged, tok)
					}
				}
			}
			dst["Vary"] = merged
		}
	}
	e.setHeaders(dst)
}
