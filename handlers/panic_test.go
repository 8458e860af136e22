package handlers_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/manifold-gw/manifold/handlers"
)

// A handler that panics is logged and counted with the answer the client
// got: 500 when nothing had been written, else the status that went out;
// completed=false either way. One whose answer had begun is cut off, so
// the client cannot take the truncated body for a whole one.
func TestPanicIsLoggedAsItsAnswer(t *testing.T) {
	tests := []struct {
		name   string
		panic  func(w http.ResponseWriter)
		status int
		cut    bool
	}{
		{"before writing", func(http.ResponseWriter) { panic("boom") }, 500, false},
		{"after writing", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			panic("boom")
		}, 202, true},
		{"abort after writing", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
			panic(http.ErrAbortHandler)
		}, 202, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logLines{}
			m := handlers.NewMetrics()
			demo := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { tc.panic(w) })
			base, _ := gatewayWith(t, `
demo: true
upstreams:
  u: {url: "http://127.0.0.1:1"}
endpoints:
  - path: /p
    backends: [{upstream: u, path: /}]
`, nil, handlers.Options{Logger: slog.New(logs), Metrics: m, Demo: demo})

			resp, err := client.Get(base + "/__demo/x")
			if err != nil {
				t.Fatal(err)
			}
			_, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Cleanup(client.CloseIdleConnections)
			if resp.StatusCode != tc.status {
				t.Errorf("client got %d, want %d", resp.StatusCode, tc.status)
			}
			if cut := rerr != nil; cut != tc.cut {
				t.Errorf("body read error %v, want the answer cut off: %v", rerr, tc.cut)
			}

			waitFor(t, "the access line", func() bool { return len(logs.with("request")) > 0 })
			access := logs.with("request")
			if len(access) != 1 {
				t.Fatalf("%d access lines, want 1", len(access))
			}
			if got, want := access[0].attrs["status"], fmt.Sprint(tc.status); got != want {
				t.Errorf("access line status=%s, want %s (what the client got)", got, want)
			}
			if access[0].attrs["completed"] != "false" {
				t.Errorf("access line completed=%s, want false", access[0].attrs["completed"])
			}
			want := fmt.Sprintf(`manifold_requests_total{code="%d",endpoint="/__demo/*rest",method="GET"} 1`, tc.status)
			if got := scrape(t, m, `manifold_requests_total{`); len(got) != 1 || got[0] != want {
				t.Errorf("request samples %v, want %s", got, want)
			}
		})
	}
}
