package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/simkit"

	cin7coresim "github.com/erpsync/erpsync-operator/connectors/cin7core/sim"
	cin7omnisim "github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
	katanasim "github.com/erpsync/erpsync-operator/connectors/katana/sim"
	unleashedsim "github.com/erpsync/erpsync-operator/connectors/unleashed/sim"
	xerosim "github.com/erpsync/erpsync-operator/connectors/xero/sim"
)

// simulator is what every vendor simulator offers.
type simulator interface {
	http.Handler
	Credentials() map[string]string
	Dataset() *simkit.Dataset
	Stats() *simkit.Stats
	Expected() map[model.Kind]int
	// SetListShare serves only the head (pct percent) of every list, ids
	// and totals included (simkit.Base): a vendor that lies.
	SetListShare(pct int)
}

// vendor is one simulated ERP.
type vendor struct {
	name string
	sim  simulator
	// apiRoot turns the listener's root URL into the spec.connector.baseURL
	// the connector expects (the vendor's API root on the simulator).
	apiRoot func(root string) string
	// extraCredentials, when set, are Secret keys that depend on where the
	// simulator listens (Xero's tokenURL: the manager never derives the
	// token endpoint from a tenant's baseURL).
	extraCredentials func(root string) map[string]string
}

// vendorNames is the fixed order of the vendors (the --base-port order).
var vendorNames = []string{"unleashed", "cin7omni", "cin7core", "xero", "katana"}

// vendors builds every simulator, each with its own copy of the seeded
// dataset, in a fixed order (the --base-port order).
func vendors(ds simkit.Options, timeScale float64) []vendor {
	out := make([]vendor, 0, len(vendorNames))
	for _, name := range vendorNames {
		out = append(out, newVendor(name, ds, simConfig{timeScale: timeScale}, 0))
	}
	return out
}

// newVendor builds one vendor's simulator. Company 0 is erpsim's single
// company: the simulator's default credentials and the dataset of ds.Seed.
// Company k >= 1 (--companies) has a dataset of its own (seed ds.Seed+k)
// and credentials derived from the vendor's name and k, so that they are
// the same on every run and differ between companies: each company is its
// own account at the vendor, metered by its own limits (and what
// sc.quotaSpent says each spent of its daily quota before).
func newVendor(name string, ds simkit.Options, sc simConfig, k int) vendor {
	timeScale := sc.timeScale
	if k > 0 {
		ds.Seed += uint64(k)
	}
	cred := func(what string) string {
		if k == 0 {
			return "" // the simulator's default
		}
		return companySecret(name, k, what)
	}
	switch name {
	case "unleashed":
		return vendor{name: name, sim: unleashedsim.New(unleashedsim.Options{Dataset: ds, TimeScale: timeScale,
			APIID: companyGUID(cred("apiId")), APIKey: cred("apiKey")}),
			apiRoot: func(root string) string { return root }}
	case "cin7omni":
		return vendor{name: name, sim: cin7omnisim.New(cin7omnisim.Options{Dataset: ds, TimeScale: timeScale,
			Username: companyUser(k), APIKey: cred("apiKey"), PerDay: dayLimitLeft(name, sc.quotaSpent)}),
			apiRoot: func(root string) string { return root + "/api/" }}
	case "cin7core":
		return vendor{name: name, sim: cin7coresim.New(cin7coresim.Options{Dataset: ds, TimeScale: timeScale,
			AccountID: companyGUID(cred("accountId")), ApplicationKey: companyGUID(cred("applicationKey"))}),
			apiRoot: func(root string) string { return root + "/ExternalApi/v2/" }}
	case "xero":
		return vendor{name: name, sim: xerosim.New(xerosim.Options{Dataset: ds, TimeScale: timeScale,
			ClientID: upperHex(cred("clientId")), ClientSecret: cred("clientSecret"), DayLimit: dayLimitLeft(name, sc.quotaSpent)}),
			apiRoot: func(root string) string { return root + xerosim.APIPath },
			// The app's webhook key, as the developer portal shows it
			// (what PUT /vendors/xero/webhook sets when it names none):
			// a Secret made from these credentials verifies deliveries.
			extraCredentials: func(root string) map[string]string {
				return map[string]string{"tokenURL": root + xerosim.TokenPath, connectors.WebhookKeyXero: xerosim.WebhookKeyOf(ds.Seed)}
			}}
	case "katana":
		// Katana wants https webhook URLs; erpsim's receivers are plain
		// http on loopback (the manager's, in the demo and the tests).
		return vendor{name: name, sim: katanasim.New(katanasim.Options{Dataset: ds, TimeScale: timeScale, APIKey: cred("apiKey"), AllowHTTPWebhooks: true}),
			apiRoot: func(root string) string { return root + katanasim.BasePath }}
	}
	panic("erpsim: no such vendor " + name) // vendorNames lists only the cases above
}

// companySecret is a deterministic 64-hex-digit secret for one key of one
// company of a vendor.
func companySecret(vendor string, k int, what string) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "erpsim/%s/company/%d/%s", vendor, k, what))
	return hex.EncodeToString(sum[:])
}

// companyGUID shapes a hex secret as a GUID ("" stays "": the default).
func companyGUID(h string) string {
	if h == "" {
		return ""
	}
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// companyUser is company k's Cin7 Omni username ("" for company 0: the
// default).
func companyUser(k int) string {
	if k == 0 {
		return ""
	}
	return fmt.Sprintf("Company%05d", k)
}

// upperHex is the first 32 digits of a hex secret in upper case, the shape
// of a Xero client id ("" stays "").
func upperHex(h string) string {
	if h == "" {
		return ""
	}
	b := []byte(h[:32])
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
