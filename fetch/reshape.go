package fetch

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// ErrTargetMissing is returned (wrapped; test with errors.Is) by Plan.Apply
// when the configured target path names a field the upstream answer lacks,
// or descends through a value that is not an object. It exists so callers
// can tell "the backend answered, but not in the shape the config expects"
// apart from transport or decoding failures and report it as such.
var ErrTargetMissing = errors.New("fetch: reshape target not found in upstream answer")

// errReshapeNotJSON is returned by Plan.Apply when raw holds no JSON value
// at all (empty or whitespace-only input) and the plan has work to do.
var errReshapeNotJSON = errors.New("fetch: reshape: upstream answer is not a JSON value")

// reshapeLinearMax is the number of children (allow/deny nodes) or rename
// rules up to which lookups scan a slice; above it a map is built at compile
// time. Configs normally name a handful of fields, where a scan over short
// strings beats hashing.
const reshapeLinearMax = 8

// Plan is a compiled reshaping of one backend's answer. It exists so that the
// configuration (target path, allow/deny field lists, renames) is parsed and
// validated once at config load, and applying it per request is only a scan
// over the raw upstream bytes: no path parsing, no map building, and no
// decoding of the answer into Go values (which would lose number precision
// and string escapes).
//
// Semantics, applied in this order:
//
//  1. target: descend a dot path through objects ("data.user" = field user
//     of field data) and keep only that value.
//  2. allow, then deny: keep only the listed fields, then drop the listed
//     fields. Paths are dot paths. When a level holds an array, the paths
//     apply to each object element; other elements are kept as they are.
//  3. rename: rename top-level keys (of the object, or of each object element
//     of a top-level array).
//
// Path syntax: segments are separated by '.', so keys that themselves
// contain a '.' cannot be addressed by target, allow or deny. There are no
// wildcards, array indexes or escapes: every other character is literal.
// Segments are compared with upstream keys decoded as encoding/json decodes
// them (unescaped; invalid UTF-8 and lone surrogates as U+FFFD). When an
// object repeats a key, every occurrence is filtered alike, and target
// descends into the last occurrence (last wins, as in Merge and in
// encoding/json).
//
// A Plan is immutable after NewPlan and safe for concurrent use. A nil *Plan
// is valid and is the identity.
type Plan struct {
	target     []string // split target path; nil = whole answer
	targetPath string   // original target, for error messages

	allow *reshapeNode // nil = keep every field
	deny  *reshapeNode // nil = drop nothing

	renames   []reshapeRename // sorted by old name
	renameOld map[string]int  // old name -> index; only when len(renames) > reshapeLinearMax
	renameNew map[string]int  // new name -> index; only when len(renames) > reshapeLinearMax
}

// reshapeNode is one level of a compiled allow or deny path tree. The root
// node stands for the answer itself and is never whole.
type reshapeNode struct {
	name  string
	whole bool // the path ends here: keep (allow) or drop (deny) the whole value
	kids  []*reshapeNode
	index map[string]*reshapeNode // only when len(kids) > reshapeLinearMax
}

// reshapeRename is one compiled rename rule.
type reshapeRename struct {
	old    string // unescaped upstream key
	new    string // unescaped new key
	newRaw string // new key JSON-encoded, quotes included
}

// NewPlan compiles a reshaping: target is a dot path ("" = the whole answer),
// allow and deny are lists of dot paths, and rename maps an old top-level key
// to a new one. It exists so every config error is reported at load time and
// Apply never parses configuration; see Plan for the semantics.
//
// NewPlan rejects paths with empty segments ("a..b", ".a", "a."), empty
// rename names, and two renames that map to the same new name. Rename names
// are literal keys (a '.' in them is part of the key, not a path separator).
// If allow lists both "a" and "a.b", "a" wins and a is kept whole; likewise
// deny "a" wins over deny "a.b". A plan built from empty inputs is the
// identity.
func NewPlan(target string, allow, deny []string, rename map[string]string) (*Plan, error) {
	p := &Plan{targetPath: target}
	if target != "" {
		segs, err := reshapeSplit(target)
		if err != nil {
			return nil, fmt.Errorf("fetch: reshape target: %w", err)
		}
		p.target = segs
	}
	var err error
	if p.allow, err = reshapeTree(allow); err != nil {
		return nil, fmt.Errorf("fetch: reshape allow: %w", err)
	}
	if p.deny, err = reshapeTree(deny); err != nil {
		return nil, fmt.Errorf("fetch: reshape deny: %w", err)
	}
	if err := p.compileRenames(rename); err != nil {
		return nil, fmt.Errorf("fetch: reshape rename: %w", err)
	}
	return p, nil
}

