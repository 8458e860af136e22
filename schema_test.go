package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/invopop/jsonschema"
	jsv "github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/manifold-gw/manifold/config"
)

// The schema `manifold schema` prints (docs/config.schema.json, embedded)
// is generated from the config structs and their doc comments. After a
// change to config/, regenerate it with
//
//	go test -run TestSchemaUpToDate -update .
var updateSchema = flag.Bool("update", false, "rewrite "+schemaFile+" from the config structs (TestSchemaUpToDate)")

const (
	schemaFile   = "docs/config.schema.json"
	regenerate   = "go test -run TestSchemaUpToDate -update ."
	modulePath   = "github.com/manifold-gw/manifold"
	schemaTitle  = "Manifold configuration"
	schemaAbout  = "Manifold's config file (config.yaml). It checks keys and types as written; manifold check also applies the rules between keys, ${VAR} and MANIFOLD_* overrides."
	schemaHeader = "Generated from the config structs by: " + regenerate + " (do not edit)."
)

// durationPattern is Go's duration syntax (time.ParseDuration): "0", or
// numbers with units, "250ms", "1h30m", "1.5s"; or, since a duration is a
// string in the file, one holding a ${VAR} reference that Load expands.
const durationPattern = `^([-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)|.*\$\{[^}]+\}.*)$`

// generateSchema reflects config.Config into its JSON Schema: mapstructure
// names, no mapstructure:"-" field, additionalProperties false on every
// block (the maps users name take any key), durations as strings in Go
// syntax, fallback as any value, descriptions from the doc comments in
// ./config and defaults from config.Defaults. It reads Go source, so it
// runs at development time only; the binary embeds its output.
func generateSchema() ([]byte, error) {
	r := &jsonschema.Reflector{
		FieldNameTag:               "mapstructure",
		RequiredFromJSONSchemaTags: true, // no key is required by the schema alone
		DoNotReference:             true, // one tree: defaults and nulls go by YAML path
		Anonymous:                  true,
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			if t == reflect.TypeFor[time.Duration]() {
				return &jsonschema.Schema{Type: "string", Pattern: durationPattern}
			}
			return nil
		},
	}
	if err := r.AddGoComments(modulePath, "./config"); err != nil {
		return nil, fmt.Errorf("read the doc comments of ./config: %w", err)
	}
	s := r.Reflect(&config.Config{})
	s.Title, s.Description, s.Comments = schemaTitle, schemaAbout, schemaHeader
	if err := checkReflected(s, reflect.TypeFor[config.Config](), ""); err != nil {
		return nil, err
	}
	for path, d := range config.Defaults() {
		at := schemaAt(s, path)
		if at == nil {
			return nil, fmt.Errorf("config.Defaults has %s, which the config structs do not have", path)
		}
		at.Default = d
	}
	describeKeys(s)
	// A block written with no value ("health_check:") is read as present
	// (with its defaults) or absent, never refused: allow null.
	var err error
	goPaths(reflect.TypeFor[config.Config](), "", func(path string, _ reflect.Type, f reflect.StructField) {
		if f.Type.Kind() != reflect.Pointer || f.Type.Elem().Kind() != reflect.Struct || err != nil {
			return
		}
		parent, name := s, path
		if i := strings.LastIndexByte(path, '.'); i >= 0 {
			parent, name = schemaAt(s, path[:i]), path[i+1:]
		}
		block, ok := parent.Properties.Get(name)
		if !ok {
			err = fmt.Errorf("%s is not in the schema", path)
			return
		}
		parent.Properties.Set(name, &jsonschema.Schema{
			Description: block.Description,
			AnyOf:       []*jsonschema.Schema{block, {Type: "null"}},
		})
		block.Description = ""
	})
	if err != nil {
		return nil, err
	}
	tidyDescriptions(s)

	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return unescapeHTML(b)
}

