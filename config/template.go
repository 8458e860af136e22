package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// paramName is what may stand between braces in a path: an identifier.
var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// PathTemplate is a backend path compiled once at load time, so that building
// a backend URL per request is a few appends and one escape per parameter.
type PathTemplate struct {
	parts []templatePart
	query []templatePart
	// pairs is the query split into name=value pairs, set only when the
	// query holds a reference: a pair whose reference is an array repeats.
	pairs [][]templatePart
}

type templatePart struct {
	literal  string
	param    int  // index into the endpoint's Params; -1 for a literal or a reference
	ref      *Ref // a {NAME.path} reference, else nil
	refIndex int  // ref's index in the backend's Refs
}

// AppendPath appends the path with each {param} replaced by the path-escaped
// value params[i] (aligned with Endpoint.Params). Escaping makes '/', '?', '#',
// '%' and control characters inert, so a parameter can never change the
// upstream's path structure, query or headers.
func (t *PathTemplate) AppendPath(dst []byte, params []string) []byte {
	return appendParts(dst, t.parts, params, url.PathEscape)
}

// HasQuery reports whether the backend path carries its own query.
func (t *PathTemplate) HasQuery() bool { return len(t.query) > 0 }

// AppendQuery appends the backend path's own query (without '?'), with each
// {param} replaced by the query-escaped value, so that '&', '=' and '#' in a
// parameter stay inside its value.
func (t *PathTemplate) AppendQuery(dst []byte, params []string) []byte {
	return appendParts(dst, t.query, params, url.QueryEscape)
}

// appendParts renders literals as they are and parameters through escape.
func appendParts(dst []byte, parts []templatePart, params []string, escape func(string) string) []byte {
	for _, p := range parts {
		if p.param < 0 {
			dst = append(dst, p.literal...)
			continue
		}
		dst = append(dst, escape(params[p.param])...)
	}
	return dst
}

// splitTemplate breaks a path into literals and {name} parameters. It reports
// malformed braces and parameters that do not fill a whole path segment
// (the router can only match whole segments).
func splitTemplate(path string) (parts []templatePart, names []string, err error) {
	return splitTemplateRefs(path, false)
}

// splitTemplateRefs is splitTemplate that, with refs, also accepts
// {NAME.dot.path} (a part with literal set to the inside and param 1).
func splitTemplateRefs(path string, refs bool) (parts []templatePart, names []string, err error) {
	rest := path
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		close := strings.IndexByte(rest, '}')
		if open < 0 {
			if close >= 0 {
				return nil, nil, fmt.Errorf("unbalanced '}' in %q", path)
			}
			parts = append(parts, templatePart{literal: rest, param: -1})
			break
		}
		if close < open {
			return nil, nil, fmt.Errorf("unbalanced braces in %q", path)
		}
		name := rest[open+1 : close]
		isRef := refs && strings.Contains(name, ".")
		if !isRef && !paramName.MatchString(name) {
			return nil, nil, fmt.Errorf("parameter {%s} in %q: a name is letters, digits and _ and does not start with a digit", name, path)
		}
		before, after := rest[:open], rest[close+1:]
		if !strings.HasSuffix(before, "/") || (after != "" && after[0] != '/') {
			return nil, nil, fmt.Errorf("parameter {%s} in %q must be a whole path segment, like /users/{%s}", name, path, name)
		}
		parts = append(parts, templatePart{literal: before, param: -1}, templatePart{literal: name, param: 0})
		if !isRef {
			names = append(names, name)
		}
		rest = after
	}
	return parts, names, nil
}

// compileTemplate compiles a backend path against its endpoint's parameter
// names. It returns an error per unknown parameter. References
// ({NAME.path}, and {item} in a foreach backend) are added to be.Refs; their
// names are resolved later, once every backend of the endpoint is known.
func compileTemplate(path string, endpointParams []string, be *Backend) (*PathTemplate, []error) {
	raw, query, _ := strings.Cut(path, "?")
	if strings.ContainsAny(path, "#") {
		return nil, []error{fmt.Errorf("%q: a backend path cannot carry a fragment", path)}
	}
	parts, _, err := splitTemplateRefs(raw, true)
	if err != nil {
		return nil, []error{err}
	}
	var errs []error
	t := &PathTemplate{}
	qparts, err := splitQuery(query)
	if err != nil {
		return nil, []error{err}
	}
	foreach := be.Foreach != ""
	// resolve turns a {…} part into a parameter or a reference.
	resolve := func(p templatePart) (templatePart, bool) {
		ref, isRef, err := parseRef(p.literal, foreach)
		switch {
		case err != nil:
			errs = append(errs, err)
			return p, false
		case isRef:
			ref.field = "path"
			return templatePart{param: -1, ref: ref, refIndex: be.addRef(ref)}, true
		}
		idx := slices.Index(endpointParams, p.literal)
		if idx < 0 {
			errs = append(errs, unknownParam(p.literal, endpointParams))
			return p, false
		}
		return templatePart{param: idx}, true
	}
	for _, p := range parts {
		if p.param < 0 {
			if p.literal == "" {
				continue
			}
			if _, err := url.Parse("http://h" + p.literal); err != nil || strings.ContainsAny(p.literal, " \t\r\n") {
				errs = append(errs, fmt.Errorf("%q is not a valid URL path (escape special characters)", p.literal))
			}
			t.parts = append(t.parts, p)
			continue
		}
		if q, ok := resolve(p); ok {
			t.parts = append(t.parts, q)
		}
	}
	// The query after the path: references are recorded in order of
	// appearance.
	queryRefs := false
	for _, p := range qparts {
		if p.param < 0 {
			t.query = append(t.query, p)
			continue
		}
		if q, ok := resolve(p); ok {
			t.query = append(t.query, q)
			queryRefs = queryRefs || q.ref != nil
		}
	}
	if queryRefs {
		t.pairs = splitPairs(t.query)
	}
	return t, errs
}

