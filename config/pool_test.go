package config_test

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
)

// withHedge is a valid file whose one backend (upstream users, timeout
// 1s) has the given extra flow-mapping keys.
func withHedge(keys string) string {
	return withBackends(`{upstream: users, path: "/users/{id}", ` + keys + `}`)
}

// An upstream that says nothing of pools gets every pool default, and no
// health checks: the block is absent, also when a variable overrides
// another key of the upstream (even one of the outlier block).
func TestPoolDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"file only", nil},
		{"an override of another key", map[string]string{"MANIFOLD_UPSTREAMS_USERS_TIMEOUT": "2s"}},
		{"an override in the outlier block", map[string]string{"MANIFOLD_UPSTREAMS_USERS_OUTLIER_EJECT_FOR": "1m"}},
		{"an override of coalesce", map[string]string{"MANIFOLD_UPSTREAMS_USERS_COALESCE": "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := mustLoad(t, withEndpoints(validEndpoint), tc.env)
			u := cfg.Upstreams["users"]
			if u.HealthCheck != nil {
				t.Errorf("HealthCheck = %+v, want nil: the file has no health_check block", *u.HealthCheck)
			}
			if u.Balance != config.BalanceLeastInflight {
				t.Errorf("Balance = %q, want least_inflight", u.Balance)
			}
			want := config.Outlier{ConsecutiveFailures: 5, EjectFor: 30 * time.Second, MaxEjectedPercent: 50}
			if tc.env["MANIFOLD_UPSTREAMS_USERS_OUTLIER_EJECT_FOR"] != "" {
				want.EjectFor = time.Minute
			}
			if u.Outlier != want {
				t.Errorf("Outlier = %+v, want %+v", u.Outlier, want)
			}
			if u.Coalesce != (tc.env["MANIFOLD_UPSTREAMS_USERS_COALESCE"] == "true") {
				t.Errorf("Coalesce = %v", u.Coalesce)
			}
			if u.URLs != nil {
				t.Errorf("URLs = %q, want nil", u.URLs)
			}
			if len(u.Instances) != 1 || u.Instances[0].URL.String() != "http://users.test" || u.Instances[0].Addr != "users.test:80" {
				t.Errorf("Instances = %+v, want one, http://users.test at users.test:80", u.Instances)
			}
			if u.BaseURL == nil || u.BaseURL.String() != "http://users.test" {
				t.Errorf("BaseURL = %v, want http://users.test", u.BaseURL)
			}
			if be := cfg.Endpoints[0].Backends[0]; be.Hedge != nil {
				t.Errorf("Hedge = %+v, want nil", *be.Hedge)
			}
		})
	}
}

