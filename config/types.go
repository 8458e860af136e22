// Package config is Manifold's configuration: the YAML schema with its
// defaults, environment overrides, validation and compilation into immutable
// runtime values.
//
// The life of a configuration is Load (read the file through viper, expand
// ${VAR}, apply MANIFOLD_* overrides) → decode (strict: unknown keys and bad
// types are problems) → Validate (every problem, each with its YAML path) →
// Compile (parsed URLs, path templates, durations). Nothing on the request path
// reads viper: handlers and fetch only ever see a *Config that Load returned,
// and a *Config is never mutated after that.
package config

import (
	"net/netip"
	"net/url"
	"time"
)

// Config is one loaded, validated and compiled configuration file. It is
// immutable once Load returns it; a reload builds a new one.
type Config struct {
	// Server holds the main listener's settings.
	Server Server `mapstructure:"server"`
	// Admin holds the operations listener's settings (metrics, health).
	Admin Admin `mapstructure:"admin"`
	// Log selects the level and format of the process log.
	Log Log `mapstructure:"log"`
	// Auth configures token validation (auth.jwt).
	Auth Auth `mapstructure:"auth"`
	// Redis, when present, is the shared state of several replicas: rate
	// limits with store: redis take one budget from it (absent: none).
	Redis *Redis `mapstructure:"redis"`
	// Tracing exports OpenTelemetry spans over OTLP/HTTP (off unless
	// otlp_endpoint is set).
	Tracing Tracing `mapstructure:"tracing"`
	// Demo mounts the sample upstream services under /__demo/ on the main
	// listener, so the shipped config works with no other process running.
	Demo bool `mapstructure:"demo"`
	// Upstreams are the named services endpoints call, keyed by name exactly
	// as written in the file (case is kept).
	Upstreams map[string]*Upstream `mapstructure:"upstreams"`
	// Endpoints are the routes Manifold serves, in file order.
	Endpoints []*Endpoint `mapstructure:"endpoints"`

	// File is the path the configuration was loaded from, as given.
	File string `mapstructure:"-"`
	// Digest is the SHA-256 of the file's content as Load read it (nil from
	// Parse); Watch uses it to notice edits made right after loading.
	Digest []byte `mapstructure:"-"`
	// UpstreamNames lists the upstream names sorted, for stable iteration.
	UpstreamNames []string `mapstructure:"-"`
	// Warnings are what Load noticed but does not refuse, one line each,
	// sorted: MANIFOLD_* variables that name no key and are ignored
	// ("MANIFOLD_SERVER_ADRESS is not a config key; did you mean
	// MANIFOLD_SERVER_ADDRESS?"). nil when there are none. See Warnings for
	// an invalid file's.
	Warnings []string `mapstructure:"-"`
}

// Server configures the main HTTP listener.
type Server struct {
	// Address is the listen address, host:port (default ":8080").
	Address string `mapstructure:"address"`
	// ReadHeaderTimeout bounds reading request headers (default 5s); it is the
	// main defence against slow-loris clients.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included (default 30s).
	ReadTimeout time.Duration `mapstructure:"read_timeout"`
	// WriteTimeout bounds writing a response (default 30s). Keep it above the
	// longest endpoint timeout or slow answers are cut mid-write.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long (default 120s).
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// DrainDelay is how long /__ready answers 503 after SIGTERM before the
	// listener closes (default 0s); set it above the load balancer's check
	// interval so no new request is routed to a closing replica.
	DrainDelay time.Duration `mapstructure:"drain_delay"`
	// ShutdownTimeout is how long in-flight requests may take to finish after
	// the listener closes (default 15s).
	ShutdownTimeout time.Duration `mapstructure:"shutdown_timeout"`
	// MaxBodyBytes caps request bodies; larger ones get 413 (default 1 MiB).
	MaxBodyBytes int64 `mapstructure:"max_body_bytes"`
	// TrustedProxies are the IPs or CIDRs whose X-Forwarded-For is believed
	// when finding the client IP (default none: the peer address is the client).
	TrustedProxies []string `mapstructure:"trusted_proxies"`

	// TLS, when both files are set, serves HTTPS on the main listener, with
	// HTTP/2 by ALPN; the pair is reloaded on SIGHUP.
	TLS TLS `mapstructure:"tls"`
	// H2C serves cleartext HTTP/2 with prior knowledge beside HTTP/1.1, for
	// balancers that speak it (default false).
	H2C bool `mapstructure:"h2c"`
	// Compression gzips answers for clients that accept it.
	Compression Compression `mapstructure:"compression"`
	// CacheBytes is the memory of all endpoint caches together (default
	// 64 MiB); entries are evicted to stay under it.
	CacheBytes int64 `mapstructure:"cache_bytes"`
	// CORS, when present, answers browsers' preflights and adds CORS
	// headers for the allowed origins; absent, no CORS handling at all.
	CORS *CORS `mapstructure:"cors"`
	// Shadow sizes the worker pool that sends the copies of shadow
	// backends' calls, off the request path.
	Shadow Shadow `mapstructure:"shadow"`

	// TrustedPrefixes is TrustedProxies parsed and normalised: single IPs
	// become /32 or /128, IPv4-mapped IPv6 forms become IPv4.
	TrustedPrefixes []netip.Prefix `mapstructure:"-"`
}

