// Package monitoring tests the operator's monitoring artefacts: the Grafana
// dashboard (config/grafana), the alerts and their PrometheusRule and rule
// tests (config/prometheus). Every PromQL query they hold must name only
// series the manager exports, with labels those series have; the alerts
// must fire and stay quiet as their rule tests say.
package monitoring

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/erpsync/erpsync-operator/internal/metrics"
)

// repoRoot is the repository's top directory, relative to this package.
const repoRoot = "../.."

// scrapeLabels are the labels Prometheus adds to every series it scrapes
// from the manager through config/prometheus/servicemonitor.yaml (target
// labels). A query may group or match by them to tell replicas apart; the
// manager's own "namespace" label wins over the target's (honorLabels).
var scrapeLabels = []string{"instance", "job", "pod"}

// exported maps every series name the manager exports to its labels.
type exported map[string][]string

func (e exported) add(name, typ string, labels []string) {
	labels = slices.Clone(labels)
	sort.Strings(labels)
	switch typ {
	case "Histogram", "HistogramVec":
		e[name+"_bucket"] = append(slices.Clone(labels), "le")
		e[name+"_sum"] = labels
		e[name+"_count"] = labels
	case "Summary", "SummaryVec":
		e[name] = append(slices.Clone(labels), "quantile")
		e[name+"_sum"] = labels
		e[name+"_count"] = labels
	default:
		e[name] = labels
	}
}

// collectorKinds are the prometheus constructors whose metrics a scan of
// the source finds.
var collectorKinds = map[string]bool{
	"Counter": true, "CounterVec": true, "Gauge": true, "GaugeVec": true,
	"Histogram": true, "HistogramVec": true, "Summary": true, "SummaryVec": true,
}

// unreadKinds are constructors of metrics whose names or labels the scan
// does not read; finding one fails the test.
var unreadKinds = map[string]bool{
	"CounterFunc": true, "GaugeFunc": true, "UntypedFunc": true, "Untyped": true, "UntypedVec": true,
	"Desc": true, "ConstMetric": true, "ConstHistogram": true, "ConstSummary": true,
}

// scanSource finds every prometheus.New<Kind>(prometheus.<Kind>Opts{Name:
// "..."}, []string{...}) in the repository's non-test Go files, the
// manager's own metrics wherever they are defined (internal/metrics,
// internal/sharding, ...). A constructor it cannot read (a name that is not
// a literal, Namespace or Subsystem set) fails the test, so that a new
// metric cannot silently escape the check.
func scanSource(t *testing.T) exported {
	t.Helper()
	found := exported{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "bin", "vendor", "testdata", ".git", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if !strings.Contains(string(src), "prometheus.New") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", path, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !isIdent(sel.X, "prometheus") || !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			kind := strings.TrimPrefix(sel.Sel.Name, "New")
			pos := fset.Position(call.Pos())
			if unreadKinds[kind] {
				t.Errorf("%s: prometheus.%s defines metrics the scan cannot read; teach test/monitoring to read it", pos, sel.Sel.Name)
				return true
			}
			if !collectorKinds[kind] {
				return true
			}
			name, labels, err := readConstructor(call, strings.HasSuffix(kind, "Vec"))
			if err != nil {
				t.Errorf("%s: prometheus.%s: %v", pos, sel.Sel.Name, err)
				return true
			}
			found.add(name, kind, labels)
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatalf("scanning the source for metrics: %v", err)
	}
	return found
}

func isIdent(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// readConstructor reads the metric name from the Opts literal and, for a
// Vec, the label names from the []string literal.
func readConstructor(call *ast.CallExpr, vec bool) (string, []string, error) {
	if len(call.Args) == 0 {
		return "", nil, fmt.Errorf("no arguments")
	}
	opts, ok := call.Args[0].(*ast.CompositeLit)
	if !ok {
		return "", nil, fmt.Errorf("options are not a literal")
	}
	var name string
	for _, el := range opts.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			return "", nil, fmt.Errorf("options use positional fields")
		}
		key, _ := kv.Key.(*ast.Ident)
		if key == nil {
			continue
		}
		switch key.Name {
		case "Name":
			s, err := stringLit(kv.Value)
			if err != nil {
				return "", nil, fmt.Errorf("the Name field: %w", err)
			}
			name = s
		case "Namespace", "Subsystem", "ConstLabels":
			return "", nil, fmt.Errorf("%s is set; teach test/monitoring to read it", key.Name)
		}
	}
	if name == "" {
		return "", nil, fmt.Errorf("no Name")
	}
	if !vec {
		return name, nil, nil
	}
	if len(call.Args) != 2 {
		return "", nil, fmt.Errorf("a Vec without its label names")
	}
	lit, ok := call.Args[1].(*ast.CompositeLit)
	if !ok {
		return "", nil, fmt.Errorf("label names are not a []string literal")
	}
	labels := make([]string, 0, len(lit.Elts))
	for _, el := range lit.Elts {
		s, err := stringLit(el)
		if err != nil {
			return "", nil, fmt.Errorf("label name: %w", err)
		}
		labels = append(labels, s)
	}
	return name, labels, nil
}

