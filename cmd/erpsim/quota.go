package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	cin7omnisim "github.com/erpsync/erpsync-operator/connectors/cin7omni/sim"
)

// With --quota-spent N each credential of the vendors with a daily call
// quota (Cin7 Omni, Xero: 5,000 a day) has spent N calls of it before
// erpsim started: the simulator serves the rest of the day's quota and then
// refuses as the vendor does. It lets a test meet a vendor's real daily
// limit in seconds, not after thousands of calls; a manager that is to
// know it too is given the same count in its quota store. Xero's day is
// a sliding 24 hours in its simulator, Cin7 Omni's the UTC calendar day.
//
// Every answer of those vendors that refuses a call for the quota (not for
// a rate window) is counted, and published as quotaRefused with the
// vendor's stats.

// dailyQuotas are the documented daily call quotas of the simulated
// vendors that have one (per credential).
var dailyQuotas = map[string]int{
	"cin7omni": cin7omnisim.PerDay,
	// Xero's 5,000 a day per organisation (its simulator's default).
	"xero": 5000,
}

// simConfig is what every simulator of a fleet is built with besides its
// dataset.
type simConfig struct {
	timeScale float64
	// quotaSpent is the calls of each credential's daily quota spent
	// before erpsim started (--quota-spent).
	quotaSpent int
}

// checkQuotaSpent rejects a --quota-spent that leaves a served vendor's
// credentials no call of the day, or is negative.
func checkQuotaSpent(spent int, vendors []string) error {
	if spent < 0 {
		return fmt.Errorf("--quota-spent %d: want 0 or more", spent)
	}
	for _, name := range vendorNames {
		served := len(vendors) == 0
		for _, v := range vendors {
			served = served || v == name
		}
		if q, ok := dailyQuotas[name]; ok && served && spent >= q {
			return fmt.Errorf("--quota-spent %d: %s's daily quota is %d calls; leave it at least one", spent, name, q)
		}
	}
	return nil
}

// dayLimitLeft is the daily limit a vendor's simulator is given so that
// it serves what spent calls left of the day's quota: 0 (the simulator's
// default) when nothing was spent or the vendor has no daily quota.
func dayLimitLeft(vendor string, spent int) int {
	q, ok := dailyQuotas[vendor]
	if !ok || spent <= 0 {
		return 0
	}
	return q - spent
}

// quotaRefusal reports whether an answer refuses a call for a daily or
// monthly quota: a 429 whose X-Rate-Limit-Problem names the day or the
// month (Xero), or whose Retry-After runs past two minutes, longer than
// any rate window of the simulated vendors (Cin7 Omni answers every limit
// with 429 and Retry-After; only the day's runs to the reset).
func quotaRefusal(status int, h http.Header) bool {
	if status != http.StatusTooManyRequests {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(h.Get("X-Rate-Limit-Problem"))) {
	case "day", "daily", "month", "monthly":
		return true
	}
	secs, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	return err == nil && time.Duration(secs)*time.Second > 2*time.Minute
}

// countQuotaRefusals counts in n the answers of next that refuse a call
// for a quota.
func countQuotaRefusals(next http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&refusalRecorder{ResponseWriter: w, n: n}, r)
	})
}

// refusalRecorder looks at the status and headers of an answer as it is
// written.
type refusalRecorder struct {
	http.ResponseWriter
	n     *atomic.Int64
	wrote bool
}

func (rw *refusalRecorder) WriteHeader(status int) {
	if !rw.wrote {
		rw.wrote = true
		if quotaRefusal(status, rw.Header()) {
			rw.n.Add(1)
		}
	}
	rw.ResponseWriter.WriteHeader(status)
}

func (rw *refusalRecorder) Write(b []byte) (int, error) {
	if !rw.wrote {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (rw *refusalRecorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }
