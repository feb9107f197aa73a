package xero

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
)

// recorder keeps the Accounting API requests a simulator answers.
type recorder struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (rc *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, sim.APIPath) {
			rc.mu.Lock()
			rc.reqs = append(rc.reqs, r.Clone(context.Background()))
			rc.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (rc *recorder) take() []*http.Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := rc.reqs
	rc.reqs = nil
	return out
}

// withPageSize rebuilds the harness's connector with a smaller page size.
func (h *harness) withPageSize(t *testing.T, n int) {
	t.Helper()
	c, err := NewWithOptions(context.Background(), connectors.Config{
		Type: Type, CompanyID: "acme", BaseURL: h.srv.URL + sim.APIPath, Credentials: h.store.Data(),
		CredentialStore: h.store, HTTPClient: h.srv.Client(),
	}, Options{Clock: h.clock, Registry: h.reg, tokens: h.tokens, pageSize: n})
	if err != nil {
		t.Fatal(err)
	}
	h.conn = c
}

// listAll pages a listing to its end and returns the versions by id, the
// first page's total and the calls.
func listAll(t *testing.T, l connectors.IDLister, e model.Kind) (map[string]time.Time, int, int) {
	t.Helper()
	out := map[string]time.Time{}
	total, calls, cursor := 0, 0, ""
	for page := 1; ; page++ {
		if page > 100 {
			t.Fatalf("%s: the listing does not end", e)
		}
		p, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: e, Page: page, Cursor: cursor})
		if err != nil {
			t.Fatalf("%s page %d: %v", e, page, err)
		}
		if page == 1 {
			total = p.Total
		}
		calls += p.Calls
		for _, d := range p.Docs {
			out[d.ID] = d.ModifiedAt
		}
		cursor = p.Next
		if !p.More {
			if p.Next != "" {
				t.Errorf("%s: the last page has a cursor %q", e, p.Next)
			}
			return out, total, calls
		}
	}
}

// TestIDListingRequests: the listing asks for Xero's largest page and its
// summary form where Xero has one, the whole list (archived included, no
// If-Modified-Since), in the keyset order of the stream's reads.
func TestIDListingRequests(t *testing.T) {
	rc := &recorder{}
	h := newHarness(t, sim.Options{}, rc.wrap)
	l := h.conn.(connectors.IDLister)
	// The first request also fetches an access token.
	if _, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: model.KindCreditNote, Page: 1}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind    model.Kind
		path    string
		summary bool
		want    url.Values
	}{
		{model.KindCustomer, "/Contacts", true, url.Values{"includeArchived": {"true"}}},
		{model.KindInvoice, "/Invoices", true, url.Values{"includeArchived": {"true"}, "unitdp": {"4"}}},
		{model.KindCreditNote, "/CreditNotes", false, url.Values{"unitdp": {"4"}}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			info, ok := l.IDListing(tc.kind)
			if !ok || info.PageSize != PageSize || !strings.HasPrefix(info.Endpoint, "GET "+tc.path+"?") {
				t.Fatalf("IDListing = %+v, %v; want page size %d on GET %s", info, ok, PageSize, tc.path)
			}
			if strings.Contains(info.Endpoint, "summaryOnly=true") != tc.summary {
				t.Errorf("the listing's endpoint %q: summaryOnly %v", info.Endpoint, tc.summary)
			}
			rc.take()
			p, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: tc.kind, Page: 1})
			if err != nil {
				t.Fatal(err)
			}
			reqs := rc.take()
			if len(reqs) != 1 || p.Calls != 1 {
				t.Fatalf("%d requests, %d calls reported; want 1", len(reqs), p.Calls)
			}
			r := reqs[0]
			q := r.URL.Query()
			if r.URL.Path != sim.APIPath+tc.path || q.Get("page") != "1" || q.Get("pageSize") != "1000" || q.Get("order") != "UpdatedDateUTC ASC" {
				t.Errorf("request %s, want page 1 of 1000 by UpdatedDateUTC ASC on %s", r.URL, tc.path)
			}
			if (q.Get("summaryOnly") == "true") != tc.summary {
				t.Errorf("request %s: summaryOnly, want %v", r.URL, tc.summary)
			}
			for k, v := range tc.want {
				if q.Get(k) != v[0] {
					t.Errorf("request %s: %s=%q, want %q", r.URL, k, q.Get(k), v[0])
				}
			}
			if ims := r.Header.Get("If-Modified-Since"); ims != "" {
				t.Errorf("a listing sent If-Modified-Since %q: it must list everything", ims)
			}
			if len(p.Docs) == 0 || p.More {
				t.Errorf("page 1 lists %d documents, more %v; want all of a small dataset", len(p.Docs), p.More)
			}
		})
	}
	if _, ok := l.IDListing(model.KindProduct); ok {
		t.Error("items are read in full every sync: they need no listing")
	}
	if _, err := l.ListIDs(context.Background(), connectors.PageRequest{Entity: model.KindTaxRate, Page: 1}); err == nil {
		t.Error("listing tax rates did not fail")
	}
}

