package demo_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"sync"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/demo"
)

func TestStatusKnob(t *testing.T) {
	srv := newServer(t)
	plain := get(t, srv, "/users/42")
	for _, tc := range []struct {
		name, path string
		status     int
		body       string // exact body; "" means empty
	}{
		{"503", "/users/42?status=503", 503, `{"status":503,"injected":true}` + "\n"},
		{"201", "/users/42?status=201", 201, `{"status":201,"injected":true}` + "\n"},
		{"404 on a real user", "/users/42?status=404", 404, `{"status":404,"injected":true}` + "\n"},
		{"599", "/status?status=599", 599, `{"status":599,"injected":true}` + "\n"},
		{"204 has no body", "/users/42?status=204", 204, ""},
		{"304 has no body", "/users/42?status=304", 304, ""},
		{"on echo", "/echo?status=502", 502, `{"status":502,"injected":true}` + "\n"},
		{"on unknown path", "/nope?status=418", 418, `{"status":418,"injected":true}` + "\n"},
		{"200 is the normal answer", "/users/42?status=200", 200, string(plain.body)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodGet
			if tc.name == "on echo" {
				method = http.MethodPost
			}
			r := do(t, srv, method, tc.path, nil, nil)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d", r.status, tc.status)
			}
			if string(r.body) != tc.body {
				t.Errorf("body = %q, want %q", r.body, tc.body)
			}
		})
	}
	for _, bad := range []string{"abc", "", "99", "600", "2.5", "101"} {
		t.Run("bad "+bad, func(t *testing.T) {
			wantError(t, get(t, srv, "/users/42?status="+bad), http.StatusBadRequest, "")
		})
	}
	t.Run("1xx is interim then the normal answer", func(t *testing.T) {
		var (
			mu  sync.Mutex
			got []int
		)
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, code)
			return nil
		}}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace),
			http.MethodGet, srv.URL+"/users/42?status=103", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(resp.Body); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 || got[0] != 103 {
			t.Errorf("interim responses = %v, want [103]", got)
		}
		if resp.StatusCode != 200 || !bytes.Equal(buf.Bytes(), plain.body) {
			t.Errorf("final = %d %s, want 200 %s", resp.StatusCode, buf.Bytes(), plain.body)
		}
	})
}

func TestFailKnob(t *testing.T) {
	srv := newServer(t)
	const tries = 25
	for _, tc := range []struct {
		name, path string
		want       int
	}{
		{"fail=1 always fails", "/users/42?fail=1", http.StatusInternalServerError},
		{"fail=0 never fails", "/users/42?fail=0", http.StatusOK},
		{"fail=1 wins over status", "/users/42?fail=1&status=503", http.StatusInternalServerError},
		{"fail=0 leaves status", "/users/42?fail=0&status=503", http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range tries {
				r := get(t, srv, tc.path)
				if r.status != tc.want {
					t.Fatalf("status = %d, want %d; body %s", r.status, tc.want, r.body)
				}
				if tc.want == http.StatusInternalServerError {
					wantError(t, r, http.StatusInternalServerError, "injected failure")
				}
			}
		})
	}
	t.Run("fail=0.5 does both", func(t *testing.T) {
		// P(200 identical outcomes) = 2^-199: not a flaky test.
		seen := map[int]bool{}
		for range 200 {
			seen[get(t, srv, "/status?fail=0.5").status] = true
		}
		if !seen[http.StatusOK] || !seen[http.StatusInternalServerError] || len(seen) != 2 {
			t.Errorf("statuses seen = %v, want both 200 and 500", seen)
		}
	})
	for _, bad := range []string{"2", "-0.1", "1.01", "abc", "", "NaN", "Inf"} {
		t.Run("bad "+bad, func(t *testing.T) {
			wantError(t, get(t, srv, "/users/42?fail="+bad), http.StatusBadRequest, "")
		})
	}
}

func TestDelayKnob(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		name, path string
		min        time.Duration
		status     int
	}{
		{"100ms", "/users/42?delay=100ms", 100 * time.Millisecond, http.StatusOK},
		{"zero", "/users/42?delay=0s", 0, http.StatusOK},
		{"then status", "/status?delay=50ms&status=503", 50 * time.Millisecond, http.StatusServiceUnavailable},
		{"then fail", "/status?delay=50ms&fail=1", 50 * time.Millisecond, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := get(t, srv, tc.path)
			if elapsed := time.Since(start); elapsed < tc.min {
				t.Errorf("answered after %v, want at least %v", elapsed, tc.min)
			}
			if r.status != tc.status {
				t.Errorf("status = %d, want %d", r.status, tc.status)
			}
		})
	}
	for _, tc := range []struct{ name, query string }{
		{"bad", "delay=bad"},
		{"no unit", "delay=100"},
		{"negative", "delay=-1s"},
		{"empty", "delay="},
		// Validation happens before waiting: a bad knob never costs the delay.
		{"bad status with long delay", "delay=20s&status=abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, get(t, srv, "/users/42?"+tc.query), http.StatusBadRequest, "")
		})
	}
}

// TestDelayHonoursCancellation proves both sides give up: the client call
// returns promptly and the server-side handler has returned (observed through
// a channel closed when ServeHTTP returns, not by sleeping).
func TestDelayHonoursCancellation(t *testing.T) {
	for _, path := range []string{"/users/42?delay=10s", "/status?delay=30s&status=503"} {
		t.Run(path, func(t *testing.T) {
			returned := make(chan struct{})
			var once sync.Once
			h := demo.Handler()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer once.Do(func() { close(returned) })
				h.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)

			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			resp, err := srv.Client().Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("got %d, want the request to be cancelled", resp.StatusCode)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("client returned after %v, want promptly", elapsed)
			}
			select {
			case <-returned:
			case <-time.After(2 * time.Second):
				t.Fatal("handler still running 2s after the client gave up")
			}
		})
	}
}
