package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/connectors/xero"
)

// receiver is a webhook endpoint for the tests: it verifies each delivery
// with the connector's codec and the key, answers as a Xero receiver must
// (200 with no body, 401 when the signature is wrong) unless status says
// otherwise, and keeps what it accepted.
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	key []byte

	mu        sync.Mutex
	status    func(authentic bool) (int, string) // nil: 200 or 401, no body
	bodies    [][]byte
	events    []connectors.WebhookEvent
	seqs      [][2]int
	rejected  int
	refusedOK int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	err := xero.Webhooks.Verify(req.Header, body, map[string][]byte{connectors.WebhookKeyXero: r.key}, time.Now())
	authentic := err == nil
	status, reply := http.StatusOK, ""
	if !authentic {
		status = http.StatusUnauthorized
	}
	if r.status != nil {
		status, reply = r.status(authentic)
	}
	if !authentic {
		r.rejected++
	}
	if authentic && status == http.StatusOK {
		evs, perr := xero.Webhooks.Parse(req.Header, body)
		if perr != nil {
			r.t.Errorf("an authentic delivery does not parse: %v", perr)
		}
		if len(evs) > 0 {
			r.bodies = append(r.bodies, body)
			r.events = append(r.events, evs...)
			var seq struct{ FirstEventSequence, LastEventSequence int }
			_ = json.Unmarshal(body, &seq)
			r.seqs = append(r.seqs, [2]int{seq.FirstEventSequence, seq.LastEventSequence})
		}
	} else if authentic {
		r.refusedOK++
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, reply)
}

func (r *receiver) setStatus(f func(authentic bool) (int, string)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = f
}

func (r *receiver) got() ([]connectors.WebhookEvent, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events), len(r.bodies)
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hooked starts a simulator with its webhook set to a receiver and the
// intent-to-receive check passed; waits of Xero's time are recorded, not
// slept.
func hooked(t *testing.T, cfg WebhookConfig) (*Server, *receiver, *[]time.Duration) {
	t.Helper()
	s, _, _ := newSim(t, Options{})
	t.Cleanup(s.Close)
	r := newReceiver(t)
	var mu sync.Mutex
	slept := &[]time.Duration{}
	cfg.URL = r.srv.URL + "/webhooks/xero"
	if cfg.Sleep == nil {
		cfg.Sleep = func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			*slept = append(*slept, d)
			mu.Unlock()
			return ctx.Err()
		}
	}
	if cfg.Gather == 0 {
		cfg.Gather = 20 * time.Millisecond
	}
	key, err := s.SetWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.key = []byte(key)
	if st, err := s.IntentToReceive(context.Background()); err != nil || st != WebhookOK {
		t.Fatalf("IntentToReceive = %s, %v", st, err)
	}
	return s, r, slept
}

func firstOf(t *testing.T, s *Server, kind string, pick func(simkit.RecordRef) bool) simkit.RecordRef {
	t.Helper()
	refs, err := s.Dataset().Refs(kind)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if pick == nil || pick(r) {
			return r
		}
	}
	t.Fatalf("no %s fits", kind)
	return simkit.RecordRef{}
}