// checkReflected makes sure every key of the structs is in the schema with
// the type the loader reads, and nothing else is: the reflector's rules
// (tags, skipped fields) are the loader's.
func checkReflected(s *jsonschema.Schema, t reflect.Type, path string) error {
	var problems []string
	goPaths(t, path, func(p string, _ reflect.Type, _ reflect.StructField) {
		if schemaAt(s, p) == nil {
			problems = append(problems, p+" is not in the schema")
		}
	})
	if len(problems) > 0 {
		return fmt.Errorf("the schema does not match the config structs:\n%s", strings.Join(problems, "\n"))
	}
	return nil
}

// describeKeys makes the doc comments read as the file is written: a
// field that shares the comment of the one before it ("CertFile and KeyFile
// are ...") gets that comment, and the Go names of a struct's fields become
// their keys ("ReadTimeout bounds ..." → "read_timeout bounds ...").
func describeKeys(s *jsonschema.Schema) {
	last := map[reflect.Type]string{} // the description of the field before, per struct
	goPaths(reflect.TypeFor[config.Config](), "", func(path string, in reflect.Type, f reflect.StructField) {
		at := schemaAt(s, path)
		if at.Description == "" && goName(f.Name).MatchString(last[in]) {
			at.Description = last[in]
		}
		last[in] = at.Description
	})
	goPaths(reflect.TypeFor[config.Config](), "", func(path string, in reflect.Type, own reflect.StructField) {
		at := schemaAt(s, path)
		if rest, ok := strings.CutPrefix(at.Description, own.Name); ok && !startsWord(rest) {
			at.Description = own.Tag.Get("mapstructure") + rest
		}
		// Further on, a word in capitals (CORS, URL) is more often an
		// acronym than a field's name: only CamelCase names are keys.
		for f := range in.Fields() {
			if tag := f.Tag.Get("mapstructure"); tag != "" && tag != "-" && strings.ToUpper(f.Name) != f.Name {
				at.Description = goName(f.Name).ReplaceAllLiteralString(at.Description, tag)
			}
		}
	})
}

// startsWord reports whether s starts with a letter or digit: "URLs" after
// "URL".
func startsWord(s string) bool {
	return s != "" && (unicode.IsLetter(rune(s[0])) || unicode.IsDigit(rune(s[0])))
}

// goName matches a Go identifier as a whole word.
func goName(name string) *regexp.Regexp {
	return regexp.MustCompile(`\b` + regexp.QuoteMeta(name) + `\b`)
}

// goPaths calls visit with the YAML path of every key of struct t, in the
// syntax of config.Defaults ("upstreams.*.timeout", "endpoints[].path"),
// the struct that holds the key and its field.
func goPaths(t reflect.Type, path string, visit func(path string, in reflect.Type, f reflect.StructField)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for f := range t.Fields() {
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		p := tag
		if path != "" {
			p = path + "." + tag
		}
		visit(p, t, f)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft == reflect.TypeFor[time.Duration]():
		case ft.Kind() == reflect.Struct:
			goPaths(ft, p, visit)
		case ft.Kind() == reflect.Slice && isStruct(ft.Elem()):
			goPaths(ft.Elem(), p+"[]", visit)
		case ft.Kind() == reflect.Map && isStruct(ft.Elem()):
			goPaths(ft.Elem(), p+".*", visit)
		}
	}
}

func isStruct(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct
}

// schemaAt is the schema of the key at path ("server.address",
// "upstreams.*.timeout", "endpoints[].backends[].method"), or nil.
func schemaAt(s *jsonschema.Schema, path string) *jsonschema.Schema {
	for _, seg := range strings.Split(path, ".") {
		if s == nil {
			return nil
		}
		if seg == "*" {
			s = s.AdditionalProperties
			continue
		}
		name, list := strings.CutSuffix(seg, "[]")
		if s.Properties == nil {
			return nil
		}
		p, ok := s.Properties.Get(name)
		if !ok {
			return nil
		}
		s = p
		if list {
			s = s.Items
		}
	}
	return s
}

