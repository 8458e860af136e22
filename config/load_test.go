package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// ---- helpers ----

// envOf is an environment made of m only: tests never read the process
// environment through Load.
func envOf(m map[string]string) config.Getenv {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustLoad writes yaml to a temporary file and loads it.
func mustLoad(t *testing.T, yaml string, env map[string]string) *config.Config {
	t.Helper()
	p := writeFile(t, t.TempDir(), "config.yaml", yaml)
	cfg, err := config.Load(p, envOf(env))
	if err != nil {
		t.Fatalf("Load: unexpected error:\n%v\n--- file:\n%s", err, yaml)
	}
	if cfg.File != p {
		t.Errorf("cfg.File = %q, want %q", cfg.File, p)
	}
	return cfg
}

// problemsOf asserts err is an invalid-configuration error and returns its
// problems.
func problemsOf(t *testing.T, err error) config.Problems {
	t.Helper()
	if err == nil {
		t.Fatal("expected an invalid configuration, got no error")
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("errors.As(err, *Problems) = false for %T: %v", err, err)
	}
	if len(ps) == 0 {
		t.Fatal("Problems is empty")
	}
	return ps
}

func paths(ps config.Problems) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Path
	}
	return out
}

const twoUpstreams = `upstreams:
  users: {url: "http://users.test"}
  orders: {url: "http://orders.test"}
`

const validEndpoint = `  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{id}"}
`

// withEndpoints is a file with the upstreams users and orders and the given
// endpoints (list items indented by two spaces).
func withEndpoints(endpoints string) string {
	return twoUpstreams + "endpoints:\n" + endpoints
}

// withTop is a valid file with extra top-level YAML in front.
func withTop(top string) string {
	return top + withEndpoints(validEndpoint)
}

// withUpstream is a valid file whose users upstream has the given flow
// mapping body (without braces).
func withUpstream(body string) string {
	return "upstreams:\n  users: {" + body + "}\n  orders: {url: \"http://orders.test\"}\nendpoints:\n" + validEndpoint
}

// withEndpointKeys is a valid file whose one endpoint also has the given
// keys (each line indented by four spaces).
func withEndpointKeys(keys string) string {
	return withEndpoints("  - path: /u/{id}\n" + keys + "    backends:\n      - {upstream: users, path: \"/users/{id}\"}\n")
}

// withBackends is a file with one endpoint /u/{id} and the given backend
// items (each a flow mapping).
func withBackends(backends ...string) string {
	var b strings.Builder
	b.WriteString("  - path: /u/{id}\n    backends:\n")
	for _, be := range backends {
		b.WriteString("      - " + be + "\n")
	}
	return withEndpoints(b.String())
}

// ---- valid files ----

func TestLoadShippedConfig(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("../config.yaml", envOf(nil))
	if err != nil {
		t.Fatalf("the shipped config.yaml does not load:\n%v", err)
	}
	if cfg.File != "../config.yaml" {
		t.Errorf("File = %q", cfg.File)
	}
	if cfg.Server.Address != ":8080" || !cfg.Demo {
		t.Errorf("server.address = %q, demo = %v; want \":8080\", true", cfg.Server.Address, cfg.Demo)
	}
	if !slices.IsSorted(cfg.UpstreamNames) || len(cfg.UpstreamNames) != len(cfg.Upstreams) {
		t.Errorf("UpstreamNames = %v, want every upstream name, sorted", cfg.UpstreamNames)
	}
	for _, name := range []string{"orders", "recommendations", "users"} {
		if !slices.Contains(cfg.UpstreamNames, name) {
			t.Errorf("UpstreamNames = %v, want %s among them", cfg.UpstreamNames, name)
		}
	}
	users := cfg.Upstreams["users"]
	if users == nil || users.Name != "users" {
		t.Fatalf("upstream users = %+v", users)
	}
	if users.BaseURL == nil || users.BaseURL.String() != "http://127.0.0.1:8080/__demo" {
		t.Errorf("users BaseURL = %v, want http://127.0.0.1:8080/__demo (${DEMO_URL:-...} default)", users.BaseURL)
	}
	if got := cfg.Upstreams["recommendations"].Timeout; got != 500*time.Millisecond {
		t.Errorf("recommendations timeout = %v, want 500ms", got)
	}
	if !users.CircuitBreaker.Enabled || users.CircuitBreaker.ConsecutiveFailures != 5 {
		t.Errorf("users circuit breaker = %+v, want the defaults (enabled, 5 failures)", users.CircuitBreaker)
	}

	if len(cfg.Endpoints) < 4 {
		t.Fatalf("%d endpoints, want at least 4", len(cfg.Endpoints))
	}
	profile := cfg.Endpoints[0]
	if profile.Path != "/api/profile/{id}" || profile.Route != "/api/profile/:id" || !slices.Equal(profile.Params, []string{"id"}) {
		t.Errorf("endpoint 0: path %q route %q params %v", profile.Path, profile.Route, profile.Params)
	}
	if profile.Method != "GET" || profile.Timeout != 2*time.Second || !profile.ExposeErrors {
		t.Errorf("endpoint 0: method %q timeout %v expose_errors %v", profile.Method, profile.Timeout, profile.ExposeErrors)
	}
	if !slices.Equal(profile.ForwardHeaderKeys, []string{"Accept-Language"}) {
		t.Errorf("endpoint 0 ForwardHeaderKeys = %v", profile.ForwardHeaderKeys)
	}
	if len(profile.Backends) != 3 || profile.Backends[0].Group != "user" || !profile.Backends[0].Required {
		t.Fatalf("endpoint 0 backends = %+v", profile.Backends)
	}
	orders := profile.Backends[1]
	if orders.Template == nil || !orders.Template.HasQuery() {
		t.Fatalf("orders backend template %+v should carry its static query", orders.Template)
	}
	if got := string(orders.Template.AppendQuery(nil, []string{"7"})); got != "user=7" {
		t.Errorf("orders query = %q, want user=7", got)
	}
	for _, ep := range cfg.Endpoints {
		if ep.Path == "/api/users/{id}/summary" {
			if ep.Timeout != 3*time.Second || ep.Method != "GET" {
				t.Errorf("summary endpoint: timeout %v method %q, want the defaults 3s GET", ep.Timeout, ep.Method)
			}
			if got := ep.Backends[1].Rename; !reflect.DeepEqual(got, map[string]string{"count": "order_count"}) {
				t.Errorf("summary rename = %v", got)
			}
		}
		if ep.Path == "/api/echo" && (ep.Method != "POST" || !ep.Backends[0].Passthrough) {
			t.Errorf("echo endpoint: method %q passthrough %v", ep.Method, ep.Backends[0].Passthrough)
		}
	}

	t.Run("DEMO_URL overrides the default", func(t *testing.T) {
		t.Parallel()
		cfg, err := config.Load("../config.yaml", envOf(map[string]string{"DEMO_URL": "https://demo.test:8443"}))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Upstreams["orders"].BaseURL.String(); got != "https://demo.test:8443/__demo" {
			t.Errorf("orders BaseURL = %q", got)
		}
	})
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `upstreams:
  users: {url: "http://users.test/"}
endpoints:
  - path: /u/{id}
    rate_limit: {rps: 2.5, burst: 3}
    backends:
      - {upstream: users, path: "/users/{id}"}
`, nil)

	wantServer := config.Server{
		Address:           ":8080",
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		DrainDelay:        0,
		ShutdownTimeout:   15 * time.Second,
		MaxBodyBytes:      1048576,
		Compression:       config.Compression{Enabled: true, MinBytes: 1024},
		CacheBytes:        64 << 20,
		Shadow:            config.Shadow{Workers: 8, Queue: 1024},
	}
	gotServer := cfg.Server
	if len(gotServer.TrustedProxies) != 0 || len(gotServer.TrustedPrefixes) != 0 {
		t.Errorf("trusted proxies = %v / %v, want none", gotServer.TrustedProxies, gotServer.TrustedPrefixes)
	}
	gotServer.TrustedProxies, gotServer.TrustedPrefixes = nil, nil
	if !reflect.DeepEqual(gotServer, wantServer) {
		t.Errorf("server defaults:\n got %+v\nwant %+v", gotServer, wantServer)
	}
	if cfg.Admin.Address != "127.0.0.1:9091" {
		t.Errorf("admin.address = %q", cfg.Admin.Address)
	}
	if cfg.Log != (config.Log{Level: "info", Format: "json", BackendFailuresPerSecond: 10}) {
		t.Errorf("log = %+v", cfg.Log)
	}
	if cfg.Demo {
		t.Error("demo defaults to true")
	}

	u := cfg.Upstreams["users"]
	if u.Timeout != time.Second || u.MaxConcurrent != 0 || u.MaxResponseBytes != 4194304 || len(u.Headers) != 0 {
		t.Errorf("upstream defaults: %+v", u)
	}
	if u.Retry != (config.Retry{Attempts: 0, Backoff: 25 * time.Millisecond}) {
		t.Errorf("retry defaults: %+v", u.Retry)
	}
	wantCB := config.CircuitBreaker{Enabled: true, ConsecutiveFailures: 5, FailureRatio: 0, MinRequests: 20,
		Interval: 60 * time.Second, OpenTimeout: 30 * time.Second, HalfOpenRequests: 1}
	if u.CircuitBreaker != wantCB {
		t.Errorf("circuit_breaker defaults:\n got %+v\nwant %+v", u.CircuitBreaker, wantCB)
	}
	if u.BaseURL.String() != "http://users.test" || u.BaseURL.Path != "" {
		t.Errorf("BaseURL = %q (path %q), want the trailing slash removed", u.BaseURL, u.BaseURL.Path)
	}

	ep := cfg.Endpoints[0]
	if ep.Method != "GET" || ep.Timeout != 3*time.Second || ep.ExposeErrors || len(ep.ForwardHeaders) != 0 || len(ep.ForwardQuery) != 0 || ep.ForwardAllQuery {
		t.Errorf("endpoint defaults: %+v", ep)
	}
	if ep.RateLimit == nil {
		t.Fatal("rate_limit lost")
	}
	if *ep.RateLimit != (config.RateLimit{RPS: 2.5, Burst: 3, Per: "global", ClientKey: "ip", Store: "local", OnError: "allow"}) {
		t.Errorf("rate_limit = %+v, want per global, client_key ip by default", *ep.RateLimit)
	}
	be := ep.Backends[0]
	if be.Method != "GET" || be.Required || be.Passthrough || be.Group != "" || be.Label != "users" {
		t.Errorf("backend defaults: %+v", be)
	}

	t.Run("a partly given section keeps the other defaults", func(t *testing.T) {
		t.Parallel()
		cfg := mustLoad(t, "server: {drain_delay: 1s}\n"+withUpstream(`url: "http://users.test", retry: {attempts: 1}, circuit_breaker: {consecutive_failures: 3, open_timeout: 10s}`), nil)
		if s := cfg.Server; s.DrainDelay != time.Second || s.Address != ":8080" || s.ShutdownTimeout != 15*time.Second {
			t.Errorf("server = %+v", s)
		}
		u := cfg.Upstreams["users"]
		if u.Retry != (config.Retry{Attempts: 1, Backoff: 25 * time.Millisecond}) {
			t.Errorf("retry = %+v", u.Retry)
		}
		want := config.CircuitBreaker{Enabled: true, ConsecutiveFailures: 3, MinRequests: 20,
			Interval: 60 * time.Second, OpenTimeout: 10 * time.Second, HalfOpenRequests: 1}
		if u.CircuitBreaker != want {
			t.Errorf("circuit_breaker = %+v, want %+v", u.CircuitBreaker, want)
		}
		if o := cfg.Upstreams["orders"]; o.Timeout != time.Second || !o.CircuitBreaker.Enabled {
			t.Errorf("orders = %+v", o)
		}
	})

	t.Run("no rate_limit means unlimited", func(t *testing.T) {
		t.Parallel()
		cfg := mustLoad(t, withEndpoints(validEndpoint), nil)
		if cfg.Endpoints[0].RateLimit != nil {
			t.Errorf("RateLimit = %+v, want nil", cfg.Endpoints[0].RateLimit)
		}
	})
}

