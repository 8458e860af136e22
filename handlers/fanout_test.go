package handlers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"
)

const threeBackends = `
upstreams:
  a: {url: "{{a}}", timeout: 2s}
  b: {url: "{{b}}", timeout: 2s}
  c: {url: "{{c}}", timeout: 2s}
endpoints:
  - path: /agg/{id}
    timeout: %s
    expose_errors: true
    backends:
      - {upstream: a, path: "/a/{id}"}
      - {upstream: b, path: "/b/{id}"}
      - {upstream: c, path: "/c/{id}"}
`

func TestFanOutIsParallel(t *testing.T) {
	const each = 100 * time.Millisecond
	urls := map[string]string{
		"a": jsonUpstream(t, each, `{"a":1}`),
		"b": jsonUpstream(t, each, `{"b":2}`),
		"c": jsonUpstream(t, each, `{"c":3}`),
	}
	base := gateway(t, fmt.Sprintf(threeBackends, "2s"), urls)
	get(t, base+"/agg/1") // warm the connection pools
	a := get(t, base+"/agg/1")
	if a.status != 200 || string(a.body) != `{"a":1,"b":2,"c":3}` {
		t.Fatalf("got %d %s", a.status, a.body)
	}
	// In sequence the three calls take >= 300ms; in parallel ~100ms. 250ms
	// separates the two with room for a loaded CI machine.
	if a.took >= 250*time.Millisecond {
		t.Fatalf("three 100ms backends took %v: not parallel", a.took)
	}
	t.Logf("three 100ms backends answered in %v", a.took)
}

func TestHungBackendIsCutAtEndpointTimeout(t *testing.T) {
	released := make(chan struct{})
	hung := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers; ends only when the gateway gives up
		close(released)
	})
	urls := map[string]string{"a": jsonUpstream(t, 0, `{"a":1}`), "b": hung, "c": jsonUpstream(t, 0, `{"c":3}`)}
	const timeout = 300 * time.Millisecond
	base := gateway(t, fmt.Sprintf(threeBackends, timeout), urls)

	a := get(t, base+"/agg/1")
	if a.status != 200 {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if got := a.header.Get("X-Manifold-Completed"); got != "false" {
		t.Errorf("X-Manifold-Completed %q, want false", got)
	}
	if want := `{"a":1,"c":3,"_errors":{"b":"timeout"}}`; string(a.body) != want {
		t.Errorf("body %s, want %s", a.body, want)
	}
	if a.took < timeout-50*time.Millisecond || a.took > timeout+500*time.Millisecond {
		t.Errorf("answered after %v; endpoint timeout is %v", a.took, timeout)
	}
	select {
	case <-released:
	case <-time.After(2 * time.Second):
		t.Fatal("the hung upstream's request was never cancelled")
	}
}

func TestClientDisconnectCancelsUpstreamCalls(t *testing.T) {
	arrived := make(chan struct{})
	cancelled := make(chan struct{})
	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	base := gateway(t, `
upstreams:
  s: {url: "{{s}}", timeout: 20s}
endpoints:
  - path: /slow
    timeout: 20s
    backends: [{upstream: s, path: /x}]
`, map[string]string{"s": slow})

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/slow", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream never called")
	}
	cancel()
	start := time.Now()
	select {
	case <-cancelled:
		t.Logf("upstream saw the cancellation %v after the client left", time.Since(start))
	case <-time.After(2 * time.Second):
		t.Fatal("upstream request still running 2s after the client went away")
	}
	if err := <-errc; err == nil {
		t.Error("client request unexpectedly succeeded")
	}
}

func TestDeterministicMergeInConfigOrder(t *testing.T) {
	t.Parallel() // 50 requests with up to 15ms of jitter each
	jitter := func(v string) string {
		return upstream(t, func(w http.ResponseWriter, r *http.Request) {
			wait(r.Context(), time.Duration(rand.IntN(15))*time.Millisecond)
			fmt.Fprintf(w, `{"k":%q,"only_%s":true,"shared":{"from":%q}}`, v, v, v)
		})
	}
	urls := map[string]string{"a": jitter("a"), "b": jitter("b"), "c": jitter("c")}
	base := gateway(t, fmt.Sprintf(threeBackends, "2s"), urls)
	want := `{"k":"c","only_a":true,"shared":{"from":"c"},"only_b":true,"only_c":true}`
	for i := range 50 {
		a := get(t, base+"/agg/1")
		if string(a.body) != want {
			t.Fatalf("request %d: %s, want %s", i, a.body, want)
		}
	}
}

