package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override: MANIFOLD_SERVER_ADDRESS
// overrides server.address.
const EnvPrefix = "MANIFOLD"

// Getenv looks up an environment variable; Load takes it so tests and
// embedders can supply their own environment. os.LookupEnv fits.
type Getenv func(name string) (string, bool)

// Load reads, decodes, validates and compiles the configuration file at path.
// An invalid file yields a Problems error listing every problem found (each
// with the file as given, its YAML path and a fix); any other error (the file
// cannot be read) is returned wrapped. env supplies ${VAR} values and
// MANIFOLD_* overrides; nil means the process environment, which Load can
// also list: MANIFOLD_* variables in it that name no key are warned about
// (see Warnings), whether the file is valid or not.
func Load(path string, env Getenv) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(path, data, env)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	cfg.Digest = sum[:]
	return cfg, nil
}

// Parse is Load for a file already in memory; name is used in problems.
func Parse(name string, data []byte, env Getenv) (*Config, error) {
	var environ []string // the variables' names, when env can list them
	if env == nil {
		env = os.LookupEnv
		for _, kv := range os.Environ() {
			name, _, _ := strings.Cut(kv, "=")
			environ = append(environ, name)
		}
	}
	c := &collector{file: name, pos: map[string]position{}, via: map[string]aliasOrigin{}}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		c.addSyntax(syntaxMessage(data, err))
		return nil, c.result()
	}
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		if root.Tag != "!!null" {
			c.add("", "the file must be a YAML mapping (server:, upstreams:, endpoints: ...), not a %s", kindName(root))
			return nil, c.result()
		}
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if !expandAliases(root, c) {
		return nil, c.result()
	}
	// Problems found so far (unset variables, duplicate keys) do not stop the
	// load: every problem in the file is reported at once.
	walkNode(root, "", c, env)
	checkKeys(root, reflect.TypeOf(Config{}), "", c)
	caseKept := keptCase(root, c)

	expanded, err := yaml.Marshal(root)
	if err != nil {
		// Only text that is not UTF-8 gets here: walkNode reported where.
		if len(c.list) == 0 {
			c.add("", "the file cannot be read as YAML text: %v", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil, c.result()
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(expanded)); err != nil {
		if c.list == nil { // else a duplicate key, already reported, is why
			c.add("", "invalid YAML: %v", err)
		}
		return nil, c.result()
	}
	setDefaults(v, caseKept.upstreamLower)
	settings := v.AllSettings()
	// From here on, a problem at a key a variable set names the variable.
	overrides := applyEnv(settings, env, caseKept.upstreamLower)
	c.env = overrides.set
	c.warnings = overrides.warnings(environ)
	restoreCase(settings, caseKept)
	applyListDefaults(settings)

	// Pass 1, strict: every value of the wrong type is a problem at its path.
	if err := decode(settings, &Config{}, strictHook); err != nil {
		collectDecodeErrors(c, err)
	}
	// Pass 2, lenient: a value of the wrong type is left zero and decoding goes
	// on. mapstructure drops the unused-key metadata of every struct that had
	// an error and leaves a list element nil when its struct had one, so one
	// bad value would otherwise hide the unknown keys and validation problems
	// around it.
	cfg := &Config{File: name}
	_ = decode(settings, cfg, lenientHook)
	caseKept.apply(cfg)
	validate(cfg, c)
	if c.list != nil {
		return nil, c.result()
	}
	cfg.Warnings = c.warnings
	return cfg, nil
}

// ---- YAML walk: ${VAR} expansion, line index ----

var envRef = regexp.MustCompile(`\$\$\{|\$\{([^}]*)\}`)

func walkNode(n *yaml.Node, path string, c *collector, env Getenv) {
	switch n.Kind {
	case yaml.MappingNode:
		seenKeys := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			dupKey := p
			if line, dup := seenKeys[dupKey]; dup {
				c.addBeside(p, "duplicate key %q (line %d and line %d); the first is ignored", k.Value, line, k.Line)
				// Drop the earlier one, as YAML readers that allow duplicates
				// do, so the rest of the file is still checked.
				for j := 0; j < i; j += 2 {
					if n.Content[j].Value == k.Value {
						n.Content = append(n.Content[:j], n.Content[j+2:]...)
						i -= 2
						break
					}
				}
			}
			seenKeys[dupKey] = k.Line
			c.pos[p] = position{k.Line, k.Column}
			if !utf8.ValidString(k.Value) {
				c.add(p, "the key is not valid UTF-8 text")
				k.Value = strings.ToValidUTF8(k.Value, "\uFFFD")
			}
			walkNode(val, p, c, env)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			c.pos[p] = position{e.Line, e.Column}
			walkNode(e, p, c, env)
		}
	case yaml.ScalarNode:
		defer checkUTF8(n, path, c)
		if n.ShortTag() != "!!str" || !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$${" {
				return "${"
			}
			expr := m[2 : len(m)-1]
			name, def, hasDef := strings.Cut(expr, ":-")
			if !envName.MatchString(name) {
				c.add(path, "%q is not a valid variable reference (use ${NAME} or ${NAME:-default})", m)
				return m
			}
			if val, ok := env(name); ok && (val != "" || !hasDef) {
				return val
			}
			if hasDef {
				return def
			}
			c.add(path, "environment variable %s is not set (set it, or write ${%s:-default})", name, name)
			return ""
		})
	case yaml.AliasNode:
		// None are left: expandAliases replaced each with a copy.
	}
}

