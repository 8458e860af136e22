package fetch

import (
	"slices"
	"unsafe"
)

// Part is one backend's successful, already reshaped answer, handed to Merge
// in config order. It exists so the merge step needs nothing but the raw
// bytes and where they go, independent of how and in which order the
// backends were called.
type Part struct {
	Group string // "" = merge the body's top-level keys into the response; else put Body under this key
	Body  []byte // raw JSON (valid; the caller validates); nil or empty means {}
}

// mergeCollectionKey is the key under which a body that is not an object
// goes when its part has no Group.
const mergeCollectionKey = "collection"

// mergeLinearMax is the number of distinct keys up to which Merge detects
// duplicates by scanning the keys collected so far. Each comparison first
// checks a fingerprint (length and three bytes of the key), so the scan is
// quadratic only in cheap integer compares: for the usual response of a few
// dozen keys it costs less than hashing and needs no allocation. Above the
// threshold Merge builds a map once and switches to it, so large merges stay
// linear.
const mergeLinearMax = 32

// mergeEntry is one key of the response being built.
type mergeEntry struct {
	key   string // unescaped key, compared for conflicts
	raw   string // key as first written upstream, quotes included; "" = encode key (group names)
	value string // raw JSON of the last value seen
	fp    uint32 // mergeFingerprint(key)
}

// Merge appends to dst one JSON object combining parts in config order and
// returns the extended slice. It exists to build the aggregated response
// from raw upstream bytes without decoding them: values are copied byte for
// byte, so numbers keep their exact text and strings their escapes.
//
// A part with a Group puts its whole Body (any JSON type) under the Group
// key. A part without a Group contributes the top-level keys of its Body if
// Body is an object; any other Body (array, scalar) goes under the key
// "collection". Conflicts resolve by config order: every key appears once,
// at the position of its first appearance (with the key text first written
// there), carrying the value of its last appearance, like assignment into an
// ordered map. That also holds for a key repeated inside one upstream
// object. Keys are compared decoded as encoding/json decodes them, so
// "\u0061" and "a" conflict, and so do two keys whose invalid UTF-8 both
// decode to U+FFFD: a client never sees one key twice. Group names are
// written JSON-escaped. No parts gives {}.
//
// Merge writes the structure compactly ({"k":v,...}) and copies values raw,
// whitespace inside them included; a Group body keeps any duplicate keys it
// holds. Passing a reused buffer as dst[:0] avoids allocating the output.
// dst may share memory with the bodies; Merge then builds the result in a
// fresh buffer first.
func Merge(dst []byte, parts []Part) []byte {
	for i := range parts {
		if reshapeOverlap(dst, parts[i].Body) {
			return append(dst, Merge(nil, parts)...)
		}
	}

	// entries lives on the stack up to mergeLinearMax keys. It is passed
	// and returned by value (not kept behind a pointer) so that escape
	// analysis can keep it there.
	var stack [mergeLinearMax]mergeEntry
	entries := stack[:0]
	var index map[string]int
	size := 2
	for i := range parts {
		part := &parts[i]
		body := mergeTrim(reshapeStr(part.Body))
		if body == "" {
			body = "{}"
		}
		size += len(body) + len(part.Group) + 4
		switch {
		case part.Group != "":
			entries = mergeAdd(entries, &index, part.Group, "", body)
		case body[0] != '{':
			entries = mergeAdd(entries, &index, mergeCollectionKey, `"`+mergeCollectionKey+`"`, body)
		default:
			eachMember(reshapeBytes(body), func(rawKey, key, value string) {
				entries = mergeAdd(entries, &index, key, rawKey, value)
			})
		}
	}

	dst = slices.Grow(dst, size)
	dst = append(dst, '{')
	for i := range entries {
		e := &entries[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		if e.raw == "" {
			dst = reshapeQuote(dst, e.key)
		} else {
			dst = append(dst, e.raw...)
		}
		dst = append(dst, ':')
		dst = append(dst, e.value...)
	}
	return append(dst, '}')
}

// mergeAdd records key with value and returns the extended entries: a new
// key is appended, a known key keeps its position and first raw text and
// takes the new value. *index is nil while entries are few; mergeAdd builds
// it when the count passes mergeLinearMax.
func mergeAdd(entries []mergeEntry, index *map[string]int, key, raw, value string) []mergeEntry {
	if *index != nil {
		if i, ok := (*index)[key]; ok {
			entries[i].value = value
			return entries
		}
		(*index)[key] = len(entries)
		return append(entries, mergeEntry{key: key, raw: raw, value: value})
	}
	fp := mergeFingerprint(key)
	for i := range entries {
		if e := &entries[i]; e.fp == fp && e.key == key {
			e.value = value
			return entries
		}
	}
	if len(entries) == mergeLinearMax {
		m := make(map[string]int, 4*mergeLinearMax)
		for i := range entries {
			m[entries[i].key] = i
		}
		m[key] = len(entries)
		*index = m
	}
	return append(entries, mergeEntry{key: key, raw: raw, value: value, fp: fp})
}

// mergeFingerprint is a cheap pre-filter for key equality: two keys with
// different fingerprints differ. It reads at most three bytes.
func mergeFingerprint(key string) uint32 {
	n := len(key)
	if n == 0 {
		return 0
	}
	return uint32(n&0xff) | uint32(key[0])<<8 | uint32(key[n/2])<<16 | uint32(key[n-1])<<24
}

// mergeTrim removes JSON whitespace around a raw value.
func mergeTrim(s string) string {
	for len(s) > 0 && mergeSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && mergeSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// mergeSpace reports whether c is JSON whitespace.
func mergeSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// reshapeBytes views s as bytes without copying; the caller only reads them.
func reshapeBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }
