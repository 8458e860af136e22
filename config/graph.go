package config

import (
	"fmt"
	"slices"
	"strings"
)

// Merge modes of an endpoint.
const (
	MergeShallow = "shallow"
	MergeDeep    = "deep"
)

// compileGraph resolves the names of an endpoint's references and
// depends_on, and compiles its call graph: each backend's dependencies, a
// topological order in stages, and which answers must be kept raw. It runs
// after every backend of the endpoint was validated, so that names are
// known. An endpoint without references or depends_on gets no graph and is
// served exactly as before.
func compileGraph(ep *Endpoint, p string, c *collector) {
	byName := map[string]int{}
	ambiguous := map[string][]int{}
	for j, be := range ep.Backends {
		if be == nil || be.Shadow { // nothing can read a shadow's answer (shadow.go)
			continue
		}
		bp := fmt.Sprintf("%s.backends[%d]", p, j)
		if be.Name != "" {
			if k, dup := byName[be.Name]; dup && ep.Backends[k].Name == be.Name {
				c.add(bp+".name", "name %q is already used by backends[%d]; each backend of an endpoint needs its own name", be.Name, k)
				continue
			}
			if be.Name == "item" {
				c.add(bp+".name", `"item" is reserved: {item} is the current element of a foreach backend`)
				continue
			}
			byName[be.Name] = j
			delete(ambiguous, be.Name)
			continue
		}
		id := be.ID
		if k, dup := byName[id]; dup {
			if ep.Backends[k].Name == "" {
				ambiguous[id] = append(ambiguous[id], j)
			}
			continue
		}
		byName[id] = j
		ambiguous[id] = []int{j}
	}
	for name, js := range ambiguous {
		if len(js) < 2 {
			delete(ambiguous, name)
		}
	}

	lookup := func(name, yp, what string) (int, bool) {
		if js, amb := ambiguous[name]; amb {
			c.add(yp, "%s names %q, but backends[%d] and backends[%d] are both called %q: give one of them a name", what, name, js[0], js[1], name)
			return 0, false
		}
		j, ok := byName[name]
		if k, shadow := shadowNamed(ep, name); !ok && shadow {
			c.add(yp, "%s names %q, backends[%d], a shadow backend: its answer is discarded, so no backend can read it or wait for it", what, name, k)
			return 0, false
		}
		if !ok {
			c.add(yp, "%s names %q, which is not a backend of this endpoint (known: %s)", what, name, knownNames(ep))
			return 0, false
		}
		return j, true
	}

	graph := false
	for j, be := range ep.Backends {
		if be == nil || be.Shadow { // independent: its keys were checked by validateShadowBackends
			continue
		}
		bp := fmt.Sprintf("%s.backends[%d]", p, j)
		var deps []int
		addDep := func(k int, yp string) {
			if k == j {
				c.add(yp, "backends[%d] cannot depend on itself", j)
				return
			}
			if !slices.Contains(deps, k) {
				deps = append(deps, k)
			}
		}
		for _, r := range be.Refs {
			yp := bp + "." + r.field
			if r.Source == ItemSource {
				if be.ForeachRef == nil {
					c.add(yp, "%s: {item...} is the current element of a foreach backend, and this backend has no foreach", r.Text)
				}
				continue
			}
			if k, ok := lookup(r.Name, yp, r.Text); ok {
				r.Source = k
				addDep(k, yp)
			}
		}
		if f := be.ForeachRef; f != nil {
			switch {
			case f.Source == ItemSource:
				c.add(bp+".foreach", "%q: foreach names another backend's array (NAME.path), not the item", be.Foreach)
			default:
				if k, ok := lookup(f.Name, bp+".foreach", "foreach"); ok {
					f.Source = k
					addDep(k, bp+".foreach")
				}
			}
		}
		for i, name := range be.DependsOn {
			if k, ok := lookup(name, fmt.Sprintf("%s.depends_on[%d]", bp, i), "depends_on"); ok {
				addDep(k, fmt.Sprintf("%s.depends_on[%d]", bp, i))
			}
		}
		slices.Sort(deps)
		be.Deps = deps
		graph = graph || len(deps) > 0
	}
	if !graph {
		return
	}
	for _, be := range ep.Backends {
		if be == nil {
			continue
		}
		for _, d := range be.Deps {
			ep.Backends[d].Referenced = true
		}
	}
	if cycle := findCycle(ep); cycle != nil {
		names := make([]string, len(cycle))
		for i, j := range cycle {
			names[i] = ep.Backends[j].ID
		}
		c.add(fmt.Sprintf("%s.backends[%d]", p, cycle[0]), "dependency cycle: %s", strings.Join(names, " -> "))
		return
	}
	ep.Stages = stages(ep)
	ep.Graph = true
}

// knownNames lists an endpoint's backend names, for messages.
func knownNames(ep *Endpoint) string {
	var names []string
	for _, be := range ep.Backends {
		if be != nil && !be.Shadow && !slices.Contains(names, be.ID) {
			names = append(names, be.ID)
		}
	}
	return strings.Join(names, ", ")
}

// findCycle returns one dependency cycle as backend indexes, the first
// repeated at the end (a -> b -> a), or nil.
func findCycle(ep *Endpoint) []int {
	const (
		unseen = iota
		onPath
		finished
	)
	state := make([]int, len(ep.Backends))
	var path []int
	var visit func(j int) []int
	visit = func(j int) []int {
		state[j] = onPath
		path = append(path, j)
		for _, d := range ep.Backends[j].Deps {
			switch state[d] {
			case onPath:
				start := slices.Index(path, d)
				cycle := append(slices.Clone(path[start:]), d)
				// Name the cycle in the direction data flows: dependency first.
				slices.Reverse(cycle)
				return cycle
			case unseen:
				if c := visit(d); c != nil {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		state[j] = finished
		return nil
	}
	for j := range ep.Backends {
		if ep.Backends[j] != nil && state[j] == unseen {
			if c := visit(j); c != nil {
				return c
			}
		}
	}
	return nil
}

// stages groups an acyclic endpoint's backends by depth: stage 0 needs
// nothing, stage k needs something of stage k-1. It is what `manifold graph`
// prints; at request time each backend still starts the moment its own
// dependencies have answered, not stage by stage.
func stages(ep *Endpoint) [][]int {
	depth := make([]int, len(ep.Backends))
	var walk func(j int) int
	done := make([]bool, len(ep.Backends))
	walk = func(j int) int {
		if done[j] {
			return depth[j]
		}
		d := 0
		for _, k := range ep.Backends[j].Deps {
			d = max(d, walk(k)+1)
		}
		depth[j], done[j] = d, true
		return d
	}
	var out [][]int
	for j, be := range ep.Backends {
		if be == nil {
			continue // not a map: reported, and no one's dependency
		}
		d := walk(j)
		for len(out) <= d {
			out = append(out, nil)
		}
		out[d] = append(out[d], j)
	}
	return out
}
