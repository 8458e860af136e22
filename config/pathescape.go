package config

import (
	"net/url"
	"strings"
)

// Endpoint paths are matched on the escaped request path, so that a %2F in
// a parameter stays inside its segment. A request's escaping is the
// client's choice, though: "ä" arrives as %C3%A4 (or %c3%a4), a client may
// escape a letter (%61), and Go keeps the client's raw form only when it
// differs from its own. Both sides are therefore brought to one form
// before they meet: every segment decoded, then escaped again by
// EscapeSegment. The routes are written so when the config is compiled,
// and a request's path is rewritten so (CanonicalPath) only when it holds
// anything but plain characters.

// pchar reports whether c stands for itself in a path segment
// (RFC 3986 pchar without pct-encoded: unreserved, sub-delims, ':' and
// '@'); every other byte is written %XX.
func pchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

// EscapeSegment writes a decoded path segment in the canonical escaped
// form: pchar bytes as they are, every other byte (a '/' inside the
// segment, '%', a space, non-ASCII) as %XX in upper case.
func EscapeSegment(b *strings.Builder, seg string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(seg); i++ {
		if c := seg[i]; pchar(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
}

// plainPath reports whether p, a decoded path, is already in the
// canonical form: only pchar bytes and '/'.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c != '/' && !pchar(c) {
			return false
		}
	}
	return true
}

// CanonicalPath returns the canonical escaped form of u's path to route
// on, and false when the path the router reads (u.RawPath when set, else
// u.Path) is that form already (the usual case: one scan, no allocation). With u.RawPath set (the client
// escaped differently from Go's default, as it does for a %2F in a
// parameter) the raw segments are decoded and escaped again, so %2F stays
// inside its segment; without it u.Path's segments are escaped.
func CanonicalPath(u *url.URL) (string, bool) {
	src, decoded := u.RawPath, false
	if src == "" {
		if plainPath(u.Path) {
			return "", false
		}
		src, decoded = u.Path, true
	}
	var b strings.Builder
	b.Grow(len(src) + 8)
	for i, seg := range strings.Split(src, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		if !decoded {
			d, err := url.PathUnescape(seg)
			if err != nil {
				return "", false // not a valid escape: Go's parser refuses such a path first
			}
			seg = d
		}
		EscapeSegment(&b, seg)
	}
	if c := b.String(); c != u.RawPath {
		return c, true
	}
	return "", false // the raw form is the canonical one already
}

// routeLiteral is a literal part of an endpoint path (between and around
// its parameters) in the canonical escaped form; ok is false when it holds
// an invalid %-escape.
func routeLiteral(lit string) (string, bool) {
	var b strings.Builder
	for i, seg := range strings.Split(lit, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		d, err := url.PathUnescape(seg)
		if err != nil {
			return "", false
		}
		EscapeSegment(&b, d)
	}
	return b.String(), true
}