func TestExplicitValuesBeatDefaults(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `server:
  address: "127.0.0.1:8081"
  drain_delay: 2s
  max_body_bytes: 10
  trusted_proxies: [10.0.0.0/8, 192.168.1.7, "2001:db8::/32", 10.1.2.3/8]
admin: {address: ""}
log: {level: debug, format: text, backend_failures_per_second: 0}
demo: true
upstreams:
  users:
    url: https://users.test:8443/v1/
    timeout: 250ms
    max_concurrent: 8
    max_connections: 16
    max_response_bytes: 1024
    retry: {attempts: 2, backoff: 10ms}
    circuit_breaker: {enabled: false, consecutive_failures: 3, failure_ratio: 0.5, min_requests: 4, interval: 0s, open_timeout: 1s, half_open_requests: 2}
endpoints:
  - path: /a/{x}/b/{y}
    method: post
    timeout: 1500ms
    forward_headers: [accept-language, x-request-thing]
    forward_query: ["*"]
    expose_errors: true
    rate_limit: {rps: 0.5, burst: 1, per: client, client_key: "header:x-api-key"}
    backends:
      - {upstream: users, path: "/y/{y}/x/{x}", method: put, group: g, required: true}
      - {upstream: users, path: /plain, target: data.items, allow: [id, a.b], deny: [secret]}
      - {upstream: users, path: /plain2}
`, nil)
	s := cfg.Server
	if s.Address != "127.0.0.1:8081" || s.DrainDelay != 2*time.Second || s.MaxBodyBytes != 10 {
		t.Errorf("server = %+v", s)
	}
	wantPrefixes := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("10.0.0.0/8"), // 10.1.2.3/8 masked
	}
	if !slices.Equal(s.TrustedPrefixes, wantPrefixes) {
		t.Errorf("TrustedPrefixes = %v, want %v", s.TrustedPrefixes, wantPrefixes)
	}
	if cfg.Admin.Address != "" {
		t.Errorf("admin.address = %q, want \"\" (disabled) kept", cfg.Admin.Address)
	}
	if cfg.Log != (config.Log{Level: "debug", Format: "text", BackendFailuresPerSecond: 0}) || !cfg.Demo {
		t.Errorf("log %+v demo %v", cfg.Log, cfg.Demo)
	}
	u := cfg.Upstreams["users"]
	if u.Timeout != 250*time.Millisecond || u.MaxConcurrent != 8 || u.MaxConnections != 16 || u.MaxResponseBytes != 1024 {
		t.Errorf("upstream = %+v", u)
	}
	if u.BaseURL.String() != "https://users.test:8443/v1" {
		t.Errorf("BaseURL = %q", u.BaseURL)
	}
	if u.Retry != (config.Retry{Attempts: 2, Backoff: 10 * time.Millisecond}) {
		t.Errorf("retry = %+v", u.Retry)
	}
	wantCB := config.CircuitBreaker{Enabled: false, ConsecutiveFailures: 3, FailureRatio: 0.5, MinRequests: 4,
		Interval: 0, OpenTimeout: time.Second, HalfOpenRequests: 2}
	if u.CircuitBreaker != wantCB {
		t.Errorf("circuit_breaker = %+v, want %+v (enabled: false must beat the default true)", u.CircuitBreaker, wantCB)
	}

	ep := cfg.Endpoints[0]
	if ep.Method != "POST" || ep.Timeout != 1500*time.Millisecond || !ep.ExposeErrors || !ep.ForwardAllQuery {
		t.Errorf("endpoint = %+v", ep)
	}
	if ep.Route != "/a/:x/b/:y" || !slices.Equal(ep.Params, []string{"x", "y"}) {
		t.Errorf("route %q params %v", ep.Route, ep.Params)
	}
	if !slices.Equal(ep.ForwardHeaderKeys, []string{"Accept-Language", "X-Request-Thing"}) {
		t.Errorf("ForwardHeaderKeys = %v", ep.ForwardHeaderKeys)
	}
	if *ep.RateLimit != (config.RateLimit{RPS: 0.5, Burst: 1, Per: "client", ClientKey: "header:x-api-key", Store: "local", OnError: "allow", KeyHeader: "X-Api-Key"}) {
		t.Errorf("rate_limit = %+v", *ep.RateLimit)
	}
	b0, b1, b2 := ep.Backends[0], ep.Backends[1], ep.Backends[2]
	if b0.Method != "PUT" || b0.Group != "g" || !b0.Required || b0.Label != "g" || b0.Index != 0 {
		t.Errorf("backend 0 = %+v", b0)
	}
	if got := string(b0.Template.AppendPath(nil, []string{"X", "Y"})); got != "/y/Y/x/X" {
		t.Errorf("backend 0 path = %q, want /y/Y/x/X", got)
	}
	if b1.Target != "data.items" || !slices.Equal(b1.Allow, []string{"id", "a.b"}) || !slices.Equal(b1.Deny, []string{"secret"}) {
		t.Errorf("backend 1 = %+v", b1)
	}
	// Labels name backends in _errors: group, else upstream, unique.
	if b1.Label != "users" || b2.Label != "users#2" || b2.Index != 2 {
		t.Errorf("labels %q %q (index %d), want users, users#2", b1.Label, b2.Label, b2.Index)
	}
}

func TestSameRouteDifferentMethodsIsValid(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withEndpoints(validEndpoint+`  - path: /u/{id}
    method: DELETE
    backends:
      - {upstream: users, path: "/users/{id}", method: DELETE}
  - path: /u/{id}/orders
    backends:
      - {upstream: orders, path: "/orders/{id}"}
  - path: /u/me
    backends:
      - {upstream: users, path: /users/me}
`), nil)
	if len(cfg.Endpoints) != 4 || cfg.Endpoints[1].Method != "DELETE" || cfg.Endpoints[3].Index != 3 {
		t.Errorf("endpoints = %+v", cfg.Endpoints)
	}
}

func TestCaseOfUserNamedKeysIsKept(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `upstreams:
  UserSvc:
    url: http://users.test
    headers:
      X-Api-KEY: secret
      x-lower: v
endpoints:
  - path: /u/{userId}
    backends:
      - upstream: UserSvc
        path: /users/{userId}
        rename: {userId: UserID, First_Name: firstName}
`, map[string]string{"MANIFOLD_UPSTREAMS_USERSVC_TIMEOUT": "750ms"})
	u, ok := cfg.Upstreams["UserSvc"]
	if !ok {
		t.Fatalf("upstream UserSvc missing; have %v", cfg.UpstreamNames)
	}
	if u.Name != "UserSvc" || !slices.Equal(cfg.UpstreamNames, []string{"UserSvc"}) {
		t.Errorf("Name %q, UpstreamNames %v", u.Name, cfg.UpstreamNames)
	}
	if want := map[string]string{"X-Api-KEY": "secret", "x-lower": "v"}; !reflect.DeepEqual(u.Headers, want) {
		t.Errorf("Headers = %v, want %v", u.Headers, want)
	}
	if u.Timeout != 750*time.Millisecond {
		t.Errorf("timeout = %v: MANIFOLD_UPSTREAMS_USERSVC_TIMEOUT should reach upstream UserSvc", u.Timeout)
	}
	be := cfg.Endpoints[0].Backends[0]
	if be.Upstream != "UserSvc" || be.Label != "UserSvc" {
		t.Errorf("backend upstream %q label %q", be.Upstream, be.Label)
	}
	if want := map[string]string{"userId": "UserID", "First_Name": "firstName"}; !reflect.DeepEqual(be.Rename, want) {
		t.Errorf("Rename = %v, want %v", be.Rename, want)
	}
	if !slices.Equal(cfg.Endpoints[0].Params, []string{"userId"}) {
		t.Errorf("Params = %v", cfg.Endpoints[0].Params)
	}
}

// ---- one failing example per rule ----

type problemCase struct {
	name  string
	yaml  string
	env   map[string]string
	path  string   // YAML path of the problem under test
	words []string // each must appear in its message
	not   []string // none may appear in its message
	also  []string // other problem paths expected in the same file
}

func runProblemCases(t *testing.T, cases []problemCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("test.yaml", []byte(tc.yaml), envOf(tc.env))
			ps := problemsOf(t, err)
			var found *config.Problem
			for i := range ps {
				p := ps[i]
				if p.File != "test.yaml" {
					t.Errorf("problem %q has File %q, want test.yaml", p.Path, p.File)
				}
				if p.Path == "" {
					t.Errorf("problem without a path: %#v", p)
				}
				if want := "test.yaml: " + p.Path + ": " + p.Message; p.String() != want {
					t.Errorf("String() = %q, want %q", p.String(), want)
				}
				if p.Path == tc.path && found == nil {
					found = &ps[i]
				}
			}
			if found == nil {
				t.Fatalf("no problem at %q; got:\n%v\n--- file:\n%s", tc.path, err, tc.yaml)
			}
			for _, w := range tc.words {
				if !strings.Contains(found.Message, w) {
					t.Errorf("message at %s = %q, want it to contain %q", tc.path, found.Message, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(found.Message, w) {
					t.Errorf("message at %s = %q, should not contain %q", tc.path, found.Message, w)
				}
			}
			want := append([]string{tc.path}, tc.also...)
			got := paths(ps)
			slices.Sort(want)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("problem paths = %q, want %q; all problems:\n%v", got, want, err)
			}
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "top level", yaml: withTop("servr: {address: \":1\"}\n"),
			path: "servr", words: []string{"unknown key", `"servr"`, `did you mean "server"`}},
		{name: "top level, nothing close", yaml: withTop("zzzzzzzzzz: 1\n"),
			path: "zzzzzzzzzz", words: []string{"unknown key"}, not: []string{"did you mean"}},
		{name: "in server", yaml: withTop("server: {adress: \":1\"}\n"),
			path: "server.adress", words: []string{"unknown key", `did you mean "address"`}},
		{name: "in upstream", yaml: withUpstream(`url: "http://users.test", timout: 1s`),
			path: "upstreams.users.timout", words: []string{"unknown key", `"timout"`, `did you mean "timeout"`}},
		{name: "in circuit_breaker", yaml: withUpstream(`url: "http://users.test", circuit_breaker: {enable: false}`),
			path: "upstreams.users.circuit_breaker.enable", words: []string{"unknown key", `did you mean "enabled"`}},
		{name: "in endpoint", yaml: withEndpointKeys("    timout: 1s\n"),
			path: "endpoints[0].timout", words: []string{"unknown key", `did you mean "timeout"`}},
		{name: "in rate_limit", yaml: withEndpointKeys("    rate_limit: {rps: 1, burst: 1, brust: 2}\n"),
			path: "endpoints[0].rate_limit.brust", words: []string{"unknown key", `did you mean "burst"`}},
		{name: "in backend", yaml: withBackends("{upstream: users, path: \"/users/{id}\", gruop: g}"),
			path: "endpoints[0].backends[0].gruop", words: []string{"unknown key", `did you mean "group"`}},
		{name: "in second backend of second endpoint", yaml: withEndpoints(validEndpoint + `  - path: /o/{id}
    backends:
      - {upstream: orders, path: "/orders/{id}"}
      - {upstream: users, path: "/users/{id}", reqired: true}
`), path: "endpoints[1].backends[1].reqired", words: []string{`did you mean "required"`}},
		// Unknown keys are still found when another value in the same
		// struct failed to decode (mapstructure drops them then).
		{name: "beside a bad value", yaml: withEndpointKeys("    timeout: 3\n    timout: 1s\n"),
			path: "endpoints[0].timout", words: []string{"unknown key"}, also: []string{"endpoints[0].timeout"}},
	})
}

func TestBadTypes(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "string for int", yaml: withTop("server: {max_body_bytes: lots}\n"),
			path: "server.max_body_bytes", words: []string{"whole number", "lots"}},
		{name: "fraction for int", yaml: withEndpointKeys("    rate_limit: {rps: 1, burst: 1.5}\n"),
			path: "endpoints[0].rate_limit.burst", words: []string{"whole number", "1.5"}},
		{name: "negative for unsigned", yaml: withUpstream(`url: "http://users.test", circuit_breaker: {consecutive_failures: -1}`),
			path: "upstreams.users.circuit_breaker.consecutive_failures", words: []string{"negative"}},
		{name: "int for endpoint duration", yaml: withEndpointKeys("    timeout: 3\n"),
			path: "endpoints[0].timeout", words: []string{"duration", `"3s"`}},
		{name: "int for upstream duration", yaml: withUpstream(`url: "http://users.test", timeout: 3`),
			path: "upstreams.users.timeout", words: []string{"duration", `"3s"`}},
		{name: "int for server duration", yaml: withTop("server: {shutdown_timeout: 10}\n"),
			path: "server.shutdown_timeout", words: []string{"duration", `"10s"`}},
		{name: "unparsable duration", yaml: withEndpointKeys("    timeout: 3 seconds\n"),
			path: "endpoints[0].timeout", words: []string{`"3 seconds"`, "not a duration", "250ms"}},
		{name: "string for list", yaml: withEndpointKeys("    forward_headers: Accept\n"),
			path: "endpoints[0].forward_headers", words: []string{"list", `["Accept"]`}},
		{name: "string for list of proxies", yaml: withTop("server: {trusted_proxies: 10.0.0.1}\n"),
			path: "server.trusted_proxies", words: []string{"list"}},
		{name: "map for list", yaml: twoUpstreams + "endpoints: {path: /a}\n",
			path: "endpoints", words: []string{"list"}},
		{name: "string for bool", yaml: withEndpointKeys("    expose_errors: maybe\n"),
			path: "endpoints[0].expose_errors", words: []string{"true or false", "maybe"}},
		{name: "int for bool", yaml: withTop("demo: 1\n"),
			path: "demo", words: []string{"true or false"}},
		{name: "string for bool in breaker", yaml: withUpstream(`url: "http://users.test", circuit_breaker: {enabled: sometimes}`),
			path: "upstreams.users.circuit_breaker.enabled", words: []string{"true or false", "sometimes"}},
		{name: "scalar for map", yaml: withTop("server: 8080\n"),
			path: "server", words: []string{"map"}},
		{name: "a key without a space after its colon", yaml: withTop("server:\n  read_timeout:5s\n"),
			path: "server", words: []string{"expected a map of settings, got read_timeout:5s (write a space after the colon: read_timeout: 5s)"}},
		{name: "list for map", yaml: "upstreams: [users]\nendpoints:\n" + validEndpoint,
			path: "upstreams", words: []string{"map"}, also: []string{"endpoints[0].backends[0].upstream"}},
		{name: "string for number", yaml: withEndpointKeys("    rate_limit: {rps: fast, burst: 1}\n"),
			path: "endpoints[0].rate_limit.rps", words: []string{"number", "fast"}},
		{name: "list for string", yaml: withEndpointKeys("    method: [GET]\n"),
			path: "endpoints[0].method", words: []string{"string"}},
		{name: "scalar for endpoint", yaml: withEndpoints(validEndpoint + "  - 5\n"),
			path: "endpoints[1]", words: []string{"map"}},
		{name: "null header value", yaml: withUpstream(`url: "http://users.test", headers: {X-Key: }`),
			path: "upstreams.users.headers.X-Key", words: []string{"single value", "null"}},
	})
}

func TestMissingRequiredValues(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "url", yaml: withUpstream("timeout: 1s"),
			path: "upstreams.users.url", words: []string{"required"}},
		{name: "endpoint path", yaml: withEndpoints("  - backends:\n      - {upstream: users, path: /users}\n"),
			path: "endpoints[0].path", words: []string{"required"}},
		{name: "backend path", yaml: withBackends("{upstream: users}"),
			path: "endpoints[0].backends[0].path", words: []string{"required"}},
		{name: "backend upstream", yaml: withBackends("{path: \"/users/{id}\"}"),
			path: "endpoints[0].backends[0].upstream", words: []string{"required", "orders, users"}},
		{name: "backends", yaml: withEndpoints("  - path: /u\n"),
			path: "endpoints[0].backends", words: []string{"backend"}},
		{name: "endpoints", yaml: twoUpstreams,
			path: "endpoints", words: []string{"endpoint"}},
	})
}

func TestReferences(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "unknown upstream", yaml: withBackends("{upstream: ordrs, path: /orders}"),
			path: "endpoints[0].backends[0].upstream", words: []string{`unknown upstream "ordrs" (known: orders, users)`}},
		{name: "upstream names are case-sensitive", yaml: withBackends("{upstream: Users, path: /users}"),
			path: "endpoints[0].backends[0].upstream", words: []string{`unknown upstream "Users"`, "(known: orders, users)"}},
		{name: "no upstreams at all", yaml: "endpoints:\n" + validEndpoint,
			path: "endpoints[0].backends[0].upstream", words: []string{`unknown upstream "users"`, "upstreams:"}},
		{name: "param the endpoint lacks", yaml: withBackends("{upstream: users, path: \"/users/{uid}\"}"),
			path: "endpoints[0].backends[0].path", words: []string{"{uid}", "known: id"}},
		{name: "param in static query", yaml: withBackends(`{upstream: users, path: "/users?user={nope}"}`),
			path: "endpoints[0].backends[0].path", words: []string{"{nope}", "known: id"}},
		{name: "param of an endpoint without params", yaml: withEndpoints("  - path: /u\n    backends:\n      - {upstream: users, path: \"/users/{id}\"}\n"),
			path: "endpoints[0].backends[0].path", words: []string{"{id}", "none"}},
		{name: "param of another endpoint", yaml: withEndpoints(validEndpoint + "  - path: /o/{oid}\n    backends:\n      - {upstream: orders, path: \"/orders/{id}\"}\n"),
			path: "endpoints[1].backends[0].path", words: []string{"{id}", "known: oid"}},
	})
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	second := func(path, method string) string {
		return withEndpoints(validEndpoint + "  - path: " + path + "\n    method: " + method + "\n    backends:\n      - {upstream: orders, path: /o}\n")
	}
	runProblemCases(t, []problemCase{
		{name: "same method and path", yaml: second("/u/{id}", "GET"),
			path: "endpoints[1].path", words: []string{"/u/{id}", "endpoints[0]"}},
		{name: "same method in other case", yaml: second("/u/{id}", "get"),
			path: "endpoints[1].path", words: []string{"endpoints[0]"}},
		{name: "router conflict: other param name", yaml: second("/u/{uid}", "GET"),
			path: "endpoints[1].path", words: []string{"/u/{uid} clashes with endpoints[0].path /u/{id}: a path segment can hold only one parameter name; name it {id} in both"},
			not: []string{":uid", ":id", "wildcard"}},
		{name: "router conflict: deeper", yaml: second("/u/{uid}/orders", "GET"),
			path: "endpoints[1].path", words: []string{"/u/{uid}/orders clashes with endpoints[0].path /u/{id}: a path segment can hold only one parameter name; name it {id} in both"}},
		{name: "router conflict: other methods do not clash", yaml: second("/u/{uid}", "POST") + "  - path: /u/{x}/y\n    method: POST\n    backends: [{upstream: orders, path: /o}]\n",
			path: "endpoints[2].path", words: []string{"/u/{x}/y clashes with endpoints[1].path /u/{uid}: ", "name it {uid} in both"}},
		{name: "router conflict: the endpoint it clashes with is named, not the first", yaml: withEndpoints(validEndpoint +
			"  - path: /c/{x}\n    backends: [{upstream: orders, path: /o}]\n" +
			"  - path: /d\n    backends: [{upstream: orders, path: /o}]\n" +
			"  - path: /c/{x}/{z}\n    backends: [{upstream: orders, path: /o}]\n" +
			"  - path: /c/{x}/{y}/more\n    backends: [{upstream: orders, path: /o}]\n"),
			path: "endpoints[4].path", words: []string{"/c/{x}/{y}/more clashes with endpoints[3].path /c/{x}/{z}: a path segment can hold only one parameter name; name it {z} in both"}},
		{name: "path without slash", yaml: withEndpoints("  - path: u\n    backends:\n      - {upstream: users, path: /u}\n"),
			path: "endpoints[0].path", words: []string{"start with /"}},
		{name: "reserved path", yaml: withEndpoints("  - path: /__health\n    backends:\n      - {upstream: users, path: /u}\n"),
			path: "endpoints[0].path", words: []string{"reserved"}},
		{name: "router syntax", yaml: withEndpoints("  - path: /u/:id\n    backends:\n      - {upstream: users, path: /u}\n"),
			path: "endpoints[0].path", words: []string{"{name}"}},
		{name: "param not a whole segment", yaml: withEndpoints("  - path: /u/x{id}\n    backends:\n      - {upstream: users, path: /u}\n"),
			path: "endpoints[0].path", words: []string{"whole path segment"}},
		{name: "method", yaml: withEndpointKeys("    method: TRACE\n"),
			path: "endpoints[0].method", words: []string{"TRACE", "GET"}},
	})
}

func TestNonPositiveTimeouts(t *testing.T) {
	t.Parallel()
	cases := []problemCase{
		{name: "endpoint 0s", yaml: withEndpointKeys("    timeout: 0s\n"), path: "endpoints[0].timeout"},
		{name: "endpoint negative", yaml: withEndpointKeys("    timeout: -1s\n"), path: "endpoints[0].timeout"},
		{name: "upstream 0s", yaml: withUpstream(`url: "http://users.test", timeout: 0s`), path: "upstreams.users.timeout"},
		{name: "upstream negative", yaml: withUpstream(`url: "http://users.test", timeout: -5ms`), path: "upstreams.users.timeout"},
		{name: "breaker open_timeout", yaml: withUpstream(`url: "http://users.test", circuit_breaker: {open_timeout: 0s}`), path: "upstreams.users.circuit_breaker.open_timeout"},
	}
	for _, key := range []string{"read_header_timeout", "read_timeout", "write_timeout", "idle_timeout", "shutdown_timeout"} {
		cases = append(cases, problemCase{name: "server " + key, yaml: withTop("server: {" + key + ": 0s}\n"), path: "server." + key})
	}
	for i := range cases {
		cases[i].words = []string{"positive"}
	}
	cases = append(cases, problemCase{name: "negative drain_delay", yaml: withTop("server: {drain_delay: -1s}\n"),
		path: "server.drain_delay", words: []string{"negative"}})
	runProblemCases(t, cases)
}

// An endpoint whose timeout reaches server.write_timeout cannot answer: the
// 504 (or a late success) is written after the connection's write deadline,
// so the client gets an empty reply while the log says otherwise (#8 item 14).
func TestEndpointTimeoutBelowWriteTimeout(t *testing.T) {
	t.Parallel()
	words := []string{"endpoints[0].timeout", "server.write_timeout", "empty reply", "lower", "raise"}
	runProblemCases(t, []problemCase{
		{name: "above", yaml: "server: {write_timeout: 5s}\n" + withEndpointKeys("    timeout: 10s\n"),
			path: "endpoints[0].timeout", words: append([]string{"10s", "5s"}, words...)},
		{name: "equal", yaml: "server: {write_timeout: 5s}\n" + withEndpointKeys("    timeout: 5s\n"),
			path: "endpoints[0].timeout", words: append([]string{"5s"}, words...)},
		{name: "default endpoint timeout above a short write_timeout", yaml: withTop("server: {write_timeout: 2s}\n"),
			path: "endpoints[0].timeout", words: append([]string{"3s", "2s", "default"}, words...)},
		{name: "write_timeout from the environment", yaml: withEndpointKeys("    timeout: 10s\n"),
			env:  map[string]string{"MANIFOLD_SERVER_WRITE_TIMEOUT": "10s"},
			path: "endpoints[0].timeout", words: append([]string{"server.write_timeout (10s, from $MANIFOLD_SERVER_WRITE_TIMEOUT)"}, words...),
			not: []string{"from $MANIFOLD_SERVER_WRITE_TIMEOUT:"}},
		{name: "second endpoint only", yaml: "server: {write_timeout: 5s}\n" + withEndpoints(validEndpoint+
			"  - path: /slow\n    timeout: 6s\n    backends: [{upstream: users, path: /x}]\n"),
			path: "endpoints[1].timeout", words: []string{"endpoints[1].timeout", "server.write_timeout", "6s", "5s"}},
	})
	t.Run("below is valid", func(t *testing.T) {
		t.Parallel()
		cfg := mustLoad(t, "server: {write_timeout: 5s}\n"+withEndpointKeys("    timeout: 4999ms\n"), nil)
		if got := cfg.Endpoints[0].Timeout; got != 4999*time.Millisecond {
			t.Errorf("timeout = %v", got)
		}
	})
	t.Run("a non-positive write_timeout is reported once, on its own key", func(t *testing.T) {
		t.Parallel()
		_, err := config.Parse("test.yaml", []byte(withTop("server: {write_timeout: 0s}\n")), envOf(nil))
		if got := paths(problemsOf(t, err)); !slices.Equal(got, []string{"server.write_timeout"}) {
			t.Errorf("problem paths = %q, want only server.write_timeout:\n%v", got, err)
		}
	})
}

func TestUpstreamURL(t *testing.T) {
	t.Parallel()
	var cases []problemCase
	for _, u := range []string{"ftp://users.test", "http://", "users.test:8080", "/users", "://users.test", "http//users.test"} {
		cases = append(cases, problemCase{name: u, yaml: withUpstream(`url: "` + u + `"`),
			path: "upstreams.users.url", words: []string{"http", "host"}})
	}
	cases = append(cases,
		problemCase{name: "query", yaml: withUpstream(`url: "http://users.test/?a=1"`), path: "upstreams.users.url", words: []string{"quer"}},
		problemCase{name: "credentials", yaml: withUpstream(`url: "https://me:pw@users.test"`), path: "upstreams.users.url", words: []string{"credentials"}},
	)
	runProblemCases(t, cases)
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	rl := func(body string) string { return withEndpointKeys("    rate_limit: {" + body + "}\n") }
	runProblemCases(t, []problemCase{
		{name: "rps 0", yaml: rl("rps: 0, burst: 1"), path: "endpoints[0].rate_limit.rps", words: []string{"positive"}},
		{name: "rps negative", yaml: rl("rps: -2, burst: 1"), path: "endpoints[0].rate_limit.rps", words: []string{"positive"}},
		{name: "burst 0", yaml: rl("rps: 1, burst: 0"), path: "endpoints[0].rate_limit.burst", words: []string{"at least 1"}},
		{name: "burst negative", yaml: rl("rps: 1, burst: -3"), path: "endpoints[0].rate_limit.burst", words: []string{"at least 1"}},
		{name: "per", yaml: rl("rps: 1, burst: 1, per: user"), path: "endpoints[0].rate_limit.per", words: []string{`"user"`, "global or client"}},
		{name: "client_key", yaml: rl("rps: 1, burst: 1, per: client, client_key: cookie"),
			path: "endpoints[0].rate_limit.client_key", words: []string{`"cookie"`, "use ip, header:NAME (e.g. header:X-Api-Key) or claim:NAME"}},
		{name: "client_key header without name", yaml: rl(`rps: 1, burst: 1, client_key: "header:"`),
			path: "endpoints[0].rate_limit.client_key", words: []string{"header:NAME"}},
		{name: "client_key bad header name", yaml: rl(`rps: 1, burst: 1, client_key: "header:X Key"`),
			path: "endpoints[0].rate_limit.client_key", words: []string{"header:NAME"}},
	})
}

func TestBackendRules(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "passthrough with another backend",
			yaml: withBackends("{upstream: users, path: \"/users/{id}\", passthrough: true}", "{upstream: orders, path: /orders}"),
			path: "endpoints[0].backends[0].passthrough", words: []string{"only backend"}},
		{name: "passthrough second of two",
			yaml: withBackends("{upstream: users, path: \"/users/{id}\"}", "{upstream: orders, path: /orders, passthrough: true}"),
			path: "endpoints[0].backends[1].passthrough", words: []string{"only backend"}},
		{name: "passthrough with reshaping",
			yaml: withBackends("{upstream: users, path: \"/users/{id}\", passthrough: true, allow: [id]}"),
			path: "endpoints[0].backends[0].passthrough", words: []string{"unchanged"}},
		{name: "same group twice",
			yaml: withBackends("{upstream: users, path: \"/users/{id}\", group: g}", "{upstream: orders, path: /orders, group: x}", "{upstream: orders, path: /o2, group: g}"),
			path: "endpoints[0].backends[2].group", words: []string{`"g"`, "backends[0]"}},
		{name: "empty dot path segment", yaml: withBackends("{upstream: users, path: \"/users/{id}\", target: a..b}"),
			path: "endpoints[0].backends[0].target", words: []string{"a..b"}},
		{name: "backend method", yaml: withBackends("{upstream: users, path: \"/users/{id}\", method: CONNECT}"),
			path: "endpoints[0].backends[0].method", words: []string{"CONNECT"}},
		{name: "backend path fragment", yaml: withBackends(`{upstream: users, path: "/users/{id}#top"}`),
			path: "endpoints[0].backends[0].path", words: []string{"fragment"}},
		{name: "empty rename target", yaml: withBackends(`{upstream: users, path: "/users/{id}", rename: {a: ""}}`),
			path: "endpoints[0].backends[0].rename.a", words: []string{"empty"}},
	})
}