// Shadow is the bounded worker pool of shadow calls.
type Shadow struct {
	// Workers is how many shadow calls run at once (default 8, 1 to
	// 10000). The pool is built at start-up: a change applies at the next
	// restart.
	Workers int `mapstructure:"workers"`
	// Queue is how many shadow calls may wait for a worker (default 1024,
	// at most 1000000); beyond it a call is dropped and counted, never
	// waited for. 0: a call
	// goes only to a worker idle at that moment. Each waiting call holds
	// its request body: memory is at most queue × max_body_bytes.
	Queue int `mapstructure:"queue"`
}

// Redis is the connection to the Redis shared by the replicas.
type Redis struct {
	// Address is host:port of the Redis server, e.g. 127.0.0.1:6379.
	Address string `mapstructure:"address"`
	// Username is the ACL user (default "": the default user).
	Username string `mapstructure:"username"`
	// Password authenticates; use ${REDIS_PASSWORD} (default "").
	Password string `mapstructure:"password"`
	// DB is the database number (default 0).
	DB int `mapstructure:"db"`
	// Timeout bounds one Redis call (default 50ms); past it, the rate
	// limit's on_error decides.
	Timeout time.Duration `mapstructure:"timeout"`
	// TLS connects with TLS, verified against the system roots (default
	// false).
	TLS bool `mapstructure:"tls"`
}

// Tracing configures OpenTelemetry tracing.
type Tracing struct {
	// OTLPEndpoint is the OTLP/HTTP collector's base URL, e.g.
	// http://otel-collector:4318; spans are posted to /v1/traces under it
	// (default "": tracing off, and free). The tracing keys apply at the
	// next restart, not on reload.
	OTLPEndpoint string `mapstructure:"otlp_endpoint"`
	// SampleRatio is the share of new traces sampled (default 0.1); an
	// incoming traceparent's sampled flag is honoured (parent-based).
	SampleRatio float64 `mapstructure:"sample_ratio"`
	// ServiceName is the service.name resource attribute (default
	// manifold).
	ServiceName string `mapstructure:"service_name"`
}

// TLS names the main listener's certificate and key (PEM files).
type TLS struct {
	// CertFile is the certificate chain, leaf first.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile is the certificate's private key.
	KeyFile string `mapstructure:"key_file"`
}

// Enabled reports whether HTTPS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Compression configures gzip of answers to clients.
type Compression struct {
	// Enabled turns it on (default true).
	Enabled bool `mapstructure:"enabled"`
	// MinBytes is the smallest body that is compressed (default 1024):
	// below it, gzip costs more than it saves.
	MinBytes int `mapstructure:"min_bytes"`
}

