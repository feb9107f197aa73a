package monitoring

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

var (
	dashboardPath = filepath.Join(repoRoot, "config", "grafana", "erpsync.json")
	alertsPath    = filepath.Join(repoRoot, "config", "prometheus", "alerts.yaml")
)

// labelSet is the set of labels a PromQL expression's result may carry.
type labelSet map[string]bool

func (s labelSet) sorted() []string {
	out := make([]string, 0, len(s))
	for l := range s {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

// checker walks a PromQL expression and reports every metric the manager
// does not export and every label used (in a matcher, by/without, on/
// ignoring, group_left/right) that the series it applies to do not have.
type checker struct {
	exp  exported
	errs []string
}

func (c *checker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// labels returns the labels node's result may have, checking it on the way.
func (c *checker) labels(node parser.Node) labelSet {
	switch n := node.(type) {
	case *parser.VectorSelector:
		return c.selector(n)
	case *parser.MatrixSelector:
		return c.labels(n.VectorSelector)
	case *parser.SubqueryExpr:
		return c.labels(n.Expr)
	case *parser.ParenExpr:
		return c.labels(n.Expr)
	case *parser.UnaryExpr:
		return c.labels(n.Expr)
	case *parser.StepInvariantExpr:
		return c.labels(n.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return labelSet{}
	case *parser.AggregateExpr:
		if n.Param != nil {
			c.labels(n.Param)
		}
		inner := c.labels(n.Expr)
		for _, g := range n.Grouping {
			if !inner[g] {
				c.errorf("%s groups by %q, which %s does not have (it has %v)", n.Op, g, n.Expr, inner.sorted())
			}
		}
		out := labelSet{}
		if n.Without {
			for l := range inner {
				if !slices.Contains(n.Grouping, l) {
					out[l] = true
				}
			}
		} else {
			for _, g := range n.Grouping {
				out[g] = true
			}
		}
		return out
	case *parser.BinaryExpr:
		lhs, rhs := c.labels(n.LHS), c.labels(n.RHS)
		lv := n.LHS.Type() == parser.ValueTypeVector
		rv := n.RHS.Type() == parser.ValueTypeVector
		if !lv {
			return rhs
		}
		if !rv {
			return lhs
		}
		if m := n.VectorMatching; m != nil {
			if m.On {
				for _, l := range m.MatchingLabels {
					if !lhs[l] || !rhs[l] {
						c.errorf("%s matches on %q, which both sides do not have (left %v, right %v)", n.Op, l, lhs.sorted(), rhs.sorted())
					}
				}
			}
			one := rhs
			if m.Card == parser.CardOneToMany {
				one = lhs
			}
			for _, l := range m.Include {
				if !one[l] {
					c.errorf("%s includes %q, which its side does not have (%v)", n.Op, l, one.sorted())
				}
			}
			if n.Op == parser.LOR {
				out := labelSet{}
				for l := range lhs {
					out[l] = true
				}
				for l := range rhs {
					out[l] = true
				}
				return out
			}
			if m.Card == parser.CardOneToMany {
				return rhs
			}
		}
		return lhs
	case *parser.Call:
		var out labelSet
		for _, a := range n.Args {
			s := c.labels(a)
			if out == nil && a.Type() != parser.ValueTypeScalar && a.Type() != parser.ValueTypeString {
				out = s
			}
		}
		if out == nil {
			out = labelSet{}
		}
		if n.Func.Name == "histogram_quantile" {
			delete(out, "le")
		}
		return out
	case nil:
		return labelSet{}
	default:
		c.errorf("unhandled PromQL node %T in %s", node, node)
		return labelSet{}
	}
}

func (c *checker) selector(vs *parser.VectorSelector) labelSet {
	name := vs.Name
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	have, ok := c.exp[name]
	if !ok {
		c.errorf("%s: the manager exports no metric %q", vs, name)
		return labelSet{}
	}
	set := labelSet{}
	for _, l := range have {
		set[l] = true
	}
	for _, l := range scrapeLabels {
		set[l] = true
	}
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel && !set[m.Name] {
			c.errorf("%s: %s has no label %q (it has %v)", vs, name, m.Name, have)
		}
	}
	return set
}

// grafanaVars are Grafana's built-in interval variables, replaced by a
// duration so that the query parses as Prometheus will receive it.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h")

// checkQuery parses a query and checks its metrics and labels; it returns
// the labels its result may carry.
func checkQuery(p parser.Parser, exp exported, query string) (labelSet, []string) {
	expr, err := p.ParseExpr(grafanaVars.Replace(query))
	if err != nil {
		return nil, []string{fmt.Sprintf("does not parse: %v", err)}
	}
	c := &checker{exp: exp}
	set := c.labels(expr)
	return set, c.errs
}

var (
	legendLabel   = regexp.MustCompile(`{{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*}}`)
	templateLabel = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)
	labelValues   = regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$`)
)

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatalf("reading the dashboard: %v", err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decoding %s: %v", dashboardPath, err)
	}
	return d
}

// TestDashboardQueries parses every query of the Grafana dashboard and
// checks that it names only metrics the manager exports, with labels they
// have, and that every legend shows a label the query's result carries.
func TestDashboardQueries(t *testing.T) {
	exp := exportedMetrics(t)
	d := readDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title")
	}
	p := parser.NewParser(parser.Options{})
	queries := 0
	used := map[string]bool{}
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, pn := range ps {
			walk(pn.Panels)
			if pn.Type != "row" && len(pn.Targets) == 0 {
				t.Errorf("panel %q has no query", pn.Title)
			}
			for _, tg := range pn.Targets {
				queries++
				where := fmt.Sprintf("panel %q query %s", pn.Title, tg.RefID)
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s is empty", where)
					continue
				}
				set, errs := checkQuery(p, exp, tg.Expr)
				for _, e := range errs {
					t.Errorf("%s: %s", where, e)
				}
				for _, m := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
					if set != nil && !set[m[1]] {
						t.Errorf("%s: legend shows {{%s}}, which the result does not carry (%v)", where, m[1], set.sorted())
					}
				}
				markUsed(p, tg.Expr, used)
			}
		}
	}
	walk(d.Panels)
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
			continue
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(metric, label)", v.Name, q.Query)
			continue
		}
		if have, ok := exp[m[1]]; !ok || !slices.Contains(have, m[2]) {
			t.Errorf("variable %s: the manager exports no metric %s with label %s", v.Name, m[1], m[2])
		}
	}
	// The panels: each of these metrics appears in some query.
	for _, want := range []string{
		"erpsync_syncs_total", "erpsync_sync_duration_seconds_bucket", "erpsync_records_total",
		"erpsync_upstream_requests_total", "erpsync_rate_limit_wait_seconds_sum",
		"erpsync_last_success_timestamp_seconds", "erpsync_reconcile_drift_total",
		"erpsync_held_deletions", "erpsync_webhook_dispatch_seconds_bucket",
		"erpsync_webhook_events_total", "erpsync_shards_held",
	} {
		if !used[want] {
			t.Errorf("no dashboard query shows %s", want)
		}
	}
	t.Logf("%d dashboard queries checked against %d exported series names", queries, len(exp))
}

// markUsed records the metric names a query selects.
func markUsed(p parser.Parser, query string, used map[string]bool) {
	expr, err := p.ParseExpr(grafanaVars.Replace(query))
	if err != nil {
		return
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			used[vs.Name] = true
		}
		return nil
	})
}

// TestAlertQueries checks every rule of alerts.yaml like the dashboard's
// queries, and that the annotations use only labels the alert carries.
func TestAlertQueries(t *testing.T) {
	exp := exportedMetrics(t)
	groups, errs := rulefmt.ParseFile(alertsPath, false, model.UTF8Validation, parser.NewParser(parser.Options{}), promslog.NewNopLogger())
	if len(errs) > 0 {
		t.Fatalf("parsing %s: %v", alertsPath, errs)
	}
	p := parser.NewParser(parser.Options{})
	rules := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			rules++
			name := r.Alert + r.Record
			set, qerrs := checkQuery(p, exp, r.Expr)
			for _, e := range qerrs {
				t.Errorf("rule %s: %s", name, e)
			}
			for k, v := range r.Annotations {
				for _, m := range templateLabel.FindAllStringSubmatch(v, -1) {
					if set != nil && !set[m[1]] && r.Labels[m[1]] == "" {
						t.Errorf("rule %s: annotation %s uses $labels.%s, which the alert does not carry (%v)", name, k, m[1], set.sorted())
					}
				}
			}
		}
	}
	if rules == 0 {
		t.Fatal("alerts.yaml has no rules")
	}
}