// Dot paths name object keys, matched literally (fetch/reshape.go); the
// path syntaxes of gjson and JSONPath would silently match nothing.
func TestDotPathSyntax(t *testing.T) {
	t.Parallel()
	be := func(keys string) string { return withBackends(`{upstream: users, path: "/users/{id}", ` + keys + `}`) }
	const bp = "endpoints[0].backends[0]."
	runProblemCases(t, []problemCase{
		{name: "index in target", yaml: be(`target: "items[0].id"`), path: bp + "target",
			words: []string{`"items[0].id": array indexes are not supported in dot paths; name object keys only (target descends through objects, not into arrays)`}},
		{name: "index in allow", yaml: be(`allow: [name, "items[0].id"]`), path: bp + "allow[1]",
			words: []string{`"items[0].id": array indexes are not supported in dot paths; name object keys only (on an array, allow applies to every element: "items.id")`}},
		{name: "all elements in deny", yaml: be(`deny: ["tags[*]"]`), path: bp + "deny[0]",
			words: []string{`"tags[*]": array indexes are not supported in dot paths; name object keys only (on an array, deny applies to every element: "tags")`}},
		{name: "wildcard segment", yaml: be(`allow: ["items.*.id"]`), path: bp + "allow[0]",
			words: []string{`"items.*.id": wildcards are not supported in dot paths; name object keys only (on an array, allow applies to every element: "items.id")`}},
		{name: "wildcard in target", yaml: be(`target: "data.user?"`), path: bp + "target",
			words: []string{`"data.user?": wildcards are not supported in dot paths; name object keys only (target descends through objects, not into arrays)`}},
		{name: "gjson array length or query", yaml: be(`allow: ["items.#.id"]`), path: bp + "allow[0]",
			words: []string{`"items.#.id": '#' (array length or query) is not supported in dot paths; name object keys only (on an array, allow applies to every element: "items.id")`}},
		{name: "gjson query", yaml: be(`target: "items.#(id==1)"`), path: bp + "target",
			words: []string{`'#' (array length or query) is not supported in dot paths`}},
		{name: "gjson pipe", yaml: be(`target: "data|user"`), path: bp + "target",
			words: []string{`"data|user": '|' is not supported in dot paths; name object keys only`}},
		{name: "escaped dot", yaml: be(`deny: ['a\.b']`), path: bp + "deny[0]",
			words: []string{`"a\\.b": escapes are not supported in dot paths; a key that contains '.' cannot be addressed`}},
		{name: "from the environment", yaml: be(`group: g`), env: map[string]string{"MANIFOLD_ENDPOINTS_0_BACKENDS_0_ALLOW": "a, b[1]"},
			path: bp + "allow[1]", words: []string{`"b[1]": array indexes are not supported in dot paths`}},
	})
	t.Run("keys that are only literal text load", func(t *testing.T) {
		t.Parallel()
		cfg := mustLoad(t, be(`target: "@graph", allow: ["@id", "#text", "a-b.c_d", "0"], deny: ["x y"]`), nil)
		if got := cfg.Endpoints[0].Backends[0].Allow; !slices.Equal(got, []string{"@id", "#text", "a-b.c_d", "0"}) {
			t.Errorf("allow = %q", got)
		}
	})
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "name", yaml: withTop("server: {trusted_proxies: [10.0.0.0/8, proxy.local]}\n"),
			path: "server.trusted_proxies[1]", words: []string{`"proxy.local"`, "IP", "CIDR"}},
		{name: "bad prefix length", yaml: withTop("server: {trusted_proxies: [10.0.0.0/33]}\n"),
			path: "server.trusted_proxies[0]", words: []string{"CIDR"}},
		{name: "empty", yaml: withTop(`server: {trusted_proxies: [""]}` + "\n"),
			path: "server.trusted_proxies[0]", words: []string{"IP"}},
	})
}

func TestHopByHopForwardHeaders(t *testing.T) {
	t.Parallel()
	var cases []problemCase
	for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
		"connection", "proxy-connection", "Proxy-Anything"} {
		cases = append(cases, problemCase{name: h, yaml: withEndpointKeys("    forward_headers: [Accept, " + h + "]\n"),
			path: "endpoints[0].forward_headers[1]", words: []string{h, "hop-by-hop"}})
	}
	cases = append(cases,
		problemCase{name: "invalid header name", yaml: withEndpointKeys("    forward_headers: [\"X Bad\"]\n"),
			path: "endpoints[0].forward_headers[0]", words: []string{"not a valid header name"}},
		problemCase{name: "hop-by-hop static header", yaml: withUpstream(`url: "http://users.test", headers: {Upgrade: h2c}`),
			path: "upstreams.users.headers.Upgrade", words: []string{"hop-by-hop"}},
	)
	runProblemCases(t, cases)
}

func TestOtherServerRules(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "address", yaml: withTop("server: {address: \"8080\"}\n"), path: "server.address",
			words: []string{`"8080" is not host:port (did you mean ":8080"?)`}},
		{name: "address: a port from the environment", yaml: withEndpoints(validEndpoint), env: map[string]string{"MANIFOLD_SERVER_ADDRESS": "9000"},
			path: "server.address", words: []string{`"9000" is not host:port (did you mean ":9000"?)`}},
		{name: "address: a port as a number", yaml: withTop("server: {address: 8080}\n"), path: "server.address",
			words: []string{`expected a string, got 8080 (write ":8080" to listen on port 8080 on every interface)`}},
		{name: "address: a number that is no port", yaml: withTop("server: {address: 80800}\n"), path: "server.address",
			words: []string{`expected a string, got 80800 (write host:port, e.g. ":8080" or "127.0.0.1:9091")`}},
		{name: "address: host without port", yaml: withTop("server: {address: localhost}\n"), path: "server.address",
			words: []string{`"localhost" is not host:port (e.g. ":8080" or "127.0.0.1:9091")`}},
		{name: "admin address: a port", yaml: withTop("admin: {address: \"9091\"}\n"), path: "admin.address",
			words: []string{`"9091" is not host:port (did you mean "127.0.0.1:9091" for this host only, or ":9091" for every interface?)`}},
		{name: "admin address: a port as a number", yaml: withTop("admin: {address: 9091}\n"), path: "admin.address",
			words: []string{`expected a string, got 9091 (write "127.0.0.1:9091" for port 9091 of this host only, or ":9091" for every interface)`}},
		{name: "a number for another string keeps the plain hint", yaml: withTop("log: {level: 1}\n"), path: "log.level",
			words: []string{`expected a string, got 1 (quote it)`}},
		{name: "empty address", yaml: withTop("server: {address: \"\"}\n"), path: "server.address", words: []string{"required"}},
		{name: "admin address", yaml: withTop("admin: {address: localhost}\n"), path: "admin.address", words: []string{"host:port"}},
		{name: "max_body_bytes", yaml: withTop("server: {max_body_bytes: 0}\n"), path: "server.max_body_bytes", words: []string{"positive"}},
		{name: "log level", yaml: withTop("log: {level: verbose}\n"), path: "log.level", words: []string{"verbose", "debug"}},
		{name: "log format", yaml: withTop("log: {format: xml}\n"), path: "log.format", words: []string{"json or text"}},
		{name: "negative failure lines", yaml: withTop("log: {backend_failures_per_second: -1}\n"), path: "log.backend_failures_per_second", words: []string{"must not be negative", "0 = every failure"}},
		{name: "failure lines not a number", yaml: withTop("log: {backend_failures_per_second: .nan}\n"), path: "log.backend_failures_per_second", words: []string{"finite"}},
		{name: "retry attempts", yaml: withUpstream(`url: "http://users.test", retry: {attempts: 11}`), path: "upstreams.users.retry.attempts", words: []string{"11"}},
		{name: "failure ratio", yaml: withUpstream(`url: "http://users.test", circuit_breaker: {failure_ratio: 1.5}`), path: "upstreams.users.circuit_breaker.failure_ratio", words: []string{"1.5"}},
		{name: "header differing in case", yaml: withUpstream(`url: "http://users.test", headers: {X-Key: a, x-key: b}`), path: "upstreams.users.headers.x-key", words: []string{"case"}},
		{name: "upstream names differing in case", yaml: "upstreams:\n  users: {url: \"http://a.test\"}\n  Users: {url: \"http://b.test\"}\nendpoints:\n" + validEndpoint,
			path: "upstreams.Users", words: []string{"case"}},
	})
}

func TestYAMLSyntax(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "unclosed flow", yaml: "server: [\n", path: config.RootPath, words: []string{"invalid YAML: line 1, column 9: this '[' is never closed"}},
		{name: "bad indentation", yaml: "server:\n  address: \":1\"\n admin: x\n", path: config.RootPath, words: []string{"invalid YAML: line 3, column 2: "}},
		{name: "list at the root", yaml: "- a\n- b\n", path: config.RootPath, words: []string{"mapping", "list"}},
		{name: "a single value at the root", yaml: "hello\n", path: config.RootPath, words: []string{"mapping", "single value"}},
		{name: "empty key at the root", yaml: withTop(`"": 1` + "\n"), path: config.RootPath, words: []string{`unknown key ""`}},
		{name: "newline in a key", yaml: withTop(`"serv\ner": 1` + "\n"), path: `serv\ner`, words: []string{`unknown key "serv\ner"`}},
		{name: "control characters in a nested key", yaml: withTop(`server: {"a\rb\x00": 1}` + "\n"), path: `server.a\rb\x00`, words: []string{"unknown key"}},
		{name: "duplicate key", yaml: "server:\n  address: \":1\"\n  address: \":2\"\n" + twoUpstreams + "endpoints:\n" + validEndpoint,
			path: "server.address", words: []string{"duplicate", "line 2", "line 3"}},
	})
}

// ---- anchors, aliases and merge keys ----

func TestMergeKeysAndAliases(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, `upstreams:
  users: &defaults
    url: http://users.test
    timeout: 2s
    retry: {attempts: 2}
    headers: {X-Team: core}
  recs: &fast
    url: http://recs.test
    timeout: 100ms
  orders:
    <<: *defaults
    url: http://orders.test
  payments:
    <<: *defaults
    url: http://payments.test
    timeout: 500ms
  search:
    <<: [*fast, *defaults]
    url: http://search.test
    headers:
      <<: {X-Team: search, X-Region: eu}
      X-Key: k
endpoints:
  - &ep
    path: /u/{id}
    timeout: &t 1500ms
    backends:
      - {upstream: orders, path: "/orders/{id}"}
  - path: /p/{id}
    timeout: *t
    backends: [{upstream: payments, path: "/payments/{id}"}, {upstream: search, path: /s}]
`, nil)
	type want struct {
		url     string
		timeout time.Duration
		retries int
		headers map[string]string
	}
	for name, w := range map[string]want{
		"users":    {"http://users.test", 2 * time.Second, 2, map[string]string{"X-Team": "core"}},
		"orders":   {"http://orders.test", 2 * time.Second, 2, map[string]string{"X-Team": "core"}},
		"payments": {"http://payments.test", 500 * time.Millisecond, 2, map[string]string{"X-Team": "core"}},
		"recs":     {"http://recs.test", 100 * time.Millisecond, 0, map[string]string{}},
		// earlier maps of a merge list win, explicit keys win over all
		"search": {"http://search.test", 100 * time.Millisecond, 2, map[string]string{"X-Team": "search", "X-Region": "eu", "X-Key": "k"}},
	} {
		u := cfg.Upstreams[name]
		if u == nil {
			t.Errorf("upstream %s missing (have %v)", name, cfg.UpstreamNames)
			continue
		}
		got := want{u.URL, u.Timeout, u.Retry.Attempts, u.Headers}
		if len(got.headers) == 0 {
			got.headers = map[string]string{}
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("upstream %s = %+v, want %+v", name, got, w)
		}
	}
	if got := cfg.Endpoints[1].Timeout; got != 1500*time.Millisecond {
		t.Errorf("aliased scalar: endpoints[1].timeout = %v", got)
	}

	runProblemCases(t, []problemCase{
		{name: "a bad value in a merged block, at the line it is written on", yaml: `upstreams:
  users: &defaults
    url: http://users.test
    timeout: 3
  orders:
    <<: *defaults
    url: http://orders.test
endpoints:
  - path: /u
    backends: [{upstream: orders, path: /o}]
`, path: "upstreams.orders.timeout", words: []string{`from *defaults (line 4): 3 is not a duration: give a unit, like "3s" or "3ms"`},
			also: []string{"upstreams.users.timeout"}},
		{name: "an unknown key in a merged block, and no cascade", yaml: `upstreams:
  users: &defaults
    url: http://users.test
    timout: 1s
  orders: {<<: *defaults, url: http://orders.test}
endpoints:
  - path: /u
    backends: [{upstream: orders, path: /o}]
`, path: "upstreams.orders.timout", words: []string{`from *defaults (line 4): unknown key "timout" (did you mean "timeout"?)`},
			also: []string{"upstreams.users.timout"}},
		{name: "an aliased scalar", yaml: "upstreams:\n  users: {url: \"http://u.test\", timeout: &t 3}\n  orders: {url: \"http://o.test\", timeout: *t}\nendpoints:\n" + validEndpoint,
			path: "upstreams.orders.timeout", words: []string{`from *t (line 2): 3 is not a duration`}, also: []string{"upstreams.users.timeout"}},
		{name: "an explicit key repeated is still a duplicate", yaml: "upstreams:\n  users: &d {url: \"http://u.test\"}\n  orders:\n    <<: *d\n    url: http://o.test\n    url: http://p.test\nendpoints:\n" + validEndpoint,
			path: "upstreams.orders.url", words: []string{`duplicate key "url" (line 5 and line 6)`}},
		{name: "a merge of a single value", yaml: "upstreams:\n  users: {url: \"http://u.test\", <<: 5}\nendpoints:\n" + validEndpoint,
			path: "upstreams.users.<<", words: []string{`a merge key (<<) takes a map or a list of maps (<<: *defaults or <<: [*a, *b]), not a single value`}},
		{name: "a merge of an aliased list", yaml: "x: &l [1]\nupstreams:\n  users: {url: \"http://u.test\", <<: *l}\nendpoints:\n" + validEndpoint,
			path: "upstreams.users.<<", words: []string{`*l is a list; a merge key (<<) takes a map or a list of maps`}, also: []string{"x"}},
		{name: "an alias inside its own anchor", yaml: "upstreams:\n  users: &u {url: \"http://u.test\", headers: {<<: *u}}\nendpoints:\n" + validEndpoint,
			path: "upstreams.users.headers.<<", words: []string{`*u refers to a value that contains it`}},
		{name: "aliases of an endpoint repeat it", yaml: withEndpoints("  - &ep {path: \"/u/{id}\", backends: [{upstream: users, path: \"/users/{id}\"}]}\n  - *ep\n"),
			path: "endpoints[1].path", words: []string{"from *ep (line 5): GET /u/{id} is already served by endpoints[0]"}},
	})

	t.Run("aliases cannot blow the file up", func(t *testing.T) {
		t.Parallel()
		var b strings.Builder
		b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
		for i := 1; i < 9; i++ {
			fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d]\n", i, i, i-1)
		}
		_, err := config.Parse("bomb.yaml", []byte(b.String()), envOf(nil))
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].Path != config.RootPath || !strings.Contains(ps[0].Message, "aliases expand the file to more than") {
			t.Fatalf("problems = %v", ps)
		}
	})
}