// CORS configures cross-origin resource sharing for browsers.
type CORS struct {
	// AllowOrigins are exact origins (https://app.example.com) or "*".
	AllowOrigins []string `mapstructure:"allow_origins"`
	// AllowMethods are the methods a preflight may ask for (default GET,
	// POST, PUT, PATCH, DELETE).
	AllowMethods []string `mapstructure:"allow_methods"`
	// AllowHeaders are the request headers a preflight may ask for.
	AllowHeaders []string `mapstructure:"allow_headers"`
	// ExposeHeaders are the answer headers a browser script may read
	// (default X-Request-ID, X-Manifold-Completed).
	ExposeHeaders []string `mapstructure:"expose_headers"`
	// AllowCredentials lets the browser send cookies and Authorization;
	// refused together with the origin "*".
	AllowCredentials bool `mapstructure:"allow_credentials"`
	// MaxAge is how long a browser may cache a preflight's answer (default
	// 10m).
	MaxAge time.Duration `mapstructure:"max_age"`
	// AllowPrivateNetwork grants Private Network Access: a preflight from an
	// allowed origin that carries Access-Control-Request-Private-Network:
	// true is answered Access-Control-Allow-Private-Network: true, so pages
	// on public sites may call a gateway on a private address (an intranet,
	// localhost). Default false: such a preflight gets no grant and the
	// browser blocks the call. Refused with the origin "*".
	AllowPrivateNetwork bool `mapstructure:"allow_private_network"`
}

// Auth configures request authentication.
type Auth struct {
	// JWT, when present, validates bearer tokens for the endpoints whose
	// auth asks for it; absent, no token is validated anywhere.
	JWT *JWT `mapstructure:"jwt"`
}

// JWT configures bearer token validation.
type JWT struct {
	// JWKSURL is where the key set is fetched (https in production).
	JWKSURL string `mapstructure:"jwks_url"`
	// JWKSFile is a local key set, instead of JWKSURL.
	JWKSFile string `mapstructure:"jwks_file"`
	// Secret is the HMAC key for HS256/384/512 tokens; use ${VAR}.
	Secret string `mapstructure:"secret"`
	// Issuer must equal the token's iss claim, when set.
	Issuer string `mapstructure:"issuer"`
	// Audience: the token's aud must hold one of these, when set.
	Audience []string `mapstructure:"audience"`
	// Algorithms are the accepted signature algorithms (default RS256,
	// ES256); never "none".
	Algorithms []string `mapstructure:"algorithms"`
	// Refresh is how often the key set is fetched again (default 10m); an
	// unknown kid also triggers a fetch, rate-limited.
	Refresh time.Duration `mapstructure:"refresh"`
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s).
	Leeway time.Duration `mapstructure:"leeway"`
}

// EndpointAuth is an endpoint's use of auth.jwt.
type EndpointAuth struct {
	// Required refuses a request without a valid token (401).
	Required bool `mapstructure:"required"`
	// Scopes must all be in the token's scope (or scp) claim, else 403.
	Scopes []string `mapstructure:"scopes"`
	// ClaimsToHeaders sends claims to every backend as headers (claim:
	// header); a client can never set those headers itself.
	ClaimsToHeaders map[string]string `mapstructure:"claims_to_headers"`
}

// EndpointCache caches an endpoint's complete 200 answers to GET.
type EndpointCache struct {
	// TTL is how long an answer is served from the cache.
	TTL time.Duration `mapstructure:"ttl"`
}

// Admin configures the operations listener.
type Admin struct {
	// Address is where /metrics, /__health and /__ready are served (default
	// "127.0.0.1:9091"); "" disables the admin listener. It has no
	// authentication: keep it off public networks. It uses the server's
	// read_header, read, write and idle timeouts.
	Address string `mapstructure:"address"`
}

// Log configures the process log.
type Log struct {
	// Level is debug, info, warn or error (default info).
	Level string `mapstructure:"level"`
	// Format is json or text (default json).
	Format string `mapstructure:"format"`
	// BackendFailuresPerSecond is how many "backend failed" warn lines
	// each upstream may log per second (default 10, with a burst of as
	// many; 0 = a line for every failure). The next line logged says how
	// many were left out, and the backend metrics count every failure, so
	// an outage at thousands of requests per second costs a few lines, not
	// a line per request. Applied on reload.
	BackendFailuresPerSecond float64 `mapstructure:"backend_failures_per_second"`
}

