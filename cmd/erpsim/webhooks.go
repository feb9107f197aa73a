package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/erpsync/erpsync-operator/connectors/simkit"

	cin7coresim "github.com/erpsync/erpsync-operator/connectors/cin7core/sim"
	katanasim "github.com/erpsync/erpsync-operator/connectors/katana/sim"
	unleashedsim "github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
	xerosim "github.com/erpsync/erpsync-operator/connectors/xero/sim"
)

// Webhooks in erpsim (issue 14). Every webhook vendor's simulator delivers
// signed events of every change of its dataset to the URLs subscribed to
// it, with that vendor's payload, retries and disabling (the simulators'
// webhooks.go). Katana, Unleashed and Cin7 Core are subscribed through
// their own APIs, which the operator calls (--webhook-public-url); erpsim
// only lets them deliver to plain-http loopback receivers. Xero's one
// subscription per app is made in its developer portal, which the admin
// API plays, because the manager's receiver URL is known only after
// erpsim has started:
//
//	PUT    /vendors/xero/webhook          {"url": "...", "key": "", "tenant": "", "categories": [...]}
//	POST   /vendors/xero/webhook/intent   Xero's intent-to-receive check against the URL
//	DELETE /vendors/xero/webhook
//	GET    /vendors/{vendor}/webhooks     every subscription with its delivery counters
//
// The app's webhook key (the one PUT returns when the body names none) is
// published beforehand in Xero's credentials as webhookKey, so that a
// credentials Secret made from erpsim's state holds it. A PUT replaces the
// subscription and needs the check again before anything is delivered.
// GET /vendors and GET /vendors/{vendor}/stats show each webhook vendor's
// totals under "webhooks".

// WebhookState is one subscription of a vendor as the admin API shows it:
// where it delivers and what its deliverer did; never its key or token.
type WebhookState struct {
	// ID is the vendor's id of the subscription ("" for Xero's one).
	ID     string   `json:"id,omitempty"`
	URL    string   `json:"url"`
	Events []string `json:"events,omitempty"`
	// Status is "active" or "disabled" (Xero: the portal's status, OK,
	// INTENT_TO_RECEIVE_REQUIRED or DISABLED).
	Status string `json:"status"`
	// The deliverer's counters. Cin7 Core's webhooks of one URL share one
	// deliverer: each shows the shared counters.
	Delivered int64 `json:"delivered"`
	Failed    int64 `json:"failed"`
	Attempts  int64 `json:"attempts"`
	Dropped   int64 `json:"dropped"`
	Pending   int   `json:"pending"`
}

// WebhookTotals sums a vendor's subscriptions (every company's, with
// --companies), each deliverer counted once.
type WebhookTotals struct {
	Subscriptions int   `json:"subscriptions"`
	Delivered     int64 `json:"delivered"`
	Failed        int64 `json:"failed"`
	Attempts      int64 `json:"attempts"`
	Dropped       int64 `json:"dropped"`
	Pending       int   `json:"pending"`
}

// xeroPortal is the body of PUT /vendors/xero/webhook: what the developer
// portal's form holds.
type xeroPortal struct {
	URL        string   `json:"url"`
	Key        string   `json:"key"`
	Tenant     string   `json:"tenant"`
	Categories []string `json:"categories"`
}

// xeroWebhook is the answer of PUT and of the intent check.
type xeroWebhook struct {
	URL        string   `json:"url"`
	Key        string   `json:"key,omitempty"`
	Tenant     string   `json:"tenant"`
	Categories []string `json:"categories"`
	Status     string   `json:"status"`
	Error      string   `json:"error,omitempty"`
}

// errNoWebhooks: the vendor sends no webhooks.
var errNoWebhooks = errors.New("this vendor sends no webhooks")

// webhooksOf returns a simulator's subscriptions, the deliverer of each (nil
// when the simulator does not expose it), or errNoWebhooks.
func webhooksOf(sim simulator) ([]WebhookState, []*simkit.Deliverer, error) {
	var (
		out []WebhookState
		ds  []*simkit.Deliverer
	)
	add := func(w WebhookState, d *simkit.Deliverer) {
		if d != nil {
			st := d.Stats()
			w.Delivered, w.Failed, w.Attempts, w.Dropped, w.Pending = st.Delivered.Load(), st.Failed.Load(), st.Attempts.Load(), st.Dropped.Load(), d.Pending()
		}
		out = append(out, w)
		ds = append(ds, d)
	}
	switch s := sim.(type) {
	case *xerosim.Server:
		for _, w := range s.WebhookSubscriptions() {
			// Xero's counters include the changes dropped while gathering.
			out = append(out, WebhookState{URL: w.URL, Events: w.Categories, Status: w.Status,
				Delivered: w.Delivered, Failed: w.Failed, Attempts: w.Attempts, Dropped: w.Dropped, Pending: w.Pending})
			ds = append(ds, nil)
		}
	case *katanasim.Server:
		for _, w := range s.WebhookSubscriptions() {
			add(WebhookState{ID: strconv.Itoa(w.ID), URL: w.URL, Events: w.Events, Status: activeOr(w.Enabled && !w.Deliverer.Disabled())}, w.Deliverer)
		}
	case *unleashedsim.Server:
		for _, w := range s.WebhookSubscriptions() {
			add(WebhookState{ID: w.ID, URL: w.URL, Events: w.EventTypes, Status: activeOr(!w.Disabled)}, s.WebhookDeliverer(w.ID))
		}
	case *cin7coresim.Server:
		for _, w := range s.WebhookSubscriptions() {
			add(WebhookState{ID: w.ID, URL: w.ExternalURL, Events: []string{w.Type}, Status: activeOr(w.IsActive)}, s.WebhookDeliverer(w.ExternalURL))
		}
	default:
		return nil, nil, errNoWebhooks
	}
	return out, ds, nil
}

