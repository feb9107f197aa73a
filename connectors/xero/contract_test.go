package xero

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/contracttest"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
)

// xeroAllow lists where Xero's own OpenAPI document is wrong, each with the
// evidence. Keep it short; drop entries Check reports unused.
var xeroAllow = []contracttest.Allow{}

// TestContract checks every request the connector sends and every response
// the simulator returns during a full and an incremental import, and a
// refused token, against ../shared/specs/xero_accounting.yaml.
func TestContract(t *testing.T) {
	var spec *contracttest.Spec
	h := newHarness(t, sim.Options{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { spec.Middleware(next).ServeHTTP(w, r) })
	})
	spec = contracttest.Load(t, contracttest.Options{File: "xero_accounting.yaml", ServerURL: h.srv.URL + sim.APIPath, Allow: xeroAllow,
		Paths: []string{"/Items", "/Contacts", "/Invoices", "/CreditNotes", "/TaxRates", "/Currencies"},
		Ignore: []contracttest.Ignore{
			{PathPrefix: sim.TokenPath, Reason: "identity.xero.com/connect/token is in Xero's identity document, not the Accounting one"},
			{PathPrefix: sim.ConnectionsPath, Reason: "GET /connections is in xero-identity.yaml, not saved in ../shared/specs"},
		}})
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("import: %v", err)
	}
	h.clock.Advance(10 * time.Minute)
	h.sim.Dataset().TouchProducts(3)
	h.sim.Dataset().TouchCustomers(2)
	h.sim.Dataset().TouchOrders(2)
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("incremental run: %v", err)
	}
	spec.Check(t, "getItems", "getContacts", "getInvoices", "getCreditNotes", "getTaxRates", "getCurrencies")
}
