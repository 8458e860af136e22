package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// maxAliasNodes bounds the values that aliases may copy into a file, so
// that a few lines of nested aliases (a "billion laughs") cannot take all
// memory.
const maxAliasNodes = 200_000

// aliasOrigin is where a value that an alias or merge key copied came from:
// the anchor's name and the line the value is written on.
type aliasOrigin struct {
	anchor string
	line   int
}

// expander resolves anchors, aliases and merge keys in a YAML tree before
// anything else reads it, so that every later walk (${VAR} expansion and
// duplicate keys, unknown keys, user-named keys whose case is kept, viper)
// sees plain maps and lists: an alias becomes a copy of the value its
// anchor names, and a merge key (<<: *a, <<: [*a, *b], <<: {k: v}) becomes
// the keys it merges that the map does not set itself. Copies keep the
// lines they are written on, and each records its origin, so a problem
// inside one points at the text to fix.
type expander struct {
	c      *collector
	done   map[*yaml.Node]bool // expanded in place
	active map[*yaml.Node]bool // anchored nodes being expanded (an alias to one is a cycle)
	copied int
	over   bool
}

func expandAliases(root *yaml.Node, c *collector) (ok bool) {
	x := &expander{c: c, done: map[*yaml.Node]bool{}, active: map[*yaml.Node]bool{}}
	x.expand(root, "")
	if x.over {
		c.add("", "aliases expand the file to more than %d values; use fewer or smaller aliases", maxAliasNodes)
		return false
	}
	return true
}

// expand resolves n (at YAML path path) and returns what stands in its
// place: n itself, expanded in place, or for an alias a copy of its target.
func (x *expander) expand(n *yaml.Node, path string) *yaml.Node {
	if n == nil || x.over {
		return n
	}
	if n.Kind == yaml.AliasNode {
		target, ok := x.target(n, path)
		if !ok {
			return nullNode(n)
		}
		x.c.via[path] = aliasOrigin{"*" + n.Value, target.Line}
		return x.copy(target)
	}
	if x.done[n] {
		return n
	}
	if n.Anchor != "" {
		x.active[n] = true
		defer delete(x.active, n)
		n.Anchor = ""
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for i, e := range n.Content {
			n.Content[i] = x.expand(e, path)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			n.Content[i] = x.expand(e, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.MappingNode:
		x.mapping(n, path)
	}
	x.done[n] = true
	return n
}

// target is the node alias a names, expanded; false (with a problem at
// path) when a stands inside it.
func (x *expander) target(a *yaml.Node, path string) (*yaml.Node, bool) {
	t := a.Alias
	if t == nil || x.active[t] {
		x.c.add(path, "*%s refers to a value that contains it; an alias cannot stand inside its own anchor", a.Value)
		return nil, false
	}
	if !x.done[t] {
		t = x.expand(t, path)
	}
	return t, true
}

// mapping expands the values of map n and applies its merge keys: the keys
// of the merged maps that n does not set itself are added, from the first
// map of a merge list first (earlier maps win, as YAML specifies).
func (x *expander) mapping(n *yaml.Node, path string) {
	var own, merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMergeKey(k) {
			merges = append(merges, v)
			continue
		}
		own = append(own, k, x.expand(v, joinPath(path, k.Value)))
	}
	if merges == nil {
		n.Content = own
		return
	}
	set := map[string]bool{}
	for i := 0; i < len(own); i += 2 {
		set[own[i].Value] = true
	}
	mp := joinPath(path, "<<")
	for _, v := range merges {
		for _, src := range x.mergeSources(v, mp) {
			for i := 0; i+1 < len(src.m.Content); i += 2 {
				k, val := src.m.Content[i], src.m.Content[i+1]
				if set[k.Value] {
					continue
				}
				set[k.Value] = true
				if src.anchor != "" { // a map used elsewhere too: copy it
					x.c.via[joinPath(path, k.Value)] = aliasOrigin{src.anchor, k.Line}
					k, val = x.copy(k), x.copy(val)
				}
				own = append(own, k, val)
			}
		}
	}
	n.Content = own
}

// mergeSource is one map a merge key merges; anchor is "*name" when it came
// through an alias.
type mergeSource struct {
	m      *yaml.Node
	anchor string
}

// mergeSources lists the maps that the merge key's value v names, each
// expanded, reporting at path (the merge key's) a value that is no map.
func (x *expander) mergeSources(v *yaml.Node, path string) []mergeSource {
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
	}
	var out []mergeSource
	for _, item := range items {
		src := mergeSource{m: item}
		if item.Kind == yaml.AliasNode {
			t, ok := x.target(item, path)
			if !ok {
				continue
			}
			src = mergeSource{t, "*" + item.Value}
		} else {
			src.m = x.expand(item, path)
		}
		if src.m.Kind != yaml.MappingNode {
			what := kindName(src.m)
			if v.Kind == yaml.SequenceNode {
				what = "list holding a " + what
			}
			if src.anchor != "" {
				x.c.add(path, "%s is a %s; a merge key (<<) takes a map or a list of maps (<<: *defaults or <<: [*a, *b])", src.anchor, kindName(src.m))
			} else {
				x.c.add(path, "a merge key (<<) takes a map or a list of maps (<<: *defaults or <<: [*a, *b]), not a %s", what)
			}
			continue
		}
		out = append(out, src)
	}
	return out
}

// isMergeKey reports whether k is YAML's merge key: a plain << (a quoted
// "<<" is an ordinary key).
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge"
}

// copy is a deep copy of the expanded node n, counted against
// maxAliasNodes.
func (x *expander) copy(n *yaml.Node) *yaml.Node {
	if x.over {
		return nullNode(n)
	}
	x.copied++
	if x.copied > maxAliasNodes {
		x.over = true
		return nullNode(n)
	}
	c := *n
	c.Anchor = ""
	if n.Content != nil {
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, e := range n.Content {
			c.Content[i] = x.copy(e)
		}
	}
	x.done[&c] = true
	return &c
}

// nullNode is an empty value where n was.
func nullNode(n *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
}