func activeOr(active bool) string {
	if active {
		return "active"
	}
	return "disabled"
}

// webhookTotals sums the subscriptions of sims; nil when the vendor sends
// no webhooks.
func webhookTotals(sims []simulator) *WebhookTotals {
	var t *WebhookTotals
	seen := map[*simkit.Deliverer]bool{}
	for _, sim := range sims {
		ws, ds, err := webhooksOf(sim)
		if err != nil {
			return nil
		}
		if t == nil {
			t = &WebhookTotals{}
		}
		for i, w := range ws {
			t.Subscriptions++
			if d := ds[i]; d != nil {
				if seen[d] {
					continue
				}
				seen[d] = true
			}
			t.Delivered += w.Delivered
			t.Failed += w.Failed
			t.Attempts += w.Attempts
			t.Dropped += w.Dropped
			t.Pending += w.Pending
		}
	}
	return t
}

// closeWebhooks stops a simulator's deliveries (at shutdown).
func closeWebhooks(sim simulator) {
	switch s := sim.(type) {
	case interface{ CloseWebhooks() }:
		s.CloseWebhooks()
	case interface{ Close() }:
		s.Close()
	}
}

func (f *fleet) webhookRoutes(mux *http.ServeMux) {
	withVendor := func(h func(w http.ResponseWriter, r *http.Request, v *runningVendor)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v, err := f.find(r.PathValue("vendor"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			h(w, r, v)
		}
	}
	withXero := func(h func(w http.ResponseWriter, r *http.Request, x *xerosim.Server)) http.HandlerFunc {
		return withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
			x, ok := v.sim.(*xerosim.Server)
			if !ok {
				http.Error(w, fmt.Sprintf("%s's webhooks are subscribed through its API (the operator does it); only Xero's subscription is made in a portal", v.name), http.StatusNotFound)
				return
			}
			h(w, r, x)
		})
	}
	mux.HandleFunc("GET /vendors/{vendor}/webhooks", withVendor(func(w http.ResponseWriter, r *http.Request, v *runningVendor) {
		ws, _, err := webhooksOf(v.sim)
		if err != nil {
			http.Error(w, v.name+": "+err.Error(), http.StatusNotFound)
			return
		}
		if ws == nil {
			ws = []WebhookState{}
		}
		writeJSON(w, ws)
	}))
	mux.HandleFunc("PUT /vendors/{vendor}/webhook", withXero(func(w http.ResponseWriter, r *http.Request, x *xerosim.Server) {
		var p xeroPortal
		if !readBody(w, r, &p) {
			return
		}
		if p.URL == "" {
			http.Error(w, `want {"url": "https://…/webhooks/xero"} (and optionally "key", "tenant", "categories")`, http.StatusBadRequest)
			return
		}
		key, err := x.SetWebhook(xerosim.WebhookConfig{URL: p.URL, Key: p.Key, Tenant: p.Tenant, Categories: p.Categories})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out := xeroState(x)
		out.Key = key
		writeJSON(w, out)
	}))
	mux.HandleFunc("POST /vendors/{vendor}/webhook/intent", withXero(func(w http.ResponseWriter, r *http.Request, x *xerosim.Server) {
		if len(x.WebhookSubscriptions()) == 0 {
			http.Error(w, "the Xero app has no webhook: PUT /vendors/xero/webhook first", http.StatusConflict)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*xerosim.WebhookTimeout+time.Second)
		defer cancel()
		_, err := x.IntentToReceive(ctx)
		out := xeroState(x)
		if err != nil {
			out.Error = err.Error()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_ = json.NewEncoder(w).Encode(out)
			return
		}
		writeJSON(w, out)
	}))
	mux.HandleFunc("DELETE /vendors/{vendor}/webhook", withXero(func(w http.ResponseWriter, r *http.Request, x *xerosim.Server) {
		x.RemoveWebhook()
		w.WriteHeader(http.StatusNoContent)
	}))
}

// xeroState is the Xero app's webhook as the portal shows it (no key).
func xeroState(x *xerosim.Server) xeroWebhook {
	ws := x.WebhookSubscriptions()
	if len(ws) == 0 {
		return xeroWebhook{Status: "NONE"}
	}
	s := ws[0]
	return xeroWebhook{URL: s.URL, Tenant: s.Tenant, Categories: s.Categories, Status: s.Status}
}
