package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	goccy "github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// A YAML syntax error is told by syntaxMessage. go.yaml.in/yaml/v3, which
// reads the file, often names the wrong line for it (the line where the
// enclosing block began: "line 1: did not find expected key" for a key
// mis-indented on line 4) and never a column; github.com/goccy/go-yaml
// reports where its parser stopped, to the column. So on the failure path
// only, goccy's parser and lexer locate the fault, yaml/v3's message breaks
// ties, and the usual causes (a tab, a key out of line, an unclosed bracket
// or quote, ': ' inside a value) are recognised from the source and told in
// the user's terms:
//
//	invalid YAML: line 4, column 4: this key lines up with no key above it
//	  3 |     url: http://users.test
//	  4 |    timeout: 1s
//	    |    ^
//	  hint: keys of one map start in the same column: column 5 as on line 3, or column 3 as on line 2
//
// Lines and columns count from 1; columns count characters.

// syntaxFault is a located syntax error: what is wrong, where, and how to
// fix it.
type syntaxFault struct {
	line, col int    // 0 when unknown
	what      string // first line of the message, after the location
	context   int    // a line above to quote too (0: none)
	hint      string
}

// v3Line reads yaml/v3's "yaml: line N: message".
var v3Line = regexp.MustCompile(`^(?:yaml: )?(?:line (\d+): )?(.*)$`)

// syntaxMessage is the message of the problem for data, which yaml/v3
// refused with err, and the position to sort it by. Each line of it is
// escaped like any problem (control characters as \t, \x00, ...); lines
// after the first are indented.
func syntaxMessage(data []byte, err error) (string, position) {
	lines := sourceLines(data)
	f := locateSyntax(data, lines, err)
	var b strings.Builder
	b.WriteString("invalid YAML: ")
	switch {
	case f.line > 0 && f.col > 0:
		fmt.Fprintf(&b, "line %d, column %d: ", f.line, f.col)
	case f.line > 0:
		fmt.Fprintf(&b, "line %d: ", f.line)
	}
	b.WriteString(oneLine(f.what))
	if f.line > 0 && f.line <= len(lines) {
		width := len(strconv.Itoa(f.line))
		if f.context > 0 && f.context < f.line {
			shown, _ := shownLine(lines[f.context-1], 0)
			fmt.Fprintf(&b, "\n  %*d | %s", width, f.context, shown)
		}
		shown, caret := shownLine(lines[f.line-1], f.col)
		fmt.Fprintf(&b, "\n  %*d | %s", width, f.line, shown)
		if f.col > 0 {
			fmt.Fprintf(&b, "\n  %*s | %s^", width, "", strings.Repeat(" ", caret))
		}
	}
	if f.hint != "" {
		b.WriteString("\n  hint: " + oneLine(f.hint))
	}
	return b.String(), position{f.line, f.col}
}

