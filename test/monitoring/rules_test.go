package monitoring

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"go.yaml.in/yaml/v2"
	sigsyaml "sigs.k8s.io/yaml"
)

var (
	ruleTestsPath      = filepath.Join(repoRoot, "config", "prometheus", "tests", "alerts_test.yaml")
	prometheusRulePath = filepath.Join(repoRoot, "config", "prometheus", "prometheusrule.yaml")
	runbooksPath       = filepath.Join(repoRoot, "docs", "runbooks.md")
)

// The rule-test file format of `promtool test rules`
// (prometheus/prometheus: cmd/promtool/unittest.go, docs/configuration/
// unit_testing_rules.md). promtool is a main package, so its runner cannot
// be imported; runRuleTests below evaluates the same files the same way,
// with the same library pieces promtool uses (promqltest.LazyLoader for the
// input series, rules.Manager to load and evaluate the rule groups), for
// the subset of the format this repository uses: unknown fields fail the
// strict decoding instead of being ignored.
type ruleTestFile struct {
	RuleFiles          []string        `yaml:"rule_files"`
	EvaluationInterval model.Duration  `yaml:"evaluation_interval,omitempty"`
	Tests              []ruleTestGroup `yaml:"tests"`
}

type ruleTestGroup struct {
	Name            string          `yaml:"name,omitempty"`
	Interval        model.Duration  `yaml:"interval"`
	InputSeries     []inputSeries   `yaml:"input_series"`
	AlertRuleTests  []alertTestCase `yaml:"alert_rule_test,omitempty"`
	PromqlExprTests []exprTestCase  `yaml:"promql_expr_test,omitempty"`
}

type inputSeries struct {
	Series string `yaml:"series"`
	Values string `yaml:"values"`
}

type alertTestCase struct {
	EvalTime  model.Duration  `yaml:"eval_time"`
	Alertname string          `yaml:"alertname"`
	ExpAlerts []expectedAlert `yaml:"exp_alerts"`
}

type expectedAlert struct {
	ExpLabels      map[string]string `yaml:"exp_labels"`
	ExpAnnotations map[string]string `yaml:"exp_annotations"`
}

type exprTestCase struct {
	Expr       string           `yaml:"expr"`
	EvalTime   model.Duration   `yaml:"eval_time"`
	ExpSamples []expectedSample `yaml:"exp_samples"`
}

type expectedSample struct {
	Labels string  `yaml:"labels"`
	Value  float64 `yaml:"value"`
}

// TestAlertRules runs config/prometheus/tests/alerts_test.yaml: each alert
// fires when it should and stays quiet when it should.
func TestAlertRules(t *testing.T) {
	b, err := os.ReadFile(ruleTestsPath)
	if err != nil {
		t.Fatalf("reading the rule tests: %v", err)
	}
	var f ruleTestFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("decoding %s: %v", ruleTestsPath, err)
	}
	if len(f.Tests) == 0 {
		t.Fatal("no rule tests")
	}
	var ruleFiles []string
	for _, rf := range f.RuleFiles {
		ruleFiles = append(ruleFiles, filepath.Join(filepath.Dir(ruleTestsPath), rf))
	}
	if f.EvaluationInterval == 0 {
		f.EvaluationInterval = model.Duration(time.Minute)
	}
	tested := map[string]map[string]bool{} // alert -> "fires"/"quiet"
	for i, tg := range f.Tests {
		name := tg.Name
		if name == "" {
			name = fmt.Sprintf("unnamed#%d", i)
		}
		t.Run(name, func(t *testing.T) {
			if tg.Interval == 0 {
				tg.Interval = f.EvaluationInterval
			}
			for _, err := range tg.run(time.Duration(f.EvaluationInterval), ruleFiles) {
				t.Error(err)
			}
		})
		for _, at := range tg.AlertRuleTests {
			if tested[at.Alertname] == nil {
				tested[at.Alertname] = map[string]bool{}
			}
			if len(at.ExpAlerts) > 0 {
				tested[at.Alertname]["fires"] = true
			} else {
				tested[at.Alertname]["stays quiet"] = true
			}
		}
	}
	// Every alert of the rule files is tested both ways.
	for _, a := range alertNames(t) {
		for _, way := range []string{"fires", "stays quiet"} {
			if !tested[a][way] {
				t.Errorf("alert %s: no rule test shows that it %s", a, way)
			}
		}
	}
}