// Upstream is one named service that backends call.
type Upstream struct {
	// URL is the base address, http or https, optionally with a path prefix
	// that every backend path is appended to. Exclusive with URLs.
	URL string `mapstructure:"url"`
	// URLs are the addresses of several instances of the service, instead
	// of URL; they share scheme and path prefix, and calls are balanced
	// over them.
	URLs []string `mapstructure:"urls"`
	// Balance picks an instance per call: least_inflight (default: the
	// fewer calls in flight of two chosen at random) or round_robin.
	Balance string `mapstructure:"balance"`
	// Outlier ejects an instance that keeps failing (connect errors,
	// timeouts, 5xx) from rotation for a while.
	Outlier Outlier `mapstructure:"outlier"`
	// HealthCheck, when present, checks every instance in the background
	// and takes the failing ones out of rotation (absent: no checks).
	HealthCheck *HealthCheck `mapstructure:"health_check"`
	// Coalesce makes identical GET/HEAD calls in flight at once share one
	// upstream call (default false).
	Coalesce bool `mapstructure:"coalesce"`
	// Timeout is one call's deadline (default 1s). A call never outlives its
	// endpoint's deadline whatever this says.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxConcurrent bounds calls in flight to this upstream; calls beyond it
	// fail at once as "rejected" (default 0 = unlimited).
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// MaxConnections bounds the connections open to each instance of this
	// upstream (per url, per process); a call that finds none idle at the
	// limit waits for one within its timeout instead of dialing, so a burst
	// cannot open a connection per call (default 0 = unlimited).
	MaxConnections int `mapstructure:"max_connections"`
	// MaxResponseBytes caps an answer's decoded body; a larger one fails the
	// backend (default 4 MiB).
	MaxResponseBytes int64 `mapstructure:"max_response_bytes"`
	// Headers are sent on every call, names as written (default none). Use
	// ${VAR} for secrets.
	Headers map[string]string `mapstructure:"headers"`
	// Client selects the HTTP client: "lean" (default), Manifold's pooled
	// HTTP/1.1 client, about 3× cheaper per call; or "stdlib", Go's
	// http.Transport, which also speaks HTTP/2 to https upstreams.
	Client string `mapstructure:"client"`
	// Compression asks the upstream for gzip (Accept-Encoding: gzip) and
	// decodes a gzip answer; max_response_bytes caps the decoded size
	// (default true). False sends no Accept-Encoding.
	Compression bool `mapstructure:"compression"`
	// Retry re-tries idempotent calls that failed transiently.
	Retry Retry `mapstructure:"retry"`
	// CircuitBreaker stops calling an upstream that keeps failing.
	CircuitBreaker CircuitBreaker `mapstructure:"circuit_breaker"`
	// TLS configures how an https:// upstream is verified and what client
	// certificate it is shown (default: system roots, no certificate).
	TLS UpstreamTLS `mapstructure:"tls"`

	// Name is the upstream's key in the file, case kept.
	Name string `mapstructure:"-"`
	// BaseURL is URL parsed, with any trailing slash of its path removed;
	// with URLs, the first instance's.
	BaseURL *url.URL `mapstructure:"-"`
	// Instances are the parsed instances, one per URL or URLs entry, in
	// the order written.
	Instances []Instance `mapstructure:"-"`
}

// Instance is one instance of an upstream, parsed at load.
type Instance struct {
	// URL is the instance's base address, trailing slash removed.
	URL *url.URL
	// Addr is its host:port, with the scheme's default port filled in:
	// what is dialled, and the instance label of the metrics.
	Addr string
}

// Hedge configures hedged calls of a backend.
type Hedge struct {
	// After is how long the first try may go unanswered before the hedge
	// is sent, e.g. 50ms (required).
	After time.Duration `mapstructure:"after"`
	// MaxPercent bounds hedges to this share of the backend's ordinary
	// calls (default 5), through a budget that those calls refill.
	MaxPercent float64 `mapstructure:"max_percent"`
}