// A present health_check gets its defaults; so does one a variable
// creates. A hedge gets max_percent 5.
func TestPresenceActivatedDefaults(t *testing.T) {
	t.Parallel()
	wantHC := config.HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, UnhealthyAfter: 3, HealthyAfter: 2}
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want config.HealthCheck
	}{
		{name: "path only", yaml: withUpstream(`url: "http://users.test", health_check: {path: /healthz}`), want: wantHC},
		{name: "every key", yaml: withUpstream(`url: "http://users.test", health_check: {path: "/h?full=1", interval: 10s, timeout: 2s, unhealthy_after: 1, healthy_after: 4}`),
			want: config.HealthCheck{Path: "/h?full=1", Interval: 10 * time.Second, Timeout: 2 * time.Second, UnhealthyAfter: 1, HealthyAfter: 4}},
		{name: "created by a variable", yaml: withEndpoints(validEndpoint),
			env: map[string]string{"MANIFOLD_UPSTREAMS_USERS_HEALTH_CHECK_PATH": "/healthz"}, want: wantHC},
		{name: "a variable overrides a key of the block", yaml: withUpstream(`url: "http://users.test", health_check: {path: /healthz}`),
			env:  map[string]string{"MANIFOLD_UPSTREAMS_USERS_HEALTH_CHECK_UNHEALTHY_AFTER": "7"},
			want: config.HealthCheck{Path: "/healthz", Interval: 5 * time.Second, Timeout: time.Second, UnhealthyAfter: 7, HealthyAfter: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := mustLoad(t, tc.yaml, tc.env).Upstreams["users"]
			if u.HealthCheck == nil {
				t.Fatal("HealthCheck = nil, want the block")
			}
			if *u.HealthCheck != tc.want {
				t.Errorf("HealthCheck = %+v, want %+v", *u.HealthCheck, tc.want)
			}
			if o := mustLoad(t, tc.yaml, tc.env).Upstreams["orders"]; o.HealthCheck != nil {
				t.Errorf("orders.HealthCheck = %+v, want nil: only users has the block", *o.HealthCheck)
			}
		})
	}
	for _, tc := range []struct {
		keys string
		want config.Hedge
	}{
		{`hedge: {after: 50ms}`, config.Hedge{After: 50 * time.Millisecond, MaxPercent: 5}},
		{`hedge: {after: 50ms, max_percent: 0.5}`, config.Hedge{After: 50 * time.Millisecond, MaxPercent: 0.5}},
		{`hedge: {after: 999ms, max_percent: 100}`, config.Hedge{After: 999 * time.Millisecond, MaxPercent: 100}},
		{`method: HEAD, hedge: {after: 50ms}`, config.Hedge{After: 50 * time.Millisecond, MaxPercent: 5}},
		{`passthrough: true, hedge: {after: 50ms}`, config.Hedge{After: 50 * time.Millisecond, MaxPercent: 5}},
	} {
		t.Run(tc.keys, func(t *testing.T) {
			t.Parallel()
			be := mustLoad(t, withHedge(tc.keys), nil).Endpoints[0].Backends[0]
			if be.Hedge == nil || *be.Hedge != tc.want {
				t.Errorf("Hedge = %+v, want %+v", be.Hedge, tc.want)
			}
		})
	}
}