func TestFailureStatusMapping(t *testing.T) {
	ok := jsonUpstream(t, 0, `{"ok":true}`)
	fail500 := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	missing := upstream(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, `{"e":1}`, 404) })
	hang := upstream(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	redirect := upstream(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) })

	tests := []struct {
		name      string
		first     string
		firstReq  bool
		second    string
		status    int
		backends  map[string]any
		completed string
	}{
		{"required 5xx is 502", fail500, true, ok, 502, map[string]any{"one": "status 500"}, ""},
		{"required timeout is 504", hang, true, ok, 504, map[string]any{"one": "timeout"}, ""},
		{"required 4xx is relayed", missing, true, ok, 404, map[string]any{"one": "status 404"}, ""},
		{"required redirect is 502", redirect, true, ok, 502, map[string]any{"one": "status 302"}, ""},
		{"all failed, first is 5xx: 502", fail500, false, hang, 502, map[string]any{"one": "status 500", "two": "timeout"}, ""},
		{"all failed, first is timeout: 504", hang, false, fail500, 504, map[string]any{"one": "timeout", "two": "status 500"}, ""},
		{"optional failure is partial 200", fail500, false, ok, 200, nil, "false"},
		{"all succeed", ok, true, ok, 200, nil, "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // three cases wait out the 300ms endpoint timeout
			base := gateway(t, fmt.Sprintf(`
upstreams:
  first: {url: "{{first}}", timeout: 2s}
  second: {url: "{{second}}", timeout: 2s}
endpoints:
  - path: /e
    timeout: 300ms
    backends:
      - {upstream: first, path: /x, group: one, required: %v}
      - {upstream: second, path: /y, group: two}
`, tt.firstReq), map[string]string{"first": tt.first, "second": tt.second})
			a := get(t, base+"/e")
			if a.status != tt.status {
				t.Fatalf("status %d, want %d: %s", a.status, tt.status, a.body)
			}
			if tt.status != 200 {
				_, _, backends := a.errorOf(t)
				if fmt.Sprint(backends) != fmt.Sprint(tt.backends) {
					t.Errorf("backends %v, want %v", backends, tt.backends)
				}
				return
			}
			if got := a.header.Get("X-Manifold-Completed"); got != tt.completed {
				t.Errorf("X-Manifold-Completed %q, want %q", got, tt.completed)
			}
			if tt.completed == "false" {
				if string(a.body) != `{"two":{"ok":true}}` {
					t.Errorf("partial body %s", a.body)
				}
				if a.header.Get("Cache-Control") != "no-store" {
					t.Error("partial answer without Cache-Control: no-store")
				}
			}
		})
	}
}

func TestBadUpstreamBodiesFailOnlyTheirBackend(t *testing.T) {
	big := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"pad":"%s"}`, strings.Repeat("x", 500))
	})
	notJSON := upstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>oops</html>") })
	noContent := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	accepted := upstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(202) })
	ok := jsonUpstream(t, 0, `{"fine":1}`)
	base := gateway(t, `
upstreams:
  big: {url: "{{big}}", max_response_bytes: 100}
  html: {url: "{{html}}"}
  nocontent: {url: "{{nocontent}}"}
  accepted: {url: "{{accepted}}"}
  ok: {url: "{{ok}}"}
endpoints:
  - path: /e
    expose_errors: true
    backends:
      - {upstream: big, path: /, group: big}
      - {upstream: html, path: /, group: html}
      - {upstream: nocontent, path: /, group: nocontent}
      - {upstream: accepted, path: /, group: accepted}
      - {upstream: ok, path: /}
`, map[string]string{"big": big, "html": notJSON, "nocontent": noContent, "accepted": accepted, "ok": ok})
	a := get(t, base+"/e")
	want := `{"nocontent":{},"accepted":{},"fine":1,"_errors":{"big":"response too large","html":"invalid JSON response"}}`
	if a.status != 200 || string(a.body) != want {
		t.Fatalf("got %d %s\nwant %s", a.status, a.body, want)
	}
}

func TestValuesPassThroughExactly(t *testing.T) {
	const raw = `{"big":9007199254740993,"f":0.1000000000000000055511151231257827,"s":"\u00e9\n","drop":1}`
	up := jsonUpstream(t, 0, raw)
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /merged
    backends:
      - {upstream: u, path: /}
      - {upstream: u, path: /, group: g}
  - path: /shaped
    backends:
      - {upstream: u, path: /, allow: [big, f, s], rename: {big: huge, s: str}}
`, map[string]string{"u": up})
	tests := []struct{ path, want string }{
		{"/merged", `{"big":9007199254740993,"f":0.1000000000000000055511151231257827,"s":"\u00e9\n","drop":1,"g":` + raw + `}`},
		{"/shaped", `{"huge":9007199254740993,"f":0.1000000000000000055511151231257827,"str":"\u00e9\n"}`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			a := get(t, base+tt.path)
			if string(a.body) != tt.want {
				t.Fatalf("got  %s\nwant %s", a.body, tt.want)
			}
		})
	}
}