// A YAML syntax error names the line and column at fault, quotes the line
// with a caret under the column, and hints at the usual causes. The
// message spans a few lines; the first reads like any problem.
func TestYAMLSyntaxErrorsPointAtTheFault(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml, want string }{
		{"a key indented less than its siblings", `upstreams:
  users:
    url: http://users.test
   timeout: 1s
`, `invalid YAML: line 4, column 4: this key lines up with no key above it
  3 |     url: http://users.test
  4 |    timeout: 1s
    |    ^
  hint: keys of one map start in the same column: column 5 as on line 3, or column 3 as on line 2`},
		{"a key indented more than the one above", `server:
  address: ":8080"
   read_timeout: 5s
`, `invalid YAML: line 3, column 4: this line is indented more than line 2, which already has a value
  2 |   address: ":8080"
  3 |    read_timeout: 5s
    |    ^
  hint: keys of one map start in the same column, here column 3 as on line 2`},
		{"a list item out of line", `endpoints:
  - path: /a
    backends:
      - upstream: u
       path: /x
`, `invalid YAML: line 5, column 8: this key lines up with no key above it
  4 |       - upstream: u
  5 |        path: /x
    |        ^
  hint: keys of one map start in the same column: column 9 as on line 4, or column 5 as on line 3`},
		{"a tab", "server:\n  address: \":8080\"\n\tread_timeout: 5s\n", `invalid YAML: line 3, column 1: a tab character; YAML indents with spaces only
  3 | \tread_timeout: 5s
    | ^
  hint: replace the tab with spaces`},
		{"a tab after spaces", "server:\n  \taddress: \":8080\"\n", `invalid YAML: line 2, column 3: a tab character; YAML indents with spaces only
  2 |   \taddress: ":8080"
    |   ^
  hint: replace the tab with spaces`},
		{"a tab after a nested key", "upstreams:\n  users:\n    url: http://users.test\n\ttimeout: 1s\n", `invalid YAML: line 4, column 1: a tab character; YAML indents with spaces only
  4 | \ttimeout: 1s
    | ^
  hint: replace the tab with spaces`},
		{"an unclosed list", `server:
  trusted_proxies: [10.0.0.1, 10.0.0.2
upstreams: {}
`, `invalid YAML: line 2, column 20: this '[' is never closed
  2 |   trusted_proxies: [10.0.0.1, 10.0.0.2
    |                    ^
  hint: close it with ']'; a value that holds ',', '[', ']', '{' or '}' must be quoted`},
		{"an unclosed map, found lines later", `upstreams:
  users: {url: "http://users.test"
  orders: {url: "http://orders.test"}
`, `invalid YAML: line 2, column 10: this '{' is never closed
  2 |   users: {url: "http://users.test"
    |          ^
  hint: close it with '}'; a value that holds ',', '[', ']', '{' or '}' must be quoted`},
		{"a bracket that closes nothing", "server:\n  trusted_proxies: [a, b]]\n", `invalid YAML: line 2, column 26: this ']' closes nothing
  2 |   trusted_proxies: [a, b]]
    |                          ^
  hint: remove it, or quote the value it belongs to`},
		{"a bracket that closes the other kind", "server: {address: \":8080\"]\n", `invalid YAML: line 1, column 26: this ']' does not close the '{' of line 1, column 9
  1 | server: {address: ":8080"]
    |                          ^
  hint: close '{' with '}' and '[' with ']'`},
		{"an unclosed quote", `server:
  address: ":8080
upstreams: {}
`, `invalid YAML: line 2, column 12: this quote is never closed
  2 |   address: ":8080
    |            ^
  hint: end the value with " on the same line (write \" for a quote inside it)`},
		{"an unclosed single quote", "log:\n  level: 'info\n", `invalid YAML: line 2, column 10: this quote is never closed
  2 |   level: 'info
    |          ^
  hint: end the value with ' on the same line (write '' for a quote inside it)`},
		{"a second colon", "log: {level: info}\nserver:\n  address: host: 8080\n", `invalid YAML: line 3, column 16: a second ': ' on this line
  3 |   address: host: 8080
    |                ^
  hint: quote a value that holds ": " (address: "host: 8080")`},
		{"text after a quoted value", "server:\n  address: \":8080\" extra\n", `invalid YAML: line 2, column 20: text after the end of a quoted value
  2 |   address: ":8080" extra
    |                    ^
  hint: quote the whole value`},
		{"an alias without its anchor", "server:\n  address: *addr\n", `invalid YAML: line 2, column 12: *addr names no anchor above it
  2 |   address: *addr
    |            ^
  hint: write the value once with &addr in front of it, then repeat it with *addr`},
		{"a key beside the items of a list", "endpoints:\n  - path: /a\n  backends: []\n", `invalid YAML: line 3, column 3: this key is in line with the list items above it (line 2); a list cannot also hold keys
  2 |   - path: /a
  3 |   backends: []
    |   ^
  hint: indent it to column 5 to put it in that item's map, as on line 2, or make it an item of its own (- backends: [])`},
		{"a key beside a list of single values", "server:\n  trusted_proxies:\n    - 10.0.0.1\n    address: \":1\"\n", `invalid YAML: line 4, column 5: this key is in line with the list items above it (line 3); a list cannot also hold keys
  3 |     - 10.0.0.1
  4 |     address: ":1"
    |     ^
  hint: make it an item of its own (- address: ":1"), or move it out of the list`},
		{"an unknown escape", "server:\n  address: \"\\d:1\"\n", `invalid YAML: line 2, column 13: found unknown escape character 'd'
  2 |   address: "\d:1"
    |             ^
  hint: in "...", a backslash starts an escape (\n, \t, \", \\): write \\ for a backslash, or quote the value with '...' instead`},
		{"a control character", "log:\n  level: in\x01fo\n", `invalid YAML: line 2, column 12: a control character (\x01) where YAML allows only text
  2 |   level: in\x01fo
    |            ^
  hint: remove it; inside "..." it can be written as an escape, \x01`},
		{"bytes that are not UTF-8", "log:\n  level: in\xfffo\n", `invalid YAML: line 2, column 12: the file is not UTF-8 text here (byte 0xff)
  2 |   level: in\xfffo
    |            ^
  hint: save the file as UTF-8`},
		{"CRLF line ends", "server:\r\n  address: \":1\"\r\n admin: x\r\n", `invalid YAML: line 3, column 2: this key lines up with no key above it
  2 |   address: ":1"
  3 |  admin: x
    |  ^
  hint: keys of one map start in the same column: column 3 as on line 2, or column 1 as on line 1`},
		{"no space after a colon", "server:\n  timeout:1s\n  address: \":1\"\n", `invalid YAML: line 2, column 10: no space after this ':', so YAML reads the line as text, not as a key
  2 |   timeout:1s
    |          ^
  hint: write a space after the colon (timeout: 1s)`},
		{"no space after a colon, seen on the next line", "server:\n  address: \":1\"\n  read_timeout:5s\n", `invalid YAML: line 3, column 15: no space after this ':', so YAML reads the line as text, not as a key
  3 |   read_timeout:5s
    |               ^
  hint: write a space after the colon (read_timeout: 5s)`},
		{"the line and caret of a long line", "server: {address: \":1\", x: [" + strings.Repeat("a, ", 40) + "}\n",
			"invalid YAML: line 1, column 149: this '}' does not close the '[' of line 1, column 28\n" +
				"  1 | …a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, }\n" +
				"    | " + strings.Repeat(" ", 100) + "^\n" +
				"  hint: close '{' with '}' and '[' with ']'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("config.yaml", []byte(tc.yaml), envOf(nil))
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Path != config.RootPath {
				t.Fatalf("problems = %v", ps)
			}
			if ps[0].Message != tc.want {
				t.Errorf("message:\n%s\nwant:\n%s", ps[0].Message, tc.want)
			}
			if want := "config.yaml: (root): " + tc.want; err.Error() != want {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// ---- environment ----

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	file := `server:
  address: ":8081"
upstreams:
  users: {url: "http://users.test", timeout: 1s}
  user-svc: {url: "http://svc.test"}
endpoints:
  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{id}"}
`
	tests := []struct {
		name  string
		env   map[string]string
		check func(*config.Config) (got, want any)
	}{
		{"server address", map[string]string{"MANIFOLD_SERVER_ADDRESS": ":9000"},
			func(c *config.Config) (any, any) { return c.Server.Address, ":9000" }},
		{"no override keeps the file", nil,
			func(c *config.Config) (any, any) { return c.Server.Address, ":8081" }},
		{"upstream key", map[string]string{"MANIFOLD_UPSTREAMS_USERS_TIMEOUT": "250ms"},
			func(c *config.Config) (any, any) { return c.Upstreams["users"].Timeout, 250 * time.Millisecond }},
		{"upstream url", map[string]string{"MANIFOLD_UPSTREAMS_USERS_URL": "https://other.test/p/"},
			func(c *config.Config) (any, any) {
				return c.Upstreams["users"].BaseURL.String(), "https://other.test/p"
			}},
		{"upstream name with dash", map[string]string{"MANIFOLD_UPSTREAMS_USER_SVC_MAX_CONCURRENT": "7"},
			func(c *config.Config) (any, any) { return c.Upstreams["user-svc"].MaxConcurrent, 7 }},
		{"key absent from the file", map[string]string{"MANIFOLD_SERVER_DRAIN_DELAY": "3s"},
			func(c *config.Config) (any, any) { return c.Server.DrainDelay, 3 * time.Second }},
		{"nested upstream key absent from the file", map[string]string{"MANIFOLD_UPSTREAMS_USERS_CIRCUIT_BREAKER_ENABLED": "false"},
			func(c *config.Config) (any, any) { return c.Upstreams["users"].CircuitBreaker.Enabled, false }},
		{"float", map[string]string{"MANIFOLD_UPSTREAMS_USERS_CIRCUIT_BREAKER_FAILURE_RATIO": "0.25"},
			func(c *config.Config) (any, any) { return c.Upstreams["users"].CircuitBreaker.FailureRatio, 0.25 }},
		{"bool", map[string]string{"MANIFOLD_DEMO": "true"},
			func(c *config.Config) (any, any) { return c.Demo, true }},
		{"int", map[string]string{"MANIFOLD_SERVER_MAX_BODY_BYTES": "2048"},
			func(c *config.Config) (any, any) { return c.Server.MaxBodyBytes, int64(2048) }},
		{"empty string disables admin", map[string]string{"MANIFOLD_ADMIN_ADDRESS": ""},
			func(c *config.Config) (any, any) { return c.Admin.Address, "" }},
		{"comma list", map[string]string{"MANIFOLD_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1"},
			func(c *config.Config) (any, any) {
				return c.Server.TrustedProxies, []string{"10.0.0.0/8", "192.168.1.1"}
			}},
		{"log level", map[string]string{"MANIFOLD_LOG_LEVEL": "debug"},
			func(c *config.Config) (any, any) { return c.Log.Level, "debug" }},
		{"float", map[string]string{"MANIFOLD_LOG_BACKEND_FAILURES_PER_SECOND": "2.5"},
			func(c *config.Config) (any, any) { return c.Log.BackendFailuresPerSecond, 2.5 }},
		{"endpoint in the list", map[string]string{"MANIFOLD_ENDPOINTS_0_TIMEOUT": "750ms"},
			func(c *config.Config) (any, any) { return c.Endpoints[0].Timeout, 750 * time.Millisecond }},
		{"backend in a nested list", map[string]string{"MANIFOLD_ENDPOINTS_0_BACKENDS_0_PATH": "/v2/users/{id}"},
			func(c *config.Config) (any, any) { return c.Endpoints[0].Backends[0].Path, "/v2/users/{id}" }},
		{"list of strings in a list entry", map[string]string{"MANIFOLD_ENDPOINTS_0_FORWARD_HEADERS": "Accept-Language, X-Tenant"},
			func(c *config.Config) (any, any) {
				return c.Endpoints[0].ForwardHeaders, []string{"Accept-Language", "X-Tenant"}
			}},
		{"block absent from the file", map[string]string{"MANIFOLD_ENDPOINTS_0_RATE_LIMIT_RPS": "5"},
			func(c *config.Config) (any, any) {
				return *c.Endpoints[0].RateLimit, config.RateLimit{RPS: 5, Burst: 20, Per: "global", ClientKey: "ip", Store: "local", OnError: "allow"}
			}},
		{"upstream key absent from the file", map[string]string{"MANIFOLD_UPSTREAMS_USER_SVC_TIMEOUT": "2s"},
			func(c *config.Config) (any, any) { return c.Upstreams["user-svc"].Timeout, 2 * time.Second }},
		{"index past the list is not addressable", map[string]string{"MANIFOLD_ENDPOINTS_1_PATH": "/x"},
			func(c *config.Config) (any, any) { return len(c.Endpoints), 1 }},
		{"unrelated variables are ignored", map[string]string{"MANIFOLD_NOPE": "x", "SERVER_ADDRESS": ":1"},
			func(c *config.Config) (any, any) { return c.Server.Address, ":8081" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, file, tc.env)
			if got, want := tc.check(cfg); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}

	// A bad override is reported at the key it overrides, naming the
	// variable: the file may say something else (here timeout: 1s).
	runProblemCases(t, []problemCase{
		{name: "bad int override", yaml: file, env: map[string]string{"MANIFOLD_SERVER_MAX_BODY_BYTES": "abc"},
			path: "server.max_body_bytes", words: []string{`from $MANIFOLD_SERVER_MAX_BODY_BYTES: expected a whole number, got "abc"`}},
		{name: "bad duration override", yaml: file, env: map[string]string{"MANIFOLD_UPSTREAMS_USERS_TIMEOUT": "soon"},
			path: "upstreams.users.timeout", words: []string{`from $MANIFOLD_UPSTREAMS_USERS_TIMEOUT: "soon" is not a duration (use Go syntax such as 250ms, 2s or 1m30s)`}},
		{name: "duration override without a unit", yaml: file, env: map[string]string{"MANIFOLD_UPSTREAMS_USERS_TIMEOUT": "2"},
			path: "upstreams.users.timeout", words: []string{`from $MANIFOLD_UPSTREAMS_USERS_TIMEOUT: "2" is not a duration: give a unit, like "2s" or "2ms"`}},
		{name: "bad bool override", yaml: file, env: map[string]string{"MANIFOLD_DEMO": "sure"},
			path: "demo", words: []string{"from $MANIFOLD_DEMO: expected true or false, got sure"}},
		{name: "override that fails validation", yaml: file, env: map[string]string{"MANIFOLD_UPSTREAMS_USERS_URL": "users.test"},
			path: "upstreams.users.url", words: []string{`from $MANIFOLD_UPSTREAMS_USERS_URL: "users.test" must be an http:// or https:// URL with a host`}},
		{name: "override of a key the file leaves out", yaml: file, env: map[string]string{"MANIFOLD_ENDPOINTS_0_RATE_LIMIT_BURST": "0"},
			path: "endpoints[0].rate_limit.burst", words: []string{"from $MANIFOLD_ENDPOINTS_0_RATE_LIMIT_BURST: must be at least 1, got 0"}},
		{name: "item of a list override", yaml: file, env: map[string]string{"MANIFOLD_SERVER_TRUSTED_PROXIES": "10.0.0.0/8, proxy"},
			path: "server.trusted_proxies[1]", words: []string{`from $MANIFOLD_SERVER_TRUSTED_PROXIES: "proxy" is not an IP address or CIDR`}},
		{name: "upstream name whose case is kept", yaml: "upstreams:\n  UserSvc: {url: \"http://u.test\"}\nendpoints:\n  - path: /u\n    backends: [{upstream: UserSvc, path: /u}]\n",
			env:  map[string]string{"MANIFOLD_UPSTREAMS_USERSVC_MAX_CONCURRENT": "-1"},
			path: "upstreams.UserSvc.max_concurrent", words: []string{"from $MANIFOLD_UPSTREAMS_USERSVC_MAX_CONCURRENT: must be 0 (unlimited) or more"}},
		{name: "negative max_connections", yaml: file, env: map[string]string{"MANIFOLD_UPSTREAMS_USERS_MAX_CONNECTIONS": "-1"},
			path: "upstreams.users.max_connections", words: []string{"from $MANIFOLD_UPSTREAMS_USERS_MAX_CONNECTIONS: must be 0 (unlimited) or more"}},
		{name: "a problem of the file is not blamed on the environment", yaml: strings.Replace(file, "timeout: 1s", "timeout: 5", 1),
			env:  map[string]string{"MANIFOLD_SERVER_ADDRESS": ":1", "MANIFOLD_UPSTREAMS_USERS_URL": "http://other.test"},
			path: "upstreams.users.timeout", words: []string{`5 is not a duration`}, not: []string{"from $", "MANIFOLD"}},
	})
	t.Run("the exact line", func(t *testing.T) {
		t.Parallel()
		_, err := config.Parse("config.yaml", []byte(file), envOf(map[string]string{"MANIFOLD_UPSTREAMS_USERS_TIMEOUT": "2"}))
		const want = `config.yaml: upstreams.users.timeout: from $MANIFOLD_UPSTREAMS_USERS_TIMEOUT: "2" is not a duration: give a unit, like "2s" or "2ms"`
		if err == nil || err.Error() != want {
			t.Errorf("Error() = %v\nwant      %s", err, want)
		}
	})
}

// onlyProcessEnv leaves the process environment with none of its own
// MANIFOLD_* variables, only those given (restored when the test ends).
func onlyProcessEnv(t *testing.T, env map[string]string) {
	for _, kv := range os.Environ() {
		if name, value, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "MANIFOLD_") {
			t.Setenv(name, value)
			os.Unsetenv(name)
		}
	}
	for name, value := range env {
		t.Setenv(name, value)
	}
}

// A MANIFOLD_* variable that names no key is ignored; Load says so in a
// warning, with the key meant when one is close. It reads the process
// environment for this (the one environment it can list), so these tests
// set it and do not run in parallel.
func TestEnvWarnings(t *testing.T) {
	file := `upstreams:
  users: {url: "http://users.test"}
  user-svc: {url: "http://svc.test"}
endpoints:
  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{id}"}
      - {upstream: user-svc, path: "/svc/{id}"}
`
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"a misspelled key", map[string]string{"MANIFOLD_SERVER_ADRESS": ":9000"},
			[]string{"MANIFOLD_SERVER_ADRESS is not a config key; did you mean MANIFOLD_SERVER_ADDRESS?"}},
		{"MANIFOLD_CONFIG and real keys never warn", map[string]string{"MANIFOLD_CONFIG": "other.yaml", "MANIFOLD_SERVER_ADDRESS": ":9000",
			"MANIFOLD_UPSTREAMS_USER_SVC_TIMEOUT": "2s", "MANIFOLD_ENDPOINTS_0_RATE_LIMIT_RPS": "5", "MANIFOLD_ENDPOINTS_0_BACKENDS_1_ALLOW": "a"}, nil},
		{"a shortened key", map[string]string{"MANIFOLD_SERVER_ADDR": ":9000"},
			[]string{"MANIFOLD_SERVER_ADDR is not a config key; did you mean MANIFOLD_SERVER_ADDRESS?"}},
		{"a misspelled upstream", map[string]string{"MANIFOLD_UPSTREAMS_USRS_TIMEOUT": "2s"},
			[]string{"MANIFOLD_UPSTREAMS_USRS_TIMEOUT is not a config key; did you mean MANIFOLD_UPSTREAMS_USERS_TIMEOUT?"}},
		{"an upstream the file lacks", map[string]string{"MANIFOLD_UPSTREAMS_PAYMENTS_URL": "http://p.test"},
			[]string{"MANIFOLD_UPSTREAMS_PAYMENTS_URL is not a config key: it names no upstream of the file (user-svc, users), and variables cannot add upstreams"}},
		{"an endpoint the file lacks", map[string]string{"MANIFOLD_ENDPOINTS_3_PATH": "/x"},
			[]string{"MANIFOLD_ENDPOINTS_3_PATH is not a config key: the file has no endpoints[3] (it has only endpoints[0]), and variables cannot add list entries"}},
		{"a backend the file lacks", map[string]string{"MANIFOLD_ENDPOINTS_0_BACKENDS_2_PATH": "/x"},
			[]string{"MANIFOLD_ENDPOINTS_0_BACKENDS_2_PATH is not a config key: the file has no endpoints[0].backends[2] (it has endpoints[0].backends[0] to endpoints[0].backends[1]), and variables cannot add list entries"}},
		{"a header", map[string]string{"MANIFOLD_UPSTREAMS_USERS_HEADERS_X_API_KEY": "k"},
			[]string{"MANIFOLD_UPSTREAMS_USERS_HEADERS_X_API_KEY is not a config key: upstreams.users.headers cannot be set from the environment (write ${VAR} in its values instead)"}},
		{"a fallback", map[string]string{"MANIFOLD_ENDPOINTS_0_BACKENDS_0_FALLBACK": "{}"},
			[]string{"MANIFOLD_ENDPOINTS_0_BACKENDS_0_FALLBACK is not a config key: endpoints[0].backends[0].fallback cannot be set from the environment (write ${VAR} in its values instead)"}},
		{"a headers map by its own name", map[string]string{"MANIFOLD_UPSTREAMS_USERS_HEADERS": "X=1"},
			[]string{"MANIFOLD_UPSTREAMS_USERS_HEADERS is not a config key: upstreams.users.headers cannot be set from the environment (write ${VAR} in its values instead)"}},
		{"nothing close", map[string]string{"MANIFOLD_NOPE": "1"},
			[]string{"MANIFOLD_NOPE is not a config key and is ignored"}},
		{"several, sorted by name", map[string]string{"MANIFOLD_LOG_LEVL": "debug", "MANIFOLD_DEMOO": "true"},
			[]string{"MANIFOLD_DEMOO is not a config key; did you mean MANIFOLD_DEMO?", "MANIFOLD_LOG_LEVL is not a config key; did you mean MANIFOLD_LOG_LEVEL?"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			onlyProcessEnv(t, tc.env)
			p := writeFile(t, t.TempDir(), "config.yaml", file)
			cfg, err := config.Load(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Warnings, tc.want) {
				t.Errorf("Warnings =\n%q\nwant\n%q", cfg.Warnings, tc.want)
			}
			if got := config.Warnings(cfg, nil); !slices.Equal(got, tc.want) {
				t.Errorf("config.Warnings(cfg, nil) = %q", got)
			}
		})
	}

	t.Run("an invalid file still has its warnings", func(t *testing.T) {
		onlyProcessEnv(t, map[string]string{"MANIFOLD_SERVER_ADRESS": ":9000", "MANIFOLD_SERVER_ADDRESS": "9000"})
		p := writeFile(t, t.TempDir(), "config.yaml", file)
		cfg, err := config.Load(p, nil)
		ps := problemsOf(t, err)
		if cfg != nil || len(ps) != 1 || ps[0].Path != "server.address" || err.Error() != ps.Error() {
			t.Fatalf("Load = %v, %v", cfg, err)
		}
		want := []string{"MANIFOLD_SERVER_ADRESS is not a config key; did you mean MANIFOLD_SERVER_ADDRESS?"}
		if got := config.Warnings(nil, err); !slices.Equal(got, want) {
			t.Errorf("config.Warnings(nil, err) = %q, want %q", got, want)
		}
	})
	t.Run("no warnings from an environment Load cannot list", func(t *testing.T) {
		onlyProcessEnv(t, nil)
		cfg := mustLoad(t, file, map[string]string{"MANIFOLD_SERVER_ADRESS": ":9000"})
		if cfg.Warnings != nil {
			t.Errorf("Warnings = %q", cfg.Warnings)
		}
	})
	t.Run("no warnings for a file that is not YAML", func(t *testing.T) {
		onlyProcessEnv(t, map[string]string{"MANIFOLD_SERVER_ADRESS": ":9000"})
		_, err := config.Parse("c.yaml", []byte("server: [\n"), nil)
		problemsOf(t, err)
		if got := config.Warnings(nil, err); got != nil {
			t.Errorf("Warnings = %q", got)
		}
	})
}

