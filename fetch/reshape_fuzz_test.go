package fetch_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// FuzzReshapeMerge holds Plan.Apply and Merge to a reference built on
// encoding/json: decode each answer (UseNumber), apply target, allow/deny
// and rename as SPEC §4.7 and the Plan documentation describe them, merge
// as §4.8 does, and compare with the decoded output. It also checks that
// every output is valid JSON and that number and string texts pass
// through byte for byte (from a json.Decoder token stream of input and
// output), which a decode/encode reference cannot see.
//
// Where the raw implementation and a decoded reference must differ, the
// comparison is made on what a client decoding the answer sees:
//   - Duplicate keys: Apply filters every occurrence alike and may write
//     them all; encoding/json keeps the last. Decoding Apply's output
//     keeps the last too, so the reference works on the decoded (last
//     wins) object. target descends into the last occurrence, as decoding
//     does.
//   - Key order and whitespace are not compared (maps), except that
//     Merge's top level must hold each key once.
//
// Inputs come from a generator driven by the fuzz bytes (always valid,
// with escapes, duplicate and colliding keys, exact-text numbers), or are
// the bytes themselves when they are valid JSON.
func FuzzReshapeMerge(f *testing.F) {
	for _, s := range [][4]string{
		{`{"a":1,"b":{"c":2}}`, `{"d":[1,2]}`, "\x01\x00\x01\x00\x00\x01\x02\x03", "\x00"},
		{`{"a":{"b":[{"c":1,"d":2},3,[{"c":4}]]}}`, `[1,"x"]`, "\x00\x02\x00\x01\x02\x01\x01\x02\x00", "\x01"},
		{`{"a":1,"a":2,"\u0061":3}`, `{"a":9007199254740993}`, "\x00\x00\x00\x02\x00\x01\x01\x00", "\x05"},
		{`{"b":2,"a":1}`, ` {"b" : 1.50e+3 } `, "\x00\x00\x00\x01\x00\x01", "\x0a"},
		{`{"a":1,"b":2,"c":{"a":3}}`, `[{"b":1,"a":2},{"a":0},7]`, "\x00\x00\x00\x02\x00\x01\x01\x00", "\x00"},
		{`[{"a":"\u00e9\"\/"},{"b":null}]`, `"s"`, "\x00\x01\x01\x00\x00\x01\x00\x04", "\x0f"},
		{`{"a.b":1,"é":{"\u00e9":true}}`, `{}`, "\x01\x04\x01\x01\x04\x00\x01\x05\x02", "\x03"},
		{`{"a":{"b":{"c":[]}}}`, `{"collection":0}`, "\x02\x00\x01\x00\x00\x00\x00", "\x00"},
		{"\x05\x04\x01\x02\x06\x00\x03\x04\x02\x01\x05\x00\x02\x07\x01", "\x04\x03\x00\x01\x05\x02\x00\x06\x01", "\x00\x01\x02\x01\x03\x00\x01\x02\x00\x04\x01\x02", "\x09"},
	} {
		f.Add([]byte(s[0]), []byte(s[1]), []byte(s[2]), []byte(s[3]))
	}
	f.Fuzz(func(t *testing.T, in1, in2, planBytes, groupBytes []byte) {
		bodies := [][]byte{jsonFrom(in1), jsonFrom(in2)}
		spec := planFrom(planBytes)
		plan, err := fetch.NewPlan(spec.target, spec.allow, spec.deny, spec.rename)
		if err != nil {
			return // e.g. two renames to one new name: refused at load
		}
		groups := []string{"", "g", "a", "collection"}
		var gb byte
		if len(groupBytes) > 0 {
			gb = groupBytes[0]
		}

		var parts []fetch.Part
		ref := map[string]any{}
		deepRef, deepDups := map[string]any{}, 0
		for i, body := range bodies {
			group := groups[(gb>>(2*i))&3]
			out, err := plan.Apply(nil, body)
			want, wantErr := refApply(decodeNumber(t, body), spec)
			if (err != nil) != (wantErr != nil) || (err != nil && !errors.Is(err, fetch.ErrTargetMissing)) {
				t.Fatalf("Apply(%s) with %+v: error %v, reference says %v", body, spec, err, wantErr)
			}
			if err != nil {
				continue // a failed backend: not merged
			}
			if !json.Valid(out) {
				t.Fatalf("Apply(%s) with %+v = %s: not valid JSON", body, spec, out)
			}
			if got := decodeNumber(t, out); !reflect.DeepEqual(got, want) {
				t.Fatalf("Apply(%s) with %+v = %s\ndecodes to %#v\nreference  %#v", body, spec, out, got, want)
			}
			checkTexts(t, "Apply", [][]byte{body}, out, spec.renameNews(), nil)
			parts = append(parts, fetch.Part{Group: group, Body: out})
			refMerge(ref, group, want)
			refMergeDeep(deepRef, group, decodeNumber(t, out))
			_, _, dups := rawTokens(t, out)
			deepDups += dups
		}

		merged := fetch.Merge(nil, parts)
		if !json.Valid(merged) {
			t.Fatalf("Merge(%q) = %s: not valid JSON", parts, merged)
		}
		if got := decodeNumber(t, merged); !reflect.DeepEqual(got, any(ref)) {
			t.Fatalf("Merge(%q) = %s\ndecodes to %#v\nreference  %#v", parts, merged, got, ref)
		}
		if dup := duplicateTopKey(t, merged); dup != "" {
			t.Fatalf("Merge(%q) = %s: key %q appears twice", parts, merged, dup)
		}
		deep := fetch.MergeDeep(nil, parts)
		if !json.Valid(deep) {
			t.Fatalf("MergeDeep(%q) = %s: not valid JSON", parts, deep)
		}
		// A key repeated inside one body merges deeply there, which a
		// decoded reference cannot show; compare only bodies without.
		if got := decodeNumber(t, deep); deepDups == 0 && !reflect.DeepEqual(got, any(deepRef)) {
			t.Fatalf("MergeDeep(%q) = %s\ndecodes to %#v\nreference  %#v", parts, deep, got, deepRef)
		}
		var inputs [][]byte
		for _, p := range parts {
			inputs = append(inputs, p.Body)
		}
		checkTexts(t, "Merge", inputs, merged, nil, groups)
	})
}

