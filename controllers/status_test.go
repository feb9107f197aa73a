package controllers

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	erpv1 "github.com/erpsync/erpsync-operator/api/v1alpha1"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/internal/engine"
)

// TestEntityStateRoundTrip: every field of the engine's state survives
// status (as JSON, the way the API server stores it), or a resume restarts
// its pass or forgets what it set aside.
func TestEntityStateRoundTrip(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 11, 26, 15, 0, s, 0, time.UTC) }
	in := []engine.EntityState{
		{
			Name: model.KindInvoice, Watermark: at(1), LastRunRecords: 40, LastCompleted: at(2), LastRunCalls: 3, LastRunIncremental: true,
			SetAside: 3, SetAsideIDs: []string{"INV-1", "INV-2", "INV-3"}, SetAsideSince: at(3),
			Resume: &engine.Checkpoint{Since: at(4), StartedAt: at(5), Page: 7, Cursor: "2026-11-26T15:00:05Z|INV-9", Repeats: 2, Distinct: 650, Records: 700, Total: 901},
		},
		{Name: model.KindStockLevel, LastCompleted: at(6), Incomplete: "the pass read 61 distinct documents of the 95 the vendor reports"},
		{Name: model.KindProduct, Resume: &engine.Checkpoint{StartedAt: at(7), Page: 1, Total: -1}},
	}
	raw, err := json.Marshal(fromEngineState(in))
	if err != nil {
		t.Fatal(err)
	}
	var st []erpv1.EntityStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	got := toEngineState(st)
	// metav1.Time decodes in the local zone: compare instants.
	for i := range got {
		e := &got[i]
		e.Watermark, e.LastCompleted, e.SetAsideSince = e.Watermark.UTC(), e.LastCompleted.UTC(), e.SetAsideSince.UTC()
		if cp := e.Resume; cp != nil {
			cp.Since, cp.StartedAt = cp.Since.UTC(), cp.StartedAt.UTC()
		}
	}
	if len(got) != len(in) {
		t.Fatalf("round trip: %d entities, want %d", len(got), len(in))
	}
	for i := range in {
		g, w := got[i], in[i]
		if (g.Resume == nil) != (w.Resume == nil) || g.Resume != nil && *g.Resume != *w.Resume {
			t.Errorf("%s: checkpoint %+v, want %+v", w.Name, g.Resume, w.Resume)
		}
		g.Resume, w.Resume = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: round trip changed the state:\n got %#v\nwant %#v", w.Name, g, w)
		}
	}
}

func TestFromEngineStateBoundsVendorText(t *testing.T) {
	long := strings.Repeat("x", 500)
	st := fromEngineState([]engine.EntityState{{
		Name: model.KindInvoice, SetAside: 9,
		SetAsideIDs: []string{"a\x1b[31mb", long, "3", "4", "5", "6"},
		Incomplete:  strings.Repeat("é", 600),
	}})
	e := st[0]
	if len(e.SetAsideIDs) != engine.MaxSetAsideIDs {
		t.Errorf("%d ids kept, want %d", len(e.SetAsideIDs), engine.MaxSetAsideIDs)
	}
	if e.SetAsideIDs[0] != "a?[31mb" {
		t.Errorf("control characters kept: %q", e.SetAsideIDs[0])
	}
	if n := len([]rune(e.SetAsideIDs[1])); n != maxStatusIDLen {
		t.Errorf("a long id kept %d characters, want %d", n, maxStatusIDLen)
	}
	if n := len([]rune(e.Incomplete)); n != maxIncompleteLen {
		t.Errorf("incomplete kept %d characters, want %d", n, maxIncompleteLen)
	}
}