func TestEnvExpansion(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"USERS_URL": "http://users.test:81",
		"KEY":       "s3cr3t",
		"EMPTY":     "",
		"HOST":      "127.0.0.1",
		"SIZE":      "2048",
	}
	file := `server:
  address: "${HOST}:${PORT:-8082}"
  max_body_bytes: ${SIZE}
admin:
  address: "${EMPTY}"
upstreams:
  users:
    url: ${USERS_URL}/base
    headers:
      X-Api-Key: ${KEY}
      X-Literal: $${LITERAL}
      X-Default-Empty: ${EMPTY:-fallback}
      X-Default-Set: ${KEY:-fallback}
      X-Mixed: "a-${KEY}-$${KEY}-${NOPE:-}-z"
endpoints:
  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{id}"}
`
	cfg := mustLoad(t, file, env)
	checks := []struct {
		name      string
		got, want any
	}{
		{"${VAR} in a string", cfg.Upstreams["users"].BaseURL.String(), "http://users.test:81/base"},
		{"${VAR:-default} with VAR unset", cfg.Server.Address, "127.0.0.1:8082"},
		{"${VAR} for a number", cfg.Server.MaxBodyBytes, int64(2048)},
		{"${VAR} set but empty", cfg.Admin.Address, ""},
		{"${VAR} in a header", cfg.Upstreams["users"].Headers["X-Api-Key"], "s3cr3t"},
		{"$${VAR} stays literal", cfg.Upstreams["users"].Headers["X-Literal"], "${LITERAL}"},
		{"${VAR:-default} with VAR empty", cfg.Upstreams["users"].Headers["X-Default-Empty"], "fallback"},
		{"${VAR:-default} with VAR set", cfg.Upstreams["users"].Headers["X-Default-Set"], "s3cr3t"},
		{"several in one string", cfg.Upstreams["users"].Headers["X-Mixed"], "a-s3cr3t-${KEY}--z"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("got %#v, want %#v", c.got, c.want)
			}
		})
	}

	t.Run("a value is expanded once", func(t *testing.T) {
		t.Parallel()
		cfg := mustLoad(t, withUpstream(`url: "http://users.test", headers: {X-K: "${A}"}`), map[string]string{"A": "${B}", "B": "no"})
		if got := cfg.Upstreams["users"].Headers["X-K"]; got != "${B}" {
			t.Errorf("X-K = %q, want ${B} (no recursive expansion)", got)
		}
	})

	runProblemCases(t, []problemCase{
		{name: "unset variable", yaml: withUpstream(`url: "${USERS_URL}"`),
			path: "upstreams.users.url", words: []string{"USERS_URL", "not set"}},
		{name: "unset variable in a header", yaml: withUpstream(`url: "http://users.test", headers: {X-Api-Key: "${API_KEY}"}`),
			path: "upstreams.users.headers.X-Api-Key", words: []string{"API_KEY"}},
		{name: "bad reference", yaml: withUpstream(`url: "http://${1HOST}"`),
			path: "upstreams.users.url", words: []string{"${1HOST}"}},
		// An unset variable does not hide the other problems of the file.
		{name: "unset variable beside other problems", yaml: withTop("server: {address: \"${ADDR}\", read_timeout: 5}\n"),
			path: "server.address", words: []string{"ADDR"}, also: []string{"server.read_timeout"}},
	})
}