// ---- inputs ----

// jsonFrom returns b when it is a JSON document, else JSON generated from b.
func jsonFrom(b []byte) []byte {
	if len(bytes.TrimSpace(b)) > 0 && json.Valid(b) {
		return b
	}
	g := &jsonGen{b: b}
	return g.value(nil, 0)
}

type jsonGen struct {
	b []byte
	i int
}

func (g *jsonGen) next() byte {
	if g.i >= len(g.b) {
		return 0
	}
	c := g.b[g.i]
	g.i++
	return c
}

var (
	genNumbers = []string{"0", "-0", "1", "9007199254740993", "1.50", "1e5", "-2.5E-3", "0.1000000000000000055511151231257827", "1E+400", "-0.0e+0"}
	genStrings = []string{`""`, `"x"`, `"\u00e9"`, `"é"`, `"a\"b"`, `"\/"`, `"\ud83d\ude00"`, `"<&>"`, `"\u2028"`, `"a\\b"`, `"\t"`}
	genLits    = []string{"true", "false", "null"}
	// Keys: the plan's names, escaped spellings of them, a dotted key that
	// paths cannot address, the empty key, the merge's own key, and keys
	// that decode alike though their bytes differ (invalid UTF-8, lone
	// surrogates: each becomes U+FFFD; a surrogate pair is its character).
	genKeys = []string{`"a"`, `"b"`, `"c"`, `"d"`, `"\u0061"`, `"é"`, `"\u00e9"`, `"a.b"`, `""`, `"collection"`, `"g"`,
		"\"\xff\"", "\"\xfe\"", `"\ufffd"`, `"\ud800"`, `"\udfff"`, "\"\xe2\x82\"", `"\ud83d\ude00"`, `"😀"`}
	genWS = []string{"", "", " ", "\n\t"}
)

func (g *jsonGen) value(dst []byte, depth int) []byte {
	c := g.next()
	kind := c % 8
	if depth >= 5 && kind >= 4 {
		kind %= 4
	}
	dst = append(dst, genWS[(c>>3)&3]...)
	switch kind {
	case 0, 1:
		dst = append(dst, genNumbers[int(c>>5)%len(genNumbers)]...)
	case 2:
		dst = append(dst, genStrings[int(g.next())%len(genStrings)]...)
	case 3:
		dst = append(dst, genLits[int(c>>5)%len(genLits)]...)
	case 4, 5:
		dst = append(dst, '{')
		for i := range int(g.next() % 5) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, genKeys[int(g.next())%len(genKeys)]...)
			dst = append(dst, ':')
			dst = g.value(dst, depth+1)
		}
		dst = append(dst, '}')
	default:
		dst = append(dst, '[')
		for i := range int(g.next() % 4) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = g.value(dst, depth+1)
		}
		dst = append(dst, ']')
	}
	return append(dst, genWS[(c>>5)&3]...)
}

// planSpec is a Plan's configuration, kept for the reference.
type planSpec struct {
	target      string
	allow, deny []string
	rename      map[string]string
}