// reshapeSplit splits a dot path, rejecting empty segments.
func reshapeSplit(path string) ([]string, error) {
	segs := strings.Split(path, ".")
	for _, s := range segs {
		if s == "" {
			return nil, fmt.Errorf("path %q has an empty segment", path)
		}
	}
	return segs, nil
}

// reshapeTree compiles a list of dot paths into a tree, or nil for no paths.
func reshapeTree(paths []string) (*reshapeNode, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	root := &reshapeNode{}
	for _, path := range paths {
		segs, err := reshapeSplit(path)
		if err != nil {
			return nil, err
		}
		root.insert(segs)
	}
	root.finish()
	return root, nil
}

// insert adds one path below n. A shorter path that ends at a node makes it
// whole and absorbs any longer path through it, in either insertion order.
func (n *reshapeNode) insert(segs []string) {
	if n.whole {
		return
	}
	if len(segs) == 0 {
		n.whole, n.kids = true, nil
		return
	}
	var c *reshapeNode
	for _, k := range n.kids {
		if k.name == segs[0] {
			c = k
			break
		}
	}
	if c == nil {
		c = &reshapeNode{name: segs[0]}
		n.kids = append(n.kids, c)
	}
	c.insert(segs[1:])
}

// finish builds lookup maps for wide nodes, recursively.
func (n *reshapeNode) finish() {
	if len(n.kids) > reshapeLinearMax {
		n.index = make(map[string]*reshapeNode, len(n.kids))
		for _, k := range n.kids {
			n.index[k.name] = k
		}
	}
	for _, k := range n.kids {
		k.finish()
	}
}

// child returns the node for key below n, or nil.
func (n *reshapeNode) child(key string) *reshapeNode {
	if n.index != nil {
		return n.index[key]
	}
	for _, k := range n.kids {
		if k.name == key {
			return k
		}
	}
	return nil
}

// compileRenames validates and pre-encodes the rename rules.
func (p *Plan) compileRenames(rename map[string]string) error {
	if len(rename) == 0 {
		return nil
	}
	olds := make([]string, 0, len(rename))
	for old := range rename {
		olds = append(olds, old)
	}
	sort.Strings(olds)
	byNew := make(map[string]string, len(rename))
	for _, old := range olds {
		nw := rename[old]
		if old == "" {
			return fmt.Errorf("empty key renamed to %q", nw)
		}
		if nw == "" {
			return fmt.Errorf("key %q renamed to an empty name", old)
		}
		if prev, dup := byNew[nw]; dup {
			return fmt.Errorf("keys %q and %q are both renamed to %q", prev, old, nw)
		}
		byNew[nw] = old
	}
	for _, old := range olds {
		nw := rename[old]
		if old == nw {
			continue // no-op: leave the key exactly as the upstream wrote it
		}
		p.renames = append(p.renames, reshapeRename{
			old:    old,
			new:    nw,
			newRaw: string(reshapeQuote(nil, nw)),
		})
	}
	if len(p.renames) > reshapeLinearMax {
		p.renameOld = make(map[string]int, len(p.renames))
		p.renameNew = make(map[string]int, len(p.renames))
		for i, r := range p.renames {
			p.renameOld[r.old] = i
			p.renameNew[r.new] = i
		}
	}
	return nil
}

// Identity reports whether Apply would return its input unchanged. It exists
// so callers can skip Apply (and a copy) for backends without reshaping.
func (p *Plan) Identity() bool {
	return p == nil || (p.target == nil && p.allow == nil && p.deny == nil && len(p.renames) == 0)
}

// Apply reshapes raw, which must be valid JSON (the caller validates it),
// appends the result to dst and returns the extended slice. It exists to
// turn one backend's answer into the part that goes into the response,
// without decoding it: values that are kept are copied byte for byte, so
// numbers keep their exact text and strings their escapes. Keys that are not
// renamed are also written exactly as the upstream wrote them; structure that
// Apply rebuilds (filtered objects and arrays) is written compactly, and
// whitespace around the reshaped answer is dropped.
//
// Passing a reused buffer as dst[:0] avoids allocation. dst may share
// memory with raw; Apply then builds the result in a fresh buffer first.
//
// On error (ErrTargetMissing, or raw holding no JSON value) dst is returned
// unchanged.
func (p *Plan) Apply(dst, raw []byte) ([]byte, error) {
	if p.Identity() {
		return append(dst, raw...), nil
	}
	if reshapeOverlap(dst, raw) {
		out, err := p.Apply(nil, raw)
		if err != nil {
			return dst, err
		}
		return append(dst, out...), nil
	}
	v := gjson.Parse(reshapeStr(raw))
	if !v.Exists() {
		return dst, errReshapeNotJSON
	}
	if len(p.target) > 0 && v.IsArray() {
		// An array answer: target, allow/deny and rename apply to each
		// object element; other elements are kept as they are.
		start := len(dst)
		dst = append(dst, '[')
		n := 0
		var err error
		v.ForEach(func(_, el gjson.Result) bool {
			if n > 0 {
				dst = append(dst, ',')
			}
			n++
			if !el.IsObject() {
				dst = append(dst, el.Raw...)
				return true
			}
			t, derr := p.descend(el)
			if derr != nil {
				err = fmt.Errorf("%w (element %d of the answer)", derr, n-1)
				return false
			}
			dst = p.reshapeValue(dst, t, p.allow, p.deny, true)
			return true
		})
		if err != nil {
			return dst[:start], err
		}
		return append(dst, ']'), nil
	}
	v, err := p.descend(v)
	if err != nil {
		return dst, err
	}
	return p.reshapeValue(dst, v, p.allow, p.deny, true), nil
}

