package demo_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/internal/demo"
)

const ms = time.Millisecond

// The slow instance's rule, seen through the delay it picks: every 4th
// call to 127.0.0.3 waits 50, 60, 70 or 80 ms in turn, on any port;
// calls to other hosts never wait and do not move the count.
func TestSlowInstanceRule(t *testing.T) {
	t.Parallel()
	delay := demo.SlowInstance()
	others := []string{"127.0.0.1:8080", "127.0.0.2:8080", "127.0.0.30:8080", "127.0.0.33", "localhost:8080", "[::1]:8080", ""}
	var got []time.Duration
	for i := range 20 {
		for _, h := range others[:i%len(others)+1] {
			if d := delay(h); d != 0 {
				t.Fatalf("delay(%q) = %v, want 0: only 127.0.0.3 is slow", h, d)
			}
		}
		host := "127.0.0.3:8080"
		if i%3 == 1 {
			host = "127.0.0.3" // a Host without a port is the same instance
		} else if i%3 == 2 {
			host = "127.0.0.3:9"
		}
		got = append(got, delay(host))
	}
	want := []time.Duration{0, 0, 0, 50 * ms, 0, 0, 0, 60 * ms, 0, 0, 0, 70 * ms, 0, 0, 0, 80 * ms, 0, 0, 0, 50 * ms}
	if !slices.Equal(got, want) {
		t.Errorf("delays of 20 calls to 127.0.0.3 = %v, want %v", got, want)
	}
}

// Under concurrent calls the share stays exact (a quarter of the calls,
// each by one of the four delays equally often), and -race sees no race.
func TestSlowInstanceShareUnderConcurrency(t *testing.T) {
	t.Parallel()
	delay := demo.SlowInstance()
	const workers, each = 8, 100
	var (
		mu     sync.Mutex
		counts = map[time.Duration]int{}
		wg     sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			local := map[time.Duration]int{}
			for range each {
				local[delay("127.0.0.3:8080")]++
				local[delay("127.0.0.2:8080")]++ // never slow, never counted
			}
			mu.Lock()
			defer mu.Unlock()
			for d, n := range local {
				counts[d] += n
			}
		})
	}
	wg.Wait()
	total := workers * each
	want := map[time.Duration]int{0: total + total*3/4, 50 * ms: total / 16, 60 * ms: total / 16, 70 * ms: total / 16, 80 * ms: total / 16}
	if len(counts) != len(want) {
		t.Fatalf("delays chosen = %v, want %v", counts, want)
	}
	for d, n := range want {
		if counts[d] != n {
			t.Errorf("delay %v chosen %d times, want %d (all: %v)", d, counts[d], n, counts)
		}
	}
}

// getAs sends GET path to srv with the given Host header and returns the
// status and how long the answer took.
func getAs(t *testing.T, ctx context.Context, srv *httptest.Server, host, path string) (int, time.Duration, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	start := time.Now()
	resp, err := srv.Client().Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, time.Since(start), err
}

// The handler asks the rule about the request's Host exactly as sent,
// before the knobs, and waits what it says on top of ?delay=.
func TestHandlerAsksTheRuleWithTheHost(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		hosts []string
	)
	srv := httptest.NewServer(demo.NewHandler(func(host string) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		hosts = append(hosts, host)
		if host == "127.0.0.3:8080" {
			return 40 * ms
		}
		return 0
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	for _, tc := range []struct {
		host, path string
		status     int
		atLeast    time.Duration
	}{
		{"127.0.0.1:8080", "/users/7", 200, 0},
		{"127.0.0.3:8080", "/users/7", 200, 40 * ms},
		{"127.0.0.3:8080", "/users/7?delay=30ms", 200, 70 * ms},
		{"127.0.0.3:8080", "/users/7?status=bogus", 400, 40 * ms}, // the wait comes before the knobs
		{"127.0.0.2:8080", "/nope", 404, 0},
	} {
		code, took, err := getAs(t, ctx, srv, tc.host, tc.path)
		if err != nil {
			t.Fatalf("GET %s as %s: %v", tc.path, tc.host, err)
		}
		// Lower bounds only: a loaded machine may take any time longer.
		if code != tc.status || took < tc.atLeast {
			t.Errorf("GET %s as %s: %d after %v, want %d after at least %v", tc.path, tc.host, code, took, tc.status, tc.atLeast)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"127.0.0.1:8080", "127.0.0.3:8080", "127.0.0.3:8080", "127.0.0.3:8080", "127.0.0.2:8080"}
	if !slices.Equal(hosts, want) {
		t.Errorf("the rule was asked about %q, want %q", hosts, want)
	}
}

// A caller that leaves ends the wait at once: the gateway cancels a
// hedge's losing try, and its handler must not sit out the delay.
func TestInstanceDelayEndsWhenTheCallerLeaves(t *testing.T) {
	t.Parallel()
	waiting := make(chan struct{}, 1)
	srv := httptest.NewServer(demo.NewHandler(func(string) time.Duration {
		waiting <- struct{}{}
		return time.Hour
	}))
	t.Cleanup(srv.Close) // on a failure before the bounded Close below
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := getAs(t, ctx, srv, "127.0.0.3:8080", "/users/7")
		errc <- err
	}()
	select {
	case <-waiting:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler never asked for its delay")
	}
	cancel()
	if err := <-errc; err == nil {
		t.Error("the cancelled request got an answer")
	}
	// Close waits for the handler to return; an hour's wait would hang it.
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the handler was still waiting 20s after its caller left")
	}
}

// Handler itself applies the rule: the 4th call to 127.0.0.3 is slowed by
// at least 50 ms; the same calls to 127.0.0.1 are not counted against it.
func TestHandlerSlowsTheFourthCallTo127003(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for i := range 4 {
		if code, _, err := getAs(t, ctx, srv, srv.Listener.Addr().String(), "/status"); err != nil || code != 200 {
			t.Fatalf("GET /status: %d, %v", code, err)
		}
		code, took, err := getAs(t, ctx, srv, "127.0.0.3:8080", "/status")
		if err != nil || code != 200 {
			t.Fatalf("GET /status as 127.0.0.3: %d, %v", code, err)
		}
		if i == 3 && took < 50*ms {
			t.Errorf("the 4th call to 127.0.0.3 took %v, want at least 50ms", took)
		}
	}
}