// url and urls fill Instances alike: the URL with its trailing slash
// dropped, and host:port with the scheme's default port when none is
// written; IPv6 literals keep their brackets. BaseURL is the first's.
func TestInstances(t *testing.T) {
	t.Parallel()
	type inst struct{ url, addr string }
	for _, tc := range []struct {
		name string
		body string
		want []inst
	}{
		{"url, http", `url: "http://users.test"`, []inst{{"http://users.test", "users.test:80"}}},
		{"url, https", `url: "https://users.test"`, []inst{{"https://users.test", "users.test:443"}}},
		{"url, port and prefix", `url: "https://users.test:8443/v1/"`, []inst{{"https://users.test:8443/v1", "users.test:8443"}}},
		{"url, IPv6 with port", `url: "http://[::1]:8080"`, []inst{{"http://[::1]:8080", "[::1]:8080"}}},
		{"url, IPv6 without port", `url: "http://[::1]"`, []inst{{"http://[::1]", "[::1]:80"}}},
		{"url, IPv6 https", `url: "https://[2001:db8::7]/api/"`, []inst{{"https://[2001:db8::7]/api", "[2001:db8::7]:443"}}},
		{"urls, one", `urls: ["http://users-1:8080"]`, []inst{{"http://users-1:8080", "users-1:8080"}}},
		{"urls, several in order", `urls: ["http://users-2:8080", "http://users-1:8080", "http://10.0.0.7"]`,
			[]inst{{"http://users-2:8080", "users-2:8080"}, {"http://users-1:8080", "users-1:8080"}, {"http://10.0.0.7", "10.0.0.7:80"}}},
		{"urls, one prefix with and without trailing slash", `urls: ["http://a/v1/", "http://b/v1"]`,
			[]inst{{"http://a/v1", "a:80"}, {"http://b/v1", "b:80"}}},
		{"urls, same host on other ports", `urls: ["http://a", "http://a:8080", "http://[::1]:80", "http://[::1]:81"]`,
			[]inst{{"http://a", "a:80"}, {"http://a:8080", "a:8080"}, {"http://[::1]:80", "[::1]:80"}, {"http://[::1]:81", "[::1]:81"}}},
		{"urls, https", `urls: ["https://a", "https://b:8443"]`, []inst{{"https://a", "a:443"}, {"https://b:8443", "b:8443"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := mustLoad(t, withUpstream(tc.body), nil).Upstreams["users"]
			var got []inst
			for _, in := range u.Instances {
				got = append(got, inst{in.URL.String(), in.Addr})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Instances = %q, want %q", got, tc.want)
			}
			if u.BaseURL == nil || u.BaseURL.String() != tc.want[0].url {
				t.Errorf("BaseURL = %v, want the first instance's, %s", u.BaseURL, tc.want[0].url)
			}
		})
	}
}

// MANIFOLD_UPSTREAMS_X_URLS takes a comma-separated list. Beside a file's
// url it is refused, naming the variable, unless MANIFOLD_UPSTREAMS_X_URL
// is set empty too.
func TestURLsFromEnvironment(t *testing.T) {
	t.Parallel()
	urls := withUpstream(`urls: ["http://file-1", "http://file-2"]`)
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want []string
	}{
		{"replaces the file's urls", urls, map[string]string{"MANIFOLD_UPSTREAMS_USERS_URLS": "http://a:1, http://b:2,"}, []string{"a:1", "b:2"}},
		{"replaces the file's url, emptied", withEndpoints(validEndpoint),
			map[string]string{"MANIFOLD_UPSTREAMS_USERS_URLS": "http://a:1,http://b:2", "MANIFOLD_UPSTREAMS_USERS_URL": ""}, []string{"a:1", "b:2"}},
		{"url replaces the file's urls, emptied", urls,
			map[string]string{"MANIFOLD_UPSTREAMS_USERS_URLS": "", "MANIFOLD_UPSTREAMS_USERS_URL": "https://one"}, []string{"one:443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := mustLoad(t, tc.yaml, tc.env).Upstreams["users"]
			var got []string
			for _, in := range u.Instances {
				got = append(got, in.Addr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("instances = %q, want %q", got, tc.want)
			}
		})
	}
	runProblemCases(t, []problemCase{
		{name: "urls beside the file's url", yaml: withEndpoints(validEndpoint),
			env:  map[string]string{"MANIFOLD_UPSTREAMS_USERS_URLS": "http://a,http://b"},
			path: "upstreams.users.urls", words: []string{"from $MANIFOLD_UPSTREAMS_USERS_URLS: ", "use url for one instance or urls for several, not both"}},
		{name: "url beside the file's urls", yaml: urls,
			env:  map[string]string{"MANIFOLD_UPSTREAMS_USERS_URL": "http://a"},
			path: "upstreams.users.url", words: []string{"from $MANIFOLD_UPSTREAMS_USERS_URL: ", "not both"}},
		{name: "an empty urls from a variable", yaml: urls,
			env:  map[string]string{"MANIFOLD_UPSTREAMS_USERS_URLS": " , "},
			path: "upstreams.users.urls", words: []string{"from $MANIFOLD_UPSTREAMS_USERS_URLS: ", "is empty"}},
		{name: "a bad entry from a variable", yaml: urls,
			env:  map[string]string{"MANIFOLD_UPSTREAMS_USERS_URLS": "http://a, users-2:8080"},
			path: "upstreams.users.urls[1]", words: []string{"from $MANIFOLD_UPSTREAMS_USERS_URLS: ", `"users-2:8080" must be an http:// or https:// URL with a host`}},
	})
}

func TestURLAndURLsRules(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "both", yaml: withUpstream(`url: "http://a", urls: ["http://b"]`),
			path: "upstreams.users.urls", words: []string{"url and urls are both set: use url for one instance or urls for several, not both"}},
		{name: "neither", yaml: withUpstream(`timeout: 2s`),
			path: "upstreams.users.url", words: []string{"is required, e.g. http://users.internal:8080", "urls"}},
		{name: "no settings at all", yaml: "upstreams:\n  users:\n  orders: {url: \"http://orders.test\"}\nendpoints:\n" + validEndpoint,
			path: "upstreams.users.url", words: []string{"is required", "urls"}},
		{name: "an empty list", yaml: withUpstream(`urls: []`),
			path: "upstreams.users.urls", words: []string{"is empty", "or use url for one"}},
		{name: "not a list", yaml: withUpstream(`urls: "http://a"`),
			path: "upstreams.users.urls", words: []string{"expected a list"}},
		{name: "no scheme", yaml: withUpstream(`urls: ["http://a", "users-2:8080"]`),
			path: "upstreams.users.urls[1]", words: []string{`"users-2:8080" must be an http:// or https:// URL with a host`}},
		{name: "another scheme", yaml: withUpstream(`urls: ["ftp://a"]`),
			path: "upstreams.users.urls[0]", words: []string{"http:// or https://"}},
		{name: "no host", yaml: withUpstream(`urls: ["http://a", "http:///x"]`),
			path: "upstreams.users.urls[1]", words: []string{"with a host"}},
		{name: "an empty entry", yaml: withUpstream(`urls: ["http://a", ""]`),
			path: "upstreams.users.urls[1]", words: []string{`"" must be an http:// or https:// URL`}},
		{name: "a query", yaml: withUpstream(`urls: ["http://a", "http://b?x=1"]`),
			path: "upstreams.users.urls[1]", words: []string{"scheme, host and an optional path prefix only", "put queries in backend paths"}},
		{name: "a fragment", yaml: withUpstream(`urls: ["http://a#f"]`),
			path: "upstreams.users.urls[0]", words: []string{"scheme, host and an optional path prefix only"}},
		{name: "user info", yaml: withUpstream(`urls: ["http://a", "http://u:p@b"]`),
			path: "upstreams.users.urls[1]", words: []string{"credentials in headers"}},
		{name: "mixed schemes", yaml: withUpstream(`urls: ["http://a", "https://b"]`),
			path: "upstreams.users.urls[1]", words: []string{`"https://b" is https:// but urls[0] is http://`, "share one scheme"}},
		{name: "mixed schemes, compared with the first valid entry", yaml: withUpstream(`urls: ["nope", "https://a", "http://b"]`),
			path: "upstreams.users.urls[2]", words: []string{"urls[1] is https://"}, also: []string{"upstreams.users.urls[0]"}},
		{name: "another path prefix", yaml: withUpstream(`urls: ["http://a/v1", "http://b/v2"]`),
			path: "upstreams.users.urls[1]", words: []string{`"http://b/v2" has the path prefix "/v2" but urls[0] has the path prefix "/v1"`, "share one path prefix"}},
		{name: "a path prefix beside none", yaml: withUpstream(`urls: ["http://a/", "http://b/v1"]`),
			path: "upstreams.users.urls[1]", words: []string{`but urls[0] has no path prefix`}},
		{name: "the same host:port twice", yaml: withUpstream(`urls: ["http://a", "http://b", "http://a:80"]`),
			path: "upstreams.users.urls[2]", words: []string{`"http://a:80" is the same instance as urls[0] (a:80): list each host:port once`}},
		{name: "the same host in another case", yaml: withUpstream(`urls: ["https://Users-1", "https://users-1:443/"]`),
			path: "upstreams.users.urls[1]", words: []string{"same instance as urls[0]"}},
		{name: "the same IPv6 instance twice", yaml: withUpstream(`urls: ["http://[::1]:8080", "http://[0:0::1]:8080"]`),
			path: "upstreams.users.urls[1]", words: []string{"same instance as urls[0] ([0:0::1]:8080)"}},
		{name: "the same IPv4 instance by default port", yaml: withUpstream(`urls: ["https://10.0.0.7:443", "https://10.0.0.7"]`),
			path: "upstreams.users.urls[1]", words: []string{"same instance as urls[0] (10.0.0.7:443)"}},
		{name: "url is still checked as before", yaml: withUpstream(`url: "http://a?x=1"`),
			path: "upstreams.users.url", words: []string{"scheme, host and an optional path prefix only"}},
	})
}

