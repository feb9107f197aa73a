package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
	"github.com/erpsync/erpsync-operator/internal/localenv"
)

// The demo's webhook part: Xero's app webhook is pointed at the receiver
// (erpsim plays the developer portal; the other vendors were subscribed by
// the operator in the first sync), then one record of each webhook vendor
// is changed through erpsim's admin API and the CRM is watched until its
// new version is there.

// hookChanges is what the demo changes in each vendor: a record of a kind
// its webhooks announce (Xero has no item events), with the CRM table and
// natural-key column that find it.
var hookChanges = []struct {
	vendor, kind, table, col string
}{
	{"unleashed", simkit.AdminProducts, "products", "sku"},
	{"cin7core", simkit.AdminProducts, "products", "sku"},
	{"xero", simkit.AdminCustomers, "customers", "code"},
	{"katana", simkit.AdminProducts, "products", "sku"},
}

// arrivalBound is how long the demo waits for a change to reach the CRM.
const arrivalBound = 30 * time.Second

func showWebhooks(ctx context.Context, kubectl func(args ...string) (string, error), adminURL, hookURL, crm string) error {
	xero := sampleOf("xero")
	path, err := kubectl("get", "-n", "erpsync-demo", "erpsync/"+xero.ErpSync, "-o", "jsonpath={.status.webhooks.path}")
	if err != nil {
		return err
	}
	if path = strings.TrimSpace(path); path == "" {
		return errors.New("the Xero ErpSync shows no webhook path (status.webhooks.path)")
	}
	step("Xero's webhook is made in its developer portal: erpsim plays it, with the URL %s%s, then Xero's intent-to-receive check against the receiver", hookURL, path)
	if _, err := admin(ctx, adminURL, http.MethodPut, "/vendors/xero/webhook", fmt.Sprintf(`{"url": %q}`, hookURL+path)); err != nil {
		return err
	}
	out, err := admin(ctx, adminURL, http.MethodPost, "/vendors/xero/webhook/intent", "")
	if err != nil {
		return fmt.Errorf("xero's intent to receive: %w", err)
	}
	var portal struct{ Status string }
	_ = json.Unmarshal(out, &portal)
	fmt.Printf("    Xero's webhook status: %s\n", portal.Status)

	db, err := sql.Open("sqlite", "file:"+crm+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("opening the CRM database: %w", err)
	}
	defer db.Close()
	step("changing one record in each vendor that sends webhooks (erpsim's admin API); the CRM has each within seconds, long before the next poll")
	for _, h := range hookChanges {
		s := sampleOf(h.vendor)
		var refs []simkit.RecordRef
		b, err := admin(ctx, adminURL, http.MethodGet, "/vendors/"+h.vendor+"/records/"+h.kind, "")
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &refs); err != nil {
			return fmt.Errorf("erpsim's %s %s: %w", h.vendor, h.kind, err)
		}
		var ref simkit.RecordRef
		for i := len(refs) - 1; i >= 0 && ref.ID == ""; i-- {
			if !refs[i].Deleted && refs[i].Key != "" {
				ref = refs[i]
			}
		}
		if ref.ID == "" {
			return fmt.Errorf("erpsim's %s has no live %s", h.vendor, h.kind)
		}
		q := fmt.Sprintf("SELECT max(synced_at) FROM %s WHERE company = ? AND %s = ?", h.table, h.col)
		var before sql.NullString
		if err := db.QueryRowContext(ctx, q, s.Company, ref.Key).Scan(&before); err != nil {
			return fmt.Errorf("reading the CRM: %w", err)
		}
		at := time.Now()
		if _, err := admin(ctx, adminURL, http.MethodPatch, "/vendors/"+h.vendor+"/records/"+h.kind+"/"+ref.ID, `{}`); err != nil {
			return err
		}
		var synced sql.NullString
		for {
			if err := db.QueryRowContext(ctx, q, s.Company, ref.Key).Scan(&synced); err != nil {
				return fmt.Errorf("reading the CRM: %w", err)
			}
			if synced.Valid && synced.String > before.String {
				break
			}
			if time.Since(at) > arrivalBound {
				return fmt.Errorf("%s: the change of %s %s did not reach the CRM within %s", h.vendor, h.kind, ref.Key, arrivalBound)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		got, err := time.Parse("2006-01-02T15:04:05.000000Z", synced.String)
		if err != nil {
			return fmt.Errorf("the CRM's synced_at %q: %w", synced.String, err)
		}
		fmt.Printf("    %-9s %-9s %-14s changed in erpsim, in the CRM %.1f s later\n", h.vendor, strings.TrimSuffix(h.kind, "s"), ref.Key, got.Sub(at).Seconds())
	}
	out2, err := kubectl("get", "erpsyncs", "-n", "erpsync-demo", "-o",
		`custom-columns=NAME:.metadata.name,WEBHOOKS:.status.conditions[?(@.type=="WebhooksReady")].reason,EVENTS:.status.webhooks.accepted,TARGETED SYNCS:.status.webhooks.targetedSyncs,LAST SYNC:.status.lastSyncEnd`)
	if err != nil {
		return err
	}
	fmt.Print("\n$ kubectl get erpsyncs -n erpsync-demo -o custom-columns=NAME,WEBHOOKS,EVENTS,TARGETED SYNCS,LAST SYNC\n" + out2)
	fmt.Println("    (Xero's WebhooksReady says Active from its next poll on; Cin7 Omni sends no webhooks and is polled only.)")
	return nil
}

func sampleOf(vendor string) localenv.Sample {
	for _, s := range localenv.Samples {
		if s.Vendor == vendor {
			return s
		}
	}
	return localenv.Sample{}
}

// admin calls erpsim's admin API and returns the body of a 2xx answer.
func admin(ctx context.Context, base, method, path, body string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("erpsim %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("erpsim %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("erpsim %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