// checkUTF8 reports a scalar that is not UTF-8 (raw bytes in the file, or
// a ${VAR} value) and makes it valid, so the rest of the file is checked.
func checkUTF8(n *yaml.Node, path string, c *collector) {
	if !utf8.ValidString(n.Value) {
		c.add(path, "the value is not valid UTF-8 text")
		n.Value = strings.ToValidUTF8(n.Value, "\uFFFD")
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "map"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "null (no value)"
		}
		return "single value"
	}
	return "node"
}

// ---- keeping the case of user-named keys ----

// caseKeeper holds the maps whose keys users name (upstream names, header
// names, rename keys), read straight from the YAML so viper's lower-casing of
// keys never reaches them.
type caseKeeper struct {
	upstreamLower map[string]string            // lower-cased name -> name as written
	headers       map[string]map[string]string // upstream name as written -> headers
	rename        map[[2]int]map[string]string // [endpoint, backend] -> rename
	beHeaders     map[[2]int]map[string]string // [endpoint, backend] -> headers
	fallback      map[[2]int][]byte            // [endpoint, backend] -> fallback as JSON
	claims        map[int]map[string]string    // endpoint -> auth.claims_to_headers
	respHeaders   map[int]map[string]string    // endpoint -> response_headers
}

func keptCase(root *yaml.Node, c *collector) *caseKeeper {
	k := &caseKeeper{upstreamLower: map[string]string{}, headers: map[string]map[string]string{}, rename: map[[2]int]map[string]string{},
		beHeaders: map[[2]int]map[string]string{}, fallback: map[[2]int][]byte{},
		claims: map[int]map[string]string{}, respHeaders: map[int]map[string]string{}}
	if ups := mapValue(root, "upstreams"); ups != nil && ups.Kind == yaml.MappingNode {
		envNames := map[string]string{}
		for i := 0; i+1 < len(ups.Content); i += 2 {
			name := ups.Content[i].Value
			if strings.Contains(name, ".") {
				c.add("upstreams."+name, "upstream name %q cannot contain '.': it separates YAML paths and environment overrides", name)
				ups.Content = append(ups.Content[:i], ups.Content[i+2:]...)
				i -= 2
				continue
			}
			lower := strings.ToLower(name)
			if prev, dup := k.upstreamLower[lower]; dup && prev != name {
				c.add("upstreams."+name, "upstream names %q and %q differ only in case; environment overrides could not tell them apart, rename one", prev, name)
				continue
			}
			envName := envKey.Replace(lower)
			if prev, dup := envNames[envName]; dup {
				c.add("upstreams."+name, "upstream names %q and %q differ only by '-' and '_'; they would share environment variables (MANIFOLD_UPSTREAMS_%s_...), rename one", prev, name, strings.ToUpper(envName))
				continue
			}
			envNames[envName] = name
			k.upstreamLower[lower] = name
			if h := mapValue(ups.Content[i+1], "headers"); h != nil {
				k.headers[name] = stringMap(h, "upstreams."+name+".headers", c, true)
			}
			if hc := mapValue(ups.Content[i+1], "health_check"); hc != nil && hc.ShortTag() == "!!null" {
				// An empty block would read as no block: no checks, which
				// a reader of "health_check:" would not expect.
				c.add("upstreams."+name+".health_check", "has no value: give at least path (health_check: {path: /healthz}), or remove the key for no health checks")
			}
		}
	}
	if eps := mapValue(root, "endpoints"); eps != nil && eps.Kind == yaml.SequenceNode {
		for i, ep := range eps.Content {
			ep0 := fmt.Sprintf("endpoints[%d]", i)
			if a := mapValue(ep, "auth"); a != nil && a.ShortTag() == "!!null" {
				// Elsewhere an empty value means the default; for auth the
				// default would be no token check at all, which a reader of
				// "auth:" would not expect.
				c.add(ep0+".auth", "has no value: write auth: {} to require a valid token, or remove the key for no token check")
			}
			if h := mapValue(ep, "response_headers"); h != nil {
				k.respHeaders[i] = stringMap(h, ep0+".response_headers", c, true)
			}
			if cl := mapValue(mapValue(ep, "auth"), "claims_to_headers"); cl != nil {
				k.claims[i] = stringMap(cl, ep0+".auth.claims_to_headers", c, false)
			}
			bes := mapValue(ep, "backends")
			if bes == nil || bes.Kind != yaml.SequenceNode {
				continue
			}
			for j, be := range bes.Content {
				bp := fmt.Sprintf("endpoints[%d].backends[%d]", i, j)
				if h := mapValue(be, "hedge"); h != nil && h.ShortTag() == "!!null" {
					c.add(bp+".hedge", "has no value: give at least after (hedge: {after: 50ms}), or remove the key for no hedging")
				}
				if r := mapValue(be, "rename"); r != nil {
					k.rename[[2]int{i, j}] = stringMap(r, bp+".rename", c, false)
				}
				if h := mapValue(be, "headers"); h != nil {
					k.beHeaders[[2]int{i, j}] = stringMap(h, bp+".headers", c, true)
				}
				if f := mapValue(be, "fallback"); f != nil {
					b, err := nodeJSON(nil, f)
					if err != nil {
						c.add(bp+".fallback", "%v", err)
					} else {
						k.fallback[[2]int{i, j}] = b
					}
				}
			}
		}
	}
	return k
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if strings.EqualFold(n.Content[i].Value, key) {
			return n.Content[i+1]
		}
	}
	return nil
}

func stringMap(n *yaml.Node, path string, c *collector, foldCase bool) map[string]string {
	if n.ShortTag() == "!!null" {
		return map[string]string{}
	}
	if n.Kind != yaml.MappingNode {
		c.add(path, "expected a map of name: value, got a %s", kindName(n))
		return nil
	}
	m := make(map[string]string, len(n.Content)/2)
	seen := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i].Value, n.Content[i+1]
		p := path + "." + key
		if val.Kind != yaml.ScalarNode || val.ShortTag() == "!!null" {
			c.add(p, "expected a single value, got a %s", kindName(val))
			continue
		}
		if foldCase {
			if prev, dup := seen[strings.ToLower(key)]; dup {
				c.add(p, "header %q is also given as %q; header names are case-insensitive", key, prev)
				continue
			}
			seen[strings.ToLower(key)] = key
		}
		m[key] = val.Value
	}
	return m
}

// jsonNumber is the grammar of a JSON number.
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// nodeJSON appends the YAML value n as JSON: keys as written (viper would
// lower-case them), numbers with their text when it is JSON already, so a
// fallback says exactly what the file says.
func nodeJSON(dst []byte, n *yaml.Node) ([]byte, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch n.Kind {
	case yaml.MappingNode:
		dst = append(dst, '{')
		for i := 0; i+1 < len(n.Content); i += 2 {
			if i > 0 {
				dst = append(dst, ',')
			}
			key, _ := json.Marshal(n.Content[i].Value)
			dst = append(append(dst, key...), ':')
			var err error
			if dst, err = nodeJSON(dst, n.Content[i+1]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case yaml.SequenceNode:
		dst = append(dst, '[')
		for i, e := range n.Content {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = nodeJSON(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return append(dst, "null"...), nil
		case "!!bool":
			b, err := strconv.ParseBool(strings.ToLower(n.Value))
			if err != nil {
				return nil, fmt.Errorf("%q (line %d) is not a boolean JSON can hold", n.Value, n.Line)
			}
			return strconv.AppendBool(dst, b), nil
		case "!!int", "!!float":
			v := strings.TrimPrefix(n.Value, "+")
			if jsonNumber.MatchString(v) {
				return append(dst, v...), nil
			}
			if i, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 0, 64); err == nil {
				return strconv.AppendInt(dst, i, 10), nil
			}
			if u, err := strconv.ParseUint(strings.ReplaceAll(v, "_", ""), 0, 64); err == nil {
				return strconv.AppendUint(dst, u, 10), nil // 0x8000000000000000 to 0xFFFFFFFFFFFFFFFF
			}
			if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return strconv.AppendFloat(dst, f, 'g', -1, 64), nil
			}
			return nil, fmt.Errorf("%s (line %d) is not a number JSON can hold", n.Value, n.Line)
		}
		b, _ := json.Marshal(n.Value)
		return append(dst, b...), nil
	}
	return nil, fmt.Errorf("expected a JSON value (line %d)", n.Line)
}

// restoreCase puts upstream names back as written and removes the
// user-named maps from the settings (they are filled from the YAML instead).
func restoreCase(settings map[string]any, k *caseKeeper) {
	if ups, ok := settings["upstreams"].(map[string]any); ok {
		renamed := make(map[string]any, len(ups))
		for lower, v := range ups {
			name := lower
			if orig, ok := k.upstreamLower[lower]; ok {
				name = orig
			}
			if m, ok := v.(map[string]any); ok {
				delete(m, "headers")
			}
			renamed[name] = v
		}
		settings["upstreams"] = renamed
	}
	eps, _ := settings["endpoints"].([]any)
	for _, ep := range eps {
		epm, _ := ep.(map[string]any)
		delete(epm, "response_headers")
		if a, ok := epm["auth"].(map[string]any); ok {
			delete(a, "claims_to_headers")
		}
		bes, _ := epm["backends"].([]any)
		for _, be := range bes {
			if bem, ok := be.(map[string]any); ok {
				delete(bem, "rename")
				delete(bem, "headers")
				delete(bem, "fallback")
			}
		}
	}
}

func (k *caseKeeper) apply(cfg *Config) {
	for name, u := range cfg.Upstreams {
		if u == nil {
			continue
		}
		if h, ok := k.headers[name]; ok {
			u.Headers = h
		}
	}
	for i, ep := range cfg.Endpoints {
		if ep == nil {
			continue
		}
		if h, ok := k.respHeaders[i]; ok {
			ep.ResponseHeaders = h
		}
		if cl, ok := k.claims[i]; ok && ep.Auth != nil {
			ep.Auth.ClaimsToHeaders = cl
		}
		for j, be := range ep.Backends {
			if be == nil {
				continue
			}
			if r, ok := k.rename[[2]int{i, j}]; ok {
				be.Rename = r
			}
			if h, ok := k.beHeaders[[2]int{i, j}]; ok {
				be.Headers = h
			}
			if f, ok := k.fallback[[2]int{i, j}]; ok {
				be.FallbackJSON = f
			}
		}
	}
}

// ---- defaults and environment ----

var topDefaults = map[string]any{
	"server.address":                  ":8080",
	"server.read_header_timeout":      "5s",
	"server.read_timeout":             "30s",
	"server.write_timeout":            "30s",
	"server.idle_timeout":             "120s",
	"server.drain_delay":              "0s",
	"server.shutdown_timeout":         "15s",
	"server.max_body_bytes":           1048576,
	"server.trusted_proxies":          []string{},
	"admin.address":                   "127.0.0.1:9091",
	"log.level":                       "info",
	"log.format":                      "json",
	"log.backend_failures_per_second": 10.0,
	"demo":                            false,
	"server.h2c":                      false,
	"server.tls.cert_file":            "",
	"server.tls.key_file":             "",
	"server.compression.enabled":      true,
	"server.compression.min_bytes":    1024,
	"server.cache_bytes":              67108864,
	"server.shadow.workers":           8,
	"server.shadow.queue":             1024,
	"tracing.otlp_endpoint":           "",
	"tracing.sample_ratio":            0.1,
	"tracing.service_name":            "manifold",
}

var upstreamDefaults = map[string]any{
	"timeout":                              "1s",
	"max_concurrent":                       0,
	"max_connections":                      0,
	"max_response_bytes":                   4194304,
	"client":                               "lean",
	"compression":                          true,
	"retry.attempts":                       0,
	"retry.backoff":                        "25ms",
	"circuit_breaker.enabled":              true,
	"circuit_breaker.consecutive_failures": 5,
	"circuit_breaker.failure_ratio":        0.0,
	"circuit_breaker.min_requests":         20,
	"circuit_breaker.interval":             "60s",
	"circuit_breaker.open_timeout":         "30s",
	"circuit_breaker.half_open_requests":   1,
	"balance":                              BalanceLeastInflight,
	"outlier.consecutive_failures":         5,
	"outlier.eject_for":                    "30s",
	"outlier.max_ejected_percent":          50,
	"coalesce":                             false,
	// health_check has no entry here: a default would make viper report
	// the block present in every upstream. Its defaults are filled only
	// where the block is, by applyListDefaults.
}

// setDefaults registers every scalar default with viper, so that a
// MANIFOLD_* override applies even to a key the file does not mention.
func setDefaults(v *viper.Viper, upstreams map[string]string) {
	for k, d := range topDefaults {
		v.SetDefault(k, d)
	}
	for lower := range upstreams {
		for k, d := range upstreamDefaults {
			v.SetDefault("upstreams."+lower+"."+k, d)
		}
	}
}

// envKey maps a config key to its override variable: server.address →
// MANIFOLD_SERVER_ADDRESS ('-' in upstream names becomes '_' too).
var envKey = strings.NewReplacer(".", "_", "-", "_")

// applyEnv applies MANIFOLD_* overrides from env to every scalar key of the
// schema: the upper-cased YAML path with '_' for '.', list indexes as
// numbers and upstream names with '-' as '_' (MANIFOLD_SERVER_ADDRESS,
// MANIFOLD_UPSTREAMS_USERS_URL, MANIFOLD_ENDPOINTS_0_TIMEOUT,
// MANIFOLD_ENDPOINTS_0_BACKENDS_1_PATH). Upstreams and list entries must
// exist in the file; a list of strings (trusted_proxies, allow, ...) takes a
// comma-separated value; maps users name (headers, rename) are not
// addressable. The candidate names are derived from the schema and the
// file's shape, so only those variables are looked up.
//
// It returns what it found: the YAML path of every key a variable set, with
// the variable's name, so problems there can say where the value came from,
// and every name it looked up, for warnings about those that are no key.
// upstreams maps the lower-cased upstream names of settings to the names
// as written, which the paths use.
func applyEnv(settings map[string]any, env Getenv, upstreams map[string]string) *envOverrides {
	e := &envOverrides{env: env, upstreams: upstreams, set: map[string]string{}, known: map[string]bool{}, maps: map[string]string{}}
	e.fields(reflect.TypeOf(Config{}), EnvPrefix, "", settings)
	return e
}

// envOverrides walks the schema alongside the decoded file.
type envOverrides struct {
	env       Getenv
	upstreams map[string]string // lower-cased name -> name as written

	set   map[string]string // YAML path -> variable that set it
	known map[string]bool   // every variable that names a key
	maps  map[string]string // variable prefix of a user-named map -> its YAML path
	lists []envList         // endpoints and every endpoint's backends
	named []string          // upstream names as written
}

// envList is a list of the file whose entries variables address by index.
type envList struct {
	name, path string // MANIFOLD_ENDPOINTS, endpoints
	len        int
}

// fields visits every field of struct t, whose values live in node at the
// YAML path path.
func (e *envOverrides) fields(t reflect.Type, name, path string, node map[string]any) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "fallback" {
			e.maps[name+"_FALLBACK"] = joinPath(path, tag) // a JSON value, from the file only
			continue
		}
		if tag != "" && tag != "-" {
			e.value(t.Field(i).Type, name+"_"+strings.ToUpper(tag), joinPath(path, tag), node, tag)
		}
	}
}

