// Package demo provides sample upstream services that the Manifold gateway can
// mount under /__demo/ when its config says `demo: true`, so that a fresh
// checkout shows real aggregation (users, orders, recommendations, inventory,
// products, echo) without starting any other process. The services refer to
// each other consistently: an order from /orders/{id} names a customer that
// /users/{id} and /recommendations/{id} know and lines whose SKUs /products
// and /inventory know, so call graphs (fetch an order, then its customer and
// each line's product) can be demonstrated against them.
//
// Every answer is JSON and deterministic: values are derived from the request
// id with an FNV hash, so the same id always yields byte-identical bodies.
// Money is a JSON number with exactly two decimals and an order's tracking
// number is an integer above 2^53, so exact number text is observable.
// Every path also honours the fault-injection query knobs ?delay=, ?fail= and
// ?status= (see knobs.go) so that timeouts, retries, circuit breakers and
// partial responses can be demonstrated against it.
//
// One upstream pool is played by the Host of the call (see instance.go):
// the shipped config lists http://127.0.0.1:PORT/__demo,
// http://127.0.0.2:PORT/__demo and http://127.0.0.3:PORT/__demo as three
// instances of one upstream (Linux routes all of 127.0.0.0/8 to the
// loopback interface), the gateway sends each instance's host:port as
// Host, and the instance on 127.0.0.3 is the slow one: every 4th call it
// receives (25 %) waits 50, 60, 70 or 80 ms in turn before it is served,
// a deterministic tail for hedging to cut. The wait ends early when the
// caller leaves, as a hedge's losing try does. Calls to other hosts are
// never delayed.
package demo

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
)

// maxEchoBody caps the request body /echo will read.
const maxEchoBody = 1 << 20

// echoHeaders are the request headers /echo reflects back, so a caller can see
// what the gateway forwarded.
var echoHeaders = []string{
	"X-Request-Id",
	"X-Forwarded-For",
	"X-Forwarded-Host",
	"X-Forwarded-Proto",
	"Content-Type",
}

// Handler returns the demo upstream services as one http.Handler (paths
// relative to its mount point). It exists so the gateway can serve working
// upstreams from its own listener in demo mode; the gateway strips its
// /__demo prefix before calling it, so the handler sees paths like /users/42.
//
// Services (GET and HEAD unless noted; any other method is a JSON 405):
//
//   - /users/{id}: a user; id is digits, not all zero.
//   - /users/{id}/orders and /orders?user={id}: that user's order summaries.
//   - /orders/{id}: one order with its customer, language, lines, total and
//     tracking number; id is digits (not all zero) or "o-" and 1..13 of
//     [0-9a-z] (not all zero).
//   - /recommendations/{id}: three catalog products for user id.
//   - /inventory/{sku}: stock for any sku of 1..64 of [A-Za-z0-9._-].
//   - /products/{sku}?lang=en|de|fr: a catalog product, its title in lang
//     (default en); a sku outside the catalog is a 404.
//   - /status: {"service":"demo","ok":true}.
//   - /echo (POST, PUT, PATCH, DELETE): reflects method, body and headers.
//
// Anything else is a JSON 404, and errors are {"error":"..."}.
//
// Calls whose Host is SlowHost (127.0.0.3, any port) play a slow instance
// of an upstream pool: every 4th of them waits 50, 60, 70 or 80 ms (in
// turn) before it is served. Other hosts never wait.
//
// Each call builds a fresh handler, with its own count of calls to
// SlowHost; it is safe for concurrent use.
func Handler() http.Handler { return handler(slowInstance()) }

