package config

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Problem is one thing wrong with a configuration file, located by its YAML
// path so a user can go straight to it.
type Problem struct {
	// File is the configuration file's path as the user gave it.
	File string
	// Path is the YAML path, e.g. endpoints[1].backends[0].upstream or
	// upstreams.users.url; RootPath for the file as a whole (a YAML syntax
	// error, whose message gives the line and column, or a document that is
	// not a mapping). It is never empty. Control characters in keys are
	// escaped (a key "a\nb" is written a\nb), so a path is always one line.
	Path string
	// Message says what is wrong and, where it can, how to fix it. A value
	// a MANIFOLD_* variable set starts "from $NAME: ", one an alias or merge
	// key copied "from *anchor (line N): ". It is one line (control
	// characters escaped as in Path), except for a YAML syntax error, the
	// file's only problem: its first line names line and column, and
	// further lines, each indented by two spaces, quote the source line
	// with a caret under the column and give a hint.
	Message string

	pos position // where in the file, for ordering; zero when unknown
}

// RootPath is the Path of a problem about the file as a whole.
const RootPath = "(root)"

// String renders the problem as "FILE: yaml.path: message" (the message
// of a YAML syntax error goes on over a few indented lines).
func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s", p.File, p.Path, p.Message)
}

// position is a YAML line and column (both from 1).
type position struct{ line, col int }

func (a position) before(b position) bool {
	return a.line < b.line || (a.line == b.line && a.col < b.col)
}

// Problems is every problem found in one file. It is the error Load returns
// for an invalid file (wrapped, when there are Warnings too); errors.As
// finds it.
type Problems []Problem

// Error lists the problems one per line (a YAML syntax error, always
// alone, takes a few).
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// ErrInvalid is matched (errors.Is) by every Problems value, so callers can
// tell "the file is wrong" from other failures without inspecting text.
var ErrInvalid = errors.New("invalid configuration")

// Is reports that Problems is an ErrInvalid.
func (ps Problems) Is(target error) bool { return target == ErrInvalid }

// collector gathers problems during one load; the first problem for a path
// wins, and a problem under a path that already has one is dropped, so that a
// value that failed to decode does not also fail validation.
//
// Paths inside the collector are raw ("" is the root, keys as written);
// they are rendered (RootPath, control characters escaped) only in the
// Problem, so lookups by path never depend on the rendering.
type collector struct {
	file string
	pos  map[string]position    // where each path's key or list item is
	env  map[string]string      // path -> the MANIFOLD_* variable that set it
	via  map[string]aliasOrigin // path -> the alias or merge key that copied it
	seen map[string]bool
	list Problems

	warnings []string // returned with the config, or with the problems
}

func (c *collector) add(path, format string, args ...any) {
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	for p := path; p != ""; p = parentPath(p) {
		if c.seen[p] {
			return
		}
	}
	c.seen[path] = true
	msg := fmt.Sprintf(format, args...)
	if name := c.envSource(path); name != "" {
		msg = "from $" + name + ": " + msg
	} else if from, ok := c.aliasSource(path); ok {
		msg = from + msg
	}
	c.list = append(c.list, c.problem(path, msg))
}

// aliasSource says, for a value an alias or merge key copied to path (or
// into a value above it), where it is written: "from *defaults (line 4): ".
// The line is the copied value's (for a key inside it, that key's).
func (c *collector) aliasSource(path string) (string, bool) {
	for p := path; p != ""; p = parentPath(p) {
		if o, ok := c.via[p]; ok {
			line := o.line
			if at, ok := c.pos[path]; ok && p != path {
				line = at.line
			}
			return fmt.Sprintf("from %s (line %d): ", o.anchor, line), true
		}
	}
	return "", false
}

// envSource names the MANIFOLD_* variable that set the value at path (or
// the list it is an item of), "" when the value is the file's.
func (c *collector) envSource(path string) string {
	for p := path; p != ""; p = parentPath(p) {
		if name, ok := c.env[p]; ok {
			return name
		}
	}
	return ""
}

// addSyntax records a YAML syntax error, the file's only problem: msg (from
// syntaxMessage) spans several lines, each already escaped.
func (c *collector) addSyntax(msg string, at position) {
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	c.seen[""] = true
	c.list = append(c.list, Problem{File: c.file, Path: RootPath, Message: msg, pos: at})
}

// addBeside records a problem that does not speak for the value at path
// (a duplicate key): problems about the value itself are still reported.
func (c *collector) addBeside(path, format string, args ...any) {
	c.list = append(c.list, c.problem(path, fmt.Sprintf(format, args...)))
}

func (c *collector) problem(path, msg string) Problem {
	shown := oneLine(path)
	if path == "" {
		shown = RootPath
	}
	return Problem{File: c.file, Path: shown, Message: oneLine(msg), pos: c.posOf(path)}
}

// failed reports whether a problem was already recorded at path.
func (c *collector) failed(path string) bool { return c.seen[path] }

// inFile reports whether path itself (not only an ancestor) is in the file.
func (c *collector) inFile(path string) bool {
	_, ok := c.pos[path]
	return ok
}

// posOf finds the position of path or of its nearest ancestor in the file.
func (c *collector) posOf(path string) position {
	for p := path; p != ""; p = parentPath(p) {
		if at, ok := c.pos[p]; ok {
			return at
		}
	}
	return position{}
}

// oneLine escapes control characters (newlines included), invalid UTF-8
// and the Unicode line separators the way Go quotes them (\n, \x00,
// \u2028), leaving everything else as it is.
func oneLine(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, width := utf8.DecodeRuneInString(s[i:])
		w = width
		switch {
		case r == utf8.RuneError && width == 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unsafeRune(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+width])
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r == utf8.RuneError || unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// invalidFile is the error of an invalid file that also has warnings:
// it reads as its problems, and errors.As and errors.Is find them.
type invalidFile struct {
	problems Problems
	warnings []string
}

func (e *invalidFile) Error() string { return e.problems.Error() }
func (e *invalidFile) Unwrap() error { return e.problems }

// Warnings returns what Load or Parse noticed but does not refuse: a
// MANIFOLD_* variable that names no key of the file (a typo, or a key of an
// upstream or list entry the file does not have) is ignored, and each such
// variable has a one-line warning saying so, with the variable meant when
// one is close. They are cfg.Warnings when the file loaded, else those that
// came with err (an invalid file can have warnings too); nil when there are
// none. Only the process environment (env nil) can be listed, so a given
// Getenv yields no warnings; MANIFOLD_CONFIG, which names the file, never
// warns.
func Warnings(cfg *Config, err error) []string {
	if cfg != nil {
		return cfg.Warnings
	}
	var inv *invalidFile
	if errors.As(err, &inv) {
		return inv.warnings
	}
	return nil
}

// result sorts the problems by their place in the file (line, then column,
// then path, so that several problems on one line of a flow mapping come in
// the same order every time, whatever order map iteration found them in) and
// returns them, or nil when there are none.
func (c *collector) result() error {
	if len(c.list) == 0 {
		return nil
	}
	sort.SliceStable(c.list, func(i, j int) bool {
		a, b := c.list[i], c.list[j]
		if a.pos != b.pos {
			return a.pos.before(b.pos)
		}
		return a.Path < b.Path
	})
	if len(c.warnings) > 0 {
		return &invalidFile{c.list, c.warnings}
	}
	return c.list
}