// Outlier configures passive ejection: an instance whose calls fail
// ConsecutiveFailures times in a row leaves rotation for EjectFor, doubled
// on each repeat ejection up to 10 times EjectFor.
type Outlier struct {
	// ConsecutiveFailures is how many connect errors, timeouts or 5xx
	// answers in a row eject an instance (default 5; 0 = never).
	ConsecutiveFailures int `mapstructure:"consecutive_failures"`
	// EjectFor is how long the first ejection lasts (default 30s).
	EjectFor time.Duration `mapstructure:"eject_for"`
	// MaxEjectedPercent caps the share of instances out at once (default
	// 50): with one instance, it is never ejected.
	MaxEjectedPercent int `mapstructure:"max_ejected_percent"`
}

// HealthCheck configures the active checks of an upstream's instances.
type HealthCheck struct {
	// Path is requested with GET on every instance (under the path
	// prefix); a 2xx answer passes, e.g. /healthz.
	Path string `mapstructure:"path"`
	// Interval is the time between two checks of an instance (default 5s),
	// jittered so that replicas do not check in step.
	Interval time.Duration `mapstructure:"interval"`
	// Timeout bounds one check (default 1s); it must be below Interval.
	Timeout time.Duration `mapstructure:"timeout"`
	// UnhealthyAfter failed checks in a row take an instance out of
	// rotation (default 3).
	UnhealthyAfter int `mapstructure:"unhealthy_after"`
	// HealthyAfter passed checks in a row bring it back (default 2).
	HealthyAfter int `mapstructure:"healthy_after"`
}

// UpstreamTLS configures TLS to an https:// upstream (both clients).
// Relative paths are read against the config file's directory.
type UpstreamTLS struct {
	// CAFile is a PEM bundle trusted for this upstream instead of the
	// system roots (default "": system roots).
	CAFile string `mapstructure:"ca_file"`
	// CertFile and KeyFile are a client certificate and its key shown to
	// the upstream (mTLS); both or neither.
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
	// ServerName overrides the name sent by SNI and verified in the
	// upstream's certificate (default: the URL's host).
	ServerName string `mapstructure:"server_name"`
	// InsecureSkipVerify accepts any certificate. It is warned about at
	// start-up and at every reload.
	InsecureSkipVerify bool `mapstructure:"insecure_skip_verify"`

	// CAPEM, CertPEM and KeyPEM are the files' contents as read at load,
	// so that the runtime is built from what was validated and a reload
	// with changed files counts as a changed upstream.
	CAPEM   []byte `mapstructure:"-"`
	CertPEM []byte `mapstructure:"-"`
	KeyPEM  []byte `mapstructure:"-"`
}

// Retry configures retries of GET and HEAD calls.
type Retry struct {
	// Attempts is the number of extra tries after the first (default 0), made
	// only on connect errors, timeouts and 5xx, and only within the endpoint's
	// deadline.
	Attempts int `mapstructure:"attempts"`
	// Backoff is the base wait between tries (default 25ms), jittered.
	Backoff time.Duration `mapstructure:"backoff"`
}

// CircuitBreaker configures the per-upstream breaker (sony/gobreaker).
type CircuitBreaker struct {
	// Enabled turns the breaker on (default true).
	Enabled bool `mapstructure:"enabled"`
	// ConsecutiveFailures opens the breaker after this many failures in a row
	// (default 5).
	ConsecutiveFailures uint32 `mapstructure:"consecutive_failures"`
	// FailureRatio, when > 0, also opens it once failures/requests reaches the
	// ratio (default 0 = off) ...
	FailureRatio float64 `mapstructure:"failure_ratio"`
	// MinRequests ... provided this many requests were seen in the interval
	// (default 20).
	MinRequests uint32 `mapstructure:"min_requests"`
	// Interval resets the counts of a closed breaker this often (default 60s).
	Interval time.Duration `mapstructure:"interval"`
	// OpenTimeout is how long an open breaker waits before letting probes
	// through (default 30s).
	OpenTimeout time.Duration `mapstructure:"open_timeout"`
	// HalfOpenRequests is the number of probes allowed while half-open
	// (default 1).
	HalfOpenRequests uint32 `mapstructure:"half_open_requests"`
}