// tidyDescriptions joins the lines of each doc comment into one paragraph,
// as editors show a description.
func tidyDescriptions(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	s.Description = strings.Join(strings.Fields(s.Description), " ")
	if s.Properties != nil {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			tidyDescriptions(p.Value)
		}
	}
	tidyDescriptions(s.Items)
	tidyDescriptions(s.AdditionalProperties)
	for _, a := range s.AnyOf {
		tidyDescriptions(a)
	}
}

// unescapeHTML undoes encoding/json's \u003c, \u003e and \u0026 (the
// descriptions are read by people), checking that the JSON means the same.
func unescapeHTML(b []byte) ([]byte, error) {
	out := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(b)) + "\n"
	var before, after any
	if err := json.Unmarshal(b, &before); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(out), &after); err != nil || !reflect.DeepEqual(before, after) {
		return nil, fmt.Errorf("unescaping <, > and & changed the schema (%v)", err)
	}
	return []byte(out), nil
}

// docs/config.schema.json is what the config structs generate today: a
// change to config/ that is not regenerated fails here.
func TestSchemaUpToDate(t *testing.T) {
	want, err := generateSchema()
	if err != nil {
		t.Fatal(err)
	}
	if *updateSchema {
		if err := os.WriteFile(schemaFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", schemaFile)
		return
	}
	got, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatalf("%v\nGenerate it with: %s", err, regenerate)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not what the config structs generate (first difference at line %d).\nRegenerate it with: %s",
			schemaFile, firstDiffLine(got, want), regenerate)
	}
	if !bytes.Equal(configSchema, got) {
		t.Fatalf("the embedded schema differs from %s: rebuild", schemaFile)
	}
}

func firstDiffLine(a, b []byte) int {
	al, bl := strings.Split(string(a), "\n"), strings.Split(string(b), "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

// compiledSchema is the embedded schema, compiled by a validator other
// than the library that wrote it.
func compiledSchema(t *testing.T) *jsv.Schema {
	t.Helper()
	doc, err := jsv.UnmarshalJSON(bytes.NewReader(configSchema))
	if err != nil {
		t.Fatalf("%s is not JSON: %v", schemaFile, err)
	}
	c := jsv.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatalf("%s does not compile: %v", schemaFile, err)
	}
	return s
}

// yamlValue is a YAML document as the JSON values a schema validates.
func yamlValue(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsv.UnmarshalJSON(bytes.NewReader(j))
}

func noEnv(string) (string, bool) { return "", false }

// brokenExamples are the docs/examples that are meant not to load.
var brokenExamples = []string{"docs/examples/bad-indent.yaml", "docs/examples/broken.yaml"}

// Every config the repository ships that is meant to load validates
// against the schema (and loads): the schema refuses nothing Manifold
// serves.
func TestSchemaAcceptsShippedConfigs(t *testing.T) {
	t.Parallel()
	s := compiledSchema(t)
	files := []string{"config.yaml"}
	for _, pattern := range []string{"bench/*.yaml", "docs/examples/*.yaml", "docs/examples/jwt/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	for _, b := range brokenExamples {
		if !slices.Contains(files, b) {
			t.Errorf("brokenExamples lists %s, which is no example: update the list", b)
		}
	}
	for _, f := range files {
		if slices.Contains(brokenExamples, f) {
			continue
		}
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(f, noEnv); err != nil {
				t.Fatalf("does not load (list it in brokenExamples if that is meant):\n%v", err)
			}
			v, err := yamlValue(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(v); err != nil {
				t.Errorf("refused by %s:\n%v", schemaFile, err)
			}
		})
	}
}