// locateSyntax finds the fault behind yaml/v3's err.
func locateSyntax(data []byte, lines []string, err error) syntaxFault {
	m := v3Line.FindStringSubmatch(err.Error())
	v3line, _ := strconv.Atoi(m[1])
	v3msg := m[2]
	switch {
	case strings.Contains(v3msg, "UTF-8"):
		if line, col, b, ok := firstNotUTF8(lines); ok {
			return syntaxFault{line: line, col: col, what: fmt.Sprintf("the file is not UTF-8 text here (byte 0x%02x)", b),
				hint: "save the file as UTF-8"}
		}
	case strings.Contains(v3msg, "control characters are not allowed"):
		if line, col, r, ok := firstControl(lines); ok {
			return syntaxFault{line: line, col: col, what: fmt.Sprintf("a control character (%s) where YAML allows only text", oneLine(string(r))),
				hint: fmt.Sprintf("remove it; inside \"...\" it can be written as an escape, %s", oneLine(string(r)))}
		}
	}
	g, gok := goccyFault(data)
	goccyLine := g.line
	unclosed := strings.Contains(g.what, "could not find end character") || strings.Contains(g.what, "not found") ||
		strings.Contains(g.what, "must be specified")
	if !gok || (v3line > 0 && g.line != v3line && !v3ParserError(v3msg) && !unclosed) {
		// yaml/v3's scanner names its line exactly (but for an unclosed
		// quote or bracket, where it names the end of the file); goccy
		// stopped elsewhere, so its place and message are not this error's.
		g, gok = syntaxFault{line: v3line, what: v3msg}, false
	}
	r, _ := runeAt(lines, g.line, g.col)

	switch {
	case r == '\t' || strings.Contains(v3msg, "cannot start any token") || strings.Contains(g.what, "tab character"):
		if f, ok := tabFault(lines, g, goccyLine, v3line, v3line+1); ok {
			return f
		}
		if f, ok := reservedFault(lines, g); ok {
			return f
		}
	case strings.Contains(g.what, "could not find end character of double-quoted text"):
		return syntaxFault{line: g.line, col: g.col, what: "this quote is never closed",
			hint: `end the value with " on the same line (write \" for a quote inside it)`}
	case strings.Contains(g.what, "could not find end character of single-quoted text"):
		return syntaxFault{line: g.line, col: g.col, what: "this quote is never closed",
			hint: `end the value with ' on the same line (write '' for a quote inside it)`}
	case strings.Contains(g.what, "unknown escape character") || strings.Contains(v3msg, "unknown escape character"):
		if prev, _ := runeAt(lines, g.line, g.col-1); prev == '\\' {
			g.col-- // the caret goes under the backslash
		}
		g.hint = `in "...", a backslash starts an escape (\n, \t, \", \\): write \\ for a backslash, or quote the value with '...' instead`
		return g
	case strings.HasPrefix(v3msg, "unknown anchor "):
		if f, ok := aliasFault(data, v3msg); ok {
			return f
		}
	}
	if f, ok := bracketFault(data, g, r, v3msg); ok {
		return f
	}
	for _, line := range []int{g.line, significantAbove(lines, v3line), v3line} {
		if f, ok := missingSpace(lines, line); ok {
			return f
		}
	}
	if strings.Contains(v3msg, "mapping values are not allowed") {
		line := g.line
		if v3line > line {
			line = v3line // yaml/v3's scanner names this line right, goccy the one above
		}
		if f, ok := overIndented(lines, line); ok {
			return f
		}
		if f, ok := secondColon(lines, line); ok {
			return f
		}
	}
	if gok {
		if g.line >= 1 && g.line <= len(lines) && g.col == indentOf(lines[g.line-1]) {
			if f, ok := overIndented(lines, g.line); ok {
				return f
			}
		}
		if f, ok := outOfLine(lines, g); ok {
			return f
		}
		if f, ok := afterQuoted(data, g); ok {
			return f
		}
	}
	for _, structural := range []string{"did not find expected", "not allowed in this context", "found character", "could not find expected"} {
		if strings.Contains(v3msg, structural) {
			g.hint = "the usual causes are a tab, a key out of line with the keys above it, and an unclosed bracket or quote"
		}
	}
	return g
}

// firstNotUTF8 finds the first byte that is not UTF-8 text.
func firstNotUTF8(lines []string) (line, col int, b byte, ok bool) {
	for i, text := range lines {
		col := 1
		for j, w := 0, 0; j < len(text); j += w {
			r, width := utf8.DecodeRuneInString(text[j:])
			w = width
			if r == utf8.RuneError && width == 1 {
				return i + 1, col, text[j], true
			}
			col++
		}
	}
	return 0, 0, 0, false
}

// firstControl finds the first character YAML does not allow in a file
// (C0 and C1 controls other than tab, LF, CR and NEL; DEL; U+FFFE, U+FFFF).
func firstControl(lines []string) (line, col int, r rune, ok bool) {
	for i, text := range lines {
		for j, c := range []rune(text) {
			if (c < 0x20 && c != '\t' && c != '\r') || c == 0x7f || (c >= 0x80 && c <= 0x9f && c != 0x85) || c == 0xfffe || c == 0xffff {
				return i + 1, j + 1, c, true
			}
		}
	}
	return 0, 0, 0, false
}