// Endpoint is one route that fans out to its backends.
type Endpoint struct {
	// Path is the route, with {name} path parameters (whole segments).
	Path string `mapstructure:"path"`
	// Method is GET, POST, PUT, PATCH or DELETE (default GET).
	Method string `mapstructure:"method"`
	// Timeout is the whole request's deadline (default 3s).
	Timeout time.Duration `mapstructure:"timeout"`
	// ForwardHeaders are client request headers copied to every backend call.
	ForwardHeaders []string `mapstructure:"forward_headers"`
	// ForwardQuery are query parameters forwarded; ["*"] forwards all.
	ForwardQuery []string `mapstructure:"forward_query"`
	// ExposeErrors adds "_errors": {name: reason} to partial answers.
	ExposeErrors bool `mapstructure:"expose_errors"`
	// RateLimit, when present, limits how often the endpoint is served.
	RateLimit *RateLimit `mapstructure:"rate_limit"`
	// Auth, when present, validates the request's bearer token with
	// auth.jwt before anything else.
	Auth *EndpointAuth `mapstructure:"auth"`
	// Cache, when present, serves complete 200 answers to GET from memory.
	Cache *EndpointCache `mapstructure:"cache"`
	// ResponseHeaders are added to every answer of the endpoint, errors
	// included. Names are canonical once loaded (x-frame-options ->
	// X-Frame-Options), so the gateway's own header of a name replaces a
	// configured one rather than going out beside it.
	ResponseHeaders map[string]string `mapstructure:"response_headers"`
	// Backends are the calls made for each request, in merge order.
	Backends []*Backend `mapstructure:"backends"`
	// Merge is shallow (default: later top-level keys replace earlier ones)
	// or deep (objects merge recursively, arrays concatenate).
	Merge string `mapstructure:"merge"`

	// Index is the endpoint's position in the file.
	Index int `mapstructure:"-"`
	// Route is Path in the router's syntax ({id} → :id).
	Route string `mapstructure:"-"`
	// Params are the path parameter names in order of appearance.
	Params []string `mapstructure:"-"`
	// badPath: Path was refused, so Params is not known and a backend's
	// parameter is not reported as unknown.
	badPath bool
	// ForwardAllQuery is true when ForwardQuery is ["*"].
	ForwardAllQuery bool `mapstructure:"-"`
	// ForwardHeaderKeys is ForwardHeaders in canonical MIME form.
	ForwardHeaderKeys []string `mapstructure:"-"`
	// Deep is Merge == "deep".
	Deep bool `mapstructure:"-"`
	// Graph is true when some backend depends on another: the endpoint is
	// served as a call graph. Without it, every backend starts at once as
	// it always has.
	Graph bool `mapstructure:"-"`
	// Stages are the backend indexes by dependency depth (stage 0 depends
	// on nothing), for `manifold graph`; set only with Graph.
	Stages [][]int `mapstructure:"-"`
}

// RateLimit configures a token bucket for an endpoint.
type RateLimit struct {
	// RPS is tokens added per second; may be fractional (0.5 = one every 2s).
	RPS float64 `mapstructure:"rps"`
	// Burst is the bucket size: requests allowed at once (>= 1).
	Burst int `mapstructure:"burst"`
	// Per is global (one bucket for the endpoint) or client (one per client).
	Per string `mapstructure:"per"`
	// ClientKey identifies a client: ip, header:NAME (the IP when absent),
	// or claim:NAME of the validated token (the IP without a token).
	ClientKey string `mapstructure:"client_key"`
	// Store keeps the buckets: local (default: per replica) or redis (one
	// budget shared by every replica on the same redis).
	Store string `mapstructure:"store"`
	// OnError decides requests while Redis cannot answer within its
	// timeout: allow (default) or deny (429). It applies to store: redis
	// only; written on a local limit it is refused.
	OnError string `mapstructure:"on_error"`

	// KeyHeader is NAME of header:NAME, canonicalised; "" means by IP.
	KeyHeader string `mapstructure:"-"`
	// KeyClaim is NAME of claim:NAME: the client is the token's claim.
	KeyClaim string `mapstructure:"-"`
}

