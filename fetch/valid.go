package fetch

import (
	"encoding/binary"
	"math/bits"
)

// maxJSONDepth is how many arrays and objects may be open at once, as in
// encoding/json (its scanner's maxNestingDepth): 10000 is valid, 10001 is
// not. Deeper bodies would reach clients that refuse them.
const maxJSONDepth = 10000

// validJSON reports whether body is one well-formed JSON value, exactly as
// json.Valid decides (the nesting limit included; TestValidJSON* and
// FuzzValidJSON hold it to that). It exists because every merged answer
// passes here: it is faster than both json.Valid and gjson.ValidBytes,
// allocates nothing up to 256 levels of nesting, and is a loop, not a
// recursion, so a hostile body costs O(1) stack however deep it nests.
func validJSON(body []byte) bool { return validJSONDepth(body, maxJSONDepth) }

// depthLimit is the nesting a backend's answer may have so that the merged
// response stays within maxJSONDepth: one level less when the merge puts
// it under a key (its group, or "collection" for an ungrouped answer that
// is not an object) and no target takes a level off an object first, and
// one more
// level less for a foreach backend's answers, which go into an array
// under the group.
func (b *Backend) depthLimit(body []byte) int {
	limit := maxJSONDepth
	if b.perElement {
		limit--
	}
	if b.nested {
		return limit - 1
	}
	// An array keeps its depth whatever the target (which applies to each
	// object element, and keeps the others as they are), and goes under
	// the group or "collection".
	if i := skipSpace(body, 0); i < len(body) && body[i] == '[' {
		return limit - 1
	}
	return limit
}

// validJSONDepth is validJSON with at most limit containers open at once.
func validJSONDepth(body []byte, limit int) bool {
	// One bit per open container, set for an object: 256 levels on the
	// stack, deeper ones on the heap (at most maxJSONDepth/8 bytes).
	var small [4]uint64
	kinds := small[:]
	depth := 0
	b := body
	i := skipSpace(b, 0)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return false
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth == limit {
				return false
			}
			w := depth >> 6
			if w == len(kinds) {
				kinds = append(kinds, 0)
			}
			bit := uint64(1) << (depth & 63)
			i = skipSpace(b, i+1)
			if c == '{' {
				kinds[w] |= bit
				if i < len(b) && b[i] == '}' {
					i++
					break // an empty object is a whole value
				}
				if i = objectKey(b, i); i < 0 {
					return false
				}
			} else {
				kinds[w] &^= bit
				if i < len(b) && b[i] == ']' {
					i++
					break
				}
			}
			depth++
			continue // the first member's value
		case '"':
			if i = stringEnd(b, i+1); i < 0 {
				return false
			}
		case 't':
			if len(b)-i < 4 || string(b[i:i+4]) != "true" {
				return false
			}
			i += 4
		case 'f':
			if len(b)-i < 5 || string(b[i:i+5]) != "false" {
				return false
			}
			i += 5
		case 'n':
			if len(b)-i < 4 || string(b[i:i+4]) != "null" {
				return false
			}
			i += 4
		default:
			if i = numberEnd(b, i); i < 0 {
				return false
			}
		}
		// A value ended before b[i]: close containers until one takes
		// another member.
		for {
			i = skipSpace(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			d := depth - 1
			object := kinds[d>>6]&(1<<(d&63)) != 0
			c := b[i]
			if c == ',' {
				i = skipSpace(b, i+1)
				if object {
					// objectKey, inlined by hand: this is the hot path.
					if i >= len(b) || b[i] != '"' {
						return false
					}
					if i = stringEnd(b, i+1); i < 0 {
						return false
					}
					if i < len(b) && b[i] == ':' {
						i++
					} else {
						i = skipSpace(b, i)
						if i >= len(b) || b[i] != ':' {
							return false
						}
						i++
					}
					i = skipSpace(b, i)
				}
				break
			}
			if (object && c == '}') || (!object && c == ']') {
				depth--
				i++
				continue
			}
			return false
		}
	}
}

// objectKey reads `"key" :` from b[i] and returns the index of the value
// after it (whitespace skipped), or -1.
func objectKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = stringEnd(b, i+1); i < 0 {
		return -1
	}
	i = skipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipSpace(b, i+1)
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// SWAR constants: one byte per lane.
const (
	lanes01 = 0x0101010101010101
	lanes80 = 0x8080808080808080
)

// stringEnd scans a string body from b[i] (just after the opening quote)
// and returns the index after the closing quote, or -1. Control characters
// are refused; other bytes, invalid UTF-8 included, are accepted, as
// encoding/json does. Runs of plain bytes are skipped 8 at a time.
func stringEnd(b []byte, i int) int {
	for {
		if len(b)-i >= 8 {
			x := binary.LittleEndian.Uint64(b[i:])
			// A lane is special if it is < 0x20, '"' or '\\'; high
			// bytes (>= 0x80) never are, so they are masked out. The
			// lowest flagged lane is always a special one (a borrow
			// only runs upward from a special lane).
			q := x ^ (lanes01 * '"')
			s := x ^ (lanes01 * '\\')
			m := ((x - lanes01*0x20) | (q - lanes01) | (s - lanes01)) &^ x & lanes80
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		} else {
			for i < len(b) && stringPlain[b[i]] {
				i++
			}
			if i >= len(b) {
				return -1
			}
		}
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if len(b)-i < 5 || !isHex[b[i+1]] || !isHex[b[i+2]] || !isHex[b[i+3]] || !isHex[b[i+4]] {
					return -1
				}
				i += 5
			default:
				return -1
			}
		default:
			return -1 // a control character
		}
	}
}

// numberEnd scans a number from b[i] and returns the index after it, or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func numberEnd(b []byte, i int) int {
	if b[i] == '-' {
		i++
		if i >= len(b) {
			return -1
		}
	}
	switch {
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = digitsEnd(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digitsEnd(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digitsEnd(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digitsEnd(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// stringPlain: bytes a JSON string holds as they are (not '"', '\\' or a
// control character).
var stringPlain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

var isHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdefABCDEF" {
		t[c] = true
	}
	return t
}()
