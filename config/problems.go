package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a configuration file, located by its YAML
// path so a user can go straight to it.
type Problem struct {
	// File is the configuration file's path as the user gave it.
	File string
	// Path is the YAML path, e.g. endpoints[1].backends[0].upstream or
	// upstreams.users.url; "" for the file as a whole.
	Path string
	// Message says what is wrong and, where it can, how to fix it.
	Message string

	line int // YAML line, for ordering; 0 when unknown
}

// String renders the problem as "FILE: yaml.path: message".
func (p Problem) String() string {
	if p.Path == "" {
		return fmt.Sprintf("%s: %s", p.File, p.Message)
	}
	return fmt.Sprintf("%s: %s: %s", p.File, p.Path, p.Message)
}

// Problems is every problem found in one file. It is the error Load returns
// for an invalid file; errors.As finds it.
type Problems []Problem

// Error lists the problems one per line.
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
type collector struct {
	file  string
	lines map[string]int
	seen  map[string]bool
	list  Problems
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
	c.list = append(c.list, Problem{File: c.file, Path: path, Message: fmt.Sprintf(format, args...), line: c.lineOf(path)})
}

// addBeside records a problem that does not speak for the value at path
// (a duplicate key): problems about the value itself are still reported.
func (c *collector) addBeside(path, format string, args ...any) {
	c.list = append(c.list, Problem{File: c.file, Path: path, Message: fmt.Sprintf(format, args...), line: c.lineOf(path)})
}

// failed reports whether a problem was already recorded at path.
func (c *collector) failed(path string) bool { return c.seen[path] }

// lineOf finds the YAML line of path or of its nearest ancestor in the file.
func (c *collector) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := c.lines[p]; ok {
			return l
		}
	}
	return 0
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// result sorts the problems by their place in the file and returns them, or
// nil when there are none.
func (c *collector) result() error {
	if len(c.list) == 0 {
		return nil
	}
	sort.SliceStable(c.list, func(i, j int) bool { return c.list[i].line < c.list[j].line })
	return c.list
}