// The env function is the only environment Load consults.
func TestEnvIsInjected(t *testing.T) {
	t.Setenv("MANIFOLD_SERVER_ADDRESS", ":7777")
	t.Setenv("MANIFOLD_TEST_HOST", "process.test")
	file := "server: {address: \":8081\"}\n" + withUpstream(`url: "http://${MANIFOLD_TEST_HOST:-injected.test}"`)
	p := writeFile(t, t.TempDir(), "c.yaml", file)

	cfg, err := config.Load(p, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Address != ":8081" || cfg.Upstreams["users"].URL != "http://injected.test" {
		t.Errorf("with an empty env func: address %q url %q; the process environment leaked in", cfg.Server.Address, cfg.Upstreams["users"].URL)
	}

	cfg, err = config.Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Address != ":7777" || cfg.Upstreams["users"].URL != "http://process.test" {
		t.Errorf("with env nil: address %q url %q, want the process environment", cfg.Server.Address, cfg.Upstreams["users"].URL)
	}
}

// ---- all problems at once, rendering ----

func TestAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	file := `server:
  address: ":8080"
  read_timeout: 30
  trusted_proxies: [nope]
upstreams:
  users:
    url: ftp://users.test
    timout: 1s
  orders:
    url: http://orders.test
endpoints:
  - path: /api/a/{id}
    timeout: 0s
    forward_headers: [Connection]
    rate_limit: {rps: 0, burst: 0, per: everyone}
    backends:
      - {upstream: users, path: "/users/{uid}"}
      - {upstream: ordrs, path: /orders, group: g}
      - {upstream: orders, path: /orders2, group: g, passthrough: true}
  - path: /api/a/{x}
    expose_errors: maybe
    backends:
      - {path: /x}
`
	dir := t.TempDir()
	p := writeFile(t, dir, "many.yaml", file)
	_, err := config.Load(p, envOf(nil))
	ps := problemsOf(t, err)
	want := []string{
		"server.read_timeout",
		"server.trusted_proxies[0]",
		"upstreams.users.url",
		"upstreams.users.timout",
		"endpoints[0].timeout",
		"endpoints[0].forward_headers[0]",
		"endpoints[0].rate_limit.rps",
		"endpoints[0].rate_limit.burst",
		"endpoints[0].rate_limit.per",
		"endpoints[0].backends[0].path",
		"endpoints[0].backends[1].upstream",
		"endpoints[0].backends[2].group", // one line: in column order
		"endpoints[0].backends[2].passthrough",
		"endpoints[1].path",
		"endpoints[1].expose_errors",
		"endpoints[1].backends[0].upstream",
	}
	got := paths(ps)
	if !slices.Equal(got, want) {
		t.Errorf("problems (in file order):\n got %q\nwant %q\nall:\n%v", got, want, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(ps) {
		t.Fatalf("Error() has %d lines for %d problems", len(lines), len(ps))
	}
	for i, line := range lines {
		if prefix := p + ": " + ps[i].Path + ": "; !strings.HasPrefix(line, prefix) || len(line) == len(prefix) {
			t.Errorf("line %d = %q, want %q followed by a message", i, line, prefix)
		}
		if line != ps[i].String() {
			t.Errorf("line %d = %q, String() = %q", i, line, ps[i].String())
		}
	}
	byPath := map[string]string{}
	for _, pr := range ps {
		byPath[pr.Path] = pr.Message
	}
	if m := byPath["endpoints[0].backends[1].upstream"]; m != `unknown upstream "ordrs" (known: orders, users)` {
		t.Errorf("unknown upstream message = %q", m)
	}
}

// The example of SPEC §2, reproduced exactly, with a relative file name.
func TestSpecExampleLine(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "config.yaml", `upstreams:
  users: {url: "http://users.test"}
  orders: {url: "http://orders.test"}
endpoints:
  - path: /api/users/{id}
    backends:
      - {upstream: users, path: "/users/{id}"}
  - path: /api/orders/{id}
    backends:
      - upstream: ordrs
        path: /orders/{id}
`)
	t.Chdir(dir)
	_, err := config.Load("config.yaml", envOf(nil))
	ps := problemsOf(t, err)
	const want = `config.yaml: endpoints[1].backends[0].upstream: unknown upstream "ordrs" (known: orders, users)`
	if err.Error() != want {
		t.Errorf("Error() = %q\n       want %q", err.Error(), want)
	}
	if len(ps) != 1 || ps[0].File != "config.yaml" || ps[0].Path != "endpoints[1].backends[0].upstream" {
		t.Errorf("problems = %#v", ps)
	}

	t.Run("relative path with directories stays as given", func(t *testing.T) {
		if err := os.Mkdir("sub", 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, "sub", "bad.yaml", withTop("servr: {address: \":1\"}\n"))
		_, err := config.Load("./sub/bad.yaml", envOf(nil))
		if err == nil || err.Error() != `./sub/bad.yaml: servr: unknown key "servr" (did you mean "server"?)` {
			t.Errorf("Error() = %v", err)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "absent.yaml")
		cfg, err := config.Load(p, envOf(nil))
		if cfg != nil || err == nil {
			t.Fatalf("Load = %v, %v; want an error", cfg, err)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("errors.Is(err, fs.ErrNotExist) = false: %v", err)
		}
		if errors.Is(err, config.ErrInvalid) {
			t.Errorf("a missing file is reported as ErrInvalid: %v", err)
		}
		var ps config.Problems
		if errors.As(err, &ps) {
			t.Errorf("a missing file yields Problems %v", ps)
		}
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not name the file", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		_, err := config.Load(t.TempDir(), envOf(nil))
		if err == nil || errors.Is(err, config.ErrInvalid) {
			t.Errorf("Load(dir) = %v, want a read error that is not ErrInvalid", err)
		}
	})
	t.Run("invalid file", func(t *testing.T) {
		t.Parallel()
		p := writeFile(t, t.TempDir(), "c.yaml", "server: [\n")
		cfg, err := config.Load(p, envOf(nil))
		if cfg != nil {
			t.Errorf("Load returned a config with an error")
		}
		if !errors.Is(err, config.ErrInvalid) {
			t.Errorf("errors.Is(err, ErrInvalid) = false: %v", err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			t.Errorf("an invalid file is reported as missing")
		}
	})
	t.Run("empty file", func(t *testing.T) {
		t.Parallel()
		_, err := config.Parse("empty.yaml", nil, envOf(nil))
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].Path != "endpoints" {
			t.Errorf("problems = %v", ps)
		}
	})
}

// ---- path templates ----

func TestPathTemplate(t *testing.T) {
	t.Parallel()
	cfg := mustLoad(t, withEndpoints(`  - path: /p/{a}/{b}
    backends:
      - {upstream: users, path: "/x/{b}/y/{a}?q={a}&lit=1&b={b}"}
      - {upstream: users, path: "/plain/{a}"}
`), nil)
	tmpl := cfg.Endpoints[0].Backends[0].Template
	plain := cfg.Endpoints[0].Backends[1].Template
	if !tmpl.HasQuery() || plain.HasQuery() {
		t.Errorf("HasQuery = %v / %v, want true / false", tmpl.HasQuery(), plain.HasQuery())
	}

	tests := []struct {
		value     string
		wantPath  string // plain's AppendPath with a = value
		wantQuery string // tmpl's AppendQuery with a = value, b = "B"
	}{
		{"42", "/plain/42", "q=42&lit=1&b=B"},
		{"a/b", "/plain/a%2Fb", "q=a%2Fb&lit=1&b=B"},
		{"x?y=1#z", "/plain/x%3Fy=1%23z", "q=x%3Fy%3D1%23z&lit=1&b=B"},
		{"%0d%0a", "/plain/%250d%250a", "q=%250d%250a&lit=1&b=B"},
		{"\r\nHost: evil", "/plain/%0D%0AHost:%20evil", "q=%0D%0AHost%3A+evil&lit=1&b=B"},
		{"..%2F..", "/plain/..%252F..", "q=..%252F..&lit=1&b=B"},
		{"../../admin", "/plain/..%2F..%2Fadmin", "q=..%2F..%2Fadmin&lit=1&b=B"},
		{"a&b=c", "/plain/a&b=c", "q=a%26b%3Dc&lit=1&b=B"},
		{"ü €", "/plain/%C3%BC%20%E2%82%AC", "q=%C3%BC+%E2%82%AC&lit=1&b=B"},
		{"", "/plain/", "q=&lit=1&b=B"},
	}
	base := cfg.Upstreams["users"].BaseURL
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			t.Parallel()
			params := []string{tc.value, "B"}
			got := string(plain.AppendPath(nil, params))
			if got != tc.wantPath {
				t.Errorf("AppendPath = %q, want %q", got, tc.wantPath)
			}
			if q := string(tmpl.AppendQuery(nil, params)); q != tc.wantQuery {
				t.Errorf("AppendQuery = %q, want %q", q, tc.wantQuery)
			}
			// Whatever the value, the URL keeps its host, has no query or
			// fragment from the path, and the segment decodes back to it.
			u, err := base.Parse(base.String() + got)
			if err != nil {
				t.Fatalf("built URL does not parse: %v", err)
			}
			if u.Host != base.Host || u.RawQuery != "" || u.Fragment != "" {
				t.Errorf("URL %q: host %q query %q fragment %q", u, u.Host, u.RawQuery, u.Fragment)
			}
			if seg := strings.TrimPrefix(u.Path, "/plain/"); seg != tc.value {
				t.Errorf("decoded segment = %q, want %q", seg, tc.value)
			}
		})
	}

	t.Run("appends to dst, params in template order", func(t *testing.T) {
		t.Parallel()
		dst := []byte("http://users.test")
		got := string(tmpl.AppendPath(dst, []string{"A/1", "B 2"}))
		if got != "http://users.test/x/B%202/y/A%2F1" {
			t.Errorf("AppendPath = %q", got)
		}
		got = string(tmpl.AppendQuery([]byte("?"), []string{"A", "B"}))
		if got != "?q=A&lit=1&b=B" {
			t.Errorf("AppendQuery = %q", got)
		}
	})
}

func TestRateLimitDefaults(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(withEndpointKeys("    rate_limit: {per: client}\n")), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	rl := cfg.Endpoints[0].RateLimit
	if rl.RPS != 100 || rl.Burst != 20 || rl.Per != "client" || rl.ClientKey != "ip" {
		t.Fatalf("rate_limit defaults: %+v, want rps 100, burst 20, client_key ip", *rl)
	}
}

