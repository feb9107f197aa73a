package main

import (
	"net/http"

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

// vendors builds every simulator, each with its own copy of the seeded
// dataset, in a fixed order (the --base-port order).
func vendors(ds simkit.Options, timeScale float64) []vendor {
	return []vendor{
		{name: "unleashed", sim: unleashedsim.New(unleashedsim.Options{Dataset: ds, TimeScale: timeScale}),
			apiRoot: func(root string) string { return root }},
		{name: "cin7omni", sim: cin7omnisim.New(cin7omnisim.Options{Dataset: ds, TimeScale: timeScale}),
			apiRoot: func(root string) string { return root + "/api/" }},
		{name: "cin7core", sim: cin7coresim.New(cin7coresim.Options{Dataset: ds, TimeScale: timeScale}),
			apiRoot: func(root string) string { return root + "/ExternalApi/v2/" }},
		{name: "xero", sim: xerosim.New(xerosim.Options{Dataset: ds, TimeScale: timeScale}),
			apiRoot:          func(root string) string { return root + xerosim.APIPath },
			extraCredentials: func(root string) map[string]string { return map[string]string{"tokenURL": root + xerosim.TokenPath} }},
		{name: "katana", sim: katanasim.New(katanasim.Options{Dataset: ds, TimeScale: timeScale}),
			apiRoot: func(root string) string { return root + katanasim.BasePath }},
	}
}
