// Package deploy holds what an operator deploys beside Pentecost to watch
// it: the Grafana dashboard (grafana/pentecost.json) and the Prometheus
// alert rules and example configuration (prometheus/). They are embedded so
// that tests can check every query in them against the metrics the server
// and the worker really export (cmd/pentecost), and their shape (here).
package deploy

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Dashboard is the Grafana dashboard, as JSON.
//
//go:embed grafana/pentecost.json
var Dashboard []byte

// Alerts are the Prometheus alert rules, as YAML.
//
//go:embed prometheus/alerts.yml
var Alerts []byte

// AlertTests are promtool's unit tests of Alerts, as YAML.
//
//go:embed prometheus/alerts_test.yml
var AlertTests []byte

// Query is one PromQL expression of the dashboard or the alert rules.
type Query struct {
	Where string // e.g. `panel "Deliveries/s" A`, `alert PentecostNodeDown`
	Expr  string
	// Metrics are the metric names the expression selects.
	Metrics []string
}

// Queries returns every query of the dashboard (panel targets and template
// variables) and of the alert rules, with the metrics each selects.
func Queries() ([]Query, error) {
	var out []Query
	add := func(where, expr string) error {
		names, err := MetricNames(expr)
		if err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		out = append(out, Query{Where: where, Expr: expr, Metrics: names})
		return nil
	}

	d, err := ParseDashboard(Dashboard)
	if err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, ok := v.Query.(string)
		if !ok {
			return nil, fmt.Errorf("variable %s: query is not a string", v.Name)
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			return nil, fmt.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q)
		}
		if err := add("variable "+v.Name, m[1]); err != nil {
			return nil, err
		}
	}
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			if err := add(fmt.Sprintf("panel %q %s", p.Title, t.RefID), t.Expr); err != nil {
				return nil, err
			}
		}
	}

	rules, err := ParseRules(Alerts)
	if err != nil {
		return nil, err
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if err := add("alert "+r.Alert, r.Expr); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// labelValues is the form of the dashboard's query variables.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// DashboardModel is the part of a Grafana dashboard's JSON model the checks read.
type DashboardModel struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// Variable is a dashboard template variable.
type Variable struct {
	Type       string      `json:"type"`
	Name       string      `json:"name"`
	Query      any         `json:"query"`
	Datasource *Datasource `json:"datasource"`
}

// Datasource names a panel's or target's data source.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Panel is a dashboard panel; a row holds its panels when collapsed.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []Target `json:"targets"`
	Panels  []Panel  `json:"panels"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
}

// ParseDashboard decodes a dashboard.
func ParseDashboard(b []byte) (*DashboardModel, error) {
	var d DashboardModel
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	return &d, nil
}

// AllPanels returns the panels, those inside rows included.
func (d *DashboardModel) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// RuleFile is a Prometheus rule file.
type RuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []Rule `yaml:"rules"`
	} `yaml:"groups"`
}

// Rule is an alerting rule.
type Rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// ParseRules decodes a rule file.
func ParseRules(b []byte) (*RuleFile, error) {
	var f RuleFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return &f, nil
}

// keywords are PromQL words that are not metric names; the grouping ones
// are followed by a list of labels.
var (
	keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"atan2": true, "inf": true, "nan": true}
	grouping = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true}
	// aggregators may have their grouping before their parenthesis:
	// sum by (le) (…).
	aggregators = map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true,
		"stddev": true, "stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true,
		"quantile": true, "limitk": true, "limit_ratio": true}
)

// MetricNames returns the metric names a PromQL expression selects, sorted
// and once each. Grafana's variables ($x, ${x}, [[x]]) may appear where
// PromQL allows a label value or a duration. It reads names, not meaning: a
// lexer that knows strings, label matchers, ranges, function calls and
// grouping clauses, enough for the queries of this directory; a metric
// named by a __name__ matcher is refused rather than missed.
func MetricNames(expr string) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	i, n := 0, len(expr)
	parens := 0
	skipSpace := func() {
		for i < n && strings.ContainsRune(" \t\r\n", rune(expr[i])) {
			i++
		}
	}
	// skipTo moves past the bracket closing the one at i, minding strings.
	skipTo := func(open, close byte) error {
		depth := 0
		for ; i < n; i++ {
			switch c := expr[i]; {
			case c == '"' || c == '\'' || c == '`':
				end := strings.IndexByte(expr[i+1:], c)
				if end < 0 {
					return fmt.Errorf("unterminated string in %q", expr)
				}
				i += end + 1
			case c == open:
				depth++
			case c == close:
				depth--
				if depth == 0 {
					i++
					return nil
				}
			}
		}
		return fmt.Errorf("unbalanced %c in %q", open, expr)
	}
	for i < n {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := strings.IndexByte(expr[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string in %q", expr)
			}
			i += end + 2
		case c == '{':
			start := i
			if err := skipTo('{', '}'); err != nil {
				return nil, err
			}
			if strings.Contains(expr[start:i], "__name__") {
				return nil, fmt.Errorf("a __name__ matcher in %q: name the metric", expr)
			}
		case c == '[':
			if err := skipTo('[', ']'); err != nil {
				return nil, err
			}
		case c == '$':
			// A Grafana variable: $name or ${name...}.
			i++
			if i < n && expr[i] == '{' {
				if err := skipTo('{', '}'); err != nil {
					return nil, err
				}
				continue
			}
			for i < n && isIdent(expr[i], false) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			// A number, or a duration after offset.
			for i < n && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			start := i
			for i < n && isIdent(expr[i], false) {
				i++
			}
			word := expr[start:i]
			skipSpace()
			lower := strings.ToLower(word)
			switch {
			case grouping[lower]:
				if i < n && expr[i] == '(' {
					if err := skipTo('(', ')'); err != nil {
						return nil, err
					}
				}
			case keywords[lower]:
			case i < n && expr[i] == '(':
				// A function or an aggregation.
			case aggregators[lower] && grouping[nextWord(expr[i:])]:
			default:
				if !seen[word] {
					seen[word] = true
					names = append(names, word)
				}
			}
		case c == '(':
			parens++
			i++
		case c == ')':
			if parens--; parens < 0 {
				return nil, fmt.Errorf("unbalanced ) in %q", expr)
			}
			i++
		default:
			i++
		}
	}
	if parens != 0 {
		return nil, fmt.Errorf("unbalanced ( in %q", expr)
	}
	slices.Sort(names)
	return names, nil
}

func isIdent(c byte, first bool) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// nextWord returns the identifier s starts with, lower-cased.
func nextWord(s string) string {
	j := 0
	for j < len(s) && isIdent(s[j], j == 0) {
		j++
	}
	return strings.ToLower(s[:j])
}