// value visits the value of type t kept under key in parent; name is its
// environment variable and path its YAML path.
func (e *envOverrides) value(t reflect.Type, name, path string, parent map[string]any, key string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType || (t.Kind() != reflect.Struct && t.Kind() != reflect.Map && t.Kind() != reflect.Slice):
		e.known[name] = true
		if raw, ok := e.env(name); ok {
			parent[key] = raw
			e.set[path] = name
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		e.known[name] = true
		if raw, ok := e.env(name); ok {
			items := []any{}
			for _, item := range strings.Split(raw, ",") {
				if item = strings.TrimSpace(item); item != "" {
					items = append(items, item)
				}
			}
			parent[key] = items
			e.set[path] = name
		}
	case t.Kind() == reflect.Slice: // endpoints, backends: the file's entries
		list, _ := parent[key].([]any)
		e.lists = append(e.lists, envList{name, path, len(list)})
		for i, elem := range list {
			if m, ok := elem.(map[string]any); ok {
				e.fields(t.Elem(), name+"_"+strconv.Itoa(i), fmt.Sprintf("%s[%d]", path, i), m)
			}
		}
	case t.Kind() == reflect.Map && t.Elem().Kind() == reflect.String:
		// headers, rename: names are the user's, not addressable.
		e.maps[name] = path
	case t.Kind() == reflect.Map: // upstreams: the file's names
		named, _ := parent[key].(map[string]any)
		for n, v := range named {
			written, ok := e.upstreams[n]
			if !ok {
				written = n
			}
			e.named = append(e.named, written)
			if m, ok := v.(map[string]any); ok {
				e.fields(t.Elem(), name+"_"+strings.ToUpper(envKey.Replace(n)), joinPath(path, written), m)
			}
		}
	case t.Kind() == reflect.Struct:
		child, ok := parent[key].(map[string]any)
		if !ok {
			child = map[string]any{} // kept only if a variable fills it
		}
		e.fields(t, name, path, child)
		if len(child) > 0 {
			parent[key] = child
		}
	}
}

