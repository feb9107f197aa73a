// Package httpapi is the one place every connector sends HTTP through. It
// enforces a vendor's documented limits per credential (and per tenant where
// the vendor meters per tenant), shared by every ErpSync that uses the
// credential; counts daily and monthly call quotas so that they survive a
// restart; honours Retry-After and vendor throttling headers; retries 5xx
// answers, timeouts and connection errors with jittered exponential backoff a
// bounded number of times; and turns failures into classified
// *connectors.Error values that never contain credentials, query strings or
// response bodies.
//
// # Limits
//
// A Limit is one metered scope: its Key (build it with Key, from the vendor
// and the credential's id, never the secret itself; New scopes it further,
// see Tenant isolation), its rate Windows, its
// Concurrency cap and its Quotas. Limits live in a Registry keyed by Key;
// SharedRegistry is process-wide, so two ErpSyncs with the same credential
// share one limiter. Windows are sliding windows; quotas count calls per UTC
// day or month in a QuotaStore (MemoryQuotaStore, FileQuotaStore, or the
// controller's Kubernetes-backed store set with SharedRegistry.SetQuotaStore).
// When a quota is used up a call fails with KindQuotaExhausted and RetryAt at
// the reset, without being sent.
//
// The store also keeps each window's recent calls (how many within one span
// of the latest, and when that was), so a restarted manager goes on where the
// previous one stopped instead of sending a whole window's allowance at once:
// it counts those calls as sent at the latest of them, which can only delay a
// call. When the store cannot be read, a limiter without quotas takes its
// windows as spent (its first call waits one window) and one with quotas
// fails its calls with KindERPUnavailable until the store answers.
//
// # Tenant isolation
//
// Limits are shared only by real holders of a credential: a connector sets
// Options.Secret (the secret part of the credential) and Options.BaseURL,
// and New appends a SHA-256 digest of the secret (16 hex digits) and the
// API host to every Key. Tenants who share a public id (a Cin7 Omni user
// name, a Xero platform app's client id) without its secret, or who point
// their base URL elsewhere, get limiters and quota ConfigMaps of their own.
//
// What a server says is bounded: a Retry-After or pause about a rate window
// holds calls at most MaxWindowPause (a longer window's span, at most
// MaxBlock); a daily quota block at most MaxBlock, a monthly one at most to
// the end of the calendar month and MaxMonthlyBlock; blocks loaded from the
// store are cut the same way. A Date header more than MaxClockSkew from our
// clock is ignored when measuring a Retry-After date (Response.VendorNow
// gives the time to measure quota periods from). When Options.DefaultHost
// is false (a base URL that is not the vendor's own host), the server's
// quota blocks are kept in memory only and never saved to the store; the
// calls we made are saved either way, so a restart never bursts.
//
// A Client without Options.HTTPClient refuses redirects to another host or
// scheme (egress.CheckRedirect); the manager passes clients built by its
// egress policy (connectors/egress). Transport and body-read failures say
// that the host gave no usable answer, never why (no oracle of what the
// manager can reach).
//
// # Memory
//
// Response bodies are read under a process-wide budget (SetBodyBudget,
// DefaultBodyBudget): a read takes budget as its bytes arrive and gives it
// back when done, waiting while the budget is spent (the oldest read never
// waits, so reads cannot deadlock). Options.MaxBodyBytes caps one body.
// Do and Get read a body whole into Response.Body; GetStream (and GetJSON)
// hand a 2xx body to a decoder as it arrives, so a large page costs its
// decoded form only, not the body besides, and the budget is held until the
// decoder returns. hack/bench.d/memory.sh measures the result against the
// Deployment's memory limit.
// Registries drop limiters unused for LimiterIdleTTL (Registry.Prune).
//
// # Waits
//
// Before every wait of at least connectors.MinHookedWait (a rate window or a
// vendor pause, a Retry-After, the back-off before a retry, a concurrency
// slot) the client calls connectors.BeforeWait on the calling goroutine, so
// that the engine can checkpoint first; the time the hook takes counts
// toward the wait.
//
// The vendors' documented limits, as a connector passes them (see
// ../shared/vendor-apis.md):
//
//	// Cin7 Core: 60 calls/min per API application; throttles with 429 or 503.
//	httpapi.Limit{Key: httpapi.Key("cin7core", accountID, appKeyID),
//		Windows: []httpapi.Window{{Name: "minute", Limit: 60, Per: time.Minute}}}
//	// Options: ThrottleCodes: []int{429, 503}, ThrottleWait: time.Minute
//
//	// Cin7 Omni: 3/s, 60/min, 5000/day.
//	httpapi.Limit{Key: httpapi.Key("cin7omni", username),
//		Windows: []httpapi.Window{{Name: "second", Limit: 3, Per: time.Second}, {Name: "minute", Limit: 60, Per: time.Minute}},
//		Quotas:  []httpapi.Quota{{Name: "day", Limit: 5000, Period: httpapi.Daily}}}
//
//	// Xero: 10,000/min per app, then per tenant 60/min, 5000/day, 5 in flight.
//	[]httpapi.Limit{
//		{Key: httpapi.Key("xero-app", clientID), Windows: []httpapi.Window{{Name: "appminute", Limit: 10000, Per: time.Minute}}},
//		{Key: httpapi.Key("xero", clientID, tenantID), Concurrency: 5,
//			Windows: []httpapi.Window{{Name: "minute", Limit: 60, Per: time.Minute}},
//			Quotas:  []httpapi.Quota{{Name: "day", Limit: 5000, Period: httpapi.Daily}}},
//	}
//	// Options: ProblemHeader: "X-Rate-Limit-Problem"
//
//	// Katana: 60 per 60 s.
//	httpapi.Limit{Key: httpapi.Key("katana", apiKeyID),
//		Windows: []httpapi.Window{{Name: "minute", Limit: 60, Per: time.Minute}}}
//
//	// Unleashed: a monthly quota set by the plan (0: count, do not enforce).
//	httpapi.Limit{Key: httpapi.Key("unleashed", apiID),
//		Quotas: []httpapi.Quota{{Name: "month", Limit: planQuota, Period: httpapi.Monthly}}}
//
// # Time
//
// Every limit, period, Retry-After and backoff is measured on the client's
// Clock. Options{TimeScale: 60} compresses time sixty-fold (a 60/min limit
// admits 60 calls a second), for simulators and benchmarks; FakeClock makes
// waits instant and observable in unit tests.
//
// # Usage
//
// A connector builds one Client per instance and fills connectors.Page from
// each Response:
//
//	func newClient(cfg connectors.Config, apiKeyID string) (*httpapi.Client, error) {
//		return httpapi.New(httpapi.Options{
//			Connector:  "katana",
//			HTTPClient: cfg.HTTPClient, // nil is fine
//			Log:        cfg.Log,
//			Limits: []httpapi.Limit{{
//				Key:     httpapi.Key("katana", apiKeyID),
//				Windows: []httpapi.Window{{Name: "minute", Limit: 60, Per: time.Minute}},
//			}},
//		})
//	}
//
//	func (k *katana) ListPage(ctx context.Context, req connectors.PageRequest) (*connectors.Page, error) {
//		q := url.Values{"page": {strconv.Itoa(req.Page)}, "limit": {"250"}}
//		if !req.Since.IsZero() {
//			q.Set("updated_at_min", req.Since.UTC().Format("2006-01-02T15:04:05.000Z"))
//		}
//		h := http.Header{"Authorization": {"Bearer " + k.apiKey}}
//		before := k.client.Calls()
//		var body struct{ Data []json.RawMessage `json:"data"` }
//		resp, err := k.client.GetJSON(ctx, "list_products", k.base+"/products?"+q.Encode(), h, &body)
//		if err != nil {
//			return nil, err // already a classified *connectors.Error (or a context error)
//		}
//		page := &connectors.Page{
//			ServerTime: resp.ServerTime,
//			Calls:      int(k.client.Calls() - before),
//			Total:      -1,
//		}
//		// ... map body.Data into page.Records, set page.More and page.Total
//		return page, nil
//	}
//
// Errors from Do, Get and GetJSON are *connectors.Error values of kind
// AuthenticationFailed (401/403), QuotaExhausted (RetryAt: reset),
// RateLimited (RetryAt: the vendor's Retry-After), ERPUnavailable (5xx,
// timeouts, connection errors after the retries) or InvalidResponse (other
// 4xx, a body that does not parse), or wrapped context errors when ctx ends.
// Options.Classify lets a vendor map its own answers first (for example an
// Unleashed 403 whose body says the monthly limit is reached, returned as
// KindQuotaExhausted).
package httpapi
