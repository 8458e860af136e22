package handlers_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/handlers"
)

// syncBuffer is a bytes.Buffer that the gateway's goroutines may write to
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(s.b.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %s", err, l)
		}
		out = append(out, m)
	}
	return out
}

// Durations in the JSON logs are seconds as a float, as in the
// manifold_*_duration_seconds metrics, not bare nanoseconds: an access line
// of a request that took about 150 ms says "duration":0.15…, and so does
// the warn line of the backend that timed out.
func TestLogDurationsAreSeconds(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	slow := jsonUpstream(t, 5*time.Second, `{}`)
	fast := jsonUpstream(t, 0, `{"a":1}`)
	base, _ := gatewayWith(t, `
upstreams:
  slow: {url: "{{slow}}", timeout: 150ms}
  fast: {url: "{{fast}}"}
endpoints:
  - path: /x
    backends:
      - {upstream: slow, path: /}
      - {upstream: fast, path: /}
`, map[string]string{"slow": slow, "fast": fast}, handlers.Options{Logger: logger})
	if a := get(t, base+"/x"); a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	var access, backend map[string]any
	waitFor(t, "the access line", func() bool {
		for _, l := range buf.lines(t) {
			switch l["msg"] {
			case "request":
				access = l
			case "backend failed":
				backend = l
			}
		}
		return access != nil && backend != nil
	})
	for name, line := range map[string]map[string]any{"access": access, "backend failed": backend} {
		d, ok := line["duration"].(float64)
		// 150 ms of upstream timeout, less the gateway's headroom; at most
		// the 5 s the slow upstream would take, which it was not let take.
		if !ok || d < 0.1 || d >= 5 {
			t.Errorf("%s line duration = %#v, want seconds as a float near 0.15", name, line["duration"])
		}
	}
}