// handler is Handler with the per-instance delay injected, for tests.
func handler(delay delayFunc) http.Handler {
	mux := http.NewServeMux()
	route(mux, "/users/{id}", getUser, http.MethodGet)
	route(mux, "/users/{id}/orders", getUserOrders, http.MethodGet)
	route(mux, "/orders", getOrders, http.MethodGet)
	route(mux, "/orders/{id}", getOrder, http.MethodGet)
	route(mux, "/products/{sku}", getProduct, http.MethodGet)
	route(mux, "/recommendations/{id}", getRecommendations, http.MethodGet)
	route(mux, "/inventory/{sku}", getInventory, http.MethodGet)
	route(mux, "/status", getStatus, http.MethodGet)
	route(mux, "/echo", echo, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	return withInstanceDelay(withKnobs(mux), delay)
}

// route registers h for path under each method, plus a method-less fallback
// for the same path that answers 405 as JSON (the mux's own 405 is text/plain).
func route(mux *http.ServeMux, path string, h http.HandlerFunc, methods ...string) {
	allow := make([]string, 0, len(methods)+1)
	for _, m := range methods {
		mux.HandleFunc(m+" "+path, h)
		allow = append(allow, m)
		if m == http.MethodGet {
			allow = append(allow, http.MethodHead) // GET patterns also match HEAD
		}
	}
	allowed := strings.Join(allow, ", ")
	mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allowed)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
}

func getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validUserID(id) {
		writeError(w, http.StatusNotFound, "user not found")
		return
	}
	writeJSON(w, http.StatusOK, makeUser(id))
}

func getUserOrders(w http.ResponseWriter, r *http.Request) {
	writeOrders(w, r.PathValue("id"))
}

func getOrders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("user") {
		writeError(w, http.StatusBadRequest, `missing "user" query parameter`)
		return
	}
	writeOrders(w, q.Get("user"))
}

func writeOrders(w http.ResponseWriter, id string) {
	if !validUserID(id) {
		writeError(w, http.StatusNotFound, "user not found")
		return
	}
	writeJSON(w, http.StatusOK, makeOrders(id))
}

func getOrder(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validOrderID(id) {
		writeError(w, http.StatusNotFound, "order not found")
		return
	}
	writeJSON(w, http.StatusOK, makeOrderDetail(id))
}

// getProduct checks ?lang= before the sku, like the knobs: a bad request is
// reported as such whatever it asks for. An absent or empty lang means en.
func getProduct(w http.ResponseWriter, r *http.Request) {
	lang := r.URL.Query().Get("lang")
	if lang == "" {
		lang = productLangs[0]
	}
	if !slices.Contains(productLangs, lang) {
		writeError(w, http.StatusBadRequest, `invalid "lang": want en, de or fr`)
		return
	}
	sku := r.PathValue("sku")
	p, ok := makeProduct(sku, lang)
	if !validSKU(sku) || !ok {
		writeError(w, http.StatusNotFound, "product not found")
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func getRecommendations(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validUserID(id) {
		writeError(w, http.StatusNotFound, "user not found")
		return
	}
	writeJSON(w, http.StatusOK, makeRecommendations(id))
}

func getInventory(w http.ResponseWriter, r *http.Request) {
	sku := r.PathValue("sku")
	if !validSKU(sku) {
		writeError(w, http.StatusNotFound, "sku not found")
		return
	}
	writeJSON(w, http.StatusOK, makeInventory(sku))
}

func getStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Service string `json:"service"`
		OK      bool   `json:"ok"`
	}{"demo", true})
}

// echoReply is the /echo answer. Body is either the request body verbatim
// (when it is valid JSON) or the body as a JSON string.
type echoReply struct {
	Method  string            `json:"method"`
	Body    any               `json:"body"`
	Headers map[string]string `json:"headers"`
}

func echo(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEchoBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large (limit 1 MiB)")
			return
		}
		writeError(w, http.StatusBadRequest, "cannot read request body")
		return
	}
	reply := echoReply{Method: r.Method, Headers: make(map[string]string)}
	if json.Valid(raw) {
		reply.Body = json.RawMessage(raw)
	} else {
		reply.Body = string(raw)
	}
	for _, name := range echoHeaders {
		if vs := r.Header.Values(name); len(vs) > 0 {
			reply.Headers[name] = strings.Join(vs, ", ")
		}
	}
	writeJSON(w, http.StatusOK, reply)
}

// writeJSON encodes v and writes it with the given status. Encoding happens
// before any header is sent so a marshalling failure can still become a 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":"cannot encode response"}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError writes the package's uniform error shape {"error":"..."}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
	}{msg})
}