func TestSourceFingerprint(t *testing.T) {
	spec := func(mut ...func(*erpv1.ErpSync)) *erpv1.ErpSync {
		o := &erpv1.ErpSync{Spec: erpv1.ErpSyncSpec{Connector: erpv1.ConnectorSpec{
			Type: erpv1.ConnectorXero, CredentialsRef: erpv1.LocalSecretReference{Name: "xero"},
		}}}
		for _, m := range mut {
			m(o)
		}
		return o
	}
	creds := map[string][]byte{"clientId": []byte("app-1"), "clientSecret": []byte("s1"), "refreshToken": []byte("r1"), "tenantId": []byte("t-1")}
	with := func(k, v string) map[string][]byte {
		out := map[string][]byte{}
		for kk, vv := range creds {
			out[kk] = vv
		}
		if v == "" {
			delete(out, k)
		} else {
			out[k] = []byte(v)
		}
		return out
	}
	base := sourceOf(spec(), creds)
	cases := []struct {
		name  string
		obj   *erpv1.ErpSync
		creds map[string][]byte
		want  []string
	}{
		{name: "the same source", obj: spec(), creds: creds},
		{name: "a rotated refresh token", obj: spec(), creds: with("refreshToken", "r2")},
		{name: "a new client secret", obj: spec(), creds: with("clientSecret", "s2")},
		{name: "a trailing slash on no base URL", obj: spec(), creds: creds},
		{name: "the spec names the Secret's tenant", obj: spec(func(o *erpv1.ErpSync) { o.Spec.Connector.TenantID = "t-1" }), creds: creds},
		{name: "another tenant in the spec", obj: spec(func(o *erpv1.ErpSync) { o.Spec.Connector.TenantID = "t-2" }), creds: creds, want: []string{"tenantId"}},
		{name: "another tenant in the Secret", obj: spec(), creds: with("tenantId", "t-2"), want: []string{"tenantId"}},
		{name: "another connector", obj: spec(func(o *erpv1.ErpSync) { o.Spec.Connector.Type = erpv1.ConnectorKatana }), creds: creds, want: []string{"connector type"}},
		{name: "another base URL", obj: spec(func(o *erpv1.ErpSync) { o.Spec.Connector.BaseURL = "https://sim.example/" }), creds: creds, want: []string{"baseURL"}},
		{name: "another Secret", obj: spec(func(o *erpv1.ErpSync) { o.Spec.Connector.CredentialsRef.Name = "xero-2" }), creds: creds, want: []string{"credentialsRef"}},
		{name: "another app", obj: spec(), creds: with("clientId", "app-2"), want: []string{"credentials identity (accountId/apiId/clientId/username)"}},
		{name: "an account key added", obj: spec(), creds: with("username", "ops@acme"), want: []string{"credentials identity (accountId/apiId/clientId/username)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur := sourceOf(tc.obj, tc.creds)
			if got := sourceChanges(base, cur); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("sourceChanges() = %q, want %q", got, tc.want)
			}
			raw, _ := json.Marshal(cur)
			for _, v := range tc.creds {
				if strings.Contains(string(raw), string(v)) {
					t.Errorf("the fingerprint %s shows a Secret value %q", raw, v)
				}
			}
		})
	}
	if got := sourceChanges(nil, base); got != nil {
		t.Errorf("the first fingerprint is a change: %q", got)
	}
	if got := sourceChangeReason([]string{"tenantId", "baseURL"}); got != "the source changed (tenantId, baseURL)" {
		t.Errorf("reason = %q", got)
	}
}

func TestEntityReportMessages(t *testing.T) {
	st := []engine.EntityState{
		{Name: model.KindCustomer},
		{Name: model.KindInvoice, SetAside: 7, SetAsideIDs: []string{"INV-1", "INV-2\n", strings.Repeat("9", 100)}},
		{Name: model.KindProduct, SetAside: 1, SetAsideIDs: []string{"P1"}},
		{Name: model.KindStockLevel, Incomplete: "the pass read 61 distinct documents of the 95 the vendor reports"},
	}
	r := reportOf(st)
	if got, want := r.readySuffix(), "; 8 records set aside (invoices: 7, products: 1), see status.entities"+
		"; incomplete: stock_levels read fewer distinct records than the vendor reported; their watermarks were kept and the next sync reads the same window again, see status.entities"; got != want {
		t.Errorf("readySuffix() =\n%q\nwant\n%q", got, want)
	}
	ev := r.setAsideEvent()
	if want := "8 documents the connector could not map are set aside"; !strings.HasPrefix(ev, want) {
		t.Errorf("set-aside event %q does not start with %q", ev, want)
	}
	if want := "invoices: 7 (INV-1, INV-2?, " + strings.Repeat("9", maxIDLen-3) + "..., ...); products: 1 (P1)"; !strings.HasSuffix(ev, want) {
		t.Errorf("set-aside event %q does not end with %q", ev, want)
	}
	if got := r.incompleteEvent(); !strings.Contains(got, "stock_levels: the pass read 61 distinct documents of the 95") {
		t.Errorf("incomplete event %q", got)
	}
	if got := reportOf(st[:1]).readySuffix(); got != "" {
		t.Errorf("nothing set aside or incomplete: suffix %q", got)
	}
	// However many entities, the event stays bounded.
	var many []engine.EntityState
	for i := 0; i < 40; i++ {
		many = append(many, engine.EntityState{Name: model.Kind(strings.Repeat("k", 60)), SetAside: 1000, SetAsideIDs: []string{strings.Repeat("i", 200), "b", "c", "d", "e"}})
	}
	if n := len(reportOf(many).setAsideEvent()); n > maxEventNoteLen {
		t.Errorf("event of %d bytes, want at most %d", n, maxEventNoteLen)
	}
}