// applyListDefaults fills defaults into endpoints and backends, which viper
// cannot default because they are list elements, and into the blocks whose
// presence turns a feature on (server.cors, auth.jwt, an upstream's
// health_check, a backend's hedge, ...), which must stay absent when the
// file leaves them out. Present keys are kept, so an explicit bad value is
// still reported.
func applyListDefaults(settings map[string]any) {
	// Blocks whose presence turns a feature on get their defaults only
	// when present.
	applyRedisDefaults(settings)
	if srv, ok := settings["server"].(map[string]any); ok {
		if cors, ok := srv["cors"].(map[string]any); ok {
			setIfAbsent(cors, "allow_origins", []any{})
			setIfAbsent(cors, "allow_methods", []any{"GET", "POST", "PUT", "PATCH", "DELETE"})
			setIfAbsent(cors, "allow_headers", []any{})
			setIfAbsent(cors, "expose_headers", []any{"X-Request-ID", "X-Manifold-Completed"})
			setIfAbsent(cors, "allow_credentials", false)
			setIfAbsent(cors, "allow_private_network", false)
			setIfAbsent(cors, "max_age", "10m")
		}
	}
	if auth, ok := settings["auth"].(map[string]any); ok {
		if jwt, ok := auth["jwt"].(map[string]any); ok {
			setIfAbsent(jwt, "algorithms", []any{"RS256", "ES256"})
			setIfAbsent(jwt, "refresh", "10m")
			setIfAbsent(jwt, "leeway", "30s")
		}
	}
	// Upstreams are a map, which viper could default, but health_check
	// turns the checks on by being there; so its defaults are filled here,
	// once the file and the MANIFOLD_* overrides have said whether it is.
	ups, _ := settings["upstreams"].(map[string]any)
	for _, u := range ups {
		if um, ok := u.(map[string]any); ok {
			if hc, ok := um["health_check"].(map[string]any); ok {
				setIfAbsent(hc, "interval", "5s")
				setIfAbsent(hc, "timeout", "1s")
				setIfAbsent(hc, "unhealthy_after", 3)
				setIfAbsent(hc, "healthy_after", 2)
			}
		}
	}
	eps, _ := settings["endpoints"].([]any)
	for _, ep := range eps {
		epm, ok := ep.(map[string]any)
		if !ok {
			continue
		}
		setIfAbsent(epm, "method", "GET")
		setIfAbsent(epm, "timeout", defaultEndpointTimeout.String())
		setIfAbsent(epm, "merge", MergeShallow)
		if a, ok := epm["auth"].(map[string]any); ok {
			setIfAbsent(a, "required", true)
		}
		if rl, ok := epm["rate_limit"].(map[string]any); ok {
			setIfAbsent(rl, "rps", 100)
			setIfAbsent(rl, "burst", 20)
			setIfAbsent(rl, "per", "global")
			setIfAbsent(rl, "client_key", "ip")
			setIfAbsent(rl, "store", StoreLocal)
			setIfAbsent(rl, "on_error", OnErrorAllow)
		}
		bes, _ := epm["backends"].([]any)
		for _, be := range bes {
			if bem, ok := be.(map[string]any); ok {
				setIfAbsent(bem, "method", "GET")
				setIfAbsent(bem, "max_parallel", 4)
				setIfAbsent(bem, "max_items", 100)
				if h, ok := bem["hedge"].(map[string]any); ok {
					setIfAbsent(h, "max_percent", 5)
				}
			}
		}
	}
}