// addRef records r among the backend's references, once per text, and
// returns its index.
func (be *Backend) addRef(r *Ref) int {
	for i, old := range be.Refs {
		if old.Text == r.Text {
			return i
		}
	}
	be.Refs = append(be.Refs, r)
	return len(be.Refs) - 1
}

// splitPairs cuts a compiled query at the '&' of its literals into
// name=value pairs, so that a pair can be repeated for an array.
func splitPairs(parts []templatePart) [][]templatePart {
	var pairs [][]templatePart
	var cur []templatePart
	for _, p := range parts {
		if p.param >= 0 || p.ref != nil {
			cur = append(cur, p)
			continue
		}
		lits := strings.Split(p.literal, "&")
		for i, l := range lits {
			if i > 0 {
				if len(cur) > 0 {
					pairs = append(pairs, cur)
				}
				cur = nil
			}
			if l != "" {
				cur = append(cur, templatePart{literal: l, param: -1})
			}
		}
	}
	if len(cur) > 0 {
		pairs = append(pairs, cur)
	}
	return pairs
}

// compileHeader compiles a backend's static header value, which may hold
// references.
func compileHeader(name, value string, be *Backend) (*HeaderTemplate, error) {
	h := &HeaderTemplate{Name: name}
	rest := value
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			h.parts = append(h.parts, templatePart{literal: rest, param: -1})
			break
		}
		close := strings.IndexByte(rest[open:], '}')
		if close < 0 {
			// Not a reference: a header value may hold a brace.
			h.parts = append(h.parts, templatePart{literal: rest, param: -1})
			break
		}
		inner := rest[open+1 : open+close]
		// {item} is a reference here even without foreach (compileGraph
		// then refuses it): a header has no {param} it could be.
		ref, isRef, err := parseRef(inner, true)
		if err != nil {
			return nil, err
		}
		if open > 0 {
			h.parts = append(h.parts, templatePart{literal: rest[:open], param: -1})
		}
		if isRef {
			ref.field = "headers." + name
			h.parts = append(h.parts, templatePart{param: -1, ref: ref, refIndex: be.addRef(ref)})
		} else {
			h.parts = append(h.parts, templatePart{literal: rest[open : open+close+1], param: -1})
		}
		rest = rest[open+close+1:]
	}
	if len(h.parts) == 0 {
		h.parts = []templatePart{{literal: "", param: -1}}
	}
	return h, nil
}

// unknownParamError is a backend path's {name} that the endpoint path
// does not have.
type unknownParamError struct{ msg string }

func (e *unknownParamError) Error() string { return e.msg }

func unknownParam(name string, known []string) error {
	list := "none"
	if len(known) > 0 {
		list = strings.Join(known, ", ")
	}
	return &unknownParamError{fmt.Sprintf("{%s} is not a parameter of the endpoint path (known: %s)", name, list)}
}

// splitQuery breaks a static query into literals and {name} parameters,
// which may stand anywhere in a value (?user={id}&v=2).
func splitQuery(query string) ([]templatePart, error) {
	var parts []templatePart
	rest := query
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			parts = append(parts, templatePart{literal: rest, param: -1})
			break
		}
		close := strings.IndexByte(rest[open:], '}')
		if close < 0 {
			return nil, fmt.Errorf("unbalanced '{' in query %q", query)
		}
		name := rest[open+1 : open+close]
		if !paramName.MatchString(name) && !strings.Contains(name, ".") {
			return nil, fmt.Errorf("parameter {%s} in query %q: a name is letters, digits and _", name, query)
		}
		if open > 0 {
			parts = append(parts, templatePart{literal: rest[:open], param: -1})
		}
		parts = append(parts, templatePart{literal: name, param: 0})
		rest = rest[open+close+1:]
	}
	var lit strings.Builder
	for _, p := range parts {
		if p.param < 0 {
			lit.WriteString(p.literal)
		} else {
			lit.WriteString("x")
		}
	}
	if _, err := url.ParseQuery(lit.String()); err != nil || strings.ContainsAny(lit.String(), " \t\r\n") {
		return nil, fmt.Errorf("static query %q is not a valid URL query (escape special characters)", query)
	}
	return parts, nil
}
