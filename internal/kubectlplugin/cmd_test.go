package kubectlplugin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kfake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	erpsyncv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/httpapi"
	"github.com/erpsync/erpsync-operator/internal/quotastore"
)

const secretValue = "s3cret-api-key-value-7731"

// fixture is a fake API server with one ErpSync, its credentials Secret,
// an event and a quota ConfigMap, and the plugin's options on it.
type fixture struct {
	c   client.Client
	o   *Options
	out *bytes.Buffer
	err *bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	s, err := Scheme()
	if err != nil {
		t.Fatal(err)
	}
	es := fullStatus()
	es.Spec.Connector.Type = erpsyncv1.ConnectorCin7Omni
	es.UID = "uid-1"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "creds", Labels: map[string]string{erpsyncv1.CredentialsLabel: "true"}},
		Data: map[string][]byte{"apiKey": []byte(secretValue), "username": []byte("user")}}
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "ev1"}, Type: "Warning", Reason: "ERPUnavailable",
		Message: "vendor answered 503", LastTimestamp: metav1.NewTime(now.Add(-time.Minute)),
		InvolvedObject: corev1.ObjectReference{Kind: "ErpSync", Name: es.Name, Namespace: "acme", UID: es.UID}}
	other := ev.DeepCopy()
	other.Name, other.Reason, other.InvolvedObject.UID = "ev0", "FromADeletedNamesake", "uid-0"
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(es, secret, ev, other).
		WithStatusSubresource(&erpsyncv1.ErpSync{}).
		WithIndex(&corev1.Event{}, "involvedObject.kind", func(o client.Object) []string { return []string{o.(*corev1.Event).InvolvedObject.Kind} }).
		WithIndex(&corev1.Event{}, "involvedObject.name", func(o client.Object) []string { return []string{o.(*corev1.Event).InvolvedObject.Name} }).
		Build()
	store := &quotastore.ConfigMapStore{Reader: c, Writer: c, Namespace: DefaultManagerNamespace, Now: func() time.Time { return now }, ID: "r0"}
	if _, err := store.Reserve(context.Background(), httpapi.Key("cin7omni", "user"),
		[]httpapi.QuotaClaim{{Name: "day", Period: httpapi.Daily, PeriodStart: now.Truncate(24 * time.Hour), Limit: 5000}}); err != nil {
		t.Fatal(err)
	}
	ns := "acme"
	f := &fixture{c: c, out: &bytes.Buffer{}, err: &bytes.Buffer{}}
	cfg := genericclioptions.NewConfigFlags(false)
	cfg.Namespace = &ns
	f.o = &Options{Streams: genericiooptions.IOStreams{In: strings.NewReader(""), Out: f.out, ErrOut: f.err}, Config: cfg,
		Client: c, Clientset: kfake.NewClientset(), Now: func() time.Time { return now }}
	return f
}

func (f *fixture) run(args ...string) error {
	f.out.Reset()
	f.err.Reset()
	cmd := newCommand(f.o)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(context.Background())
}

func (f *fixture) get(t *testing.T) *erpsyncv1.ErpSync {
	t.Helper()
	var es erpsyncv1.ErpSync
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: "acme", Name: "acme-xero"}, &es); err != nil {
		t.Fatal(err)
	}
	return &es
}

func TestStatusCommand(t *testing.T) {
	f := newFixture(t)
	if err := f.run("status", "acme-xero"); err != nil {
		t.Fatal(err)
	}
	out := f.out.String()
	for _, want := range []string{"ErpSync acme/acme-xero", "ERPUnavailable", "vendor answered 503", "the one cin7omni credential", "5000"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FromADeletedNamesake") {
		t.Errorf("status shows another object's event:\n%s", out)
	}

	if err := f.run("status", "acme-xero", "-o", "json"); err != nil {
		t.Fatal(err)
	}
	var v StatusView
	if err := json.Unmarshal(f.out.Bytes(), &v); err != nil {
		t.Fatalf("-o json is not a StatusView: %v\n%s", err, f.out)
	}
	if v.ErpSync.Name != "acme-xero" || len(v.ErpSync.Status.Entities) != 2 || len(v.Quotas) != 1 || len(v.Events) != 1 {
		t.Errorf("json view: %+v", v)
	}
	if err := f.run("status", "-A", "-o", "yaml"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.out.String(), "name: acme-xero") || !strings.Contains(f.out.String(), "attention: OK") {
		t.Errorf("-A -o yaml:\n%s", f.out)
	}
	if err := f.run("status", "-o", "xml"); err == nil || !strings.Contains(err.Error(), "unknown output format") {
		t.Errorf("-o xml: %v", err)
	}
	if err := f.run("status", "missing"); err == nil || !strings.Contains(err.Error(), "acme/missing") {
		t.Errorf("a missing ErpSync: %v", err)
	}
}

