package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/erpsync/erpsync-operator/connectors/simkit"
)

func TestSplitCompanyPath(t *testing.T) {
	for _, tc := range []struct {
		path     string
		n        int
		wantK    int
		wantRest string
		wantOK   bool
	}{
		{"/companies/1/v1/products", 3, 1, "/v1/products", true},
		{"/companies/3/api.xro/2.0/Items", 3, 3, "/api.xro/2.0/Items", true},
		{"/companies/2", 3, 2, "/", true},
		{"/companies/12/x", 20, 12, "/x", true},
		{"/companies/4/v1", 3, 0, "", false},
		{"/companies/0/v1", 3, 0, "", false},
		{"/companies/01/v1", 3, 0, "", false},
		{"/companies/-1/v1", 3, 0, "", false},
		{"/companies/+1/v1", 3, 0, "", false},
		{"/companies//v1", 3, 0, "", false},
		{"/companies/1x/v1", 3, 0, "", false},
		{"/v1/products", 3, 0, "", false},
		{"/companiesX/1/v1", 3, 0, "", false},
	} {
		k, rest, ok := splitCompanyPath(tc.path, tc.n)
		if k != tc.wantK || rest != tc.wantRest || ok != tc.wantOK {
			t.Errorf("splitCompanyPath(%q, %d) = %d, %q, %v; want %d, %q, %v", tc.path, tc.n, k, rest, ok, tc.wantK, tc.wantRest, tc.wantOK)
		}
	}
}

// TestCompanies serves three companies per vendor and checks that each
// company answers with its own credentials only, at its own path, and that
// every company's credentials differ and are the same on every run.
func TestCompanies(t *testing.T) {
	ds := simkit.Options{Seed: 5, Products: 4, Customers: 2, Orders: 2, Warehouses: 1}
	f, err := start(context.Background(), config{listen: "127.0.0.1", adminAddr: "127.0.0.1:0", timeScale: 1, dataset: ds,
		vendors: []string{"katana", "cin7core"}, companies: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.shutdown)
	st := f.state()
	if len(st.Vendors) != 2 {
		t.Fatalf("%d vendors, want 2", len(st.Vendors))
	}
	for _, v := range st.Vendors {
		if len(v.Companies) != 3 {
			t.Fatalf("%s: %d companies, want 3", v.Vendor, len(v.Companies))
		}
		if v.BaseURL != v.Companies[0].BaseURL {
			t.Errorf("%s: baseURL %s is not company 1's %s", v.Vendor, v.BaseURL, v.Companies[0].BaseURL)
		}
		seen := map[string]bool{}
		for i, c := range v.Companies {
			if c.Company != i+1 {
				t.Errorf("%s: company %d listed as %d", v.Vendor, i+1, c.Company)
			}
			key := c.Credentials["apiKey"] + c.Credentials["applicationKey"]
			if key == "" || seen[key] {
				t.Errorf("%s company %d: credentials %v empty or shared", v.Vendor, c.Company, c.Credentials)
			}
			seen[key] = true
		}
	}
	// Deterministic: a second fleet derives the same credentials.
	again := newVendor("katana", ds, simConfig{timeScale: 1}, 2)
	if got, want := again.sim.Credentials()["apiKey"], st.Vendors[1].Companies[1].Credentials["apiKey"]; got != want {
		t.Errorf("katana company 2's key differs between runs: %s, then %s", want, got)
	}

	katana := st.Vendors[1]
	get := func(url, key string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url+"/products?limit=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	c1, c2 := katana.Companies[0], katana.Companies[1]
	for _, tc := range []struct {
		name, url, key string
		want           int
	}{
		{"company 1, own key", c1.BaseURL, c1.Credentials["apiKey"], http.StatusOK},
		{"company 2, own key", c2.BaseURL, c2.Credentials["apiKey"], http.StatusOK},
		{"company 2, company 1's key", c2.BaseURL, c1.Credentials["apiKey"], http.StatusUnauthorized},
		{"no such company", f.vendors[1].rootURL + "/companies/4/v1", c1.Credentials["apiKey"], http.StatusNotFound},
		{"the root is not a company", f.vendors[1].rootURL + "/v1", c1.Credentials["apiKey"], http.StatusNotFound},
	} {
		if got := get(tc.url, tc.key); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
	}
	// Requests are counted per company (the refused one by company 2, the
	// unknown paths by none) and summed per vendor.
	for i, want := range []int64{1, 2, 0} {
		if got := f.vendors[1].companies[i].Stats().Requests.Load(); got != want {
			t.Errorf("company %d counted %d requests, want %d", i+1, got, want)
		}
	}
	if got, want := f.vendors[1].state(false).Requests, int64(3); got != want {
		t.Errorf("katana counted %d requests over its companies, want %d", got, want)
	}
}
