package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/localenv"
)

// TestDeletions is issue 13 end to end: records of every kind and children
// of every child kind deleted in each vendor (through erpsim's admin API)
// are tombstones in PostgreSQL after the next sync and reconciliation,
// saying how the deletion was learned, and nothing else is deleted; then a
// vendor whose listings lose half their records (the list share) trips the
// mass-deletion guard: nothing is deleted, the hold shows in status and a
// Warning event, and approving (one vendor) or discarding (another) after
// the listings are honest again leaves the CRM equal to the ERP.
//
// The test runs its own erpsim (the shared one's datasets are what the
// other tests compare the CRM with).
func TestDeletions(t *testing.T) {
	ctx := context.Background()
	sim, err := startSim(ctx, "erpsim-deletions", "--products", "40", "--customers", "12", "--orders", "24")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sim.proc.Stop(5 * time.Second) }()
	var urls []string
	for _, v := range sim.state.Vendors {
		urls = append(urls, v.BaseURL)
	}
	allowAndRestart(t, urls...)

	ns := newNamespace(t, "deletions")
	t.Cleanup(func() { _, _ = kubectlErr("delete", "erpsync", "--all", "-n", ns, "--wait=false") })
	const suffix = "-DEL"
	applySamples(t, ns, sim, "1h", suffix)

	type vendorRun struct {
		s        localenv.Sample
		company  string
		expected map[model.Kind]int // before the deletions
		before   crmSnapshot
		targets  []deletionTarget
	}
	var runs []*vendorRun
	for _, s := range localenv.Samples {
		if !hasVendor(sim, s.Vendor) {
			continue
		}
		runs = append(runs, &vendorRun{s: s, company: s.Company + suffix})
	}

	// Every entity may delete up to all of its records in this phase: one
	// tax rate of four is a quarter of them, which the default guard (10%)
	// rightly holds. The guard's own phase sets it back.
	for _, r := range runs {
		setMaxDeletePercent(t, ns, r.s.ErpSync, 100)
	}

	t.Run("deleted records are tombstones after the next sync and reconciliation", func(t *testing.T) {
		for _, r := range runs {
			r.expected = expectedOf(t, sim, r.s.Vendor)
			r.before = snapshot(t, r.company)
			requireEqualsERP(t, r.company+" before the deletions", r.before, r.expected, nil)
			r.targets = deleteOneOfEach(t, sim, r.s.Vendor, r.before)
			t.Logf("%s: deleted %d records and children: %s", r.s.Vendor, len(r.targets), describeTargets(r.targets))
		}
		token := fmt.Sprint("del-", time.Now().UnixNano())
		parallel(runs, func(r *vendorRun) { requestSync(t, ns, r.s.ErpSync, token, true) })
		// Cin7 Core's customer prices hang on a customer whose modified
		// time their removal does not move, and Cin7 Core has no listing
		// of them: only a full read finds one gone (its connector docs,
		// Deletions; the suite's ChildrenFullReadOnly). Everything else of
		// Cin7 Core must be right before that full read.
		fullReadOnly := map[string][]model.Kind{"cin7core": {model.KindPriceRule}}
		for _, r := range runs {
			after := snapshot(t, r.company)
			checkDeletions(t, r.s.Vendor, r.before, after, r.expected, expectedOf(t, sim, r.s.Vendor), r.targets, fullReadOnly[r.s.Vendor])
		}
		for _, r := range runs {
			if len(fullReadOnly[r.s.Vendor]) == 0 {
				continue
			}
			full := token + "-full"
			prev, _ := getErpSync(t, ns, r.s.ErpSync)
			kubectl(t, "annotate", "-n", ns, "erpsync/"+r.s.ErpSync, "erpsync.io/fullResyncAt="+full, "--overwrite")
			eventually(t, 2*time.Minute, r.s.Vendor+": the full resync", func() bool {
				o, _ := getErpSync(t, ns, r.s.ErpSync)
				return o.Status.LastHandledFullResyncAt == full && o.Status.Phase == "Succeeded" && o.Status.LastSyncEnd != prev.Status.LastSyncEnd
			})
			checkDeletions(t, r.s.Vendor+" after a full resync", r.before, snapshot(t, r.company), r.expected, expectedOf(t, sim, r.s.Vendor), r.targets, nil)
		}
	})
	if t.Failed() {
		return
	}

	// The guard: Katana approves, Xero discards.
	guarded := map[string]string{"katana": "erpsync.io/approveDeletionsAt", "xero": "erpsync.io/discardDeletionsAt"}
	var grs []*vendorRun
	for _, r := range runs {
		if _, ok := guarded[r.s.Vendor]; ok {
			grs = append(grs, r)
		}
	}
	t.Run("a truncated listing trips the mass-deletion guard; approve and discard leave the CRM equal to the ERP", func(t *testing.T) {
		for _, r := range grs {
			setMaxDeletePercent(t, ns, r.s.ErpSync, 10)
			r.before = snapshot(t, r.company)
			r.expected = expectedOf(t, sim, r.s.Vendor)
			setListShare(t, sim, r.s.Vendor, 50)
		}
		warnings := map[string]int{}
		for _, r := range grs {
			warnings[r.s.Vendor] = warningEvents(t, ns, r.s.ErpSync)
		}
		token := fmt.Sprint("guard-", time.Now().UnixNano())
		parallel(grs, func(r *vendorRun) { requestSync(t, ns, r.s.ErpSync, token, true) })
		for _, r := range grs {
			st := deletionStatusOf(t, ns, r.s.ErpSync)
			if n := newlyDeleted(r.before, snapshot(t, r.company)); len(n) > 0 {
				t.Errorf("%s: a listing that lost half its records deleted %d records: %v", r.s.Vendor, len(n), n[:min(len(n), 5)])
			}
			held, untrusted := st.holds()
			t.Logf("%s: held %v; reconcile messages %v; reconciliation %q", r.s.Vendor, held, untrusted, st.reconciliationMessage())
			if len(held) == 0 && len(untrusted) == 0 {
				t.Errorf("%s: no entity holds a deletion or says its listing was not trusted: %+v", r.s.Vendor, st.Status.Entities)
			}
			eventually(t, 30*time.Second, r.s.Vendor+": a Warning event for the held deletion", func() bool {
				return warningEvents(t, ns, r.s.ErpSync) > warnings[r.s.Vendor]
			})
		}

		for _, r := range grs {
			setListShare(t, sim, r.s.Vendor, 0)
		}
		decided := fmt.Sprint("decide-", time.Now().UnixNano())
		parallel(grs, func(r *vendorRun) {
			kubectl(t, "annotate", "-n", ns, "erpsync/"+r.s.ErpSync, guarded[r.s.Vendor]+"="+decided, "--overwrite")
			requestSync(t, ns, r.s.ErpSync, decided, true)
		})
		for _, r := range grs {
			st := deletionStatusOf(t, ns, r.s.ErpSync)
			handled := st.Status.LastHandledApproveDeletionsAt
			if r.s.Vendor == "xero" {
				handled = st.Status.LastHandledDiscardDeletionsAt
			}
			if handled != decided {
				t.Errorf("%s: %s=%s not acted on (status says %q)", r.s.Vendor, guarded[r.s.Vendor], decided, handled)
			}
			if held, _ := st.holds(); len(held) > 0 {
				t.Errorf("%s: deletions still held after %s: %v", r.s.Vendor, guarded[r.s.Vendor], held)
			}
			after := snapshot(t, r.company)
			if n := newlyDeleted(r.before, after); len(n) > 0 {
				t.Errorf("%s: %d records deleted after the listing was honest again: %v", r.s.Vendor, len(n), n[:min(len(n), 5)])
			}
			requireEqualsERP(t, r.company+" after "+guarded[r.s.Vendor], after, expectedOf(t, sim, r.s.Vendor), nil)
		}
	})
}