func TestPoolRules(t *testing.T) {
	t.Parallel()
	hc := func(keys string) string {
		return withUpstream(`url: "http://users.test", health_check: {` + keys + `}`)
	}
	runProblemCases(t, []problemCase{
		{name: "balance", yaml: withUpstream(`url: "http://a", balance: random`),
			path: "upstreams.users.balance", words: []string{`"random": use least_inflight`, "or round_robin"}},
		{name: "balance in another case", yaml: withUpstream(`url: "http://a", balance: Round_Robin`),
			path: "upstreams.users.balance", words: []string{"least_inflight", "round_robin"}},
		{name: "negative consecutive_failures", yaml: withUpstream(`url: "http://a", outlier: {consecutive_failures: -1}`),
			path: "upstreams.users.outlier.consecutive_failures", words: []string{"must be 0 (never eject) or more, got -1"}},
		{name: "no eject_for while ejecting", yaml: withUpstream(`url: "http://a", outlier: {eject_for: 0s}`),
			path: "upstreams.users.outlier.eject_for", words: []string{"must be positive", "consecutive_failures: 0"}},
		{name: "negative eject_for, ejection off", yaml: withUpstream(`url: "http://a", outlier: {consecutive_failures: 0, eject_for: -1s}`),
			path: "upstreams.users.outlier.eject_for", words: []string{"must not be negative"}},
		{name: "max_ejected_percent above 100", yaml: withUpstream(`url: "http://a", outlier: {max_ejected_percent: 101}`),
			path: "upstreams.users.outlier.max_ejected_percent", words: []string{"between 0 and 100", "got 101"}},
		{name: "max_ejected_percent negative", yaml: withUpstream(`url: "http://a", outlier: {max_ejected_percent: -5}`),
			path: "upstreams.users.outlier.max_ejected_percent", words: []string{"between 0 and 100"}},
		{name: "eject_for without a unit", yaml: withUpstream(`url: "http://a", outlier: {eject_for: 30}`),
			path: "upstreams.users.outlier.eject_for", words: []string{"give a unit"}},
		{name: "coalesce not a bool", yaml: withUpstream(`url: "http://a", coalesce: maybe`),
			path: "upstreams.users.coalesce", words: []string{"expected true or false"}},
		{name: "health_check with no value", yaml: "upstreams:\n  users:\n    url: http://users.test\n    health_check:\n  orders: {url: \"http://orders.test\"}\nendpoints:\n" + validEndpoint,
			path: "upstreams.users.health_check", words: []string{"has no value", "path", "remove the key"}},
		{name: "health_check not a map", yaml: withUpstream(`url: "http://a", health_check: /healthz`),
			path: "upstreams.users.health_check", words: []string{"expected a map of settings"}},
		{name: "health_check without path", yaml: hc(`interval: 5s`),
			path: "upstreams.users.health_check.path", words: []string{"is required", "e.g. /healthz"}},
		{name: "health_check path without /", yaml: hc(`path: healthz`),
			path: "upstreams.users.health_check.path", words: []string{`"healthz" must start with /`}},
		{name: "health_check path with a space", yaml: hc(`path: "/health z"`),
			path: "upstreams.users.health_check.path", words: []string{"without spaces"}},
		{name: "health_check path with a fragment", yaml: hc(`path: "/healthz#x"`),
			path: "upstreams.users.health_check.path", words: []string{"#fragment"}},
		{name: "health_check unknown key", yaml: hc(`path: /h, intervall: 5s`),
			path: "upstreams.users.health_check.intervall", words: []string{`did you mean "interval"`}},
		{name: "zero interval", yaml: hc(`path: /h, interval: 0s`),
			path: "upstreams.users.health_check.interval", words: []string{"must be positive"}},
		{name: "zero timeout", yaml: hc(`path: /h, timeout: 0s`),
			path: "upstreams.users.health_check.timeout", words: []string{"must be positive"}},
		{name: "timeout equal to interval", yaml: hc(`path: /h, timeout: 5s`),
			path: "upstreams.users.health_check.timeout", words: []string{"5s is not below interval (5s)", "before the next one"}},
		{name: "timeout above interval", yaml: hc(`path: /h, interval: 1s, timeout: 2s`),
			path: "upstreams.users.health_check.timeout", words: []string{"not below interval"}},
		{name: "unhealthy_after 0", yaml: hc(`path: /h, unhealthy_after: 0`),
			path: "upstreams.users.health_check.unhealthy_after", words: []string{"must be at least 1", "got 0"}},
		{name: "healthy_after 0", yaml: hc(`path: /h, healthy_after: 0`),
			path: "upstreams.users.health_check.healthy_after", words: []string{"must be at least 1", "got 0"}},
		{name: "every health_check problem at once", yaml: hc(`path: x, interval: 0s, timeout: -1s, unhealthy_after: -1, healthy_after: 0`),
			path: "upstreams.users.health_check.path", also: []string{"upstreams.users.health_check.interval", "upstreams.users.health_check.timeout",
				"upstreams.users.health_check.unhealthy_after", "upstreams.users.health_check.healthy_after"}},
		{name: "tls with http urls", yaml: withUpstream(`urls: ["http://a", "http://b"], tls: {server_name: users.internal}`),
			path: "upstreams.users.tls", words: []string{"tls applies to https:// upstreams", `the urls are http:// (urls[0] is "http://a")`}},
		{name: "tls with urls of mixed schemes: the scheme is told once", yaml: withUpstream(`urls: ["https://a", "http://b"], tls: {server_name: users.internal}`),
			path: "upstreams.users.urls[1]", words: []string{"share one scheme"}},
	})
}

