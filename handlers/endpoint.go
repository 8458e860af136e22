package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

// endpointHandler serves one configured endpoint: read the request, fan out
// through fetch, then map the results to one response.
// ea is the endpoint's auth (nil without): the token is checked first, so
// a refused request is neither rate-limited nor sent to any upstream.
func (g *Gateway) endpointHandler(ep *fetch.Endpoint, limit *rateLimit, ea *endpointAuth) gin.HandlerFunc {
	ec := ep.Config
	maxBody := g.cfg.Server.MaxBodyBytes
	ca := g.cache.forEndpoint(ec, g.metrics) // nil: no cache, no cost
	return func(c *gin.Context) {
		if ca != nil {
			c.Writer.Header()[headerCache] = cacheMiss // every answer says it; a hit overwrites
		}
		var who *identity
		if ea != nil {
			var ok bool
			if who, ok = g.authenticate(c, ea); !ok {
				return
			}
		}
		if limit != nil && !limit.allow(c, who) {
			g.metrics.rateLimitRejected(ec.Path)
			return
		}
		params := make([]string, len(ec.Params))
		for i, name := range ec.Params {
			v := c.Param(name)
			if v == "." || v == ".." {
				writeError(c, http.StatusBadRequest, "path parameter "+name+" must not be \".\" or \"..\"", nil)
				return
			}
			params[i] = v
		}

		var body []byte
		if c.Request.ContentLength > maxBody {
			writeError(c, http.StatusRequestEntityTooLarge, "request body over the limit", nil)
			return
		}
		// A body no backend needs is read and dropped too, under the same
		// limit: an undeclared (chunked) length is held to max_body_bytes,
		// and only once the body has been read does the server watch the
		// connection, so that a client that leaves cancels the fan-out.
		unneeded := c.Request.ContentLength != 0 && c.Request.Body != nil && c.Request.Body != http.NoBody
		if (ep.NeedsBody && c.Request.Body != nil) || unneeded {
			r := http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
			var b []byte
			var err error
			if ep.NeedsBody {
				b, err = io.ReadAll(r)
			} else {
				_, err = io.Copy(io.Discard, r)
			}
			var tooBig *http.MaxBytesError
			switch {
			case errors.As(err, &tooBig):
				writeError(c, http.StatusRequestEntityTooLarge, "request body over the limit", nil)
				return
			case err != nil:
				writeError(c, http.StatusBadRequest, "could not read the request body", nil)
				return
			}
			body = b
		}

		in := g.inbound(c, ec, params, body)
		who.setHeaders(in.Header) // claims_to_headers, never the client's copies
		if ep.Passthrough {
			g.relay(c, ep, in)
			return
		}
		if ca != nil {
			ca.serve(c, in, func(ctx context.Context) { g.respond(c, ec, ep.Fetch(ctx, in)) })
			return
		}
		results := ep.Fetch(c.Request.Context(), in)
		g.respond(c, ec, results)
	}
}

// respond maps the results of a fan-out to one answer (SPEC §4.9).
func (g *Gateway) respond(c *gin.Context, ec *config.Endpoint, results []fetch.Result) {
	var deciding *fetch.Result
	var failed map[string]string
	fellBack := false
	parts := make([]fetch.Part, 0, len(results))
	for i := range results {
		r := &results[i]
		g.metrics.observeBackend(r)
		if r.Err == nil {
			parts = append(parts, fetch.Part{Group: r.Backend.Config.Group, Body: r.Body})
			continue
		}
		g.logBackendFailure(c, ec, r)
		if failed == nil {
			failed = make(map[string]string, len(results))
		}
		failed[r.Backend.Label] = fetch.Reason(r.Err)
		if fb := r.Backend.Config.FallbackJSON; fb != nil {
			// The fallback stands in for the answer, in its place, and the
			// backend no longer decides the status.
			parts = append(parts, fetch.Part{Group: r.Backend.Config.Group, Body: fb})
			fellBack = true
			continue
		}
		if deciding == nil || (r.Backend.Config.Required && !deciding.Backend.Config.Required) {
			deciding = r
		}
	}

	if deciding != nil && (deciding.Backend.Config.Required || len(parts) == 0) {
		status := statusFor(deciding.Err)
		writeError(c, status, messageFor(status), failed)
		return
	}

	h := c.Writer.Header()
	if deciding != nil || fellBack {
		h[headerCompleted] = []string{"false"}
		h["Cache-Control"] = []string{"no-store"}
		if ec.ExposeErrors {
			reasons, _ := json.Marshal(failed)
			parts = append(parts, fetch.Part{Group: "_errors", Body: reasons})
		}
	} else {
		h[headerCompleted] = []string{"true"}
	}
	buf := mergeBuffers.Get().(*[]byte)
	if ec.Deep {
		*buf = fetch.MergeDeep((*buf)[:0], parts)
	} else {
		*buf = fetch.Merge((*buf)[:0], parts)
	}
	writeJSONBytes(c.Writer, http.StatusOK, *buf) // copied into the connection's buffer
	if cap(*buf) <= maxPooledMerge {
		mergeBuffers.Put(buf)
	}
}