// v3ParserError reports whether yaml/v3's message comes from its parser,
// whose "line N" is where the enclosing block began (and counted from 0),
// not where the error is; its scanner's errors name the line exactly.
func v3ParserError(msg string) bool {
	for _, p := range []string{"did not find expected key", "did not find expected '-' indicator", "did not find expected ',' or",
		"did not find expected node content", "did not find expected <document start>"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// goccyFault is where goccy's parser stops on data, if it does.
func goccyFault(data []byte) (f syntaxFault, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	_, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey()) // yaml/v3 reads duplicates; Parse reports them
	var se *goccy.SyntaxError
	if !errors.As(err, &se) || se.Token == nil || se.Token.Position == nil || se.Token.Position.Line < 1 {
		return syntaxFault{}, false
	}
	p := se.Token.Position
	return syntaxFault{line: p.Line, col: max(p.Column, 1), what: se.Message}, true
}

// tokens is goccy's lexing of data (nil if it fails).
func tokens(data []byte) (ts token.Tokens) {
	defer func() {
		if recover() != nil {
			ts = nil
		}
	}()
	return lexer.Tokenize(string(data))
}

// tabFault finds the tab that stopped the parser: at its position, else
// the first tab of its line or of the first of candidates that has one.
func tabFault(lines []string, g syntaxFault, candidates ...int) (syntaxFault, bool) {
	if r, _ := runeAt(lines, g.line, g.col); r == '\t' {
		return tab(g.line, g.col), true
	}
	for _, line := range append([]int{g.line}, candidates...) {
		if line < 1 || line > len(lines) {
			continue
		}
		if i := strings.IndexByte(lines[line-1], '\t'); i >= 0 {
			return tab(line, utf8.RuneCountInString(lines[line-1][:i])+1), true
		}
	}
	return syntaxFault{}, false
}

// reservedFault finds a value starting with '@' or '`', which YAML
// reserves: at the parser's position, else the first on its line.
func reservedFault(lines []string, g syntaxFault) (syntaxFault, bool) {
	col := g.col
	if r, _ := runeAt(lines, g.line, col); r != '@' && r != '`' {
		col = 0
		if g.line >= 1 && g.line <= len(lines) {
			text := lines[g.line-1]
			if i := strings.IndexAny(text, "@`"); i >= 0 {
				col = utf8.RuneCountInString(text[:i]) + 1
			}
		}
	}
	r, ok := runeAt(lines, g.line, col)
	if !ok {
		return syntaxFault{}, false
	}
	return syntaxFault{line: g.line, col: col, what: fmt.Sprintf("%q cannot start a value", r),
		hint: "quote the value (write it between \"...\")"}, true
}

func tab(line, col int) syntaxFault {
	return syntaxFault{line: line, col: col, what: "a tab character; YAML indents with spaces only", hint: "replace the tab with spaces"}
}

// aliasFault finds the first *NAME of yaml/v3's "unknown anchor 'NAME'
// referenced".
func aliasFault(data []byte, v3msg string) (syntaxFault, bool) {
	name := strings.TrimSuffix(strings.TrimPrefix(v3msg, "unknown anchor '"), "' referenced")
	ts := tokens(data)
	for i := 0; i+1 < len(ts); i++ {
		if ts[i].Type == token.AliasType && ts[i+1].Value == name && ts[i].Position != nil {
			return syntaxFault{line: ts[i].Position.Line, col: ts[i].Position.Column,
				what: fmt.Sprintf("*%s names no anchor above it", name),
				hint: fmt.Sprintf("write the value once with &%s in front of it, then repeat it with *%s", name, name)}, true
		}
	}
	return syntaxFault{}, false
}

// bracketFault tells a flow collection gone wrong: a closing bracket of
// the wrong kind or with nothing to close where the parser stopped, or the
// innermost bracket still open there when the parser wanted one closed.
func bracketFault(data []byte, g syntaxFault, r rune, v3msg string) (syntaxFault, bool) {
	closing := r == ']' || r == '}'
	wantsClose := strings.Contains(v3msg, "did not find expected ',' or") || strings.Contains(g.what, "must be specified") ||
		strings.Contains(g.what, "end token") || strings.Contains(g.what, "not found")
	if !closing && !wantsClose {
		return syntaxFault{}, false
	}
	var open []*token.Token // unclosed '[' and '{' before the stop
	for _, t := range tokens(data) {
		p := t.Position
		if p == nil || (position{g.line, g.col}).before(position{p.Line, p.Column}) || (closing && p.Line == g.line && p.Column == g.col) {
			break
		}
		switch t.Type {
		case token.SequenceStartType, token.MappingStartType:
			open = append(open, t)
		case token.SequenceEndType, token.MappingEndType:
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		}
	}
	const quoteHint = "a value that holds ',', '[', ']', '{' or '}' must be quoted"
	switch {
	case closing && len(open) == 0:
		return syntaxFault{line: g.line, col: g.col, what: fmt.Sprintf("this '%c' closes nothing", r),
			hint: "remove it, or quote the value it belongs to"}, true
	case closing && matching(open[len(open)-1].Value) != string(r):
		o := open[len(open)-1].Position
		return syntaxFault{line: g.line, col: g.col,
			what: fmt.Sprintf("this '%c' does not close the '%s' of line %d, column %d", r, open[len(open)-1].Value, o.Line, o.Column),
			hint: "close '{' with '}' and '[' with ']'"}, true
	case !closing && len(open) > 0:
		o := open[len(open)-1]
		return syntaxFault{line: o.Position.Line, col: o.Position.Column,
			what: fmt.Sprintf("this '%s' is never closed", o.Value),
			hint: fmt.Sprintf("close it with '%s'; %s", matching(o.Value), quoteHint)}, true
	}
	return syntaxFault{}, false
}

func matching(open string) string {
	if open == "[" {
		return "]"
	}
	return "}"
}

// overIndented tells a line indented more than the key above it, which has
// a value of its own on its line (so the line cannot be nested under it).
func overIndented(lines []string, line int) (syntaxFault, bool) {
	if line < 2 || line > len(lines) {
		return syntaxFault{}, false
	}
	prev := significantAbove(lines, line)
	if prev == 0 {
		return syntaxFault{}, false
	}
	col, key := indentOf(lines[line-1]), keyColumn(lines[prev-1])
	_, value, hasValue := strings.Cut(strings.TrimSpace(lines[prev-1][byteOfColumn(lines[prev-1], key):]), ": ")
	if col <= key || !hasValue || strings.TrimSpace(value) == "" {
		return syntaxFault{}, false
	}
	return syntaxFault{line: line, col: col, context: prev,
		what: fmt.Sprintf("this line is indented more than line %d, which already has a value", prev),
		hint: fmt.Sprintf("keys of one map start in the same column, here column %d as on line %d", key, prev)}, true
}

// keyWithoutSpace is a line that means "key: value" but has no space after
// the colon (timeout:1s, address:":8080"); URLs (http://...) aside.
var keyWithoutSpace = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_-]*):([^\s/].*)$`)

// missingSpace tells a key written without a space after its colon, which
// YAML reads as text, not as a key.
func missingSpace(lines []string, line int) (syntaxFault, bool) {
	if line < 1 || line > len(lines) {
		return syntaxFault{}, false
	}
	text := lines[line-1]
	col := keyColumn(text)
	m := keyWithoutSpace.FindStringSubmatch(strings.TrimSpace(text[byteOfColumn(text, col):]))
	if m == nil {
		return syntaxFault{}, false
	}
	return syntaxFault{line: line, col: col + utf8.RuneCountInString(m[1]),
		what: "no space after this ':', so YAML reads the line as text, not as a key",
		hint: fmt.Sprintf("write a space after the colon (%s: %s)", m[1], m[2])}, true
}

// secondColon tells "key: a: b", a value holding ': ' unquoted.
func secondColon(lines []string, line int) (syntaxFault, bool) {
	if line < 1 || line > len(lines) {
		return syntaxFault{}, false
	}
	text := lines[line-1]
	first := strings.Index(text, ": ")
	if first < 0 {
		return syntaxFault{}, false
	}
	second := strings.Index(text[first+2:], ": ")
	if second < 0 {
		return syntaxFault{}, false
	}
	second += first + 2
	key := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(text[:first]), "- "))
	value := strings.TrimSpace(text[first+2:])
	return syntaxFault{line: line, col: utf8.RuneCountInString(text[:second]) + 1,
		what: "a second ': ' on this line",
		hint: fmt.Sprintf("quote a value that holds \": \" (%s: %q)", key, value)}, true
}

// outOfLine tells a line whose first character stopped the parser: its
// indentation matches no level above it. The hint names the nearest
// columns that would fit, above and below.
func outOfLine(lines []string, g syntaxFault) (syntaxFault, bool) {
	if g.line < 2 || g.line > len(lines) || g.col != indentOf(lines[g.line-1]) {
		return syntaxFault{}, false
	}
	text := strings.TrimSpace(lines[g.line-1])
	item := strings.HasPrefix(text, "- ") || text == "-"
	// The enclosing levels, innermost first: going up, each line that
	// starts left of every line seen so far.
	type level struct{ col, line int }
	var above, below *level
	least := 1 << 30
	for l := g.line - 1; l >= 1 && least > 1; l-- {
		if !significant(lines[l-1]) {
			continue
		}
		start := indentOf(lines[l-1])
		if start >= least {
			continue
		}
		least = start
		col := keyColumn(lines[l-1])
		if item {
			col = start
		}
		switch {
		case !item && start == g.col && isItem(lines[l-1]):
			return besideItems(lines, g, l), true
		case col == g.col:
			return syntaxFault{}, false // it lines up: something else is wrong
		case col > g.col && above == nil && below == nil:
			above = &level{col, l}
		case col < g.col && below == nil:
			below = &level{col, l}
		}
	}
	what := "this key lines up with no key above it"
	kind := "keys of one map start"
	if item {
		what, kind = "this list item lines up with no list above it", "items of one list start"
	}
	var fits []string
	for _, lv := range []*level{above, below} {
		if lv != nil {
			fits = append(fits, fmt.Sprintf("column %d as on line %d", lv.col, lv.line))
		}
	}
	if len(fits) == 0 {
		return syntaxFault{}, false
	}
	return syntaxFault{line: g.line, col: g.col, context: significantAbove(lines, g.line), what: what,
		hint: fmt.Sprintf("%s in the same column: %s", kind, strings.Join(fits, ", or "))}, true
}

// isItem reports whether a line starts a list item.
func isItem(text string) bool {
	t := strings.TrimLeft(text, " ")
	return strings.HasPrefix(t, "- ") || t == "-"
}

// isKey reports whether a line (after any "- ") holds a key.
func isKey(text string) bool {
	t := text[byteOfColumn(text, keyColumn(text)):]
	return strings.Contains(t, ": ") || strings.HasSuffix(strings.TrimSpace(t), ":")
}

// besideItems tells a key written in line with the items of a list above
// it (line l is the nearest item).
func besideItems(lines []string, g syntaxFault, l int) syntaxFault {
	f := syntaxFault{line: g.line, col: g.col, context: significantAbove(lines, g.line),
		what: fmt.Sprintf("this key is in line with the list items above it (line %d); a list cannot also hold keys", l)}
	own := strings.TrimSpace(lines[g.line-1])
	if isKey(lines[l-1]) {
		f.hint = fmt.Sprintf("indent it to column %d to put it in that item's map, as on line %d, or make it an item of its own (- %s)", keyColumn(lines[l-1]), l, own)
	} else {
		f.hint = fmt.Sprintf("make it an item of its own (- %s), or move it out of the list", own)
	}
	return f
}

// afterQuoted tells text after a quoted value on its line ("x" y).
func afterQuoted(data []byte, g syntaxFault) (syntaxFault, bool) {
	var prev *token.Token
	for _, t := range tokens(data) {
		if t.Position == nil {
			continue
		}
		if t.Position.Line == g.line && t.Position.Column == g.col {
			if prev != nil && prev.Position.Line == g.line &&
				(prev.Type == token.DoubleQuoteType || prev.Type == token.SingleQuoteType) {
				return syntaxFault{line: g.line, col: g.col, what: "text after the end of a quoted value", hint: "quote the whole value"}, true
			}
			break
		}
		prev = t
	}
	return syntaxFault{}, false
}

// ---- source lines ----

// sourceLines splits data into lines at the line ends YAML knows (LF, CR
// LF and a lone CR), without them.
func sourceLines(data []byte) []string {
	text := strings.ReplaceAll(string(data), "\r\n", "\n")
	return strings.Split(strings.ReplaceAll(text, "\r", "\n"), "\n")
}

// runeAt is the character at line and column (both from 1), 0 if none.
func runeAt(lines []string, line, col int) (rune, bool) {
	if line < 1 || line > len(lines) || col < 1 {
		return 0, false
	}
	for i, r := range []rune(lines[line-1]) {
		if i == col-1 {
			return r, true
		}
	}
	return 0, false
}

// byteOfColumn is the byte offset of column col (from 1) in text.
func byteOfColumn(text string, col int) int {
	n := 0
	for i := range text {
		if n++; n == col {
			return i
		}
	}
	return len(text)
}

// indentOf is the column of the first character that is not a space.
func indentOf(text string) int {
	return len(text) - len(strings.TrimLeft(text, " ")) + 1
}

// keyColumn is the column where the line's key starts, after any "- ".
func keyColumn(text string) int {
	col := indentOf(text)
	rest := text[col-1:]
	for strings.HasPrefix(rest, "- ") {
		trimmed := strings.TrimLeft(rest[1:], " ")
		col += len(rest) - len(trimmed)
		rest = trimmed
	}
	return col
}

// significant reports whether a line holds more than spaces and a comment.
func significant(text string) bool {
	t := strings.TrimSpace(text)
	return t != "" && !strings.HasPrefix(t, "#")
}

// significantAbove is the nearest line above line that is significant, or 0.
func significantAbove(lines []string, line int) int {
	for l := min(line-1, len(lines)); l >= 1; l-- {
		if significant(lines[l-1]) {
			return l
		}
	}
	return 0
}

// maxShown is how many characters of a long line are quoted.
const maxShown = 100

// shownLine renders a source line for the message: control characters and
// bytes that are not UTF-8 escaped as in oneLine, at most maxShown
// characters around column col (cut ends marked "…"). caret is the
// position of column col in the rendering. A byte that is not UTF-8 counts
// as one column, as it does for the parser.
func shownLine(text string, col int) (shown string, caret int) {
	var chars []string
	for i, w := 0, 0; i < len(text); i += w {
		_, w = utf8.DecodeRuneInString(text[i:])
		chars = append(chars, text[i:i+w])
	}
	start, end := 0, len(chars)
	if end > maxShown {
		start = max(0, min(col-1-maxShown*2/3, end-maxShown))
		end = min(end, start+maxShown)
	}
	var b strings.Builder
	width := 0
	if start > 0 {
		b.WriteString("…")
		width++
	}
	for i := start; i < end; i++ {
		if i == col-1 {
			caret = width
		}
		piece := oneLine(chars[i])
		b.WriteString(piece)
		width += utf8.RuneCountInString(piece)
	}
	if col-1 >= end {
		caret = width
	}
	if end < len(chars) {
		b.WriteString("…")
	}
	return b.String(), caret
}
