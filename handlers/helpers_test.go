package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/handlers"
)

// upstream starts a real loopback server for h and returns its URL.
func upstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// jsonUpstream answers every request with body after delay (or the client leaving).
func jsonUpstream(t *testing.T, delay time.Duration, body string) string {
	return upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !wait(r.Context(), delay) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})
}

// wait pauses for d unless ctx ends first; it reports whether d passed.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// gateway loads yaml (with {{name}} replaced by urls[name]) and serves it on
// a real loopback listener; it returns the base URL.
func gateway(t *testing.T, yaml string, urls map[string]string) string {
	t.Helper()
	base, _ := gatewayWith(t, yaml, urls, handlers.Options{})
	return base
}

func gatewayWith(t *testing.T, yaml string, urls map[string]string, opts handlers.Options) (string, *handlers.Gateway) {
	t.Helper()
	for name, u := range urls {
		yaml = strings.ReplaceAll(yaml, "{{"+name+"}}", u)
	}
	cfg, err := config.Parse("test.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	gw, err := handlers.New(cfg, opts)
	if err != nil {
		t.Fatalf("gateway: %v", err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		srv.Close()
		gw.Close()
	})
	return srv.URL, gw
}

type answer struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func do(t *testing.T, method, url string, body io.Reader, hdr map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return answer{resp.StatusCode, resp.Header, b, time.Since(start)}
}

func get(t *testing.T, url string) answer { return do(t, http.MethodGet, url, nil, nil) }

// decode parses a JSON object answer.
func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, a.body)
	}
	return m
}

// errorOf checks the gateway's error shape and returns its fields.
func (a answer) errorOf(t *testing.T) (status float64, message string, backends map[string]any) {
	t.Helper()
	m := a.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", a.body)
	}
	status, _ = e["status"].(float64)
	message, _ = e["message"].(string)
	backends, _ = e["backends"].(map[string]any)
	if int(status) != a.status {
		t.Errorf("error.status %v, HTTP status %d", status, a.status)
	}
	if message == "" {
		t.Errorf("error without message: %s", a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("error answer Cache-Control %q, want no-store", cc)
	}
	return status, message, backends
}