// defaultEndpointTimeout is endpoints[].timeout when the key is absent.
const defaultEndpointTimeout = 3 * time.Second

func setIfAbsent(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// ---- strict decoding ----

var durationType = reflect.TypeOf(time.Duration(0))

// typeError is a value of the wrong type, with a message for humans.
// notString is the value when a string was expected, so that the message
// can be made to fit the key (see typeMessage).
type typeError struct {
	msg       string
	notString any
}

func (e *typeError) Error() string { return e.msg }

// strictHook converts and checks scalars: durations must be Go duration
// strings, numbers and booleans may come as strings (environment overrides
// always do) but must parse exactly; nothing is coerced silently.
func strictHook(from, to reflect.Type, data any) (any, error) {
	if data == nil {
		return data, nil
	}
	s, isString := data.(string)
	switch {
	case to == durationType:
		if !isString {
			return nil, &typeError{msg: fmt.Sprintf("%v is not a duration: give a unit, like \"%vs\" or \"%vms\"", data, data, data)}
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			if n := strings.TrimSpace(s); isDecimal(n) {
				return nil, &typeError{msg: fmt.Sprintf("%q is not a duration: give a unit, like \"%ss\" or \"%sms\"", s, n, n)}
			}
			return nil, &typeError{msg: fmt.Sprintf("%q is not a duration (use Go syntax such as 250ms, 2s or 1m30s)", s)}
		}
		return d, nil
	case to.Kind() == reflect.String:
		if !isString {
			return nil, &typeError{msg: fmt.Sprintf("expected a string, got %v (quote it)", data), notString: data}
		}
		return s, nil
	case to.Kind() == reflect.Bool:
		if b, ok := data.(bool); ok {
			return b, nil
		}
		if isString {
			if b, err := strconv.ParseBool(strings.TrimSpace(s)); err == nil {
				return b, nil
			}
		}
		return nil, &typeError{msg: fmt.Sprintf("expected true or false, got %v", data)}
	case to.Kind() >= reflect.Int && to.Kind() <= reflect.Uint64:
		n, err := wholeNumber(data)
		if err != nil {
			return nil, err
		}
		if to.Kind() >= reflect.Uint && n < 0 {
			return nil, &typeError{msg: fmt.Sprintf("must not be negative, got %v", data)}
		}
		out := reflect.New(to).Elem()
		if to.Kind() >= reflect.Uint {
			if out.OverflowUint(uint64(n)) {
				return nil, &typeError{msg: fmt.Sprintf("%v is too large", data)}
			}
			out.SetUint(uint64(n))
		} else {
			if out.OverflowInt(n) {
				return nil, &typeError{msg: fmt.Sprintf("%v is too large", data)}
			}
			out.SetInt(n)
		}
		return out.Interface(), nil
	case to.Kind() == reflect.Float64:
		// YAML spells NaN and infinity (.nan, .inf) and ParseFloat reads
		// "NaN" and "Infinity": no key means either, and range checks
		// written as comparisons would let NaN through, so they are
		// refused here, for every number key at once.
		switch x := data.(type) {
		case int:
			return float64(x), nil
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, &typeError{msg: fmt.Sprintf("expected a finite number, got %v", x)}
			}
			return x, nil
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return nil, &typeError{msg: fmt.Sprintf("expected a number, got %q", x)}
			}
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, &typeError{msg: fmt.Sprintf("expected a finite number, got %q", x)}
			}
			return f, nil
		}
		return nil, &typeError{msg: fmt.Sprintf("expected a number, got %v", data)}
	case to.Kind() == reflect.Slice && isString:
		return nil, &typeError{msg: fmt.Sprintf("expected a list, got %q (write [%q] for one item)", s, s)}
	case (to.Kind() == reflect.Struct || to.Kind() == reflect.Map || (to.Kind() == reflect.Pointer && to.Elem().Kind() == reflect.Struct)) && reflect.TypeOf(data).Kind() != reflect.Map:
		if m := keyWithoutSpace.FindStringSubmatch(s); isString && m != nil {
			return nil, &typeError{msg: fmt.Sprintf("expected a map of settings, got %s (write a space after the colon: %s: %s)", s, m[1], m[2])}
		}
		return nil, &typeError{msg: fmt.Sprintf("expected a map of settings, got %v", data)}
	case to.Kind() == reflect.Slice && reflect.TypeOf(data).Kind() != reflect.Slice:
		return nil, &typeError{msg: fmt.Sprintf("expected a list, got %v", data)}
	}
	return data, nil
}

