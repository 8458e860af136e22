package fetch_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// slowOK answers 200 after d.
func slowOK(t *testing.T, d time.Duration) string {
	return serve(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `{"ok":true}`)
	})
}

// A hedge that cannot even be sent (the bulkhead is full: the first try
// holds its only slot) must not end the race: the first try, still in
// flight, answers the call.
func TestReviewHedgeRefusedByBulkheadDoesNotWin(t *testing.T) {
	t.Parallel()
	urls := []string{slowOK(t, 150*time.Millisecond), slowOK(t, 150*time.Millisecond)}
	yaml := strings.Replace(hedgeYAML(urls, "{after: 20ms, max_percent: 100}"), "timeout: 2s", "timeout: 2s\n    max_concurrent: 1", 1)
	t.Run("merged", func(t *testing.T) {
		eps, _ := endpointsWith(t, yaml, (&hedgeCounts{}).hooks())
		for i := range 3 {
			if r := fetchOnce(t, eps[0]); r.Err != nil {
				t.Fatalf("call %d: %v (the refused hedge ended the race)", i, r.Err)
			}
		}
	})
	t.Run("relay", func(t *testing.T) {
		eps, _ := endpointsWith(t, strings.Replace(yaml, "path: /x, hedge:", "path: /x, passthrough: true, hedge:", 1), (&hedgeCounts{}).hooks())
		for i := range 3 {
			rel, err := eps[0].Relay(context.Background(), inbound())
			if err != nil {
				t.Fatalf("call %d: %v (the refused hedge ended the race)", i, err)
			}
			io.Copy(io.Discard, rel.Body)
			rel.Close()
			if rel.Response.StatusCode != 200 {
				t.Fatalf("call %d: status %d", i, rel.Response.StatusCode)
			}
		}
	})
}