func TestRequestCommands(t *testing.T) {
	f := newFixture(t)
	if err := f.run("sync", "acme-xero"); err != nil {
		t.Fatal(err)
	}
	token := f.get(t).Annotations[erpsyncv1.RequestedAtAnnotation]
	if token != NewToken(now) || !strings.Contains(f.out.String(), token) {
		t.Fatalf("sync set %q; output %q", token, f.out)
	}

	// Nobody acts: --wait gives up at its timeout.
	f.o.Now = func() time.Time { return now.Add(time.Second) }
	err := f.run("resync", "acme-xero", "--wait", "--timeout", "700ms")
	if !errors.Is(err, errTimeout) {
		t.Fatalf("resync --wait with no operator: %v", err)
	}
	if got := f.get(t).Annotations[erpsyncv1.FullResyncAtAnnotation]; got != NewToken(now.Add(time.Second)) {
		t.Fatalf("resync set %q", got)
	}

	// An operator that echoes the token: --wait sees it handled.
	f.o.Now = func() time.Time { return now.Add(2 * time.Second) }
	want := NewToken(now.Add(2 * time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go echoRequests(ctx, f.c)
	if err := f.run("sync", "acme-xero", "--wait", "--timeout", "10s"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.out.String(), "sync handled by the operator") || f.get(t).Status.LastHandledReconcileAt != want {
		t.Errorf("sync --wait: %s", f.out)
	}

	if err := f.run("suspend", "acme-xero"); err != nil {
		t.Fatal(err)
	}
	if !f.get(t).Spec.Suspend {
		t.Fatal("suspend left spec.suspend false")
	}
	if err := f.run("sync", "acme-xero", "--wait"); err == nil || !strings.Contains(f.err.String(), "is suspended") {
		t.Errorf("sync --wait of a suspended ErpSync: %v, %s", err, f.err)
	}
	if err := f.run("suspend", "acme-xero"); err != nil || !strings.Contains(f.out.String(), "already suspended") {
		t.Errorf("suspend twice: %v %s", err, f.out)
	}
	if err := f.run("resume", "acme-xero", "--wait", "--timeout", "10s"); err != nil {
		t.Fatal(err)
	}
	if f.get(t).Spec.Suspend || !strings.Contains(f.out.String(), "the operator has acted") {
		t.Errorf("resume: %s", f.out)
	}
}

// echoRequests plays the operator's part the plugin waits for: it echoes
// a new requestedAt token in status.
func echoRequests(ctx context.Context, c client.Client) {
	for ctx.Err() == nil {
		var es erpsyncv1.ErpSync
		if err := c.Get(ctx, client.ObjectKey{Namespace: "acme", Name: "acme-xero"}, &es); err == nil {
			if tok := es.Annotations[erpsyncv1.RequestedAtAnnotation]; tok != es.Status.LastHandledReconcileAt {
				es.Status.LastHandledReconcileAt = tok
				_ = c.Status().Update(ctx, &es)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEntityResyncCommand(t *testing.T) {
	f := newFixture(t)
	// Checked before anything is written: the fixture syncs products and
	// customers (status.entities).
	for _, tc := range []struct{ args, says string }{
		{"product", `--entity "product": erpsync/acme-xero does not sync it (status.entities: products, customers)`},
		{"Products", "lower-case letters and underscores"},
		{",", "names no entity"},
	} {
		if err := f.run("resync", "acme-xero", "--entity", tc.args); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("--entity %s: %v, want %q", tc.args, err, tc.says)
		}
	}
	if a := f.get(t).Annotations; a[erpsyncv1.FullResyncEntitiesAtAnnotation] != "" {
		t.Fatalf("a refused --entity wrote %v", a)
	}

	// Repeated and comma-separated: both annotations in one write, the
	// whole-resync annotation untouched.
	if err := f.run("resync", "acme-xero", "--entity", "products", "--entity", "customers,products"); err != nil {
		t.Fatal(err)
	}
	a := f.get(t).Annotations
	if a[erpsyncv1.FullResyncEntitiesAnnotation] != "products,customers" || a[erpsyncv1.FullResyncEntitiesAtAnnotation] != NewToken(now) || a[erpsyncv1.FullResyncAtAnnotation] != "" {
		t.Fatalf("annotations %v", a)
	}

	// An operator that accepts: --wait reports the entities it accepted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan struct{})
	go func() { defer close(stopped); echoEntityResync(ctx, f.c, "") }()
	f.o.Now = func() time.Time { return now.Add(time.Second) }
	if err := f.run("resync", "acme-xero", "--entity", "customers", "--wait", "--timeout", "10s"); err != nil {
		t.Fatal(err)
	}
	if out := f.out.String(); !strings.Contains(out, "full resync of customers accepted by the operator") {
		t.Errorf("--wait output:\n%s", out)
	}
	cancel()
	<-stopped // no accepting operator left

	// An operator that refuses: --wait fails with its reason.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go echoEntityResync(ctx, f.c, "full resync of entities refused, nothing was read and no watermark forgotten: no such entity")
	f.o.Now = func() time.Time { return now.Add(2 * time.Second) }
	err := f.run("resync", "acme-xero", "--entity", "products", "--wait", "--timeout", "10s")
	if err == nil || !strings.Contains(err.Error(), "the operator refused the full resync: full resync of entities refused") {
		t.Errorf("--wait on a refusal: %v", err)
	}
}

// echoEntityResync plays the operator for resync --entity: it echoes a new
// token and accepts the entities, or, when refusal is set, fails the sync
// with reason InvalidConfig and accepts nothing.
func echoEntityResync(ctx context.Context, c client.Client, refusal string) {
	for ctx.Err() == nil {
		var es erpsyncv1.ErpSync
		if err := c.Get(ctx, client.ObjectKey{Namespace: "acme", Name: "acme-xero"}, &es); err == nil {
			if tok := es.Annotations[erpsyncv1.FullResyncEntitiesAtAnnotation]; tok != es.Status.LastHandledFullResyncEntitiesAt {
				es.Status.LastHandledFullResyncEntitiesAt = tok
				es.Status.LastHandledFullResyncEntities = nil
				if refusal == "" {
					es.Status.Phase = erpsyncv1.PhaseSyncing
					es.Status.LastHandledFullResyncEntities = strings.Split(es.Annotations[erpsyncv1.FullResyncEntitiesAnnotation], ",")
				} else {
					es.Status.Phase = erpsyncv1.PhaseFailed
					meta.SetStatusCondition(&es.Status.Conditions, metav1.Condition{Type: erpsyncv1.ReadyCondition, Status: metav1.ConditionFalse,
						Reason: erpsyncv1.ReasonInvalidConf, Message: refusal})
				}
				_ = c.Status().Update(ctx, &es)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestEntityResyncOutcome(t *testing.T) {
	es := &erpsyncv1.ErpSync{}
	es.Status.LastHandledFullResyncEntitiesAt = "t"
	for _, tc := range []struct {
		name     string
		token    string
		phase    erpsyncv1.Phase
		accepted []string
		reason   string
		done     bool
		err      string
	}{
		{name: "another token", token: "u", phase: erpsyncv1.PhaseSucceeded},
		{name: "echoed, not yet checked", token: "t", phase: erpsyncv1.PhaseSyncing},
		{name: "accepted", token: "t", phase: erpsyncv1.PhaseSyncing, accepted: []string{"products"}, done: true},
		{name: "accepted, sync over", token: "t", phase: erpsyncv1.PhaseSucceeded, accepted: []string{"products"}, done: true},
		{name: "refused", token: "t", phase: erpsyncv1.PhaseFailed, reason: erpsyncv1.ReasonInvalidConf, done: true, err: "refused"},
		{name: "the sync failed first", token: "t", phase: erpsyncv1.PhaseFailed, reason: "SecretNotFound", done: true, err: "retries it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es.Status.Phase, es.Status.LastHandledFullResyncEntities = tc.phase, tc.accepted
			es.Status.Conditions = nil
			if tc.reason != "" {
				es.Status.Conditions = []metav1.Condition{{Type: erpsyncv1.ReadyCondition, Status: metav1.ConditionFalse, Reason: tc.reason, Message: "m"}}
			}
			done, err := EntityResyncOutcome(es, tc.token)
			if done != tc.done || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("done %t err %v; want done %t err %q", done, err, tc.done, tc.err)
			}
		})
	}
}

func TestReportCommand(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.tar.gz")
	if err := f.run("report", "acme-xero", "-f", path); err != nil {
		t.Fatal(err)
	}
	files := readTarGz(t, path)
	for _, name := range []string{"erpsync.yaml", "status.txt", "events.yaml", "quota-configmaps.yaml", "secrets.txt", "README.txt"} {
		if _, ok := files["erpsync-report-acme-acme-xero/"+name]; !ok {
			t.Errorf("bundle lacks %s: %v", name, keys(files))
		}
	}
	for name, data := range files {
		if bytes.Contains(data, []byte(secretValue)) {
			t.Errorf("%s holds the Secret's value", name)
		}
	}
	pre := "erpsync-report-acme-acme-xero/"
	if !bytes.Contains(files[pre+"secrets.txt"], []byte("credentialsRef: creds")) || !bytes.Contains(files[pre+"secrets.txt"], []byte(`erpsync.io/credentials="true"`)) {
		t.Errorf("secrets.txt:\n%s", files[pre+"secrets.txt"])
	}
	if !bytes.Contains(files[pre+"README.txt"], []byte("manager logs: no pods match")) {
		t.Errorf("README.txt does not say why there are no logs:\n%s", files[pre+"README.txt"])
	}
	if !bytes.Contains(files[pre+"quota-configmaps.yaml"], []byte(quotastore.Name(httpapi.Key("cin7omni", "user")))) {
		t.Errorf("quota-configmaps.yaml:\n%s", files[pre+"quota-configmaps.yaml"])
	}

	out := filepath.Join(dir, "as-dir")
	if err := f.run("report", "acme-xero", "-f", out); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "erpsync.yaml")); err != nil || !bytes.Contains(b, []byte("companyId: ACME-XERO")) {
		t.Errorf("directory bundle: %v %s", err, b)
	}
}

func TestLinesAbout(t *testing.T) {
	log := strings.Join([]string{
		`{"msg":"sync done","ErpSync":{"name":"acme-xero","namespace":"acme"}}`,
		`{"msg":"sync done","ErpSync":{"name":"acme-xero","namespace":"other"}}`,
		`{"msg":"sync done","ErpSync":{"name":"acme-xero-2","namespace":"acme"}}`,
		`I1207 starting sync erpsync=acme/acme-xero`,
		`unrelated`,
	}, "\n")
	got, err := LinesAbout(strings.NewReader(log), "acme", "acme-xero")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"namespace":"acme"}`) || !strings.Contains(lines[1], "acme/acme-xero") {
		t.Errorf("lines about acme/acme-xero:\n%s", got)
	}
}

func TestPatches(t *testing.T) {
	p, err := RequestPatch(erpsyncv1.FullResyncAtAnnotation, "tok")
	if err != nil || string(p) != `{"metadata":{"annotations":{"erpsync.io/fullResyncAt":"tok"}}}` {
		t.Errorf("request patch %s %v", p, err)
	}
	p, err = SuspendPatch(false)
	if err != nil || string(p) != `{"spec":{"suspend":false}}` {
		t.Errorf("suspend patch %s %v", p, err)
	}
	es := &erpsyncv1.ErpSync{}
	for _, tc := range []struct {
		phase   erpsyncv1.Phase
		next    *metav1.Time
		suspend bool
		want    bool
	}{
		{erpsyncv1.PhaseSuspended, nil, true, true},
		{erpsyncv1.PhaseSyncing, nil, true, false},
		{erpsyncv1.PhaseSuspended, nil, false, false},
		{erpsyncv1.PhaseSuspended, at(time.Minute), false, true},
		{erpsyncv1.PhaseSyncing, nil, false, true},
	} {
		es.Status.Phase, es.Status.NextSyncAt = tc.phase, tc.next
		if got := SuspendActed(es, tc.suspend); got != tc.want {
			t.Errorf("SuspendActed(phase %s, next %v, suspend %t) = %t", tc.phase, tc.next, tc.suspend, got)
		}
	}
	es.Status.LastHandledFullResyncAt = "a"
	if !Handled(es, erpsyncv1.FullResyncAtAnnotation, "a") || Handled(es, erpsyncv1.RequestedAtAnnotation, "a") || Handled(es, erpsyncv1.FullResyncEntitiesAtAnnotation, "a") {
		t.Error("Handled reads the wrong echo")
	}
	p, err = EntityResyncPatch([]string{"products", "customers"}, "tok")
	if err != nil || string(p) != `{"metadata":{"annotations":{"erpsync.io/fullResyncEntities":"products,customers","erpsync.io/fullResyncEntitiesAt":"tok"}}}` {
		t.Errorf("entity resync patch %s %v", p, err)
	}
}

func readTarGz(t *testing.T, path string) map[string][]byte {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	zr, err := gzip.NewReader(file)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = b
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestStatusShowsTheQuotaOfItsCredential: with status.quotaCredentials set,
// status and report show that credential's counters only, not another
// credential's of the same connector type.
func TestStatusShowsTheQuotaOfItsCredential(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	store := &quotastore.ConfigMapStore{Reader: f.c, Writer: f.c, Namespace: DefaultManagerNamespace, Now: func() time.Time { return now }, ID: "r0"}
	day := []httpapi.QuotaClaim{{Name: "day", Period: httpapi.Daily, PeriodStart: now.Truncate(24 * time.Hour), Limit: 5000}}
	other := httpapi.Key("cin7omni", "someone-else")
	if _, err := store.Reserve(ctx, other, day); err != nil {
		t.Fatal(err)
	}
	mine := httpapi.CredentialID(httpapi.Key("cin7omni", "user"))
	es := f.get(t)
	es.Status.QuotaCredentials = []string{mine}
	if err := f.c.Status().Update(ctx, es); err != nil {
		t.Fatal(err)
	}

	if err := f.run("status", "acme-xero"); err != nil {
		t.Fatal(err)
	}
	out := f.out.String()
	if !strings.Contains(out, mine) || !strings.Contains(out, "the quota this ErpSync's last sync counted against") {
		t.Errorf("status does not show its credential %s:\n%s", mine, out)
	}
	if strings.Contains(out, httpapi.CredentialID(other)) {
		t.Errorf("status shows another credential's quota:\n%s", out)
	}
	if err := f.run("status", "acme-xero", "-o", "json"); err != nil {
		t.Fatal(err)
	}
	var v StatusView
	if err := json.Unmarshal(f.out.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Quotas) != 1 || v.Quotas[0].Credential != mine || v.Quotas[0].ConfigMap != quotastore.NamePrefix+mine {
		t.Errorf("json quotas %+v, want %s only", v.Quotas, mine)
	}

	path := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := f.run("report", "acme-xero", "-f", path); err != nil {
		t.Fatal(err)
	}
	cms := readTarGz(t, path)["erpsync-report-acme-acme-xero/quota-configmaps.yaml"]
	if !bytes.Contains(cms, []byte(quotastore.NamePrefix+mine)) || bytes.Contains(cms, []byte(quotastore.Name(other))) {
		t.Errorf("quota-configmaps.yaml holds other credentials' or lacks its own:\n%s", cms)
	}
}
