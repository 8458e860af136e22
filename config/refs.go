package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/tidwall/gjson"
)

// ItemSource is Ref.Source for {item} and {item.path}: the current element
// of a foreach backend's array.
const ItemSource = -1

// Ref is a {NAME.dot.path} reference compiled at load time: which backend's
// raw answer it reads and the gjson path of the field, so that filling it
// per request is one lookup.
type Ref struct {
	// Text is the reference as written, braces included, for reasons:
	// "{order.customer.id}".
	Text string
	// Name is the backend name it reads ("item" for the foreach element).
	Name string
	// Source is the index of that backend in the endpoint, or ItemSource.
	Source int
	// Path is the gjson path of the field inside the answer, each segment
	// escaped so that only '.' separates; "" is the whole answer (only for
	// {item}). A numeric segment also addresses an array element.
	Path string

	field string // where it was written, under the backend: "path", "headers.X-User"
}

// RefValue is what a reference found in a request's answers: the text of a
// scalar (a number's exact text, a string decoded), or the texts of an array
// of scalars. Found is false for a missing field, an object, a null or an
// array holding anything but scalars.
type RefValue struct {
	Found bool
	Text  string
	List  []string // non-nil for an array
}

// parseRef compiles the inside of {…} when it is a reference: a name and at
// least one dot segment, or the bare item of a foreach backend. ok is false
// for a plain {param}.
func parseRef(inner string, foreach bool) (r *Ref, ok bool, err error) {
	name, rest, dotted := strings.Cut(inner, ".")
	if !dotted {
		if inner == "item" && foreach {
			return &Ref{Text: "{item}", Name: "item", Source: ItemSource}, true, nil
		}
		return nil, false, nil
	}
	if name == "" {
		return nil, true, fmt.Errorf("{%s}: a reference is {NAME.field}, with NAME a backend's name", inner)
	}
	segs := strings.Split(rest, ".")
	path := make([]string, len(segs))
	for i, s := range segs {
		if s == "" {
			return nil, true, fmt.Errorf("{%s}: empty field name in the reference", inner)
		}
		if strings.ContainsAny(s, "{}") {
			return nil, true, fmt.Errorf("{%s}: braces cannot appear inside a reference", inner)
		}
		path[i] = gjson.Escape(s)
	}
	r = &Ref{Text: "{" + inner + "}", Name: name, Path: strings.Join(path, ".")}
	if name == "item" {
		r.Source = ItemSource
	}
	return r, true, nil
}

// HeaderTemplate is a backend's static header whose value may hold
// references, compiled at load.
type HeaderTemplate struct {
	// Name is the header name as written.
	Name  string
	parts []templatePart
}

// Render fills the header value. A reference whose value is not a scalar,
// or holds CR, LF or NUL, returns it as bad (with the value, so the caller
// can say which).
func (h *HeaderTemplate) Render(vals []RefValue) (string, *Ref) {
	if len(h.parts) == 1 && h.parts[0].ref == nil {
		return h.parts[0].literal, nil
	}
	var b strings.Builder
	for _, p := range h.parts {
		if p.ref == nil {
			b.WriteString(p.literal)
			continue
		}
		v := vals[p.refIndex]
		if !v.Found || v.List != nil {
			return "", p.ref
		}
		if strings.ContainsAny(v.Text, "\r\n\x00") {
			return v.Text, p.ref
		}
		b.WriteString(v.Text)
	}
	return b.String(), nil
}

// AppendPathValues is AppendPath for a backend with references: each
// reference's value is path-escaped like a parameter. A reference with no
// scalar value is returned as bad, and so is one whose value cannot make a
// path segment of its own (see segmentValue).
func (t *PathTemplate) AppendPathValues(dst []byte, params []string, vals []RefValue) ([]byte, *Ref) {
	for _, p := range t.parts {
		switch {
		case p.ref != nil:
			v := vals[p.refIndex]
			if !v.Found || v.List != nil || !segmentValue(v.Text) {
				return dst, p.ref
			}
			dst = append(dst, url.PathEscape(v.Text)...)
		case p.param < 0:
			dst = append(dst, p.literal...)
		default:
			dst = append(dst, url.PathEscape(params[p.param])...)
		}
	}
	return dst, nil
}

// segmentValue reports whether a reference's value can fill the path
// segment it stands for. Escaping keeps '/', '?', '#' and '%' inside the
// segment, but three values change the path whatever is done to them: ""
// leaves an empty segment ("/users//orders", or "/users/" for the
// collection when it is last), and "." and ".." are dot-segments, which
// clients and servers resolve away ("/users/../admin" is "/admin"), escaped
// or not (%2E is '.'). A path parameter never holds them (the router
// matches no empty segment; handlers refuse "." and ".."); an upstream's
// answer can.
func segmentValue(s string) bool {
	return s != "" && s != "." && s != ".."
}

// AppendQueryValues is AppendQuery for a backend with references. Values
// are query-escaped. A parameter whose value holds a reference to an array
// of scalars is repeated once per element (?id={list.ids} → id=1&id=2; an
// empty array leaves the parameter out); a second array in the same
// parameter, or a missing value, is returned as bad.
func (t *PathTemplate) AppendQueryValues(dst []byte, params []string, vals []RefValue) ([]byte, *Ref) {
	if t.pairs == nil {
		return t.AppendQuery(dst, params), nil
	}
	first := true
	for _, pair := range t.pairs {
		list := -1
		for i, p := range pair {
			if p.ref == nil {
				continue
			}
			v := vals[p.refIndex]
			switch {
			case !v.Found:
				return dst, p.ref
			case v.List != nil && list >= 0:
				return dst, p.ref
			case v.List != nil:
				list = i
			}
		}
		n := 1
		if list >= 0 {
			n = len(vals[pair[list].refIndex].List)
		}
		for k := range n {
			if !first {
				dst = append(dst, '&')
			}
			first = false
			for i, p := range pair {
				switch {
				case i == list:
					dst = append(dst, url.QueryEscape(vals[p.refIndex].List[k])...)
				case p.ref != nil:
					dst = append(dst, url.QueryEscape(vals[p.refIndex].Text)...)
				case p.param < 0:
					dst = append(dst, p.literal...)
				default:
					dst = append(dst, url.QueryEscape(params[p.param])...)
				}
			}
		}
	}
	return dst, nil
}