// TestIDListingPagesToTheEnd: paged in small pages, the listing holds
// every customer (archived ones too, no supplier-only contact), every
// invoice and bill, every credit note, each with the UpdatedDateUTC a full
// read stores, in at most ceil(n/size)+1 calls, n the documents Xero lists
// (for contacts, suppliers included); the invoices' and credit notes'
// totals count the listed ids, the contacts' (which counts suppliers) is
// not reported.
func TestIDListingPagesToTheEnd(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	h.sim.ArchiveContact(func() (id string) {
		h.sim.Dataset().View(func(d *simkit.Dataset) { id = d.Customers[5].ID })
		return id
	}(), true)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	var contacts int
	h.sim.Dataset().View(func(d *simkit.Dataset) { contacts = len(d.Customers) + len(d.Suppliers) })
	for _, tc := range []struct {
		kind model.Kind
		size int
	}{{model.KindCustomer, 7}, {model.KindInvoice, 7}, {model.KindCreditNote, 1}} {
		kind := tc.kind
		t.Run(string(kind), func(t *testing.T) {
			h.withPageSize(t, tc.size)
			got, total, calls := listAll(t, h.conn.(connectors.IDLister), kind)
			want := map[string]time.Time{}
			for _, r := range h.sink.Records() {
				if r.Kind == kind {
					want[r.VendorID] = r.ModifiedAt
				}
			}
			if len(want) < 2*tc.size+1 {
				t.Fatalf("the import stored %d %s: too few to span pages of %d", len(want), kind, tc.size)
			}
			for id, at := range want {
				if v, ok := got[id]; !ok || !v.Equal(at) {
					t.Errorf("%s: listed %v (%v), a full read stored %v", id, v, ok, at)
				}
			}
			for id := range got {
				if _, ok := want[id]; !ok {
					t.Errorf("%s listed, but a full read maps no %s record of it", id, kind)
				}
			}
			n := len(got)
			if kind == model.KindCustomer {
				n = contacts
			}
			if limit := (n+tc.size-1)/tc.size + 1; calls > limit {
				t.Errorf("%d documents cost %d calls, more than %d", n, calls, limit)
			}
			switch {
			case kind == model.KindCustomer && total != -1:
				t.Errorf("the contacts' listing reports total %d: Xero's count includes suppliers", total)
			case kind != model.KindCustomer && total != len(got):
				t.Errorf("total %d, listed %d", total, len(got))
			}
		})
	}
}

// TestIDListingPassesOnALyingTotal: a vendor whose count says more
// documents than its pages hold is reported as it is, so that the engine,
// seeing fewer distinct ids than the total, applies no deletion from the
// pass; the listing still ends where the pages do.
func TestIDListingPassesOnALyingTotal(t *testing.T) {
	lie := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/Invoices") {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var env map[string]any
			body := rec.Body.Bytes()
			if json.Unmarshal(body, &env) == nil {
				if p, ok := env["pagination"].(map[string]any); ok {
					p["itemCount"] = p["itemCount"].(float64) + 5
					body, _ = json.Marshal(env)
				}
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(body)
		})
	}
	h := newHarness(t, sim.Options{}, lie)
	h.withPageSize(t, 10)
	got, total, _ := listAll(t, h.conn.(connectors.IDLister), model.KindInvoice)
	if len(got) == 0 || total != len(got)+5 {
		t.Errorf("listed %d ids with total %d; want the vendor's count, %d", len(got), total, len(got)+5)
	}
}

