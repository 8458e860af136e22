package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/manifold-gw/manifold/config"
)

// graphCommand is `manifold graph`: each endpoint's call graph, as stages
// in text or as Graphviz dot, so that a chain of calls can be reviewed
// before it serves. only, when set, selects one endpoint by its path.
func graphCommand(src source, only, format string, stdout, stderr io.Writer) int {
	if format != "text" && format != "dot" {
		fmt.Fprintf(stderr, "manifold graph: --format %q: use text or dot\nRun \"manifold graph --help\" for usage.\n", format)
		return 2
	}
	cfg, ok := load(src, stderr, false)
	if !ok {
		return 1
	}
	var eps []*config.Endpoint
	for _, ep := range cfg.Endpoints {
		if only == "" || ep.Path == only {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		paths := make([]string, len(cfg.Endpoints))
		for i, ep := range cfg.Endpoints {
			paths[i] = ep.Path
		}
		fmt.Fprintf(stderr, "manifold graph: %s: no endpoint has the path %q (known: %s)\n", src.path, only, strings.Join(paths, ", "))
		return 1
	}
	if format == "dot" {
		writeDot(stdout, eps)
	} else {
		writeStages(stdout, eps)
	}
	return 0
}

// stagesOf is an endpoint's backends by stage: its compiled stages for a
// call graph, else one stage holding every backend (all start at once).
func stagesOf(ep *config.Endpoint) [][]int {
	if ep.Graph {
		return ep.Stages
	}
	all := make([]int, len(ep.Backends))
	for i := range all {
		all[i] = i
	}
	return [][]int{all}
}

// writeStages prints each endpoint as a table of stages: stage N holds the
// backends whose longest chain of dependencies is N-1 calls long. Each
// backend still starts the moment its own dependencies have answered.
func writeStages(w io.Writer, eps []*config.Endpoint) {
	for i, ep := range eps {
		if i > 0 {
			fmt.Fprintln(w)
		}
		merge := ""
		if ep.Deep {
			merge = ", merge deep"
		}
		fmt.Fprintf(w, "%s %s  (timeout %v%s)\n", ep.Method, ep.Path, ep.Timeout, merge)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for s, stage := range stagesOf(ep) {
			for k, j := range stage {
				be := ep.Backends[j]
				label := ""
				if k == 0 {
					label = fmt.Sprintf("stage %d", s+1)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s %s %s", label, be.ID, be.Method, be.Upstream, be.Path)
				if notes := backendNotes(ep, be); notes != "" {
					fmt.Fprintf(tw, "\t%s", notes)
				}
				fmt.Fprintln(tw)
			}
		}
		tw.Flush()
	}
}

// backendNotes is what a graph line says beyond the call: what it waits
// for, foreach, fallback, required, shadow.
func backendNotes(ep *config.Endpoint, be *config.Backend) string {
	var notes []string
	if len(be.Deps) > 0 {
		names := make([]string, len(be.Deps))
		for i, d := range be.Deps {
			names[i] = ep.Backends[d].ID
		}
		notes = append(notes, "after "+strings.Join(names, ", "))
	}
	if be.Foreach != "" {
		notes = append(notes, fmt.Sprintf("foreach %s (max_parallel %d, max_items %d)", be.Foreach, be.MaxParallel, be.MaxItems))
	}
	if be.Required {
		notes = append(notes, "required")
	}
	if be.FallbackJSON != nil {
		notes = append(notes, "fallback "+string(be.FallbackJSON))
	}
	if be.Shadow {
		notes = append(notes, "shadow: a copy, sent off the request path, answer discarded")
	}
	return strings.Join(notes, "; ")
}

// writeDot prints the endpoints as one Graphviz digraph, a cluster per
// endpoint and an edge from each dependency to its dependent.
func writeDot(w io.Writer, eps []*config.Endpoint) {
	var b strings.Builder
	b.WriteString("digraph manifold {\n  rankdir=LR;\n  node [shape=box];\n")
	for i, ep := range eps {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", i, dotQuote(ep.Method+" "+ep.Path))
		for j, be := range ep.Backends {
			label := be.ID + "\n" + be.Method + " " + be.Upstream + " " + be.Path
			if be.Foreach != "" {
				label += "\nforeach " + be.Foreach
			}
			if be.Shadow {
				label += "\nshadow"
			}
			fmt.Fprintf(&b, "    e%db%d [label=%s];\n", i, j, dotQuote(label))
		}
		b.WriteString("  }\n")
		for j, be := range ep.Backends {
			for _, d := range be.Deps {
				fmt.Fprintf(&b, "  e%db%d -> e%db%d;\n", i, d, i, j)
			}
		}
	}
	b.WriteString("}\n")
	io.WriteString(w, b.String())
}

// dotQuote is s as a dot string: quoted, with '"' and '\' escaped and
// newlines as \n.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