// relay streams a passthrough backend's answer unchanged (less hop-by-hop
// headers). Failures before the answer arrives are answered like any other.
func (g *Gateway) relay(c *gin.Context, ep *fetch.Endpoint, in *fetch.Inbound) {
	start := time.Now()
	rel, err := ep.Relay(c.Request.Context(), in)
	if err != nil {
		r := fetch.Result{Backend: ep.Backends[0], Err: err, Duration: time.Since(start)}
		g.metrics.observeBackend(&r)
		g.logBackendFailure(c, ep.Config, &r)
		status := statusFor(err)
		writeError(c, status, messageFor(status), map[string]string{r.Backend.Label: fetch.Reason(err)})
		return
	}
	defer rel.Close()
	resp := rel.Response
	h := c.Writer.Header()
	id := h[headerRequestID]
	// Less hop-by-hop headers; our response_headers and CORS headers win.
	g.copyRelayed(h, resp.Header, resp.StatusCode, ep.Config)
	h[headerRequestID] = id // ours, whatever the upstream sent
	if ep.Backends[0].Config.Method == http.MethodHead {
		// The upstream declared the length of a body it did not send; the
		// client's answer (to a GET, POST...) has none.
		delete(h, "Content-Length")
	}
	c.Writer.WriteHeader(resp.StatusCode)
	if resp.ContentLength < 0 {
		// A streamed answer (server-sent events, a long poll): the client
		// gets the status line now, not with the first bytes.
		c.Writer.Flush()
	}
	buf := copyBuffers.Get().(*[]byte)
	werr := relayBody(c.Writer, rel.Body, *buf, resp.ContentLength)
	copyBuffers.Put(buf)
	r := fetch.Result{Backend: ep.Backends[0], Status: resp.StatusCode, Duration: time.Since(start)}
	switch rerr := rel.Err(); {
	case werr != nil:
		// The client went away while its answer was being written.
		r.Err = fmt.Errorf("%w: write to client: %w", fetch.ErrCanceled, werr)
	case rerr != nil:
		r.Err = rerr
	case resp.StatusCode >= 500:
		r.Err = &fetch.StatusError{Code: resp.StatusCode}
	}
	g.metrics.observeBackend(&r)
	if r.Err != nil && !errors.As(r.Err, new(*fetch.StatusError)) {
		g.logBackendFailure(c, ep.Config, &r)
		// The status line is gone: cutting the connection is the only
		// honest way to tell the client the body is incomplete. observe
		// still writes the access line and the request sample.
		panic(http.ErrAbortHandler)
	}
}

// relayBody copies body to w as it arrives: every read that delivered data
// is flushed to the client, so a streamed answer is not held back by
// buffering, except the read that completes a body of known length (the end
// of the handler flushes it, with no extra write). It returns the error of
// a failed write (the client left); a failed read shows in body's own error.
func relayBody(w gin.ResponseWriter, body io.Reader, buf []byte, length int64) error {
	var sent int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			sent += int64(n)
			if rerr == nil && sent != length {
				w.Flush()
			}
		}
		if rerr != nil {
			return nil
		}
	}
}

// mergeBuffers recycles merged answers' buffers; an unusually large one
// is left to the GC rather than pinned in the pool.
var mergeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxPooledMerge = 256 << 10

// copyBuffers recycles relay buffers: io.Copy would allocate 32 KiB per
// passthrough request.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// copyEndToEnd copies a relayed answer's headers into dst, less its
// hop-by-hop headers (including any its Connection header names). Headers
// already in dst (the gateway's own, e.g. Connection: close while draining)
// are kept unless the upstream sends the same end-to-end header.
func copyEndToEnd(dst, src http.Header) {
	var named []string
	for name := range connectionNamed(src["Connection"]) {
		named = append(named, http.CanonicalHeaderKey(name))
	}
	for k, vs := range src {
		if config.IsHopByHop(k) || slices.Contains(named, k) {
			continue
		}
		dst[k] = vs
	}
}

// logBackendFailure logs one failed backend call at warn, with the internal
// error text that clients never see, thinned per upstream to
// log.backend_failures_per_second (a line then says how many failures
// were left out since the previous one). A client that left is not an
// upstream problem and is logged at debug, unthinned.
func (g *Gateway) logBackendFailure(c *gin.Context, ec *config.Endpoint, r *fetch.Result) {
	level := slog.LevelWarn
	if errors.Is(r.Err, fetch.ErrCanceled) || errors.Is(r.Err, fetch.ErrSkipped) {
		// A client that left is not an upstream problem; a skipped
		// dependent was not called, and its dependency's failure is
		// logged already.
		level = slog.LevelDebug
	}
	ctx := c.Request.Context()
	if !g.logger.Enabled(ctx, level) {
		return
	}
	var suppressed int64
	if level == slog.LevelWarn {
		var ok bool
		if ok, suppressed = g.failLogs[r.Backend.Upstream.Name].take(); !ok {
			return
		}
	}
	attrs := [8]slog.Attr{
		slog.String("request_id", requestIDOf(c)),
		slog.String("route", ec.Path),
		slog.String("backend", r.Backend.Label),
		slog.String("upstream", r.Backend.Upstream.Name),
		slog.String("reason", fetch.Reason(r.Err)),
		slog.Float64("duration", r.Duration.Seconds()),
		slog.String("error", r.Err.Error()),
	}
	n := 7
	if suppressed > 0 {
		attrs[n] = slog.Int64("suppressed", suppressed)
		n++
	}
	g.logger.LogAttrs(ctx, level, "backend failed", attrs[:n]...)
}