// The pool keys that are valid at their edges load.
func TestPoolRulesAccept(t *testing.T) {
	t.Parallel()
	for _, body := range []string{
		`url: "http://a", balance: round_robin`,
		`url: "http://a", balance: least_inflight`,
		`url: "http://a", outlier: {consecutive_failures: 0, eject_for: 0s}`,
		`url: "http://a", outlier: {max_ejected_percent: 0}`,
		`url: "http://a", outlier: {max_ejected_percent: 100, consecutive_failures: 1, eject_for: 1ms}`,
		`url: "http://a", coalesce: true`,
		`url: "http://a", health_check: {path: "/", interval: 2ms, timeout: 1ms}`,
		`url: "http://a", health_check: {path: "/healthz?deep=1&x=%20"}`,
		`urls: ["https://a", "https://b"], tls: {server_name: users.internal}`,
	} {
		t.Run(body, func(t *testing.T) {
			t.Parallel()
			mustLoad(t, withUpstream(body), nil)
		})
	}
}

func TestHedgeRules(t *testing.T) {
	t.Parallel()
	runProblemCases(t, []problemCase{
		{name: "POST", yaml: withHedge(`method: POST, hedge: {after: 50ms}`),
			path: "endpoints[0].backends[0].hedge", words: []string{"only GET and HEAD calls may be hedged: a hedge repeats the call", "POST"}},
		{name: "DELETE", yaml: withHedge(`method: delete, hedge: {after: 50ms}`),
			path: "endpoints[0].backends[0].hedge", words: []string{"a DELETE must not be sent twice"}},
		{name: "an unknown method is told once", yaml: withHedge(`method: FETCH, hedge: {after: 50ms}`),
			path: "endpoints[0].backends[0].method"},
		{name: "no after", yaml: withHedge(`hedge: {max_percent: 5}`),
			path: "endpoints[0].backends[0].hedge.after", words: []string{"is required", "50ms"}},
		{name: "negative after", yaml: withHedge(`hedge: {after: -1ms}`),
			path: "endpoints[0].backends[0].hedge.after", words: []string{"must be positive"}},
		{name: "after equal to the upstream timeout", yaml: withHedge(`hedge: {after: 1s}`),
			path: "endpoints[0].backends[0].hedge.after", words: []string{"1s is not below upstreams.users.timeout (1s)", "a hedge sent after the first try has timed out is useless"}},
		{name: "after above a raised timeout", yaml: withHedge(`hedge: {after: 3s}`),
			env:  map[string]string{"MANIFOLD_UPSTREAMS_USERS_TIMEOUT": "2s"},
			path: "endpoints[0].backends[0].hedge.after", words: []string{"3s is not below upstreams.users.timeout (2s)"}},
		{name: "max_percent 0", yaml: withHedge(`hedge: {after: 50ms, max_percent: 0}`),
			path: "endpoints[0].backends[0].hedge.max_percent", words: []string{"above 0 and at most 100", "got 0"}},
		{name: "max_percent above 100", yaml: withHedge(`hedge: {after: 50ms, max_percent: 100.5}`),
			path: "endpoints[0].backends[0].hedge.max_percent", words: []string{"got 100.5"}},
		{name: "max_percent negative", yaml: withHedge(`hedge: {after: 50ms, max_percent: -1}`),
			path: "endpoints[0].backends[0].hedge.max_percent", words: []string{"above 0"}},
		{name: "max_percent NaN", yaml: withHedge(`hedge: {after: 50ms, max_percent: .nan}`),
			path: "endpoints[0].backends[0].hedge.max_percent", words: []string{"got NaN"}},
		{name: "hedge with no value", yaml: withHedge(`hedge: `),
			path: "endpoints[0].backends[0].hedge", words: []string{"has no value", "after", "remove the key"}},
		{name: "hedge unknown key", yaml: withHedge(`hedge: {afte: 50ms}`),
			path: "endpoints[0].backends[0].hedge.afte", words: []string{`did you mean "after"`}, also: []string{"endpoints[0].backends[0].hedge.after"}},
	})
}