var (
	planSegs   = []string{"a", "b", "c", "d", "é", "collection"}
	renameKeys = []string{"a", "b", "c", "d", "é", "a.b", "g"}
)

// planFrom reads a plan from b: a target of 0-2 segments, 0-2 allow and
// deny paths of 1-2 segments, 0-3 renames.
func planFrom(b []byte) planSpec {
	g := &jsonGen{b: b}
	path := func(n int) string {
		var segs []string
		for range n {
			segs = append(segs, planSegs[int(g.next())%len(planSegs)])
		}
		return strings.Join(segs, ".")
	}
	var s planSpec
	s.target = path(int(g.next() % 3))
	for range int(g.next() % 3) {
		s.allow = append(s.allow, path(1+int(g.next()%2)))
	}
	for range int(g.next() % 3) {
		s.deny = append(s.deny, path(1+int(g.next()%2)))
	}
	if n := int(g.next() % 4); n > 0 {
		s.rename = map[string]string{}
		for range n {
			s.rename[renameKeys[int(g.next())%len(renameKeys)]] = renameKeys[int(g.next())%len(renameKeys)]
		}
	}
	return s
}

func (s planSpec) renameNews() []string {
	var out []string
	for _, n := range s.rename {
		out = append(out, n)
	}
	return out
}

// ---- the reference ----

func decodeNumber(t *testing.T, b []byte) any {
	t.Helper()
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]any{}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return v
}

var errRefMissing = errors.New("reference: target missing")

// refTree is an allow or deny tree: a path that ends at a node keeps (or
// drops) it whole, absorbing any longer path through it.
type refTree struct {
	whole bool
	kids  map[string]*refTree
}

func newRefTree(paths []string) *refTree {
	if len(paths) == 0 {
		return nil
	}
	root := &refTree{kids: map[string]*refTree{}}
	for _, p := range paths {
		n := root
		for _, seg := range strings.Split(p, ".") {
			if n.whole {
				break
			}
			c := n.kids[seg]
			if c == nil {
				c = &refTree{kids: map[string]*refTree{}}
				n.kids[seg] = c
			}
			n = c
		}
		n.whole, n.kids = true, nil
	}
	return root
}

func refApply(v any, s planSpec) (any, error) {
	if arr, ok := v.([]any); ok && s.target != "" {
		// An array answer: the whole plan on each object element, the
		// other elements kept as they are.
		out := make([]any, len(arr))
		for i, el := range arr {
			if _, obj := el.(map[string]any); !obj {
				out[i] = el
				continue
			}
			r, err := refApply(el, s)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	if s.target != "" {
		for _, seg := range strings.Split(s.target, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, errRefMissing
			}
			if v, ok = m[seg]; !ok {
				return nil, errRefMissing
			}
		}
	}
	v = refFilter(v, newRefTree(s.allow), newRefTree(s.deny))
	if len(s.rename) == 0 {
		return v, nil
	}
	switch x := v.(type) {
	case map[string]any:
		return refRename(x, s.rename), nil
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			if m, ok := el.(map[string]any); ok {
				out[i] = refRename(m, s.rename)
			} else {
				out[i] = el
			}
		}
		return out, nil
	}
	return v, nil
}

// refFilter applies allow (nil: keep all) and deny (nil: drop none): to an
// object's fields, to each object element of an array (other elements,
// nested arrays included, are kept as they are), not at all to scalars.
func refFilter(v any, allow, deny *refTree) any {
	if allow == nil && deny == nil {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		return refFilterObject(x, allow, deny)
	case []any:
		out := make([]any, len(x))
		for i, el := range x {
			if m, ok := el.(map[string]any); ok {
				out[i] = refFilterObject(m, allow, deny)
			} else {
				out[i] = el
			}
		}
		return out
	}
	return v
}

func refFilterObject(m map[string]any, allow, deny *refTree) map[string]any {
	out := map[string]any{}
	for k, val := range m {
		var ca, cd *refTree
		if allow != nil {
			if ca = allow.kids[k]; ca == nil {
				continue
			}
			if ca.whole {
				ca = nil
			}
		}
		if deny != nil {
			if cd = deny.kids[k]; cd != nil && cd.whole {
				continue
			}
		}
		out[k] = refFilter(val, ca, cd)
	}
	return out
}

