package fetch

// deepValue is one value of a deep merge in progress. It stays the raw JSON
// it arrived as until a second value lands on the same key; only then is an
// object opened into entries, or an array into the list of arrays to join,
// so values that never meet another are copied byte for byte.
type deepValue struct {
	raw    string      // the value as it arrived, when obj and arrays are unset
	obj    *deepObject // an object that has been merged into
	arrays []string    // arrays concatenated in order (raw, brackets included)
}

// deepObject is an object being merged: keys in order of first appearance.
type deepObject struct {
	entries []deepEntry
	index   map[string]int // built once the object has more than a few keys
}

type deepEntry struct {
	key string // decoded, compared
	raw string // as first written, quotes included; "" = quote key
	val deepValue
}

// MergeDeep appends to dst one JSON object combining parts in config order,
// as Merge does, except where two parts meet on the same key: two objects
// are merged recursively, two arrays are concatenated (the earlier part's
// elements first), and anything else is replaced by the later part, as in
// Merge. It exists for `merge: deep`, where backends contribute pieces of
// the same nested document. Values are copied raw, so numbers keep their
// exact text; whitespace between merged keys is dropped.
func MergeDeep(dst []byte, parts []Part) []byte {
	for i := range parts {
		if reshapeOverlap(dst, parts[i].Body) {
			return append(dst, MergeDeep(nil, parts)...)
		}
	}
	var top deepObject
	for i := range parts {
		part := &parts[i]
		body := mergeTrim(reshapeStr(part.Body))
		if body == "" {
			body = "{}"
		}
		switch {
		case part.Group != "":
			top.add(part.Group, "", body)
		case body[0] != '{':
			top.add(mergeCollectionKey, `"`+mergeCollectionKey+`"`, body)
		default:
			eachMember(reshapeBytes(body), func(raw, key, value string) { top.add(key, raw, value) })
		}
	}
	return top.appendTo(dst)
}

// add merges value into the entry for key, appending the entry when new.
func (o *deepObject) add(key, raw, value string) {
	if i, ok := o.find(key); ok {
		o.entries[i].val.merge(value)
		return
	}
	if o.index != nil {
		o.index[key] = len(o.entries)
	} else if len(o.entries) == mergeLinearMax {
		o.index = make(map[string]int, 2*mergeLinearMax)
		for i := range o.entries {
			o.index[o.entries[i].key] = i
		}
		o.index[key] = len(o.entries)
	}
	o.entries = append(o.entries, deepEntry{key: key, raw: raw, val: deepValue{raw: value}})
}

func (o *deepObject) find(key string) (int, bool) {
	if o.index != nil {
		i, ok := o.index[key]
		return i, ok
	}
	for i := range o.entries {
		if o.entries[i].key == key {
			return i, true
		}
	}
	return 0, false
}

// merge lands value on v: object into object recursively, array after
// array, anything else replaces v.
func (v *deepValue) merge(value string) {
	switch {
	case value[0] == '{' && v.isObject():
		if v.obj == nil {
			v.obj = &deepObject{}
			eachMember(reshapeBytes(v.raw), func(raw, key, value string) { v.obj.add(key, raw, value) })
			v.raw = ""
		}
		eachMember(reshapeBytes(value), func(raw, key, v2 string) { v.obj.add(key, raw, v2) })
	case value[0] == '[' && v.isArray():
		if v.arrays == nil {
			v.arrays = []string{v.raw}
			v.raw = ""
		}
		v.arrays = append(v.arrays, value)
	default:
		*v = deepValue{raw: value}
	}
}

func (v *deepValue) isObject() bool { return v.obj != nil || (v.raw != "" && v.raw[0] == '{') }
func (v *deepValue) isArray() bool  { return v.arrays != nil || (v.raw != "" && v.raw[0] == '[') }

func (o *deepObject) appendTo(dst []byte) []byte {
	dst = append(dst, '{')
	for i := range o.entries {
		e := &o.entries[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		if e.raw == "" {
			dst = reshapeQuote(dst, e.key)
		} else {
			dst = append(dst, e.raw...)
		}
		dst = append(dst, ':')
		dst = e.val.appendTo(dst)
	}
	return append(dst, '}')
}

func (v *deepValue) appendTo(dst []byte) []byte {
	switch {
	case v.obj != nil:
		return v.obj.appendTo(dst)
	case v.arrays != nil:
		dst = append(dst, '[')
		first := true
		for _, a := range v.arrays {
			inner := mergeTrim(a[1 : len(a)-1])
			if inner == "" {
				continue
			}
			if !first {
				dst = append(dst, ',')
			}
			dst = append(dst, inner...)
			first = false
		}
		return append(dst, ']')
	default:
		return append(dst, v.raw...)
	}
}