// The schema refuses a misspelled key and a value of the wrong type, as
// Manifold does; the maps whose keys users name take any key, and fallback
// any value.
func TestSchemaRefuses(t *testing.T) {
	t.Parallel()
	s := compiledSchema(t)
	const base = `upstreams:
  users:
    url: http://users.test
%s
endpoints:
  - path: /u/{id}
%s
    backends:
      - upstream: users
        path: /users/{id}
%s
`
	// Each case adds lines to the upstream, the endpoint or the backend.
	cases := []struct {
		name                        string
		upstream, endpoint, backend string
		valid                       bool
	}{
		{"the base config", "", "", "", true},
		{"misspelled key in an upstream", "    timout: 2s", "", "", false},
		{"misspelled key in an endpoint", "", "    timeuot: 2s", "", false},
		{"misspelled key in a backend", "", "", "        grop: user", false},
		{"misspelled key in a nested block", "    retry: {atempts: 2}", "", "", false},
		{"a key in the wrong case", "    Timeout: 2s", "", "", false},
		{"a duration without a unit", "    timeout: 5", "", "", false},
		{"a duration in words", `    timeout: "5 seconds"`, "", "", false},
		{"a string for a number", "    max_concurrent: many", "", "", false},
		{"a fraction for a whole number", "    max_concurrent: 1.5", "", "", false},
		{"a string for a list", "", "", "        allow: id", false},
		{"a string for a boolean", "", "", "        required: sure", false},
		{"a list for a block", "    retry: [1, 2]", "", "", false},
		{"durations in Go syntax", "    timeout: 1h30m\n    retry: {backoff: 250ms}", "", "", true},
		{"a duration from the environment", "    timeout: ${USERS_TIMEOUT:-2s}", "", "", true},
		{"a secret from the environment", `    headers: {X-Api-Key: "${USERS_KEY:-none}"}`, "", "", true},
		{"header names are the user's", "    headers: {X-Anything-At-All: v}", "    response_headers: {X-Served-By: manifold}", `        headers: {X-Other: "{id}"}`, true},
		{"rename keys are the user's", "", "", "        rename: {AnyKey: any_key}", true},
		{"fallback takes an object", "", "", "        fallback: {items: [], total: 0}", true},
		{"fallback takes a list", "", "", "        fallback: []", true},
		{"fallback takes a number", "", "", "        fallback: 0", true},
		{"an optional block written with no value", "", "    rate_limit:", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := fmt.Sprintf(base, tc.upstream, tc.endpoint, tc.backend)
			v, err := yamlValue([]byte(file))
			if err != nil {
				t.Fatal(err)
			}
			schemaErr := s.Validate(v)
			_, loadErr := config.Parse("t.yaml", []byte(file), noEnv)
			switch {
			case tc.valid && schemaErr != nil:
				t.Errorf("the schema refuses:\n%s\n%v", file, schemaErr)
			case !tc.valid && schemaErr == nil:
				t.Errorf("the schema accepts:\n%s", file)
			}
			if (loadErr == nil) != tc.valid {
				t.Errorf("Manifold disagrees (load error: %v):\n%s", loadErr, file)
			}
		})
	}
}

// `manifold schema` prints the embedded schema, the file the repository
// ships, and takes no flag but --help.
func TestCLISchema(t *testing.T) {
	t.Parallel()
	file, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("schema")
	if code != 0 || stderr != "" || stdout != string(file) {
		t.Errorf("exit %d stderr %q, stdout the file: %v; want 0, nothing, true", code, stderr, stdout == string(file))
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" || doc["title"] != schemaTitle {
		t.Errorf("$schema %v title %v", doc["$schema"], doc["title"])
	}
	for _, args := range [][]string{{"schema", "-c", "config.yaml"}, {"schema", "extra"}} {
		if code, stdout, _ := runCLI(args...); code != 2 || stdout != "" {
			t.Errorf("%q: exit %d stdout %d bytes, want 2 and nothing", args, code, len(stdout))
		}
	}
}

// The shipped config.yaml names the schema on its first line, where the
// YAML language server looks, by a path that exists from its directory.
func TestShippedConfigNamesTheSchema(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	const want = "# yaml-language-server: $schema=./" + schemaFile
	if first != want {
		t.Fatalf("config.yaml starts with %q, want %q", first, want)
	}
	if _, err := os.Stat(strings.TrimPrefix(want, "# yaml-language-server: $schema=")); err != nil {
		t.Error(err)
	}
}