// refRename renames keys all at once: a key that is an old name takes its
// new name; a key that is the new name of a rename that fires here (its
// old key is present) gives way to the renamed value; no-op renames are
// nothing.
func refRename(m map[string]any, rename map[string]string) map[string]any {
	fired := map[string]bool{}
	for old, nw := range rename {
		if _, ok := m[old]; ok && old != nw {
			fired[nw] = true
		}
	}
	out := map[string]any{}
	for k, val := range m {
		if nw, ok := rename[k]; ok && nw != k {
			out[nw] = val
		} else if !fired[k] {
			out[k] = val
		}
	}
	return out
}

func refMerge(into map[string]any, group string, v any) {
	switch m, ok := v.(map[string]any); {
	case group != "":
		into[group] = v
	case ok:
		for k, val := range m {
			into[k] = val
		}
	default:
		into["collection"] = v
	}
}

// refMergeDeep is refMerge for merge: deep, over decoded values.
func refMergeDeep(into map[string]any, group string, v any) {
	switch m, ok := v.(map[string]any); {
	case group != "":
		deepAssign(into, group, v)
	case ok:
		for k, val := range m {
			deepAssign(into, k, val)
		}
	default:
		deepAssign(into, "collection", v)
	}
}

func deepAssign(into map[string]any, k string, v any) {
	old, had := into[k]
	om, oldObj := old.(map[string]any)
	nm, newObj := v.(map[string]any)
	oa, oldArr := old.([]any)
	na, newArr := v.([]any)
	switch {
	case had && oldObj && newObj:
		merged := make(map[string]any, len(om)+len(nm))
		for kk, vv := range om {
			merged[kk] = vv
		}
		for kk, vv := range nm {
			deepAssign(merged, kk, vv)
		}
		into[k] = merged
	case had && oldArr && newArr:
		into[k] = append(append([]any{}, oa...), na...)
	default:
		into[k] = v
	}
}

// ---- raw texts ----

// rawTokens returns the raw texts of b's object keys and of its scalar
// values (strings and numbers), from a json.Decoder token stream, and how
// many keys repeat (decoded) an earlier key of their object.
func rawTokens(t *testing.T, b []byte) (keys, values []string, dups int) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	type level struct {
		object, wantKey bool
		seen            map[string]bool
	}
	var stack []level
	prev := int64(0)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return keys, values, dups
		}
		if err != nil {
			t.Fatalf("tokens of %q: %v", b, err)
		}
		end := d.InputOffset()
		raw := strings.TrimLeft(string(b[prev:end]), " \t\r\n,:")
		prev = end
		isKey := len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantKey = !isKey
		}
		switch tok := tok.(type) {
		case json.Delim:
			switch tok {
			case '{':
				stack = append(stack, level{object: true, wantKey: true, seen: map[string]bool{}})
			case '[':
				stack = append(stack, level{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].wantKey = true
				}
			}
		case string:
			if isKey {
				keys = append(keys, raw)
				if seen := stack[len(stack)-1].seen; seen[tok] {
					dups++
				} else {
					seen[tok] = true
				}
			} else {
				values = append(values, raw)
			}
		case json.Number:
			values = append(values, raw)
		}
	}
}

// checkTexts: every scalar value text of out is one of the inputs' (as a
// multiset: values are copied, never re-encoded), every key text is an
// input's or the encoding of a new name (rename, group, "collection"), and
// out repeats no more keys than the inputs did (a decoded comparison keeps
// only the last of repeated keys, so it cannot see a spurious one).
func checkTexts(t *testing.T, what string, inputs [][]byte, out []byte, renamed, groups []string) {
	t.Helper()
	haveValues := map[string]int{}
	haveKeys := map[string]bool{}
	inDups := 0
	for _, in := range inputs {
		keys, values, dups := rawTokens(t, in)
		inDups += dups
		for _, v := range values {
			haveValues[v]++
		}
		for _, k := range keys {
			haveKeys[k] = true
		}
	}
	for _, n := range append(append(renamed, groups...), "collection") {
		enc, _ := json.Marshal(n) // the names here need no escaping choices
		haveKeys[string(enc)] = true
	}
	keys, values, dups := rawTokens(t, out)
	if dups > inDups {
		t.Fatalf("%s: %s repeats %d keys, the input %q only %d", what, out, dups, inputs, inDups)
	}
	for _, v := range values {
		if haveValues[v] == 0 {
			t.Fatalf("%s: value text %s of %s is not in the input %q", what, v, out, inputs)
		}
		haveValues[v]--
	}
	for _, k := range keys {
		if !haveKeys[k] {
			t.Fatalf("%s: key text %s of %s is not in the input %q", what, k, out, inputs)
		}
	}
}

// duplicateTopKey returns a top-level key of the object b that appears
// twice (compared decoded), or "".
func duplicateTopKey(t *testing.T, b []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	if _, err := d.Token(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		k := tok.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return ""
}
