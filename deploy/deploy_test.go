package deploy_test

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pentecost/pentecost/deploy"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up{job="pentecost"} == 0`, []string{"up"}},
		{`pentecost_redis_up`, []string{"pentecost_redis_up"}},
		// Aggregations, functions, grouping labels and le are not metrics.
		{`histogram_quantile(0.99, sum by (instance, le) (rate(pentecost_ws_fanout_seconds_bucket[5m]))) > 0.1`,
			[]string{"pentecost_ws_fanout_seconds_bucket"}},
		{`sum(rate(a_total[5m])) without (job) / on (instance) group_left (version) b_info`, []string{"a_total", "b_info"}},
		// Label values, strings and Grafana variables are not metrics either.
		{`sum by (code) (rate(pentecost_errors_total{code!="bad name", role=~"$role"}[$__rate_interval]))`,
			[]string{"pentecost_errors_total"}},
		{`label_replace(x, "dst", "$1", "src", "(.*)") and y offset 5m or z unless bool_metric`,
			[]string{"bool_metric", "x", "y", "z"}},
		{`rate(m[${interval}]) * 60 > 1e-3`, []string{"m"}},
		{`max_over_time(q[1h:5m]) + q`, []string{"q"}},
	} {
		got, err := deploy.MetricNames(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`{__name__="up"}`, `sum(rate(x[5m])`, `x{a="b}`} {
		if names, err := deploy.MetricNames(bad); err == nil {
			t.Errorf("%s: %q, want an error", bad, names)
		}
	}
}

// grafanaVar is a variable reference in a query: $name or ${name...}.
var grafanaVar = regexp.MustCompile(`\$\{?([a-zA-Z_][a-zA-Z0-9_]*)`)

// TestDashboard checks the dashboard is one Grafana imports and shows as
// meant: a data source variable every query uses, session and language
// variables, unique panel ids, panels inside the 24-column grid that do not
// overlap, and queries that each select at least one metric (the metrics
// themselves are checked against the real server and worker in
// cmd/pentecost).
func TestDashboard(t *testing.T) {
	var raw map[string]any
	if err := json.Unmarshal(deploy.Dashboard, &raw); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	// Exported for sharing, a dashboard has no database id.
	if id, ok := raw["id"]; ok && id != nil {
		t.Errorf("id = %v, want none", id)
	}
	d, err := deploy.ParseDashboard(deploy.Dashboard)
	if err != nil {
		t.Fatal(err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed", d.Title, d.UID)
	}
	// 39 is Grafana 11's; newer Grafana migrates it on load.
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d, want at least 39", d.SchemaVersion)
	}

	vars := map[string]deploy.Variable{}
	var dsVar string
	for _, v := range d.Templating.List {
		vars[v.Name] = v
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal("no Prometheus data source variable")
	}
	wantDS := deploy.Datasource{Type: "prometheus", UID: "${" + dsVar + "}"}
	for _, name := range []string{"session", "language"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" || v.Datasource == nil || *v.Datasource != wantDS {
			t.Errorf("variable %s: %+v, want a query of the data source variable", name, v)
		}
	}

	type rect struct {
		title      string
		x, y, w, h int
	}
	var placed []rect
	ids := map[int]string{}
	panels := d.AllPanels()
	if len(panels) < 10 {
		t.Fatalf("%d panels", len(panels))
	}
	for _, p := range panels {
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.ID <= 0 {
			t.Errorf("panel %q: id %d", p.Title, p.ID)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, g)
			continue
		}
		r := rect{p.Title, g.X, g.Y, g.W, g.H}
		for _, o := range placed {
			if r.x < o.x+o.w && o.x < r.x+r.w && r.y < o.y+o.h && o.y < r.y+r.h {
				t.Errorf("panels %q and %q overlap", o.title, r.title)
			}
		}
		placed = append(placed, r)
		if p.Type == "row" {
			continue
		}
		if !slices.Contains([]string{"timeseries", "stat", "table", "gauge", "bargauge"}, p.Type) {
			t.Errorf("panel %q: type %q", p.Title, p.Type)
		}
		if p.Datasource == nil || *p.Datasource != wantDS {
			t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, wantDS)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || *tg.Datasource != wantDS {
				t.Errorf("panel %q %s: datasource %+v", p.Title, tg.RefID, tg.Datasource)
			}
			for _, m := range grafanaVar.FindAllStringSubmatch(tg.Expr, -1) {
				if _, ok := vars[m[1]]; !ok && !strings.HasPrefix(m[1], "__") {
					t.Errorf("panel %q %s: variable $%s is not defined", p.Title, tg.RefID, m[1])
				}
			}
		}
	}

	queries, err := deploy.Queries()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		if len(q.Metrics) == 0 {
			t.Errorf("%s: %q selects no metric", q.Where, q.Expr)
		}
	}
	// The panels the operator needs (issue 15) are there.
	var titles []string
	for _, p := range panels {
		titles = append(titles, strings.ToLower(p.Title))
	}
	for _, want := range []string{"listeners by session and language", "deliveries/s", "fan-out latency",
		"dropped and slow-disconnected", "joins by role and result", "errors by code", "redis",
		"worker latency by language and stage", "worker errors by language and stage", "nodes and workers up", "build"} {
		if !slices.Contains(titles, want) && !slices.ContainsFunc(titles, func(s string) bool { return strings.HasPrefix(s, want+" (") }) {
			t.Errorf("no panel %q", want)
		}
	}
}

// TestAlertRules checks what promtool does not: every rule has a severity
// the README explains, a summary and a description, a for: duration, and
// unit tests in alerts_test.yml that see it fire and see it not fire.
func TestAlertRules(t *testing.T) {
	rules, err := deploy.ParseRules(deploy.Alerts)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(deploy.AlertTests, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	seen := map[string]bool{}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || seen[r.Alert] {
				t.Errorf("rule %q: no name or a repeated one", r.Alert)
			}
			seen[r.Alert] = true
			if r.For == "" {
				t.Errorf("%s: no for: a single bad scrape would page", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description are needed", r.Alert)
			}
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("%s: alerts_test.yml tests it firing: %v, not firing: %v", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
		}
	}
	if n < 6 {
		t.Errorf("%d rules", n)
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("alerts_test.yml tests %s, which alerts.yml does not have", name)
		}
	}
}
