package handlers_test

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/handlers"
)

// The shipped Grafana dashboard (docs/grafana/manifold.json) is checked
// against the code: every metric it queries is one NewMetrics registers,
// with the labels it has, every manifold_ metric registered has a panel,
// and the file is a Grafana model that imports (uid, title, panels with
// their place on the grid and a data source).
const dashboardFile = "../docs/grafana/manifold.json"

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []grafanaVar `json:"list"`
	} `json:"templating"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Collapsed  bool               `json:"collapsed"`
	GridPos    *gridPos           `json:"gridPos"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []grafanaTarget    `json:"targets"`
	Panels     []grafanaPanel     `json:"panels"` // a collapsed row's own panels
}

type gridPos struct{ X, Y, W, H int }

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaTarget struct {
	RefID        string             `json:"refId"`
	Expr         string             `json:"expr"`
	LegendFormat string             `json:"legendFormat"`
	Datasource   *grafanaDatasource `json:"datasource"`
}

type grafanaVar struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Datasource *grafanaDatasource `json:"datasource"`
	Definition string             `json:"definition"`
	// Query is a string (datasource variables, older query variables) or
	// an object with the PromQL under "query" (Grafana 10 and later).
	Query json.RawMessage `json:"query"`
}

// query is the variable's PromQL (or, for a datasource variable, the
// plugin id).
func (v grafanaVar) query(t *testing.T) string {
	t.Helper()
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &o); err != nil {
		t.Fatalf("variable %s: query is neither a string nor an object with a query: %s", v.Name, v.Query)
	}
	return o.Query
}

// promQuery is one PromQL expression of the dashboard and where it is.
type promQuery struct {
	where, expr, legend string
	panel               bool // a panel's target, not a variable's query
}

func loadDashboard(t *testing.T) grafanaDashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels returns every panel, those nested in collapsed rows included.
func allPanels(ps []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func dashboardQueries(t *testing.T, d grafanaDashboard) []promQuery {
	t.Helper()
	var qs []promQuery
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, promQuery{where: fmt.Sprintf("panel %d %q target %s", p.ID, p.Title, tg.RefID),
				expr: tg.Expr, legend: tg.LegendFormat, panel: true})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		qs = append(qs, promQuery{where: "variable " + v.Name, expr: v.query(t)})
		if v.Definition != "" {
			qs = append(qs, promQuery{where: "variable " + v.Name + " definition", expr: v.Definition})
		}
	}
	return qs
}

var (
	promString     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMetricName = regexp.MustCompile(`\b(?:manifold|go|process)_[A-Za-z0-9_:]+`)
	promSelector   = regexp.MustCompile(`\b((?:manifold|go|process)_[A-Za-z0-9_:]+)\s*\{([^}]*)\}`)
	promMatcher    = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"\s*(?:,|$)`)
	promGrouping   = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendLabel    = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)
	grafanaVarRef  = regexp.MustCompile(`\$(?:\{([A-Za-z0-9_]+)[^}]*\}|([A-Za-z0-9_]+))`)
)

// metricsOf returns the metric families expr reads: a histogram's
// _bucket, _sum and _count series count as the histogram.
func metricsOf(expr string, registered map[string][]string) (known, unknown []string) {
	bare := promString.ReplaceAllString(expr, `""`)
	for _, n := range promMetricName.FindAllString(bare, -1) {
		base, ok := familyOf(n, registered)
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		if !slices.Contains(known, base) {
			known = append(known, base)
		}
	}
	return known, unknown
}

func familyOf(series string, registered map[string][]string) (string, bool) {
	if _, ok := registered[series]; ok {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, cut := strings.CutSuffix(series, suffix); cut {
			if _, ok := registered[base]; ok {
				return base, true
			}
		}
	}
	return "", false
}