func stringLit(e ast.Expr) (string, error) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", fmt.Errorf("not a string literal")
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return "", fmt.Errorf("unquoting %s: %w", lit.Value, err)
	}
	return s, nil
}

// gatherCollectors registers the real collectors in a fresh registry, makes
// each Vec show one series (it tries label-value counts until the Vec
// accepts one) and gathers: the names, types and label names the manager
// serves for them.
func gatherCollectors(t *testing.T, cs []prometheus.Collector) exported {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			t.Fatalf("registering a collector: %v", err)
		}
		touch(t, c)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	got := exported{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			t.Fatalf("%s gathered no series", mf.GetName())
		}
		var labels []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, lp.GetName())
		}
		typ := map[dto.MetricType]string{
			dto.MetricType_COUNTER: "Counter", dto.MetricType_GAUGE: "Gauge",
			dto.MetricType_HISTOGRAM: "Histogram", dto.MetricType_SUMMARY: "Summary",
		}[mf.GetType()]
		got.add(mf.GetName(), typ, labels)
	}
	return got
}

// touch creates one series of a Vec, with placeholder label values.
func touch(t *testing.T, c prometheus.Collector) {
	t.Helper()
	try := func(n int) bool {
		lvs := make([]string, n)
		for i := range lvs {
			lvs[i] = "test-monitoring"
		}
		var err error
		switch v := c.(type) {
		case *prometheus.CounterVec:
			_, err = v.GetMetricWithLabelValues(lvs...)
		case *prometheus.GaugeVec:
			_, err = v.GetMetricWithLabelValues(lvs...)
		case *prometheus.HistogramVec:
			_, err = v.GetMetricWithLabelValues(lvs...)
		case *prometheus.SummaryVec:
			_, err = v.GetMetricWithLabelValues(lvs...)
		default:
			return true // not a Vec: it always has its one series
		}
		return err == nil
	}
	for n := 0; n <= 16; n++ {
		if try(n) {
			return
		}
	}
	t.Fatalf("no label-value count from 0 to 16 fits collector %T", c)
}

// exportedMetrics is every series the manager exports, from the source
// scan; TestSourceScanMatchesCollectors checks the scan against the real
// collectors.
func exportedMetrics(t *testing.T) exported {
	t.Helper()
	e := scanSource(t)
	if len(e) == 0 {
		t.Fatal("the source scan found no metrics")
	}
	return e
}

// TestSourceScanMatchesCollectors proves the source scan reads the metrics
// right: for internal/metrics, whose collectors are reachable, the scan
// agrees with what those collectors serve from a registry, name for name
// and label for label.
func TestSourceScanMatchesCollectors(t *testing.T) {
	scanned := exportedMetrics(t)
	served := gatherCollectors(t, append(metrics.Collectors(), metrics.WebhookCollectors()...))
	for name, labels := range served {
		got, ok := scanned[name]
		if !ok {
			t.Errorf("%s is served by internal/metrics but the source scan missed it", name)
			continue
		}
		if !slices.Equal(got, labels) {
			t.Errorf("%s: source scan read labels %v, the collector serves %v", name, got, labels)
		}
	}
	// Names the scan found beyond internal/metrics come from other
	// packages (internal/sharding's); they must at least be ours.
	for name := range scanned {
		if !strings.HasPrefix(name, "erpsync_") {
			t.Errorf("metric %s does not start with erpsync_", name)
		}
	}
	for _, want := range []string{"erpsync_shards_held", "erpsync_shard_count_conflict"} {
		if _, ok := scanned[want]; !ok {
			t.Errorf("the source scan missed %s (internal/sharding)", want)
		}
	}
}
