package handlers

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
	"github.com/klauspost/compress/gzip"
)

// Compression (server.compression) gzips an endpoint's answers, merged,
// errors, cache hits and passthrough alike, for clients whose
// Accept-Encoding accepts gzip. A request that does not ask for it pays one
// header lookup: nothing is wrapped or allocated.
//
// The decision is made at the first write of the body, when the headers
// are final: gzip when the body has at least min_bytes (its Content-Length
// if declared, else the size of that first write: a merged or cached
// answer is written whole), the status has a body, the answer is not
// already encoded (Content-Encoding), not a range (206, Content-Range),
// not marked Cache-Control: no-transform, and not a media or archive type
// that is compressed already. A passthrough answer that streams (no
// Content-Length: server-sent events, long polls) is never compressed:
// relay sends its status line before the first byte arrives, which
// settles it; holding events back to fill min_bytes would break the
// stream, and gzip's per-flush overhead would eat the gain. A relayed
// answer of known length is gzipped as it streams through, every flush of
// relay flushing the compressor too.
//
// A gzipped answer loses Content-Length (a merged one small enough for
// net/http to buffer whole gets it back, computed; a larger one is sent
// chunked), gets Vary: Accept-Encoding, a weak ETag (W/), since the bytes
// differ from the upstream's, and no Accept-Ranges. HEAD requests are
// never compressed (they have no body, and their headers must not promise
// an encoding the GET might not get).

// gzipLevel is klauspost's fastest level: on ~2 KB of JSON it takes about
// 70% of the default level's time (~5 µs) for ~7% more bytes.
const gzipLevel = gzip.BestSpeed

var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(io.Discard, gzipLevel) // the level is valid
	return gz
}}

var headerGzip = []string{"gzip"}

const headerAcceptEncoding = "Accept-Encoding"

// acceptsGzip reports whether r's Accept-Encoding accepts gzip (or x-gzip,
// its old name) with a q-value above 0, or, when it names neither, "*"
// does. HEAD requests are never compressed.
func acceptsGzip(r *http.Request) bool {
	vs := r.Header[headerAcceptEncoding]
	if len(vs) == 0 || r.Method == http.MethodHead {
		return false
	}
	named, wild := false, false
	for _, v := range vs {
		for elem := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(elem, ";")
			coding = strings.TrimSpace(coding)
			switch {
			case strings.EqualFold(coding, "gzip"), strings.EqualFold(coding, "x-gzip"):
				if !qZero(params) {
					return true
				}
				named = true
			case coding == "*":
				wild = !qZero(params)
			}
		}
	}
	return !named && wild
}

// qZero reports whether the parameters of an Accept-Encoding element give
// q=0 (or a q-value that does not parse, which accepts nothing).
func qZero(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		name, value, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		return err != nil || q <= 0
	}
	return false
}

// compressWriter is c.Writer for a request that accepts gzip. It decides at
// the first write of the body and, when it compresses, sends the body
// through a pooled gzip writer that finish closes.
type compressWriter struct {
	gin.ResponseWriter
	min     int
	decided bool
	gz      *gzip.Writer // non-nil while compressing
}

func (w *compressWriter) Write(p []byte) (int, error) {
	if !w.decided && len(p) > 0 {
		w.decide(len(p))
	}
	if w.gz != nil {
		return w.gz.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *compressWriter) WriteString(s string) (int, error) {
	if !w.decided && len(s) > 0 {
		w.decide(len(s))
	}
	if w.gz != nil {
		return w.gz.Write([]byte(s))
	}
	return w.ResponseWriter.WriteString(s)
}

// WriteHeaderNow sends the headers before any body: the answer goes out
// as it is.
func (w *compressWriter) WriteHeaderNow() {
	w.decided = true
	w.ResponseWriter.WriteHeaderNow()
}

// Flush sends what is compressed so far; a flush before any body (a
// streamed passthrough answer's status line) settles the answer as
// uncompressed.
func (w *compressWriter) Flush() {
	w.decided = true
	if w.gz != nil {
		_ = w.gz.Flush()
	}
	w.ResponseWriter.Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *compressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// decide starts gzip when the answer is worth compressing and may be; n is
// the size of the first write.
func (w *compressWriter) decide(n int) {
	w.decided = true
	h := w.Header()
	size := int64(n)
	if cl := h["Content-Length"]; len(cl) == 1 {
		if v, err := strconv.ParseInt(cl[0], 10, 64); err == nil {
			size = v
		}
	}
	if status := w.Status(); size < int64(w.min) || status < 200 || status == http.StatusNoContent ||
		status == http.StatusPartialContent || status == http.StatusNotModified ||
		len(h["Content-Encoding"]) > 0 || len(h["Content-Range"]) > 0 ||
		hasToken(h["Cache-Control"], "no-transform") || !compressible(h.Get("Content-Type")) {
		return
	}
	h["Content-Encoding"] = headerGzip
	h["Vary"] = addVary(h["Vary"], headerAcceptEncoding)
	delete(h, "Content-Length")
	delete(h, "Accept-Ranges")
	if et := h["Etag"]; len(et) == 1 && strings.HasPrefix(et[0], `"`) {
		h["Etag"] = []string{"W/" + et[0]}
	}
	w.gz = gzipWriters.Get().(*gzip.Writer)
	w.gz.Reset(w.ResponseWriter)
}

// finish ends the gzip stream, if one was started, and returns its writer
// to the pool.
func (w *compressWriter) finish() {
	if w.gz == nil {
		return
	}
	_ = w.gz.Close() // a failed write shows on the connection
	w.gz.Reset(io.Discard)
	gzipWriters.Put(w.gz)
	w.gz = nil
}

// compressible reports whether a media type is worth gzipping: not audio,
// video, raster images or fonts, nor an archive, which are compressed
// already (the list of klauspost's gzhttp, plus images and WOFF).
func compressible(ct string) bool {
	ct = strings.ToLower(strings.TrimSpace(ct))
	if ct == "" || strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "text/") {
		return true
	}
	for _, p := range []string{"video/", "audio/", "font/woff"} {
		if strings.HasPrefix(ct, p) {
			return false
		}
	}
	if strings.HasPrefix(ct, "image/") && !strings.HasPrefix(ct, "image/svg") && !strings.HasPrefix(ct, "image/bmp") {
		return false
	}
	for _, s := range []string{"compress", "zip", "snappy", "lzma", "xz", "zstd", "brotli", "stuffit", "rar", "bzip2", "7z"} {
		if strings.Contains(ct, s) {
			return false
		}
	}
	return true
}

// addVary returns vary with name added unless it lists it (or "*")
// already, never appending into a slice another header map may share.
func addVary(vary []string, name string) []string {
	for _, v := range vary {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok == "*" || strings.EqualFold(tok, name) {
				return vary
			}
		}
	}
	return append(vary[:len(vary):len(vary)], name)
}