// TestReadDocs: chosen contacts and invoices come in one request with the
// IDs filter (page 1: whole documents), credit notes one request each; the
// records equal a full read's, people and lines included; an id Xero does
// not have is left out; too many ids or one that is no GUID fail without a
// request.
func TestReadDocs(t *testing.T) {
	rc := &recorder{}
	h := newHarness(t, sim.Options{}, rc.wrap)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	r := h.conn.(connectors.DocReader)
	const unknown = "00000000-0000-4000-8000-000000000000"
	var custIDs, invIDs, cnIDs []string
	h.sim.Dataset().View(func(d *simkit.Dataset) {
		custIDs = []string{d.Customers[0].ID, d.Customers[1].ID}
		invIDs = []string{d.Invoices[0].ID, d.Invoices[1].ID}
		cnIDs = []string{d.CreditNotes[0].ID, d.CreditNotes[1].ID}
	})
	for _, tc := range []struct {
		kind     model.Kind
		ids      []string
		calls    int
		max      int
		children bool
	}{
		{model.KindCustomer, custIDs, 1, maxIDsPerRead, true},
		{model.KindInvoice, invIDs, 1, maxIDsPerRead, false},
		{model.KindCreditNote, cnIDs, 3, creditNotesPerRead, false},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			if n := r.MaxDocsPerRead(tc.kind); n != tc.max {
				t.Errorf("MaxDocsPerRead = %d, want %d", n, tc.max)
			}
			rc.take()
			p, err := r.ReadDocs(context.Background(), tc.kind, append(append([]string(nil), tc.ids...), unknown))
			if err != nil {
				t.Fatal(err)
			}
			reqs := rc.take()
			if p.Calls != tc.calls || len(reqs) != tc.calls {
				t.Errorf("%d calls reported, %d requests; want %d", p.Calls, len(reqs), tc.calls)
			}
			if tc.calls == 1 {
				q := reqs[0].URL.Query()
				if q.Get("IDs") != strings.Join(append(append([]string(nil), tc.ids...), unknown), ",") || q.Get("page") != "1" || q.Get("summaryOnly") != "" {
					t.Errorf("request %s, want the IDs filter on page 1 of whole documents", reqs[0].URL)
				}
			}
			seen := map[string]bool{}
			for _, rec := range p.Records {
				stored, ok := h.get(rec.Kind, rec.VendorID)
				ha, _ := rec.ContentHash()
				hb, _ := stored.ContentHash()
				if !ok || ha != hb || !rec.ModifiedAt.Equal(stored.ModifiedAt) || rec.Parent != stored.Parent {
					t.Errorf("%s %s maps differently from the full read", rec.Kind, rec.VendorID)
				}
				if rec.Kind == tc.kind {
					seen[rec.VendorID] = true
					if tc.children && len(rec.Children) == 0 {
						t.Errorf("%s %s carries no children", rec.Kind, rec.VendorID)
					}
				}
				if inv, ok := rec.Data.(*model.Invoice); ok && len(inv.Lines) == 0 {
					t.Errorf("invoice %s came without lines", rec.VendorID)
				}
			}
			for _, id := range tc.ids {
				if !seen[id] {
					t.Errorf("%s was not read", id)
				}
			}
			if seen[unknown] || len(seen) != len(tc.ids) {
				t.Errorf("read %v, want exactly %v", seen, tc.ids)
			}
			if tc.kind == model.KindCustomer {
				var people int
				for _, rec := range p.Records {
					if rec.Kind == model.KindContact {
						people++
					}
				}
				if people == 0 {
					t.Error("the contacts came without their people")
				}
			}
		})
	}
	rc.take()
	if _, err := r.ReadDocs(context.Background(), model.KindInvoice, []string{"INV-0001"}); err == nil {
		t.Error("an id that is no GUID was read")
	}
	if _, err := r.ReadDocs(context.Background(), model.KindCreditNote, make([]string, creditNotesPerRead+1)); err == nil {
		t.Error("more ids than MaxDocsPerRead were read")
	}
	if reqs := rc.take(); len(reqs) != 0 {
		t.Errorf("refused reads sent %d requests", len(reqs))
	}
	if p, err := r.ReadDocs(context.Background(), model.KindInvoice, nil); err != nil || len(p.Records) != 0 || p.Calls != 0 {
		t.Errorf("reading no ids: %v, %+v", err, p)
	}
}
