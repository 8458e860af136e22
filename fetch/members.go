package fetch

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// eachMember calls fn with every member of obj, a JSON object the caller
// validated: the key as written (quotes included), the key as
// encoding/json decodes it, and the value's raw text, all views of obj. It
// reports false when obj turns out not to be an object of that shape
// (fn may have been called for the members before the fault; for
// validated input it never happens).
//
// It exists because the merge needs only raw texts, while a general parser
// also converts every number it passes: strconv.ParseFloat on a long
// decimal was the slowest step of a merge.
func eachMember(obj []byte, fn func(rawKey, key, value string)) bool {
	n := len(obj)
	if n < 2 || obj[0] != '{' {
		return false
	}
	i := skipSpace(obj, 1)
	if i < n && obj[i] == '}' {
		return true
	}
	for {
		if i >= n || obj[i] != '"' {
			return false
		}
		k := i
		if i = stringEnd(obj, i+1); i < 0 {
			return false
		}
		rawKey := reshapeStr(obj[k:i])
		if i = skipSpace(obj, i); i >= n || obj[i] != ':' {
			return false
		}
		if i = skipSpace(obj, i+1); i >= n {
			return false
		}
		v := i
		if i = valueEnd(obj, i); i < 0 {
			return false
		}
		fn(rawKey, memberKey(rawKey), reshapeStr(obj[v:i]))
		if i = skipSpace(obj, i); i >= n {
			return false
		}
		switch obj[i] {
		case '}':
			return true
		case ',':
			i = skipSpace(obj, i+1)
		default:
			return false
		}
	}
}

// memberKey decodes a raw key (quotes included) as encoding/json does,
// like reshapeKey: a key without escapes and in valid UTF-8 is its text;
// anything else is left to encoding/json (an allocation, for such keys
// only).
func memberKey(raw string) string {
	inner := raw[1 : len(raw)-1]
	for i := 0; i < len(inner); i++ {
		if c := inner[i]; c == '\\' || c >= utf8.RuneSelf {
			if strings.IndexByte(inner, '\\') < 0 && utf8.ValidString(inner) {
				return inner
			}
			var s string
			if err := json.Unmarshal([]byte(raw), &s); err != nil {
				return inner // not reached for validated input
			}
			return s
		}
	}
	return inner
}

// valueEnd returns the index after the JSON value at b[i], or -1. Inside
// containers it matches brackets and skips strings only: the input was
// validated, and this is enough to stay in range.
func valueEnd(b []byte, i int) int {
	switch c := b[i]; c {
	case '"':
		return stringEnd(b, i+1)
	case '{', '[':
		depth := 0
		for i < len(b) {
			c := b[i]
			i++
			if !containerSpecial[c] {
				continue
			}
			switch c {
			case '"':
				// Validated: the string ends at the next quote that no
				// backslash escapes.
				for i < len(b) && b[i] != '"' {
					if b[i] == '\\' {
						i++
					}
					i++
				}
				i++
			case '{', '[':
				depth++
			default: // '}', ']'
				if depth--; depth == 0 {
					return i
				}
			}
		}
		return -1
	case 't', 'n':
		if len(b)-i >= 4 {
			return i + 4
		}
	case 'f':
		if len(b)-i >= 5 {
			return i + 5
		}
	default:
		if c == '-' || ('0' <= c && c <= '9') {
			return numberEnd(b, i)
		}
	}
	return -1
}

// containerSpecial marks the bytes valueEnd stops at inside a container.
var containerSpecial = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}
