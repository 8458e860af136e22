package handlers

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisteredMetrics returns every metric family m's registry describes,
// name → variable label names, the Go and process collectors' included.
// It reads the descriptors, not gathered samples, so a vector none of
// whose label combinations has been observed yet is listed all the same:
// a test that checks names against it needs no traffic first.
//
// client_golang exports no accessor for a Desc's name or labels, so they
// are read from Desc.String, whose format ("Desc{fqName: %q, help: %q,
// constLabels: {...}, variableLabels: {...}}") has been stable since
// v0.9; a descriptor it cannot read fails the test rather than being
// skipped.
func RegisteredMetrics(t testing.TB, m *Metrics) map[string][]string {
	t.Helper()
	ch := make(chan *prometheus.Desc)
	go func() { // ends when Describe has sent everything; drained below
		defer close(ch)
		m.registry.Describe(ch)
	}()
	out := map[string][]string{}
	var bad []string
	for d := range ch {
		name, labels, ok := parseDesc(d.String())
		if !ok {
			bad = append(bad, d.String())
			continue
		}
		out[name] = labels
	}
	if len(bad) > 0 {
		t.Fatalf("cannot read the name and labels of these descriptors:\n%s", strings.Join(bad, "\n"))
	}
	return out
}

func parseDesc(s string) (name string, labels []string, ok bool) {
	const head, tail = "Desc{fqName: ", "}}"
	if !strings.HasPrefix(s, head) || !strings.HasSuffix(s, tail) {
		return "", nil, false
	}
	q, err := strconv.QuotedPrefix(s[len(head):])
	if err != nil {
		return "", nil, false
	}
	if name, err = strconv.Unquote(q); err != nil || name == "" {
		return "", nil, false
	}
	i := strings.LastIndex(s, "variableLabels: {")
	if i < 0 {
		return "", nil, false
	}
	list := s[i+len("variableLabels: {") : len(s)-len(tail)]
	if list == "" {
		return name, nil, true
	}
	for _, l := range strings.Split(list, ",") {
		// A constrained label prints as c(name).
		l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")")
		labels = append(labels, l)
	}
	return name, labels, true
}