// descend follows the target path from v, an object (or, in an array
// answer, one of its object elements).
func (p *Plan) descend(v gjson.Result) (gjson.Result, error) {
	for i, seg := range p.target {
		if !v.IsObject() {
			where := "the answer"
			if i > 0 {
				where = strconv.Quote(strings.Join(p.target[:i], "."))
			}
			return v, fmt.Errorf("%w: path %q: %s is %s, not an object",
				ErrTargetMissing, p.targetPath, where, reshapeKind(v))
		}
		var found gjson.Result
		v.ForEach(func(k, val gjson.Result) bool {
			if reshapeKey(k) == seg {
				found = val // keep scanning: the last duplicate wins
			}
			return true
		})
		if !found.Exists() {
			return v, fmt.Errorf("%w: path %q: field %q is missing", ErrTargetMissing, p.targetPath, seg)
		}
		v = found
	}
	return v, nil
}

// reshapeKind names the JSON type of v for error messages.
func reshapeKind(v gjson.Result) string {
	switch {
	case v.IsArray():
		return "an array"
	case v.Type == gjson.String:
		return "a string"
	case v.Type == gjson.Number:
		return "a number"
	case v.Type == gjson.True, v.Type == gjson.False:
		return "a boolean"
	case v.Type == gjson.Null:
		return "null"
	}
	return "not a JSON value"
}

// reshapeValue writes v filtered by allow (nil = keep every field) and deny
// (nil = drop nothing); top says whether renames apply at this level.
func (p *Plan) reshapeValue(dst []byte, v gjson.Result, allow, deny *reshapeNode, top bool) []byte {
	renames := top && len(p.renames) > 0
	if allow == nil && deny == nil && !renames {
		return append(dst, v.Raw...)
	}
	switch {
	case v.IsObject():
		return p.reshapeObject(dst, v, allow, deny, top)
	case v.IsArray():
		dst = append(dst, '[')
		first := true
		v.ForEach(func(_, el gjson.Result) bool {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			if el.IsObject() {
				dst = p.reshapeObject(dst, el, allow, deny, top)
			} else {
				dst = append(dst, el.Raw...)
			}
			return true
		})
		return append(dst, ']')
	default:
		// Scalars have no fields: allow, deny and rename leave them alone.
		// This also holds below the top: allow "a.b" where a is a string
		// keeps the string, just as non-object array elements are kept.
		return append(dst, v.Raw...)
	}
}

// reshapeObject writes the object obj with fields filtered and, when top,
// top-level keys renamed.
//
// Rename collisions (the new name is already a key of the object) are
// resolved in favor of the renamed value: the other key is dropped, and the
// renamed key stays at the old key's position. A key only loses to a rename
// that actually fires on this object (its old key is present and survived
// allow/deny). The first pass writes optimistically; only if it wrote a key
// that a later rename turned out to collide with is the object written
// again, now knowing which renames fired. Objects without such a collision
// are scanned once.
func (p *Plan) reshapeObject(dst []byte, obj gjson.Result, allow, deny *reshapeNode, top bool) []byte {
	if !top || len(p.renames) == 0 {
		dst = p.reshapeObjectPass(dst, obj, allow, deny, nil, nil, false)
		return dst
	}
	n := (len(p.renames) + 63) / 64
	var stackBits [2]uint64
	bits := stackBits[:]
	if 2*n > len(stackBits) {
		bits = make([]uint64, 2*n)
	}
	fired, kept := bits[:n], bits[n:2*n]
	start := len(dst)
	dst = p.reshapeObjectPass(dst, obj, allow, deny, fired, kept, false)
	for i := range fired {
		if fired[i]&kept[i] != 0 {
			return p.reshapeObjectPass(dst[:start], obj, allow, deny, fired, nil, true)
		}
	}
	return dst
}

