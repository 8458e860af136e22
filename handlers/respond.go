package handlers

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/manifold-gw/manifold/fetch"
)

const contentTypeJSON = "application/json; charset=utf-8"

// statusClientClosed is logged when the client left before its answer was
// ready (nginx's convention); nobody receives it.
const statusClientClosed = 499

// statusFor is the one place that maps a backend failure to the status the
// client sees: timeout 504, open breaker, full bulkhead or no instance in
// rotation 503, an upstream 4xx relayed as is (a missing user stays 404),
// anything else 502.
func statusFor(err error) int {
	var se *fetch.StatusError
	switch {
	case errors.Is(err, fetch.ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, fetch.ErrCircuitOpen), errors.Is(err, fetch.ErrRejected), errors.Is(err, fetch.ErrNoHealthyInstance):
		return http.StatusServiceUnavailable
	case errors.Is(err, fetch.ErrCanceled):
		return statusClientClosed
	case errors.As(err, &se) && se.Code >= 400 && se.Code < 500:
		return se.Code
	}
	return http.StatusBadGateway
}

// messageFor is the client-facing message of a gateway error status.
func messageFor(status int) string {
	switch status {
	case http.StatusGatewayTimeout:
		return "upstream timed out"
	case http.StatusServiceUnavailable:
		return "upstream unavailable"
	case http.StatusBadGateway:
		return "upstream failed"
	}
	if t := http.StatusText(status); t != "" {
		return "upstream answered: " + t
	}
	return "upstream failed"
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Status   int               `json:"status"`
	Message  string            `json:"message"`
	Backends map[string]string `json:"backends,omitempty"`
}

// writeError answers with the gateway's error shape
// {"error":{"status":N,"message":"...","backends":{...}}}. Error answers are
// never cached.
func writeError(c *gin.Context, status int, message string, backends map[string]string) {
	body, err := json.Marshal(errorBody{Error: errorDetail{Status: status, Message: message, Backends: backends}})
	if err != nil { // cannot happen: strings and ints only
		body = []byte(`{"error":{"status":500,"message":"internal error"}}`)
	}
	c.Writer.Header()["Cache-Control"] = []string{"no-store"}
	writeJSONBytes(c.Writer, status, body)
	c.Abort()
}

// writeJSONBytes writes an already-encoded JSON body.
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{contentTypeJSON}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
