package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// notKeys are MANIFOLD_* variables that Manifold reads for other things
// than a config key; they never warn.
var notKeys = []string{"MANIFOLD_CONFIG"}

// warnings returns one line for each variable of environ (names) that
// starts with MANIFOLD_ and names no key the walk looked up, sorted by
// name, or nil.
func (e *envOverrides) warnings(environ []string) []string {
	var out []string
	seen := map[string]bool{}
	names := slices.Clone(environ)
	slices.Sort(names)
	for _, name := range names {
		if !strings.HasPrefix(name, EnvPrefix+"_") || e.known[name] || slices.Contains(notKeys, name) || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name+e.notAKey(name))
	}
	return out
}

// notAKey says why name is no key: a map users name, an entry the file
// lacks, the nearest key, or nothing close.
func (e *envOverrides) notAKey(name string) string {
	inMap := ""
	for prefix := range e.maps {
		if (name == prefix || strings.HasPrefix(name, prefix+"_")) && len(prefix) > len(inMap) {
			inMap = prefix // the longest wins, so the answer is always the same
		}
	}
	if inMap != "" {
		return fmt.Sprintf(" is not a config key: %s cannot be set from the environment (write ${VAR} in its values instead)", e.maps[inMap])
	}
	for _, l := range e.lists {
		rest, ok := strings.CutPrefix(name, l.name+"_")
		if !ok {
			continue
		}
		digits, _, _ := strings.Cut(rest, "_")
		if i, err := strconv.Atoi(digits); err == nil && strconv.Itoa(i) == digits && i >= l.len {
			has := "none"
			switch l.len {
			case 0:
			case 1:
				has = fmt.Sprintf("only %s[0]", l.path)
			default:
				has = fmt.Sprintf("%s[0] to %s[%d]", l.path, l.path, l.len-1)
			}
			return fmt.Sprintf(" is not a config key: the file has no %s[%d] (it has %s), and variables cannot add list entries", l.path, i, has)
		}
	}
	if best := e.nearest(name); best != "" {
		return fmt.Sprintf(" is not a config key; did you mean %s?", best)
	}
	if strings.HasPrefix(name, EnvPrefix+"_UPSTREAMS_") {
		upstreams := "it has none"
		if len(e.named) > 0 {
			named := slices.Sorted(slices.Values(e.named))
			upstreams = strings.Join(named, ", ")
		}
		return fmt.Sprintf(" is not a config key: it names no upstream of the file (%s), and variables cannot add upstreams", upstreams)
	}
	return " is not a config key and is ignored"
}

// nearest is the known variable closest to name when it is close enough to
// be a typo (within 2 edits, 3 for longer names), the first in order on a
// tie; "" when none is.
func (e *envOverrides) nearest(name string) string {
	rest := strings.TrimPrefix(name, EnvPrefix+"_")
	limit := 2
	if len(rest) >= 10 {
		limit = 3
	}
	best, bestD := "", limit+1
	for known := range e.known {
		d := EditDistance(rest, strings.TrimPrefix(known, EnvPrefix+"_"))
		if d < bestD || (d == bestD && known < best) {
			best, bestD = known, d
		}
	}
	return best
}