func TestRenameAndStaticHeaderProblems(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "two keys renamed to one", yaml: withBackends(`{upstream: users, path: "/users/{id}", rename: {a: x, b: x}}`),
			path: "endpoints[0].backends[0].rename.b", words: []string{`"a"`, `"b"`, `"x"`}},
		{name: "empty key renamed", yaml: withBackends(`{upstream: users, path: "/users/{id}", rename: {"": x}}`),
			path: "endpoints[0].backends[0].rename", words: []string{"empty"}},
		{name: "static Host header", yaml: withUpstream(`url: "http://users.test", headers: {host: evil.test}`),
			path: "upstreams.users.headers.host", words: []string{"set by Manifold"}},
		{name: "static X-Forwarded-For header", yaml: withUpstream(`url: "http://users.test", headers: {X-Forwarded-For: 1.2.3.4}`),
			path: "upstreams.users.headers.X-Forwarded-For", words: []string{"set by Manifold"}},
		{name: "static request id", yaml: withUpstream(`url: "http://users.test", headers: {x-request-id: fixed}`),
			path: "upstreams.users.headers.x-request-id", words: []string{"set by Manifold"}},
	})
}

func TestDuplicateKeysHideNothing(t *testing.T) {
	t.Parallel()
	yaml := "server:\n  address: \":1\"\n  address: \":2\"\n  read_timeout: 5\n" + withEndpoints(validEndpoint)
	_, err := config.Parse("t.yaml", []byte(yaml), envOf(nil))
	ps := problemsOf(t, err)
	var paths []string
	for _, p := range ps {
		paths = append(paths, p.Path)
	}
	if !slices.Contains(paths, "server.address") || !slices.Contains(paths, "server.read_timeout") {
		t.Fatalf("want the duplicate and the type problem after it, got %v", ps)
	}
}

func TestHeaderRulesAndZonedProxies(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "forwarding Accept-Encoding", yaml: withEndpointKeys("    forward_headers: [Accept-Encoding]\n"),
			path: "endpoints[0].forward_headers[0]", words: []string{"set by Manifold"}},
		// Manifold's own rows decide these (the client's X-Forwarded-*
		// only from a trusted proxy, traceparent only up to 128 bytes):
		// forwarded, the client's copy went out whenever the managed row
		// had nothing to send (a Host over 260 bytes, a long traceparent).
		{name: "forwarding X-Forwarded-Host", yaml: withEndpointKeys("    forward_headers: [Accept, x-forwarded-host]\n"),
			path: "endpoints[0].forward_headers[1]", words: []string{"X-Forwarded-Host", "set by Manifold", "trusted_proxies"}},
		{name: "forwarding X-Forwarded-For", yaml: withEndpointKeys("    forward_headers: [X-Forwarded-For]\n"),
			path: "endpoints[0].forward_headers[0]", words: []string{"set by Manifold"}},
		{name: "forwarding X-Forwarded-Proto", yaml: withEndpointKeys("    forward_headers: [X-Forwarded-Proto]\n"),
			path: "endpoints[0].forward_headers[0]", words: []string{"set by Manifold"}},
		{name: "forwarding traceparent", yaml: withEndpointKeys("    forward_headers: [traceparent]\n"),
			path: "endpoints[0].forward_headers[0]", words: []string{"Traceparent", "set by Manifold", "remove it"}},
		{name: "forwarding X-Request-ID", yaml: withEndpointKeys("    forward_headers: [X-Request-ID]\n"),
			path: "endpoints[0].forward_headers[0]", words: []string{"set by Manifold"}},
		{name: "forwarding Content-Type", yaml: withEndpointKeys("    forward_headers: [Content-Type]\n"),
			path: "endpoints[0].forward_headers[0]", words: []string{"set by Manifold"}},
		{name: "static Accept-Encoding", yaml: withUpstream(`url: "http://users.test", headers: {Accept-Encoding: br}`),
			path: "upstreams.users.headers.Accept-Encoding", words: []string{"set by Manifold"}},
		{name: "zoned IPv6 proxy", yaml: withTop("server: {trusted_proxies: [\"fe80::1%eth0\"]}\n"),
			path: "server.trusted_proxies[0]", words: []string{"fe80::1%eth0"}},
	})
}

func TestTrustedProxyForms(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse("t.yaml", []byte(withTop("server: {trusted_proxies: [\"::ffff:10.0.0.5\", \"::ffff:10.1.0.0/112\", 10.2.0.1, \"fd00::/8\"]}\n")), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(cfg.Server.TrustedPrefixes)
	if want := "[10.0.0.5/32 10.1.0.0/16 10.2.0.1/32 fd00::/8]"; got != want {
		t.Fatalf("trusted prefixes %s, want %s", got, want)
	}
}

func TestDuplicateDetectionFollowsNameRules(t *testing.T) {
	t.Parallel()
	// Header names: the exact repeat is the duplicate; x-a vs X-A is the
	// case problem reported separately.
	_, err := config.Parse("t.yaml", []byte(withUpstream(`url: "http://users.test", headers: {x-a: "1", X-A: "2", X-A: "3"}`)), envOf(nil))
	var msgs []string
	for _, p := range problemsOf(t, err) {
		msgs = append(msgs, p.String())
	}
	all := strings.Join(msgs, "\n")
	if !strings.Contains(all, `upstreams.users.headers.X-A: duplicate key "X-A"`) {
		t.Errorf("exact duplicate header not reported:\n%s", all)
	}
	// Schema keys are case-sensitive, also in an upstream named "headers".
	yaml := "upstreams:\n  headers:\n    url: http://h.test\n    URL: http://i.test\n" +
		"endpoints:\n  - path: /u\n    backends: [{upstream: headers, path: /}]\n"
	_, err = config.Parse("t.yaml", []byte(yaml), envOf(nil))
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Path != "upstreams.headers.URL" || !strings.Contains(ps[0].Message, `did you mean "url"`) {
		t.Errorf("want one unknown key at upstreams.headers.URL, got %v", ps)
	}
}

func TestDuplicateKeyAndItsValueAreBothReported(t *testing.T) {
	t.Parallel()
	yaml := "server:\n  read_timeout: 2s\n  read_timeout: 3\n" + withEndpoints(validEndpoint)
	_, err := config.Parse("t.yaml", []byte(yaml), envOf(nil))
	ps := problemsOf(t, err)
	if len(ps) != 2 || ps[0].Path != "server.read_timeout" || ps[1].Path != "server.read_timeout" ||
		!strings.Contains(ps[0].Message+ps[1].Message, "duplicate") || !strings.Contains(ps[0].Message+ps[1].Message, "not a duration") {
		t.Fatalf("want the duplicate and the kept value's problem, got %v", ps)
	}
}

func TestUpstreamNamesSharingEnvironmentVariables(t *testing.T) {
	t.Parallel()
	yaml := "upstreams:\n  user-api: {url: \"http://a.test\"}\n  user_api: {url: \"http://b.test\"}\nendpoints:\n  - path: /u\n    backends: [{upstream: user-api, path: /}]\n"
	_, err := config.Parse("t.yaml", []byte(yaml), envOf(nil))
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Path != "upstreams.user_api" || !strings.Contains(ps[0].Message, "MANIFOLD_UPSTREAMS_USER_API_") {
		t.Fatalf("want one problem at upstreams.user_api naming the shared variables, got %v", ps)
	}
}

// A ${VAR} whose value is not UTF-8 is a problem at the value's path, not
// a failure to re-encode the file (found by FuzzLoad).
func TestEnvValueNotUTF8(t *testing.T) {
	yaml := "upstreams:\n  u: {url: \"http://x\", headers: {X-Key: \"${KEY}\"}}\nendpoints:\n  - path: /p\n    backends: [{upstream: u, path: /}]\n"
	_, err := config.Parse("test.yaml", []byte(yaml), envOf(map[string]string{"KEY": "a\xffb"}))
	ps := problemsOf(t, err)
	if len(ps) != 1 || !strings.Contains(ps[0].String(), "upstreams.u.headers.X-Key") || !strings.Contains(ps[0].String(), "UTF-8") {
		t.Fatalf("problems = %v, want one about UTF-8 at upstreams.u.headers.X-Key", ps)
	}
}

// Files a config names are read relative to the config file's directory,
// whatever the working directory; absolute paths are kept.
func TestFilesRelativeToTheConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "keys.json", `{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`)
	yaml := `auth:
  jwt: {jwks_file: keys.json, issuer: i, audience: [a]}
upstreams:
  users: {url: "http://users.test"}
endpoints:
  - path: /u/{id}
    backends: [{upstream: users, path: "/users/{id}"}]
`
	cfg, err := config.Load(writeFile(t, dir, "config.yaml", yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Auth.JWT.JWKSFile, filepath.Join(dir, "keys.json"); got != want {
		t.Errorf("jwks_file = %q, want %q", got, want)
	}
	abs := filepath.Join(dir, "keys.json")
	cfg, err = config.Load(writeFile(t, t.TempDir(), "config.yaml", strings.Replace(yaml, "keys.json", abs, 1)), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Auth.JWT.JWKSFile; got != abs {
		t.Errorf("absolute jwks_file = %q, want %q", got, abs)
	}
}

// A refused endpoint path leaves its parameters unknown; the backends'
// references to them are not reported as unknown parameters too, which
// would name a fix (add the parameter) that the endpoint path already has.
func TestBadEndpointPathReportsOneProblem(t *testing.T) {
	t.Parallel()
	file := func(path string) string {
		return `upstreams:
  users: {url: "http://127.0.0.1:1"}
endpoints:
  - path: ` + path + `
    backends: [{upstream: users, path: "/u/{id}"}, {upstream: users, path: "/v/{nope}", group: v}]
`
	}
	runProblemCases(t, []problemCase{
		{name: "parameter twice", yaml: file("/a/{id}/{id}"), path: "endpoints[0].path", words: []string{"{id} appears twice"}},
		{name: "bad parameter name", yaml: file("/a/{id}/{9x}"), path: "endpoints[0].path", words: []string{"{9x}"}},
		{name: "parameter inside a segment", yaml: file("/a/x{id}"), path: "endpoints[0].path", words: []string{"whole path segment"}},
	})
}

// Integer keys read the file's value exactly: 2^63-1 is a whole number
// (through a float64 it rounded to 2^63 and was called not whole), and a
// whole number beyond int64 is too large, not "not a whole number".
func TestIntegerKeysExact(t *testing.T) {
	t.Parallel()
	for _, v := range []string{`9223372036854775807`, `"9223372036854775807"`} {
		cfg := mustLoad(t, withTop("server: {max_body_bytes: "+v+"}\n"), nil)
		if cfg.Server.MaxBodyBytes != math.MaxInt64 {
			t.Errorf("max_body_bytes: %s read as %d", v, cfg.Server.MaxBodyBytes)
		}
	}
	runProblemCases(t, []problemCase{
		{name: "past int64", yaml: withTop("server: {max_body_bytes: 99999999999999999999}\n"),
			path: "server.max_body_bytes", words: []string{"too large"}, not: []string{"whole number"}},
		{name: "past int64, quoted", yaml: withTop("server: {max_body_bytes: \"99999999999999999999\"}\n"),
			path: "server.max_body_bytes", words: []string{"too large"}, not: []string{"whole number"}},
		{name: "2^63", yaml: withTop("server: {max_body_bytes: 9223372036854775808}\n"),
			path: "server.max_body_bytes", words: []string{"too large"}},
		{name: "a fraction", yaml: withTop("server: {max_body_bytes: 1.5}\n"),
			path: "server.max_body_bytes", words: []string{"expected a whole number, got 1.5"}},
		{name: "exponent form", yaml: withTop("server: {max_body_bytes: 1e30}\n"),
			path: "server.max_body_bytes", words: []string{"too large"}},
		{name: "int past int32 field", yaml: withTop("server: {shadow: {workers: 99999999999}}\n"),
			path: "server.shadow.workers", words: []string{"at most 10000"}},
	})
}

// Endpoint paths are compared decoded, so two that differ only in their
// escaping are one route: a second spelling is refused (the logs and
// metrics name an endpoint by its path as written), and so is a reserved
// path written escaped, which would clash with Manifold's own routes at
// start.
func TestEndpointPathSpelling(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "escaped reserved path", yaml: withEndpoints("  - path: /%5F%5Fhealth\n    backends: [{upstream: users, path: /u}]\n"),
			path: "endpoints[0].path", words: []string{"/__health decoded", "reserved"}},
		{name: "one route written two ways", yaml: withEndpoints(
			"  - path: /städte/{id}\n    backends: [{upstream: users, path: \"/u/{id}\"}]\n" +
				"  - path: /st%C3%A4dte/{id}\n    method: POST\n    backends: [{upstream: users, path: \"/u/{id}\", method: POST}]\n"),
			path: "endpoints[1].path", words: []string{"endpoints[0].path \"/städte/{id}\" written another way", "write it the same way"}},
	})
	// Escaped route syntax is a literal, and two such literals do not clash.
	mustLoad(t, withEndpoints(
		"  - path: /v1/items%3Aget\n    backends: [{upstream: users, path: /g}]\n"+
			"  - path: /v1/items%3Alist\n    backends: [{upstream: users, path: /l}]\n"+
			"  - path: /files/%2A\n    backends: [{upstream: users, path: /f}]\n"+
			"  - path: /sale/50%off\n    backends: [{upstream: users, path: /s}]\n"), nil)
}

// With expose_errors, "_errors" holds the failed backends' reasons: a
// backend grouped there would be replaced by them, or read as them.
func TestGroupErrorsWithExposeErrors(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "group _errors", yaml: withEndpoints("  - path: /a\n    expose_errors: true\n    backends: [{upstream: users, path: /u, group: _errors}]\n"),
			path: "endpoints[0].backends[0].group", words: []string{"expose_errors", "choose another group"}},
	})
	mustLoad(t, withEndpoints("  - path: /a\n    backends: [{upstream: users, path: /u, group: _errors}]\n"), nil)
}