// isDecimal reports whether s is a plain decimal number (2, 1.5): a
// duration whose unit was left out.
func isDecimal(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil && strings.Trim(s, "0123456789.") == ""
}

// decode fills out from viper's settings through hook.
func decode(settings map[string]any, out *Config, hook mapstructure.DecodeHookFuncType) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: hook,
		Result:     out,
		TagName:    "mapstructure",
	})
	if err != nil {
		return err
	}
	return dec.Decode(settings)
}

// lenientHook is strictHook that leaves a bad value zero instead of failing.
func lenientHook(from, to reflect.Type, data any) (any, error) {
	v, err := strictHook(from, to, data)
	if err != nil {
		return nil, nil
	}
	return v, nil
}

// collectDecodeErrors turns mapstructure's joined errors into problems.
func collectDecodeErrors(c *collector, err error) {
	var walk func(error)
	walk = func(err error) {
		if multi, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range multi.Unwrap() {
				walk(e)
			}
			return
		}
		if _, ok := err.(*mapstructure.DecodeError); !ok {
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner) // Decode wraps the joined errors in one fmt.Errorf
				return
			}
		}
		var de *mapstructure.DecodeError
		if errors.As(err, &de) {
			path := normalisePath(de.Name())
			var te *typeError
			var ue *mapstructure.UnconvertibleTypeError
			switch {
			case errors.As(de, &te):
				c.add(path, "%s", typeMessage(path, te))
			case errors.As(de, &ue):
				c.add(path, "expected %s, got %v", typeName(ue.Expected.Type()), ue.Value)
			default:
				c.add(path, "%v", de.Unwrap())
			}
			return
		}
		c.add("", "%v", err)
	}
	walk(err)
}