// parallel runs f for every run at once (vendors sync independently).
func parallel[T any](items []T, f func(T)) {
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Add(1)
		go func() { defer wg.Done(); f(it) }()
	}
	wg.Wait()
}

// requestSync asks for a sync (and with reconcile a reconciliation) with
// token, and waits until it has ended: both requests echoed in status and a
// new sync end; then no reconciliation may be under way.
func requestSync(t *testing.T, ns, name, token string, reconcile bool) {
	args := []string{"annotate", "-n", ns, "erpsync/" + name, "erpsync.io/requestedAt=" + token, "--overwrite"}
	if reconcile {
		args = append(args, "erpsync.io/reconcileNowAt="+token)
	}
	kubectl(t, args...)
	var st deletionStatus
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st = deletionStatusOf(t, ns, name)
		// The sync that honours token records it at its start, with
		// phase Syncing: token handled and phase Succeeded is its end.
		// (Not a new lastSyncEnd: status times have second precision,
		// and two quick syncs end within one second.)
		done := st.Status.LastHandledReconcileAt == token && st.Status.Phase == "Succeeded"
		if reconcile {
			done = done && st.Status.LastHandledReconcileNowAt == token
		}
		if done {
			// The reconciliation runs inside the sync: once the sync has
			// ended it has finished, and status says so.
			if rs := st.Status.Reconciliation; reconcile && (rs == nil || rs.InProgress || rs.Message == "") {
				t.Errorf("%s: the sync asked for with %s ended, yet status.reconciliation says a reconciliation is under way or says nothing: %+v", name, token, rs)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: the sync (and reconciliation) asked for with %s did not end in 2m: phase %s, handled %q/%q, reconciliation %+v",
				name, token, st.Status.Phase, st.Status.LastHandledReconcileAt, st.Status.LastHandledReconcileNowAt, st.Status.Reconciliation)
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// setMaxDeletePercent sets spec.reconcile.maxDeletePercent and waits until
// the controller has seen it and no sync is under way.
func setMaxDeletePercent(t *testing.T, ns, name string, pct int) {
	t.Helper()
	kubectl(t, "patch", "-n", ns, "erpsync/"+name, "--type=merge", "-p", fmt.Sprintf(`{"spec":{"reconcile":{"maxDeletePercent":%d}}}`, pct))
	eventually(t, 2*time.Minute, name+" to observe maxDeletePercent", func() bool {
		o, _ := getErpSync(t, ns, name)
		return o.Status.ObservedGeneration == o.Metadata.Generation && o.Status.Phase != "Syncing"
	})
}

func setListShare(t *testing.T, sim *simProcess, vendor string, pct int) {
	t.Helper()
	body := fmt.Sprintf(`{"percent": %d}`, pct)
	resp, err := http.Post(sim.state.AdminURL+"/vendors/"+vendor+"/list-share", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("setting %s's list share to %d: %s", vendor, pct, resp.Status)
	}
}

// warningEvents counts the Warning events about an ErpSync.
func warningEvents(t *testing.T, ns, name string) int {
	t.Helper()
	out := kubectl(t, "get", "events", "-n", ns, "--field-selector", "involvedObject.name="+name+",type=Warning", "-o", "json")
	var l struct {
		Items []struct {
			Count int `json:"count"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range l.Items {
		n += max(e.Count, 1)
	}
	return n
}

// deletionStatus is the part of an ErpSync's status issue 13 adds.
type deletionStatus struct {
	Status struct {
		Phase                         string `json:"phase"`
		LastSyncEnd                   string `json:"lastSyncEnd"`
		LastHandledReconcileAt        string `json:"lastHandledReconcileAt"`
		LastHandledReconcileNowAt     string `json:"lastHandledReconcileNowAt"`
		LastHandledApproveDeletionsAt string `json:"lastHandledApproveDeletionsAt"`
		LastHandledDiscardDeletionsAt string `json:"lastHandledDiscardDeletionsAt"`
		Reconciliation                *struct {
			InProgress bool   `json:"inProgress"`
			Message    string `json:"message"`
		} `json:"reconciliation"`
		Entities []struct {
			Name         string `json:"name"`
			HeldDeletion *struct {
				Kind    string `json:"kind"`
				Records int64  `json:"records"`
				Live    int64  `json:"live"`
				Via     string `json:"via"`
			} `json:"heldDeletion"`
			Reconcile *struct {
				Deleted int64  `json:"deleted"`
				Message string `json:"message"`
			} `json:"reconcile"`
			Deletions *struct {
				Deleted int64  `json:"deleted"`
				Skipped string `json:"skipped"`
			} `json:"deletions"`
		} `json:"entities"`
	} `json:"status"`
}

func deletionStatusOf(t *testing.T, ns, name string) deletionStatus {
	t.Helper()
	var st deletionStatus
	if err := json.Unmarshal([]byte(kubectl(t, "get", "-n", ns, "erpsync/"+name, "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// holds returns the entities holding a deletion and those whose
// reconciliation or full pass says why it applied none.
func (st deletionStatus) holds() (held, untrusted []string) {
	for _, e := range st.Status.Entities {
		if h := e.HeldDeletion; h != nil {
			held = append(held, fmt.Sprintf("%s: %d of %d %s via %s", e.Name, h.Records, h.Live, h.Kind, h.Via))
		}
		if r := e.Reconcile; r != nil && r.Message != "" && r.Deleted == 0 {
			untrusted = append(untrusted, e.Name+": "+r.Message)
		}
		if d := e.Deletions; d != nil && d.Skipped != "" && d.Deleted == 0 {
			untrusted = append(untrusted, e.Name+": "+d.Skipped)
		}
	}
	return held, untrusted
}

func (st deletionStatus) reconciliationMessage() string {
	if st.Status.Reconciliation == nil {
		return ""
	}
	return st.Status.Reconciliation.Message
}

// expectedOf returns what the simulator serves now, per kind.
func expectedOf(t *testing.T, sim *simProcess, vendor string) map[model.Kind]int {
	t.Helper()
	out := map[model.Kind]int{}
	for k, n := range sim.vendor(t, vendor).Expected {
		out[model.Kind(k)] = n
	}
	return out
}

// crmRow is one stored record: its columns as JSON, and the deletion
// columns of issue 13.
type crmRow struct {
	Kind       model.Kind
	VendorID   string
	Deleted    bool
	Via        string
	ParentKind string
	ParentID   string
	Cols       map[string]any
}

// served reports whether the row stands for a record the ERP serves: live,
// or marked deleted by the vendor itself (the ERP still serves it, with
// its marker).
func (r crmRow) served() bool {
	return !r.Deleted || r.Via == "" || r.Via == string(model.DeletedByVendor)
}

func (r crmRow) col(name string) string {
	if v, ok := r.Cols[name].(string); ok {
		return v
	}
	return ""
}

// crmSnapshot is every row of a company, by kind and vendor id.
type crmSnapshot map[string]crmRow

func rowKey(k model.Kind, id string) string { return string(k) + "/" + id }

func snapshot(t *testing.T, company string) crmSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, env.pgDSN)
	if err != nil {
		t.Fatalf("connecting to the CRM: %v", err)
	}
	defer conn.Close(context.Background())
	out := crmSnapshot{}
	for _, k := range model.Kinds {
		rs, err := conn.Query(ctx, "SELECT to_jsonb(t)::text FROM "+pgx.Identifier{"erpsync", string(k)}.Sanitize()+" t WHERE company = $1", company)
		if err != nil {
			t.Fatalf("reading %s: %v", k, err)
		}
		docs, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("reading %s: %v", k, err)
		}
		for _, d := range docs {
			var cols map[string]any
			dec := json.NewDecoder(strings.NewReader(d))
			dec.UseNumber()
			if err := dec.Decode(&cols); err != nil {
				t.Fatal(err)
			}
			r := crmRow{Kind: k, Cols: cols}
			r.VendorID, r.Via, r.ParentKind, r.ParentID = r.col("vendor_id"), r.col("deleted_via"), r.col("parent_kind"), r.col("parent_id")
			r.Deleted, _ = cols["deleted"].(bool)
			out[rowKey(k, r.VendorID)] = r
		}
	}
	return out
}

// requireEqualsERP checks that the rows the ERP still serves equal, per
// kind, what the simulator serves (kinds in skip aside).
func requireEqualsERP(t *testing.T, what string, s crmSnapshot, expected map[model.Kind]int, skip []model.Kind) {
	t.Helper()
	served := map[model.Kind]int{}
	for _, r := range s {
		if r.served() {
			served[r.Kind]++
		}
	}
	for _, k := range model.Kinds {
		if slices.Contains(skip, k) {
			continue
		}
		if served[k] != expected[k] {
			t.Errorf("%s: the CRM holds %d %s the ERP serves, the ERP serves %d", what, served[k], k, expected[k])
		}
	}
}

// newlyDeleted lists the rows the ERP served in before that after holds
// as deletions the operator inferred.
func newlyDeleted(before, after crmSnapshot) []string {
	var out []string
	for key, b := range before {
		if a, ok := after[key]; ok && b.served() && !a.served() {
			out = append(out, key+" via "+a.Via)
		}
	}
	sort.Strings(out)
	return out
}

// deletionTarget is one record or child deleted through the admin API,
// and the CRM row that stands for it where its natural key finds exactly
// one.
type deletionTarget struct {
	what string // "products SKU-000007", "contact pat1@..." ...
	row  string // rowKey, "" when the key found no single row
	// marked: deleted by the vendor's marker, not removed.
	marked bool
}

// naturalKeys says, per dataset kind, the CRM kind and the columns that
// hold its natural key (code, SKU or number) when the vendor maps one.
var naturalKeys = map[string]struct {
	kind model.Kind
	cols []string
}{
	simkit.AdminTaxRates:    {model.KindTaxRate, []string{"code", "name"}},
	simkit.AdminCurrencies:  {model.KindCurrency, []string{"code"}},
	simkit.AdminWarehouses:  {model.KindWarehouse, []string{"code", "name"}},
	simkit.AdminSalesPeople: {model.KindSalesPerson, []string{"code", "email"}},
	simkit.AdminSuppliers:   {model.KindSupplier, []string{"code"}},
	simkit.AdminCustomers:   {model.KindCustomer, []string{"code"}},
	simkit.AdminProducts:    {model.KindProduct, []string{"sku"}},
	simkit.AdminOrders:      {model.KindSalesOrder, []string{"number"}},
	simkit.AdminInvoices:    {model.KindInvoice, []string{"number"}},
	simkit.AdminCreditNotes: {model.KindCreditNote, []string{"number"}},
}

// findRow returns the key of the one served row of kind for which match
// holds, or "".
func (s crmSnapshot) findRow(kind model.Kind, match func(r crmRow) bool) string {
	found := ""
	for key, r := range s {
		if r.Kind != kind || !r.served() || !match(r) {
			continue
		}
		if found != "" {
			return ""
		}
		found = key
	}
	return found
}

func colIs(r crmRow, cols []string, values ...string) bool {
	for _, c := range cols {
		if v := r.col(c); v != "" && slices.Contains(values, v) {
			return true
		}
	}
	return false
}

// deleteOneOfEach hard-deletes, through erpsim's admin API, one live
// record of every dataset kind and one child of every child kind (a
// contact, a customer price, a stock row), choosing records that do not
// depend on each other, and returns them with their CRM rows.
func deleteOneOfEach(t *testing.T, sim *simProcess, vendor string, crm crmSnapshot) []deletionTarget {
	t.Helper()
	base := "/vendors/" + vendor + "/records/"
	refs := map[string][]simkit.RecordRef{}
	for _, kind := range simkit.AdminKinds {
		var rs []simkit.RecordRef
		sim.admin(t, "GET", base+kind, &rs)
		refs[kind] = rs
	}
	var customers []simkit.Customer
	for _, r := range refs[simkit.AdminCustomers] {
		var c simkit.Customer
		sim.admin(t, "GET", base+"customers/"+r.ID, &c)
		customers = append(customers, c)
	}
	var products []simkit.Product
	for _, r := range refs[simkit.AdminProducts] {
		var p simkit.Product
		sim.admin(t, "GET", base+"products/"+r.ID, &p)
		products = append(products, p)
	}
	// Keep apart what one deletion would change of another: the children
	// come from the first live parents, the deleted records from the last
	// live ones; the deleted warehouse is the last, the stock row removed
	// is in the first.
	pick := func(kind string) simkit.RecordRef {
		rs := refs[kind]
		for i := len(rs) - 1; i >= 0; i-- {
			if !rs[i].Deleted {
				return rs[i]
			}
		}
		t.Fatalf("%s: no live %s", vendor, kind)
		return simkit.RecordRef{}
	}
	var out []deletionTarget
	deleted := map[string]string{}
	for _, kind := range simkit.AdminKinds {
		r := pick(kind)
		nk := naturalKeys[kind]
		row := crm.findRow(nk.kind, func(c crmRow) bool { return colIs(c, nk.cols, r.Key) })
		out = append(out, deletionTarget{what: kind + " " + r.Key, row: row})
		deleted[kind] = r.ID
	}
	deletedCustomer := deleted[simkit.AdminCustomers]
	// The children.
	ci := slices.IndexFunc(customers, func(c simkit.Customer) bool {
		return !c.Deleted && c.ID != deletedCustomer && len(c.Contacts) > 0
	})
	pi := slices.IndexFunc(products, func(p simkit.Product) bool {
		return !p.Deleted && p.ID != deleted[simkit.AdminProducts] && len(p.Stock) > 1 &&
			slices.ContainsFunc(p.SpecialPrices, func(sp simkit.SpecialPrice) bool { return sp.CustomerID != deletedCustomer })
	})
	if ci < 0 || pi < 0 {
		t.Fatalf("%s: no customer with contacts or product with prices and stock to remove children from", vendor)
	}
	// The last contact, as simkit.DropContact removes: where a vendor
	// numbers contacts by position, removing an earlier one would renumber
	// the rest.
	contact := customers[ci].Contacts[len(customers[ci].Contacts)-1]
	p := products[pi]
	price := p.SpecialPrices[slices.IndexFunc(p.SpecialPrices, func(sp simkit.SpecialPrice) bool { return sp.CustomerID != deletedCustomer })]
	whs := refs[simkit.AdminWarehouses]
	stock := p.Stock[slices.IndexFunc(p.Stock, func(s simkit.Stock) bool { return s.WarehouseCode != whs[len(whs)-1].Key })]
	whName := ""
	for _, w := range whs {
		if w.Key == stock.WarehouseCode {
			var wh simkit.Warehouse
			sim.admin(t, "GET", base+"warehouses/"+w.ID, &wh)
			whName = wh.Name
		}
	}
	stockRow := crm.findRow(model.KindStockLevel, func(c crmRow) bool {
		return c.col("sku") == p.SKU && colIs(c, []string{"warehouse", "warehouse_name"}, stock.WarehouseCode, whName)
	})
	if rowPerLocation[vendor] {
		stockRow = ""
	}
	out = append(out,
		deletionTarget{what: "contact " + contact.Email, row: crm.findRow(model.KindContact, func(c crmRow) bool {
			return colIs(c, []string{"email"}, contact.Email)
		})},
		deletionTarget{what: "price " + p.SKU + " for " + price.CustomerCode, row: crm.findRow(model.KindPriceRule, func(c crmRow) bool {
			return c.col("sku") == p.SKU && c.col("customer_code") == price.CustomerCode
		})},
		deletionTarget{what: "stock " + p.SKU + " in " + stock.WarehouseCode, row: stockRow},
	)
	// Children first (their parents stay), then the records.
	sim.admin(t, "DELETE", base+"customers/"+customers[ci].ID+"/contacts/"+contact.ID, nil)
	sim.admin(t, "DELETE", base+"products/"+p.ID+"/prices/"+price.CustomerID, nil)
	sim.admin(t, "DELETE", base+"products/"+p.ID+"/stock/"+stock.WarehouseCode, nil)
	for i, kind := range simkit.AdminKinds {
		if slices.Contains(markOnly[vendor], kind) {
			out[i].marked = true
			out[i].what += " (marked deleted)"
			patch(t, sim, base+kind+"/"+deleted[kind], `{"deleted": true}`)
			continue
		}
		sim.admin(t, "DELETE", base+kind+"/"+deleted[kind], &json.RawMessage{})
	}
	return out
}

// rowPerLocation: vendors that serve a stock row for every product and
// location (Katana's /inventory: "one record per variant and location",
// docs/connectors/katana.md): a stock row cannot leave such a vendor, so
// removing one from the dataset deletes nothing (the counts still check).
var rowPerLocation = map[string]bool{"katana": true}

// markOnly: kinds a vendor cannot hard-delete, deleted the vendor's way
// (its marker) instead. Xero has no way to delete a contact, only to
// archive it (connectors/xero/sim/markers.go); its suppliers are contacts.
var markOnly = map[string][]string{"xero": {simkit.AdminSuppliers}}

// patch sends a PATCH with a JSON body to erpsim's admin API.
func patch(t *testing.T, sim *simProcess, path, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPatch, sim.state.AdminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH %s %s: %s", path, body, resp.Status)
	}
}

func describeTargets(ts []deletionTarget) string {
	var b bytes.Buffer
	for i, d := range ts {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.what)
		if d.row == "" {
			b.WriteString(" (no single CRM row by its key: checked by counts)")
		}
	}
	return b.String()
}

// checkDeletions compares the CRM before and after the deletions: no row
// is lost (tombstones stay) and none is added; every row that stopped
// standing for a served record says how its deletion was learned; per kind,
// exactly as many rows became tombstones as the ERP stopped serving (so
// nothing else was deleted), and the rows the ERP serves equal what it
// serves; every deleted record found by its natural key is a tombstone.
// Kinds in later are left to a later check.
func checkDeletions(t *testing.T, what string, before, after crmSnapshot, e0, e1 map[model.Kind]int, targets []deletionTarget, later []model.Kind) {
	t.Helper()
	allowed := []string{string(model.DeletedByVendor), string(model.DeletedFromParent), string(model.DeletedWithParent),
		string(model.DeletedAbsentFromFullRead), string(model.DeletedByReconciliation)}
	tombstoned := map[model.Kind]int{}
	for key, b := range before {
		a, ok := after[key]
		if !ok {
			t.Errorf("%s: %s vanished from the CRM (a deletion must leave a tombstone)", what, key)
			continue
		}
		if b.served() && !a.served() {
			tombstoned[a.Kind]++
			if !slices.Contains(allowed, a.Via) {
				t.Errorf("%s: %s is deleted via %q", what, key, a.Via)
			}
			if a.col("deleted_at") == "" {
				t.Errorf("%s: %s is deleted without deleted_at", what, key)
			}
		}
		if !b.Deleted && a.Deleted && a.Via == string(model.DeletedByVendor) && !slices.ContainsFunc(targets, func(d deletionTarget) bool { return d.marked && d.row == key }) {
			t.Errorf("%s: %s became deleted by a vendor marker nobody set", what, key)
		}
	}
	for key := range after {
		if _, ok := before[key]; !ok {
			t.Errorf("%s: %s appeared in the CRM, though the ERP only lost records", what, key)
		}
	}
	for _, k := range model.Kinds {
		if slices.Contains(later, k) {
			continue
		}
		if gone := e0[k] - e1[k]; tombstoned[k] != gone {
			t.Errorf("%s: %d %s became tombstones, the ERP stopped serving %d", what, tombstoned[k], k, gone)
		}
	}
	requireEqualsERP(t, what, after, e1, later)
	for _, d := range targets {
		if d.row == "" {
			continue
		}
		if k := model.Kind(strings.SplitN(d.row, "/", 2)[0]); slices.Contains(later, k) {
			continue
		}
		a := after[d.row]
		switch {
		case d.marked && (!a.Deleted || a.Via != string(model.DeletedByVendor)):
			t.Errorf("%s: %s (%s) is not deleted by its vendor marker: deleted %v via %q", what, d.what, d.row, a.Deleted, a.Via)
		case !d.marked && a.served():
			t.Errorf("%s: %s (%s) is not a tombstone: deleted %v via %q", what, d.what, d.row, a.Deleted, a.Via)
		}
	}
}
