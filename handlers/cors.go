package handlers

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/cors"

	"github.com/manifold-gw/manifold/config"
)

// newCORS builds the Gateway's CORS policy (rs/cors), or nil without
// server.cors: then no CORS code runs on any request.
//
//   - Origins match exactly (rs/cors would fold case and read "*" inside an
//     origin as a wildcard; server.cors promises exact origins). Listing
//     "*" allows any origin, "null" (sandboxed frames, file:) included, and
//     answers Access-Control-Allow-Origin: *.
//   - An empty allow_headers keeps rs/cors's defaults (Accept,
//     Content-Type, X-Requested-With), so that a browser's JSON POST, whose
//     preflight names content-type, is allowed; "*" allows any header.
//   - max_age is sent in whole seconds; 0 sends Access-Control-Max-Age: 0
//     (do not cache the preflight) rather than leaving the browser's
//     default. Browsers cap it (Chrome at 2h).
//   - Private Network Access (a preflight's Access-Control-Request-
//     Private-Network: true, sent by Chrome for a public page calling a
//     private address) is granted, Access-Control-Allow-Private-Network:
//     true, only with allow_private_network, and only to an allowed origin
//     (rs/cors's AllowPrivateNetwork; preflights then also vary on the
//     request header). Without it the browser blocks such a call.
func newCORS(cc *config.CORS) *cors.Cors {
	if cc == nil {
		return nil
	}
	opts := cors.Options{
		AllowedMethods:      cc.AllowMethods,
		AllowedHeaders:      cc.AllowHeaders,
		ExposedHeaders:      cc.ExposeHeaders,
		AllowCredentials:    cc.AllowCredentials,
		AllowPrivateNetwork: cc.AllowPrivateNetwork,
		MaxAge:              int(cc.MaxAge / time.Second),
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = -1 // rs/cors: "Access-Control-Max-Age: 0"
	}
	if slices.Contains(cc.AllowOrigins, "*") {
		opts.AllowedOrigins = []string{"*"}
	} else {
		allowed := make(map[string]bool, len(cc.AllowOrigins))
		for _, o := range cc.AllowOrigins {
			allowed[o] = true
		}
		opts.AllowOriginFunc = func(origin string) bool { return allowed[origin] }
	}
	return cors.New(opts)
}

// preflight answers a browser's preflight (OPTIONS with Origin and
// Access-Control-Request-Method) to an endpoint's path, and reports
// whether it did. It is called from the 405 handler: an OPTIONS request
// reaches it exactly when its path is served for some other method, so a
// preflight is never routed to an endpoint, never rate-limited and never
// forwarded, and OPTIONS to any other path keeps its 404. The answer is
// 204 with the CORS headers, or, when the origin, the method or a header
// is not allowed, 204 without them (as rs/cors does): the browser then
// refuses the actual request itself, which a 403 would not make any
// clearer to the page (the status of a failed preflight is hidden from
// scripts), and the gateway's answer does not tell a prober which part of
// its preflight was refused.
func (g *Gateway) preflight(c *gin.Context) bool {
	r := c.Request
	if g.cors == nil || r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" ||
		r.Header.Get("Origin") == "" || strings.HasPrefix(r.URL.Path, "/__") {
		return false
	}
	delete(c.Writer.Header(), "Allow") // set by the router for its 405
	serveCORS(g.cors, c.Writer, r)     // the headers, then 204
	c.Abort()
	return true
}

// serveCORS runs h on r, as if r had no Origin when it carries more than
// one Origin line. An Origin header names one origin (RFC 6454 §7), and
// rs/cors checks only the first line but copies every line into
// Access-Control-Allow-Origin, so an allowed first line would have the
// answer allow any origin after it. Browsers never send two; such a
// request gets no CORS headers (a preflight: 204 without them, refused).
func serveCORS(h *cors.Cors, w http.ResponseWriter, r *http.Request) {
	if len(r.Header["Origin"]) > 1 {
		r2 := *r
		r2.Header = r.Header.Clone()
		delete(r2.Header, "Origin")
		r = &r2
	}
	h.HandlerFunc(w, r)
}