// typeMessage is te's message, or for a listen address given as a number
// (address: 8080) the address the user most likely meant.
func typeMessage(path string, te *typeError) string {
	if te.notString == nil || !isListenAddress(path) {
		return te.msg
	}
	n, isInt := te.notString.(int)
	if !isInt || n < 1 || n > 65535 {
		return fmt.Sprintf("expected a string, got %v (write host:port, e.g. \":8080\" or \"127.0.0.1:9091\")", te.notString)
	}
	if path == "admin.address" {
		return fmt.Sprintf("expected a string, got %d (write \"127.0.0.1:%d\" for port %d of this host only, or \":%d\" for every interface)", n, n, n, n)
	}
	return fmt.Sprintf("expected a string, got %d (write \":%d\" to listen on port %d on every interface)", n, n, n)
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "a map of settings"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// normalisePath turns mapstructure's names (upstreams[users].url) into YAML
// paths (upstreams.users.url); list indexes stay in brackets.
func normalisePath(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if name[i] != '[' {
			b.WriteByte(name[i])
			continue
		}
		end := strings.IndexByte(name[i:], ']')
		if end < 0 {
			b.WriteString(name[i:])
			break
		}
		inner := name[i+1 : i+end]
		if _, err := strconv.Atoi(inner); err == nil {
			b.WriteString(name[i : i+end+1])
		} else {
			b.WriteByte('.')
			b.WriteString(inner)
		}
		i += end
	}
	return b.String()
}

// checkKeys reports every key of the file that the schema does not know,
// at its YAML path, with the closest key of the same map as a suggestion. It
// reads the YAML itself, so a key is caught even when its value is empty, and
// case counts ("Timeout" is unknown: did you mean "timeout"?), although viper
// would read it. The maps whose keys users name (upstreams, headers, rename)
// are not checked.
func checkKeys(n *yaml.Node, t reflect.Type, path string, c *collector) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != durationType && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i].Value, n.Content[i+1]
			p := joinPath(path, key)
			f, ok := fieldByTag(t, key)
			if !ok {
				if k := n.Content[i]; k.Kind != yaml.ScalarNode {
					c.add(p, "a key must be a name, not a %s (line %d)", kindName(k), k.Line)
				} else {
					c.add(p, "unknown key %q%s", key, suggest(key, t))
				}
				// Drop it, so viper (which folds case) cannot read "Timeout"
				// as "timeout" and report the wrong line's value.
				n.Content = append(n.Content[:i], n.Content[i+2:]...)
				i -= 2
				continue
			}
			if f.Type.Kind() == reflect.Map && f.Type.Elem().Kind() == reflect.String {
				continue // headers, rename: names are the user's
			}
			checkKeys(val, f.Type, p, c)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value), c)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			checkKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), c)
		}
	}
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if tag := f.Tag.Get("mapstructure"); tag != "" && tag != "-" && tag == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// suggest names the key of struct t closest to an unknown one, if any is
// close enough to be a typo.
func suggest(key string, t reflect.Type) string {
	best, bestD := "", 3
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		if d := EditDistance(strings.ToLower(key), tag); d < bestD && d < len(tag) {
			best, bestD = tag, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// EditDistance is the Levenshtein distance of two short strings: how
// config, and the CLI for its commands, tell a typo from another name.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// wholeNumber reads an integer key's value as YAML decoded it (int,
// int64, uint64, float64 for 1e3 or 2.0) or as a string (an env
// override). Integers are kept exact: through a float64, 2^63-1 rounds to
// 2^63 and would be called not whole. A whole value beyond int64 is "too
// large", a fraction or text "not a whole number".
func wholeNumber(data any) (int64, error) {
	tooLarge := &typeError{msg: fmt.Sprintf("%v is too large", data)}
	switch x := data.(type) {
	case int:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, tooLarge
		}
		return int64(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) || x != math.Trunc(x) {
			return 0, &typeError{msg: fmt.Sprintf("expected a whole number, got %v", data)}
		}
		if x >= 1<<63 || x < -(1<<63) {
			return 0, tooLarge
		}
		return int64(x), nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return 0, &typeError{msg: fmt.Sprintf("%q is too large", x)}
		}
		if err != nil {
			return 0, &typeError{msg: fmt.Sprintf("expected a whole number, got %q", x)}
		}
		return i, nil
	}
	return 0, &typeError{msg: fmt.Sprintf("expected a whole number, got %v", data)}
}