// run evaluates the group's rules over its input series every
// evalInterval, from time 0 to the last eval_time, and compares the firing
// alerts at each eval_time with the expected ones, as promtool does.
func (tg *ruleTestGroup) run(evalInterval time.Duration, ruleFiles []string) []error {
	var load strings.Builder
	fmt.Fprintf(&load, "load %s\n", time.Duration(tg.Interval))
	for _, s := range tg.InputSeries {
		fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
	}
	p := parser.NewParser(parser.Options{})
	suite, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{
		EnableAtModifier: true, EnableNegativeOffset: true, Parser: p,
	})
	if err != nil {
		return []error{fmt.Errorf("loading the input series: %w", err)}
	}
	defer func() { _ = suite.Close() }()
	suite.SubqueryInterval = evalInterval

	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		AppendableV2: suite.Storage(),
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Logger:       promslog.NewNopLogger(),
		Parser:       p,
	})
	groupsMap, errs := m.LoadGroups(time.Duration(tg.Interval), labels.EmptyLabels(), "", nil, false, ruleFiles...)
	if len(errs) > 0 {
		return errs
	}
	groups := make([]*rules.Group, 0, len(groupsMap))
	for _, g := range groupsMap {
		groups = append(groups, g)
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok {
				// As promtool: the ALERTS series exist from the first eval.
				ar.SetRestored(true)
			}
		}
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name() < groups[j].Name() })

	byTime := map[model.Duration][]alertTestCase{}
	var times []model.Duration
	var maxT model.Duration
	for _, at := range tg.AlertRuleTests {
		if at.Alertname == "" {
			return []error{fmt.Errorf("an alert_rule_test at %s names no alertname", at.EvalTime)}
		}
		if _, ok := byTime[at.EvalTime]; !ok {
			times = append(times, at.EvalTime)
		}
		byTime[at.EvalTime] = append(byTime[at.EvalTime], at)
		maxT = max(maxT, at.EvalTime)
	}
	for _, et := range tg.PromqlExprTests {
		maxT = max(maxT, et.EvalTime)
	}
	slices.Sort(times)

	var out []error
	mint := time.Unix(0, 0).UTC()
	maxt := mint.Add(time.Duration(maxT))
	curr := 0
	for ts := mint; !ts.After(maxt); ts = ts.Add(evalInterval) {
		var evalErrs []error
		suite.WithSamplesTill(ts, func(err error) {
			if err != nil {
				evalErrs = append(evalErrs, err)
				return
			}
			for _, g := range groups {
				g.Eval(suite.Context(), ts)
				for _, r := range g.Rules() {
					if r.LastError() != nil {
						evalErrs = append(evalErrs, fmt.Errorf("rule %s at %s: %w", r.Name(), ts.Sub(mint), r.LastError()))
					}
				}
			}
		})
		if len(evalErrs) > 0 {
			return append(out, evalErrs...)
		}
		// An eval_time between two evaluations sees the earlier one.
		for curr < len(times) && time.Duration(times[curr]) < ts.Add(evalInterval).Sub(mint) {
			at := times[curr]
			for _, tc := range byTime[at] {
				got := firing(groups, tc.Alertname)
				want := expected(tc)
				if !slices.Equal(got, want) {
					out = append(out, fmt.Errorf("alert %s at %s:\n  want %s\n  got  %s",
						tc.Alertname, at, strings.Join(want, "\n       "), strings.Join(got, "\n       ")))
				}
			}
			curr++
		}
	}

	for _, et := range tg.PromqlExprTests {
		if err := checkExpr(suite, p, mint, et); err != nil {
			out = append(out, err)
		}
	}
	return out
}

// firing lists the firing alerts of that name, as sorted strings of their
// labels and annotations.
func firing(groups []*rules.Group, name string) []string {
	got := []string{}
	for _, g := range groups {
		for _, r := range g.Rules() {
			ar, ok := r.(*rules.AlertingRule)
			if !ok || ar.Name() != name {
				continue
			}
			for _, a := range ar.ActiveAlerts() {
				if a.State == rules.StateFiring {
					got = append(got, a.Labels.String()+" "+a.Annotations.String())
				}
			}
		}
	}
	sort.Strings(got)
	return got
}