// Reloads compare configurations with reflect.DeepEqual: two loads of one
// file must be equal, pools and all.
func TestPoolConfigLoadsEqual(t *testing.T) {
	t.Parallel()
	yaml := `upstreams:
  users:
    urls: ["http://users-1:8080/api/", "http://[::1]:8081/api", "http://10.0.0.7/api"]
    balance: round_robin
    outlier: {consecutive_failures: 3, eject_for: 10s, max_ejected_percent: 34}
    health_check: {path: /healthz, interval: 2s}
    coalesce: true
  orders: {url: "https://orders.test"}
endpoints:
  - path: /u/{id}
    backends:
      - {upstream: users, path: "/users/{id}", hedge: {after: 50ms}}
      - {upstream: orders, path: "/orders?user={id}", group: orders, hedge: {after: 20ms, max_percent: 10}}
`
	p := writeFile(t, t.TempDir(), "config.yaml", yaml)
	a, err := config.Load(p, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.Load(filepath.Clean(p), envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("two loads of one file differ")
	}
	for _, name := range a.UpstreamNames {
		if !reflect.DeepEqual(a.Upstreams[name], b.Upstreams[name]) {
			t.Errorf("upstream %s differs between two loads", name)
		}
	}
	c, err := config.Load(p, envOf(map[string]string{"MANIFOLD_UPSTREAMS_USERS_URLS": "http://users-1:8080/api,http://[::1]:8081/api"}))
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Upstreams["users"], c.Upstreams["users"]) {
		t.Error("an upstream with an instance fewer compares equal")
	}
}
