package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// With --companies N every vendor serves N companies on its one listener,
// company k (1..N) under the path /companies/k: each with its own dataset,
// its own credentials and its own rate limits and quotas (a simulator of
// its own), as N accounts at the vendor would be. Traffic of many
// companies thus stays on one address, and the limits a connector meets
// are per company, as in production.

// companyPathPrefix is the first segment of every company's path.
const companyPathPrefix = "/companies/"

// companyRoot returns the root URL of company k on a vendor's listener.
func companyRoot(rootURL string, k int) string {
	return rootURL + companyPathPrefix + strconv.Itoa(k)
}

// splitCompanyPath splits a request path "/companies/k/rest" into k and
// "/rest". ok is false for any other path and for k outside 1..n.
func splitCompanyPath(path string, n int) (k int, rest string, ok bool) {
	tail, found := strings.CutPrefix(path, companyPathPrefix)
	if !found {
		return 0, "", false
	}
	num, rest, _ := strings.Cut(tail, "/")
	// Digits only: no sign, no spaces, no leading zero.
	if num == "" || len(num) > 9 || num[0] == '0' || strings.TrimLeft(num, "0123456789") != "" {
		return 0, "", false
	}
	k, err := strconv.Atoi(num)
	if err != nil || k < 1 || k > n {
		return 0, "", false
	}
	return k, "/" + rest, true
}

// companiesHandler serves each company's simulator under its path, the
// prefix stripped, so that each simulator sees the paths it serves alone.
func companiesHandler(sims []simulator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, rest, ok := splitCompanyPath(r.URL.Path, len(sims))
		if !ok {
			http.Error(w, fmt.Sprintf("erpsim serves %d companies here, under %s1 to %s%d", len(sims), companyPathPrefix, companyPathPrefix, len(sims)), http.StatusNotFound)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = rest, ""
		r2.URL = &u
		sims[k-1].ServeHTTP(w, r2)
	})
}

// CompanyState is what erpsim publishes of one company of a vendor.
type CompanyState struct {
	Company     int               `json:"company"`
	BaseURL     string            `json:"baseURL"`
	Credentials map[string]string `json:"credentials"`
}