func expected(tc alertTestCase) []string {
	want := []string{}
	for _, a := range tc.ExpAlerts {
		l := map[string]string{labels.AlertName: tc.Alertname}
		for k, v := range a.ExpLabels {
			l[k] = v
		}
		want = append(want, labels.FromMap(l).String()+" "+labels.FromMap(a.ExpAnnotations).String())
	}
	sort.Strings(want)
	return want
}

func checkExpr(suite *promqltest.LazyLoader, p parser.Parser, mint time.Time, et exprTestCase) error {
	q, err := suite.QueryEngine().NewInstantQuery(suite.Context(), suite.Queryable(), nil, et.Expr, mint.Add(time.Duration(et.EvalTime)))
	if err != nil {
		return fmt.Errorf("expr %q: %w", et.Expr, err)
	}
	res := q.Exec(suite.Context())
	if res.Err != nil {
		return fmt.Errorf("expr %q at %s: %w", et.Expr, et.EvalTime, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		return fmt.Errorf("expr %q at %s: %w", et.Expr, et.EvalTime, err)
	}
	got := []string{}
	for _, s := range vec {
		got = append(got, fmt.Sprintf("%s %g", s.Metric, s.F))
	}
	want := []string{}
	for _, s := range et.ExpSamples {
		l, err := p.ParseMetric(s.Labels)
		if err != nil {
			return fmt.Errorf("expr %q: expected labels %q: %w", et.Expr, s.Labels, err)
		}
		want = append(want, fmt.Sprintf("%s %g", l, s.Value))
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("expr %q at %s:\n  want %v\n  got  %v", et.Expr, et.EvalTime, want, got)
	}
	return nil
}

// alertNames lists the alerts of alerts.yaml.
func alertNames(t *testing.T) []string {
	t.Helper()
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatalf("reading the alerts: %v", err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("decoding %s: %v", alertsPath, err)
	}
	var names []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				names = append(names, r.Alert)
			}
		}
	}
	if len(names) == 0 {
		t.Fatal("alerts.yaml has no alerts")
	}
	return names
}

// TestPrometheusRuleMatchesAlerts: the PrometheusRule carries exactly the
// groups of alerts.yaml.
func TestPrometheusRuleMatchesAlerts(t *testing.T) {
	var plain struct {
		Groups []any `json:"groups"`
	}
	var pr struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	for path, into := range map[string]any{alertsPath: &plain, prometheusRulePath: &pr} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		if err := sigsyaml.UnmarshalStrict(b, into); err != nil {
			t.Fatalf("decoding %s: %v", path, err)
		}
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name == "" {
		t.Errorf("%s is not a named monitoring.coreos.com/v1 PrometheusRule: %s %s %q", prometheusRulePath, pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	a, err := sigsyaml.Marshal(plain.Groups)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sigsyaml.Marshal(pr.Spec.Groups)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Groups) == 0 || string(a) != string(b) {
		t.Errorf("the PrometheusRule's spec.groups differ from alerts.yaml's groups:\n%s\n---\n%s", b, a)
	}
}

var runbookHeading = regexp.MustCompile(`(?m)^## (\S+)\s*$`)

// TestRunbooks: every alert's runbook_url points at a section of
// docs/runbooks.md named after the alert, and that section has text.
func TestRunbooks(t *testing.T) {
	doc, err := os.ReadFile(runbooksPath)
	if err != nil {
		t.Fatalf("reading the runbooks: %v", err)
	}
	sections := map[string]string{}
	idx := runbookHeading.FindAllSubmatchIndex(doc, -1)
	for i, m := range idx {
		end := len(doc)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		sections[strings.ToLower(string(doc[m[2]:m[3]]))] = strings.TrimSpace(string(doc[m[1]:end]))
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	const prefix = "https://github.com/erpsync/erpsync-operator/blob/main/docs/runbooks.md#"
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			u := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(u, prefix)
			if !ok || anchor != strings.ToLower(r.Alert) {
				t.Errorf("alert %s: runbook_url %q is not %s%s", r.Alert, u, prefix, strings.ToLower(r.Alert))
				continue
			}
			if len(sections[anchor]) < 200 {
				t.Errorf("alert %s: docs/runbooks.md has no runbook paragraph under \"## %s\"", r.Alert, r.Alert)
			}
		}
	}
}
