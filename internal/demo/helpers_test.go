package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/demo"
)

// newServer starts the demo handler on a real socket and closes it when the
// test ends.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(demo.Handler())
	t.Cleanup(srv.Close)
	return srv
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request and returns the fully read, closed response.
func do(t *testing.T, srv *httptest.Server, method, path string, body []byte, header http.Header) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func get(t *testing.T, srv *httptest.Server, path string) reply {
	t.Helper()
	return do(t, srv, http.MethodGet, path, nil, nil)
}

// decode unmarshals a JSON reply (numbers kept as json.Number) after checking
// its status and Content-Type.
func decode(t *testing.T, r reply, wantStatus int, v any) {
	t.Helper()
	if r.status != wantStatus {
		t.Fatalf("status = %d, want %d; body %s", r.status, wantStatus, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
}

// wantError checks for the package's {"error":"..."} shape.
func wantError(t *testing.T, r reply, wantStatus int, wantMsg string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	decode(t, r, wantStatus, &e)
	if e.Error == "" || (wantMsg != "" && e.Error != wantMsg) {
		t.Fatalf("error = %q, want %q", e.Error, wantMsg)
	}
}