// Backend is one upstream call of an endpoint.
type Backend struct {
	// Upstream names the service to call.
	Upstream string `mapstructure:"upstream"`
	// Path is appended to the upstream URL; {name} takes the endpoint's path
	// parameter, path-escaped. It may carry a static query.
	Path string `mapstructure:"path"`
	// Method is the HTTP method of the call (default GET).
	Method string `mapstructure:"method"`
	// Group puts this backend's result under this key of the response.
	Group string `mapstructure:"group"`
	// Target keeps only this field of the answer (dot path).
	Target string `mapstructure:"target"`
	// Allow keeps only these fields (dot paths).
	Allow []string `mapstructure:"allow"`
	// Deny drops these fields (dot paths).
	Deny []string `mapstructure:"deny"`
	// Rename renames top-level keys, old: new, case kept.
	Rename map[string]string `mapstructure:"rename"`
	// Required makes this backend's failure fail the whole request.
	Required bool `mapstructure:"required"`
	// Passthrough relays status, headers and body unchanged (only backend of
	// its endpoint).
	Passthrough bool `mapstructure:"passthrough"`
	// Name identifies the backend in references ({NAME.path}) and
	// depends_on (default: its group, else its upstream).
	Name string `mapstructure:"name"`
	// DependsOn names backends that must answer before this one is called,
	// besides those its references name.
	DependsOn []string `mapstructure:"depends_on"`
	// Headers are static headers of this backend's calls, names as written;
	// values may hold references. They win over the upstream's headers.
	Headers map[string]string `mapstructure:"headers"`
	// Foreach (NAME.path) calls the backend once per element of that array
	// of backend NAME's answer; {item} and {item.path} address the element.
	Foreach string `mapstructure:"foreach"`
	// MaxParallel bounds the foreach calls in flight at once (default 4).
	MaxParallel int `mapstructure:"max_parallel"`
	// MaxItems fails the backend when the foreach array, or an array a
	// reference expands into a query list, is longer (default 100).
	MaxItems int `mapstructure:"max_items"`
	// Fallback, any JSON value, stands in for the answer when the backend
	// fails; the backend then never decides the status.
	Fallback any `mapstructure:"fallback"`
	// Shadow sends a copy of this call off the request path, through the
	// server.shadow pool; its answer is read and discarded, never merged,
	// and never changes the client's answer (default false).
	Shadow bool `mapstructure:"shadow"`
	// Hedge, when present, sends a second try of a GET/HEAD call to
	// another instance when the first has not answered in time; the first
	// answer wins.
	Hedge *Hedge `mapstructure:"hedge"`

	// Index is the backend's position in its endpoint.
	Index int `mapstructure:"-"`
	// Label names the backend in "_errors" and error bodies: the group, else
	// the upstream name, made unique within the endpoint with "#index".
	Label string `mapstructure:"-"`
	// Template is Path compiled.
	Template *PathTemplate `mapstructure:"-"`
	// ID is the name references use: Name, else Group, else Upstream.
	ID string `mapstructure:"-"`
	// Refs are the distinct references of Path, its query and Headers, in
	// order of appearance; templates address them by index.
	Refs []*Ref `mapstructure:"-"`
	// ForeachRef is Foreach compiled; nil without foreach.
	ForeachRef *Ref `mapstructure:"-"`
	// HeaderTemplates are Headers compiled, sorted by name.
	HeaderTemplates []*HeaderTemplate `mapstructure:"-"`
	// Deps are the indexes of the backends this one waits for (references,
	// foreach and depends_on), sorted.
	Deps []int `mapstructure:"-"`
	// Referenced is true when another backend reads this one's answer, so
	// the answer is kept as the upstream sent it.
	Referenced bool `mapstructure:"-"`
	// FallbackJSON is Fallback as compact JSON (numbers keep their text);
	// nil without fallback.
	FallbackJSON []byte `mapstructure:"-"`
}