// labelsOf is every label a series of family may carry in Prometheus:
// its own, the target labels the scrape adds (job, instance), le on a
// histogram's buckets, and exported_instance where the metric's own
// instance label collides with the target's (honor_labels: false).
func labelsOf(family string, registered map[string][]string) []string {
	ls := append([]string{"job", "instance", "le"}, registered[family]...)
	if slices.Contains(registered[family], "instance") {
		ls = append(ls, "exported_instance")
	}
	return ls
}

func TestDashboardQueriesRegisteredMetrics(t *testing.T) {
	d := loadDashboard(t)
	registered := handlers.RegisteredMetrics(t, handlers.NewMetrics())
	queries := dashboardQueries(t, d)
	if len(queries) == 0 {
		t.Fatal("the dashboard has no queries")
	}

	used := map[string]bool{} // families some panel shows
	for _, q := range queries {
		if strings.TrimSpace(q.expr) == "" {
			t.Errorf("%s: empty expression", q.where)
			continue
		}
		if err := balanced(q.expr); err != nil {
			t.Errorf("%s: %v in %s", q.where, err, q.expr)
		}
		known, unknown := metricsOf(q.expr, registered)
		for _, n := range unknown {
			t.Errorf("%s: queries %s, which the gateway does not register", q.where, n)
		}
		if len(known) == 0 && len(unknown) == 0 {
			t.Errorf("%s: reads no metric of the gateway: %s", q.where, q.expr)
		}
		var allowed []string // labels any family of this expression carries
		for _, f := range known {
			if q.panel {
				used[f] = true
			}
			allowed = append(allowed, labelsOf(f, registered)...)
		}

		// Matchers name labels of the metric they select.
		for _, m := range promSelector.FindAllStringSubmatch(q.expr, -1) {
			f, ok := familyOf(m[1], registered)
			if !ok {
				continue // reported above
			}
			rest := m[2]
			for strings.TrimSpace(rest) != "" {
				mm := promMatcher.FindStringSubmatch(rest)
				if mm == nil {
					t.Errorf("%s: cannot read the matchers of %s{%s}", q.where, m[1], m[2])
					break
				}
				if !slices.Contains(labelsOf(f, registered), mm[1]) {
					t.Errorf("%s: %s has no label %q (it has %v)", q.where, m[1], mm[1], registered[f])
				}
				rest = rest[len(mm[0]):]
			}
		}
		// Groupings and legends name labels some metric of the
		// expression has.
		for _, g := range promGrouping.FindAllStringSubmatch(q.expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !slices.Contains(allowed, l) {
					t.Errorf("%s: groups by %q, a label none of %v has", q.where, l, known)
				}
			}
		}
		for _, l := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			if !slices.Contains(allowed, l[1]) {
				t.Errorf("%s: legend names {{%s}}, a label none of %v has", q.where, l[1], known)
			}
		}
		if m := regexp.MustCompile(`label_values\(\s*([^,]+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)`).FindStringSubmatch(q.expr); m != nil {
			if f, ok := familyOf(strings.TrimSpace(strings.SplitN(m[1], "{", 2)[0]), registered); ok && !slices.Contains(labelsOf(f, registered), m[2]) {
				t.Errorf("%s: label_values of %q, a label %s does not have", q.where, m[2], f)
			}
		}
	}

	// The reverse: a metric the gateway registers has a panel, so a new
	// metric cannot ship without one.
	var missing []string
	for name := range registered {
		if strings.HasPrefix(name, "manifold_") && !used[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no panel of %s shows %s: add one", dashboardFile, strings.Join(missing, ", "))
	}
}