// reshapeObjectPass writes obj once. fired is nil when no renames apply.
// Otherwise the first pass (final false) sets in fired the renames whose old
// key it met, and in kept the renames whose new name it wrote as an
// ordinary key before knowing whether that rename fires. The second pass
// (final true) has a complete fired and drops every colliding key.
func (p *Plan) reshapeObjectPass(dst []byte, obj gjson.Result, allow, deny *reshapeNode, fired, kept []uint64, final bool) []byte {
	dst = append(dst, '{')
	first := true
	obj.ForEach(func(k, v gjson.Result) bool {
		key := reshapeKey(k)
		keep, ca, cd := reshapeDecide(key, allow, deny)
		if !keep {
			return true
		}
		rawKey := k.Raw
		if fired != nil {
			if i := p.renameOldIndex(key); i >= 0 {
				fired[i/64] |= 1 << (i % 64)
				rawKey = p.renames[i].newRaw
			} else if i := p.renameNewIndex(key); i >= 0 {
				if fired[i/64]&(1<<(i%64)) != 0 {
					return true // the renamed value wins
				}
				if !final {
					kept[i/64] |= 1 << (i % 64)
				}
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, rawKey...)
		dst = append(dst, ':')
		dst = p.reshapeValue(dst, v, ca, cd, false)
		return true
	})
	return append(dst, '}')
}

// reshapeDecide applies allow and deny to one key of an object: whether it
// survives, and the allow/deny subtrees (nil = unrestricted) for its value.
func reshapeDecide(key string, allow, deny *reshapeNode) (keep bool, ca, cd *reshapeNode) {
	if allow != nil {
		if ca = allow.child(key); ca == nil {
			return false, nil, nil
		}
		if ca.whole {
			ca = nil
		}
	}
	if deny != nil {
		if cd = deny.child(key); cd != nil && cd.whole {
			return false, nil, nil
		}
	}
	return true, ca, cd
}

// renameOldIndex returns the index of the rename whose old name is key, or -1.
func (p *Plan) renameOldIndex(key string) int {
	if p.renameOld != nil {
		if i, ok := p.renameOld[key]; ok {
			return i
		}
		return -1
	}
	for i := range p.renames {
		if p.renames[i].old == key {
			return i
		}
	}
	return -1
}

// renameNewIndex returns the index of the rename whose new name is key, or -1.
func (p *Plan) renameNewIndex(key string) int {
	if p.renameNew != nil {
		if i, ok := p.renameNew[key]; ok {
			return i
		}
		return -1
	}
	for i := range p.renames {
		if p.renames[i].new == key {
			return i
		}
	}
	return -1
}

// reshapeKey returns an object key as encoding/json decodes it, which is
// how keys are compared (with config names, and with each other in
// Merge): a client decoding the answer must see the key that was meant.
// For a plain ASCII key (the usual case) that is gjson's form as it is,
// found by one scan. gjson keeps invalid UTF-8 bytes where encoding/json
// turns each into U+FFFD; and rather than trust two unescapers to agree
// in every corner, a key with escapes is decoded by encoding/json itself
// (an allocation, for such keys only).
func reshapeKey(k gjson.Result) string {
	for i := 0; i < len(k.Raw); i++ {
		if c := k.Raw[i]; c == '\\' || c >= utf8.RuneSelf {
			return reshapeKeySlow(k)
		}
	}
	return k.Str
}

func reshapeKeySlow(k gjson.Result) string {
	if strings.IndexByte(k.Raw, '\\') < 0 && utf8.ValidString(k.Str) {
		return k.Str
	}
	var s string
	if err := json.Unmarshal([]byte(k.Raw), &s); err != nil {
		return k.Str // not reached for validated input
	}
	return s
}

// reshapeStr views b as a string without copying. The caller must not
// modify b while the string is in use; reshape and merge only read it.
func reshapeStr(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// reshapeOverlap reports whether appending to dst could overwrite src, i.e.
// whether src lies (partly) in dst's spare capacity dst[len(dst):cap(dst)].
func reshapeOverlap(dst, src []byte) bool {
	if len(src) == 0 || cap(dst) == len(dst) {
		return false
	}
	free := dst[len(dst):cap(dst)]
	f0 := uintptr(unsafe.Pointer(unsafe.SliceData(free)))
	s0 := uintptr(unsafe.Pointer(unsafe.SliceData(src)))
	return s0 < f0+uintptr(len(free)) && f0 < s0+uintptr(len(src))
}

// reshapeQuote appends s as a JSON string. It escapes what JSON requires
// ('"', '\\', control characters), plus U+2028 and U+2029 (for embedding in
// JavaScript); invalid UTF-8 becomes U+FFFD. It does not escape HTML
// characters, and it does not depend on gjson's global HTML-escaping switch.
func reshapeQuote(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
