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

// pchar reports whether c stands for itself in the canonical form: RFC
// 3986's pchar (unreserved, sub-delims, '@') less three bytes the router
// reads otherwise. ':' and '*' would start a parameter or a catch-all in a
// route, and '+' is a space to the router's decoding of parameters
// (url.QueryUnescape, once the raw path is set), so all three are written
// %XX like every other byte, and decode back to themselves.
func pchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', ',', ';', '=', '@':
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
// its parameters) in the canonical escaped form. A %XX escape in it stands
// for its byte; a % that starts no escape stands for itself, so a path
// written /sale/50%off is matched by /sale/50%25off.
func routeLiteral(lit string) string {
	var b strings.Builder
	for i, seg := range strings.Split(lit, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		EscapeSegment(&b, lenientUnescape(seg))
	}
	return b.String()
}

// lenientUnescape decodes the %XX escapes of s and keeps a % that starts
// none as it is.
func lenientUnescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