// balanced reports unbalanced brackets outside PromQL strings.
func balanced(expr string) error {
	var stack []rune
	pair := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, r := range promString.ReplaceAllString(expr, `""`) {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pair[r] {
				return fmt.Errorf("unbalanced %q", r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

func TestDashboardIsGrafanaModel(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: both are needed to import and link the dashboard", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: panels with datasource objects need 36 or later", d.SchemaVersion)
	}
	if len(d.Panels) == 0 {
		t.Fatal("no panels")
	}

	// Variables: a data source picker, so the file imports into any
	// Grafana whatever its Prometheus is called, and the endpoint and
	// upstream filters drawn from the metrics' own labels.
	vars := map[string]grafanaVar{}
	for _, v := range d.Templating.List {
		if _, dup := vars[v.Name]; dup {
			t.Errorf("variable %s defined twice", v.Name)
		}
		vars[v.Name] = v
	}
	if ds, ok := vars["datasource"]; !ok || ds.Type != "datasource" || ds.query(t) != "prometheus" {
		t.Errorf(`want a variable "datasource" of type datasource for prometheus, got %+v`, ds)
	}
	for _, name := range []string{"endpoint", "upstream"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" {
			t.Errorf("want a query variable %q, got %+v", name, v)
			continue
		}
		if q := v.query(t); !strings.HasPrefix(q, "label_values(") || !strings.HasSuffix(q, ", "+name+")") {
			t.Errorf("variable %s: query %q, want label_values(..., %s)", name, q, name)
		}
		checkDatasource(t, "variable "+name, v.Datasource, vars)
	}
	for _, q := range dashboardQueries(t, d) {
		for _, ref := range grafanaVarRef.FindAllStringSubmatch(q.expr+" "+q.legend, -1) {
			name := ref[1] + ref[2]
			if _, ok := vars[name]; !ok && !strings.HasPrefix(name, "__") {
				t.Errorf("%s: uses $%s, which no variable defines", q.where, name)
			}
		}
	}

	// Panels: unique ids, a place on the 24-column grid, a data source on
	// each panel and target.
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 {
			t.Errorf("%s: id must be positive", where)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("%s: id also used by %q", where, other)
		}
		ids[p.ID] = p.Title
		if p.Title == "" || p.Type == "" {
			t.Errorf("%s: needs a title and a type", where)
		}
		if g := p.GridPos; g == nil {
			t.Errorf("%s: no gridPos", where)
		} else if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v is off the 24-column grid", where, *g)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				t.Errorf("%s: a row has no queries", where)
			}
			if !p.Collapsed && len(p.Panels) > 0 {
				t.Errorf("%s: an expanded row's panels follow it at the top level, not inside it", where)
			}
			continue
		}
		if len(p.Panels) > 0 {
			t.Errorf("%s: only rows hold panels", where)
		}
		checkDatasource(t, where, p.Datasource, vars)
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: target refId %q is empty or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil {
				checkDatasource(t, where+" target "+tg.RefID, tg.Datasource, vars)
			}
		}
	}

	// Panels that share a layer (the top level, or one collapsed row's
	// panels) do not overlap.
	checkOverlap(t, d.Panels)
	for _, p := range d.Panels {
		if p.Collapsed {
			checkOverlap(t, p.Panels)
		}
	}
}

func checkDatasource(t *testing.T, where string, ds *grafanaDatasource, vars map[string]grafanaVar) {
	t.Helper()
	if ds == nil {
		t.Errorf("%s: no datasource", where)
		return
	}
	if ds.Type != "prometheus" {
		t.Errorf("%s: datasource type %q, want prometheus", where, ds.Type)
	}
	// The uid is the data source variable, never one Grafana's uid, which
	// would not exist on another Grafana.
	name := strings.TrimSuffix(strings.TrimPrefix(ds.UID, "${"), "}")
	if v, ok := vars[name]; !ok || v.Type != "datasource" || !strings.HasPrefix(ds.UID, "${") {
		t.Errorf("%s: datasource uid %q, want ${datasource}", where, ds.UID)
	}
}

func checkOverlap(t *testing.T, ps []grafanaPanel) {
	t.Helper()
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if a.GridPos == nil || b.GridPos == nil {
				continue
			}
			ga, gb := *a.GridPos, *b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %d %q %+v and %d %q %+v overlap", a.ID, a.Title, ga, b.ID, b.Title, gb)
			}
		}
	}
}