// TestIntentToReceive: the webhook is OK only when the receiver answers the
// correctly signed check 200 with no body and the wrongly signed one 401;
// until then, changes are not delivered.
func TestIntentToReceive(t *testing.T) {
	tests := []struct {
		name   string
		status func(authentic bool) (int, string)
		ok     bool
	}{
		{name: "a Xero receiver", ok: true},
		{name: "200 to everything", status: func(bool) (int, string) { return 200, "" }},
		{name: "401 to everything", status: func(bool) (int, string) { return 401, "" }},
		{name: "202 instead of 200", status: func(a bool) (int, string) {
			if a {
				return 202, ""
			}
			return 401, ""
		}},
		{name: "a body in the reply", status: func(a bool) (int, string) {
			if a {
				return 200, "thanks"
			}
			return 401, ""
		}},
		{name: "403 for a wrong signature", status: func(a bool) (int, string) {
			if a {
				return 200, ""
			}
			return 403, ""
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _, _ := newSim(t, Options{})
			t.Cleanup(s.Close)
			r := newReceiver(t)
			r.setStatus(tc.status)
			key, err := s.SetWebhook(WebhookConfig{URL: r.srv.URL, Gather: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			r.key = []byte(key)
			if key != WebhookKeyOf(s.opts.Dataset.Seed) {
				t.Fatalf("the portal's key is not the app's")
			}
			if got := s.WebhookSubscriptions(); len(got) != 1 || got[0].Status != WebhookIntentRequired {
				t.Fatalf("before the check: %+v", got)
			}
			// A change before the check is not delivered.
			s.ArchiveContact(firstOf(t, s, simkit.AdminCustomers, nil).ID, true)
			st, err := s.IntentToReceive(context.Background())
			if tc.ok != (err == nil) || tc.ok != (st == WebhookOK) {
				t.Fatalf("IntentToReceive = %s, %v; want OK %t", st, err, tc.ok)
			}
			if got := s.WebhookSubscriptions()[0].Status; got != st {
				t.Fatalf("status %s, IntentToReceive said %s", got, st)
			}
			r.mu.Lock()
			r.status = nil
			r.mu.Unlock()
			s.ArchiveContact(firstOf(t, s, simkit.AdminSuppliers, nil).ID, true)
			if tc.ok {
				waitFor(t, "the delivery", func() bool { evs, _ := r.got(); return len(evs) > 0 })
			} else {
				time.Sleep(50 * time.Millisecond)
			}
			evs, _ := r.got()
			if tc.ok && len(evs) != 1 || !tc.ok && len(evs) != 0 {
				t.Fatalf("delivered %+v", evs)
			}
		})
	}
}

// TestWebhookEvents: each change Xero announces becomes one signed event
// of the simulator's organisation, of the right category and id; items,
// tax rates and orders without a bill announce nothing.
func TestWebhookEvents(t *testing.T) {
	s, r, _ := hooked(t, WebhookConfig{})
	tenant := s.Tenants()[0]
	cust := firstOf(t, s, simkit.AdminCustomers, nil)
	supp := firstOf(t, s, simkit.AdminSuppliers, nil)
	inv := firstOf(t, s, simkit.AdminInvoices, nil)
	cn := firstOf(t, s, simkit.AdminCreditNotes, nil)
	billOrder := firstOf(t, s, simkit.AdminOrders, func(o simkit.RecordRef) bool { return o.Seq%4 == 1 })
	plainOrder := firstOf(t, s, simkit.AdminOrders, func(o simkit.RecordRef) bool { return o.Seq%4 != 1 })
	var bill string
	s.Dataset().View(func(d *simkit.Dataset) {
		for _, o := range d.Orders {
			if o.ID == billOrder.ID {
				bill = billID(o)
			}
		}
	})
	type want struct {
		entity model.Kind
		id     string
		typ    string
	}
	steps := []struct {
		name   string
		change func()
		want   []want
	}{
		{"touch a customer", func() { mustDo(t)(s.Dataset().Touch(simkit.AdminCustomers, cust.ID)) }, []want{{model.KindCustomer, cust.ID, "CONTACT.UPDATE"}}},
		{"archive a supplier", func() { s.ArchiveContact(supp.ID, true) }, []want{{model.KindCustomer, supp.ID, "CONTACT.UPDATE"}}},
		{"void an invoice", func() { s.VoidDocument(inv.ID, false) }, []want{{model.KindInvoice, inv.ID, "INVOICE.UPDATE"}}},
		{"mark a credit note", func() { mustDo(t)(s.Dataset().Mark(simkit.AdminCreditNotes, cn.ID, true, true)) }, []want{{model.KindCreditNote, cn.ID, "CREDITNOTE.UPDATE"}}},
		{"an order with a bill", func() { mustDo(t)(s.Dataset().Touch(simkit.AdminOrders, billOrder.ID)) }, []want{{model.KindInvoice, bill, "INVOICE.UPDATE"}}},
		{"an order without a bill, a product, a tax rate", func() {
			mustDo(t)(s.Dataset().Touch(simkit.AdminOrders, plainOrder.ID))
			s.Dataset().TouchProducts(3)
			mustDo(t)(s.Dataset().Touch(simkit.AdminTaxRates, firstOf(t, s, simkit.AdminTaxRates, nil).ID))
		}, nil},
		{"an invoice of another type", func() { s.AddInvoiceOfType("ARPREPAYMENT") }, []want{{model.KindInvoice, "", "INVOICE.CREATE"}}},
		{"the bill's order removed: an UPDATE, never a deletion", func() { mustDo(t)(s.Dataset().Remove(simkit.AdminOrders, billOrder.ID)) },
			[]want{{model.KindInvoice, bill, "INVOICE.UPDATE"}}},
		{"a customer removed outright", func() { s.Dataset().RemoveCustomers(1, 1) }, []want{{model.KindCustomer, "", "CONTACT.UPDATE"}}},
	}
	seen := 0
	for _, st := range steps {
		st.change()
		time.Sleep(60 * time.Millisecond) // past the gather window: the steps' deliveries stay apart
		if len(st.want) > 0 {
			waitFor(t, st.name, func() bool { evs, _ := r.got(); return len(evs) >= seen+len(st.want) })
		}
		evs, _ := r.got()
		got := evs[seen:]
		if len(got) != len(st.want) {
			t.Fatalf("%s: events %+v, want %+v", st.name, got, st.want)
		}
		for i, w := range st.want {
			e := got[i]
			if e.Entity != w.entity || (w.id != "" && e.ID != w.id) || e.Type != w.typ || e.Tenant != tenant || e.Deleted || e.At.IsZero() {
				t.Errorf("%s: event %+v, want %+v of tenant %s", st.name, e, w, tenant)
			}
		}
		seen = len(evs)
	}
	if sub := s.WebhookSubscriptions()[0]; sub.Events != int64(seen) || sub.Delivered != sub.Deliveries || sub.Failed != 0 {
		t.Fatalf("counters %+v after %d events", sub, seen)
	}
}

func mustDo(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestWebhookBatches: changes made together go out together, at most
// MaxEvents to a delivery, with consecutive sequence numbers; categories
// not subscribed are not sent.
func TestWebhookBatches(t *testing.T) {
	s, r, _ := hooked(t, WebhookConfig{MaxEvents: 40, Gather: 100 * time.Millisecond, Categories: []string{CategoryContact}})
	s.Dataset().TouchOrders(20) // bills: not subscribed
	ids := s.Dataset().TouchCustomers(100)
	waitFor(t, "100 events", func() bool { evs, _ := r.got(); return len(evs) >= 100 })
	time.Sleep(50 * time.Millisecond)
	evs, deliveries := r.got()
	if len(evs) != 100 || deliveries > 4 || deliveries < 3 {
		t.Fatalf("%d events in %d deliveries; want 100 in 3 (40 a delivery)", len(evs), deliveries)
	}
	for i, e := range evs {
		if e.ID != ids[i] || e.Entity != model.KindCustomer {
			t.Fatalf("event %d = %+v, want customer %s", i, e, ids[i])
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := 1
	for _, sq := range r.seqs {
		if sq[0] != next || sq[1]-sq[0]+1 > 40 {
			t.Fatalf("sequences %v", r.seqs)
		}
		next = sq[1] + 1
	}
}

// TestWebhookRetriesThenDisables: a delivery that is not answered 200 is
// repeated over about a day of Xero's time and then the webhook is
// disabled: later changes are not delivered until the portal re-enables it
// (the check again).
func TestWebhookRetriesThenDisables(t *testing.T) {
	s, r, slept := hooked(t, WebhookConfig{})
	r.setStatus(func(bool) (int, string) { return 500, "" })
	cust := firstOf(t, s, simkit.AdminCustomers, nil)
	mustDo(t)(s.Dataset().Touch(simkit.AdminCustomers, cust.ID))
	waitFor(t, "the webhook disabled", func() bool { return s.WebhookSubscriptions()[0].Status == WebhookDisabled })
	sub := s.WebhookSubscriptions()[0]
	if sub.Attempts != int64(len(WebhookRetries)+1) || sub.Failed != 1 || sub.Delivered != 0 {
		t.Fatalf("counters %+v", sub)
	}
	var total time.Duration
	for _, d := range *slept {
		total += d
	}
	if total < 23*time.Hour || total > 25*time.Hour {
		t.Fatalf("retries spanned %v of Xero's time, want about a day", total)
	}
	r.setStatus(nil)
	mustDo(t)(s.Dataset().Touch(simkit.AdminCustomers, cust.ID))
	time.Sleep(50 * time.Millisecond)
	if evs, _ := r.got(); len(evs) != 0 {
		t.Fatalf("a disabled webhook delivered %+v", evs)
	}
	if st, err := s.EnableWebhook(context.Background()); err != nil || st != WebhookOK {
		t.Fatalf("EnableWebhook = %s, %v", st, err)
	}
	mustDo(t)(s.Dataset().Touch(simkit.AdminCustomers, cust.ID))
	waitFor(t, "the delivery after re-enabling", func() bool { evs, _ := r.got(); return len(evs) == 1 })

	// A test (or erpsim) disables it as Xero would, and switches it on
	// through the deliverer.
	if !s.DisableWebhook() || s.WebhookSubscriptions()[0].Status != WebhookDisabled {
		t.Fatalf("DisableWebhook did not disable")
	}
	s.WebhookDeliverer().SetDisabled(false)
	if s.WebhookSubscriptions()[0].Status != WebhookOK {
		t.Fatalf("switching the deliverer on did not make the webhook OK")
	}
}

// TestWebhookRecoversWithinTheRetries: a receiver down for a while gets the
// delivery on a later attempt, and the webhook stays OK.
func TestWebhookRecoversWithinTheRetries(t *testing.T) {
	s, r, _ := hooked(t, WebhookConfig{})
	calls := 0
	r.setStatus(func(a bool) (int, string) {
		if calls++; calls <= 3 {
			return 503, ""
		}
		return 200, ""
	})
	mustDo(t)(s.Dataset().Touch(simkit.AdminInvoices, firstOf(t, s, simkit.AdminInvoices, nil).ID))
	waitFor(t, "the delivery", func() bool { evs, _ := r.got(); return len(evs) == 1 })
	if sub := s.WebhookSubscriptions()[0]; sub.Status != WebhookOK || sub.Attempts != 4 || sub.Delivered != 1 {
		t.Fatalf("after recovering: %+v", sub)
	}
}

// TestSetWebhookChecks: the portal refuses what Xero would.
func TestSetWebhookChecks(t *testing.T) {
	s, _, _ := newSim(t, Options{Tenants: 2})
	t.Cleanup(s.Close)
	for _, cfg := range []WebhookConfig{
		{URL: "not a url"},
		{URL: "ftp://example.com/x"},
		{URL: "https://example.com/x", Tenant: "aef86862-2015-4b6b-88bc-d89032cecc50"},
		{URL: "https://example.com/x", Categories: []string{"PAYMENT"}},
	} {
		if _, err := s.SetWebhook(cfg); err == nil {
			t.Errorf("SetWebhook(%+v) accepted", cfg)
		}
	}
	if _, err := s.IntentToReceive(context.Background()); !errors.Is(err, errNoWebhook) {
		t.Fatalf("IntentToReceive without a webhook = %v", err)
	}
	key, err := s.SetWebhook(WebhookConfig{URL: "https://example.com/x", Tenant: s.Tenants()[1], Key: "mine"})
	if err != nil || key != "mine" {
		t.Fatalf("SetWebhook = %q, %v", key, err)
	}
	if sub := s.WebhookSubscriptions(); len(sub) != 1 || sub[0].Tenant != s.Tenants()[1] || len(sub[0].Categories) != 3 {
		t.Fatalf("subscriptions %+v", sub)
	}
	s.RemoveWebhook()
	if sub := s.WebhookSubscriptions(); sub != nil || s.WebhookDeliverer() != nil || s.DisableWebhook() {
		t.Fatalf("after RemoveWebhook: %+v", sub)
	}
}
