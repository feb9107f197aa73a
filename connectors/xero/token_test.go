package xero

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
	"github.com/erpsync/erpsync-operator/connectors/model"
	"github.com/erpsync/erpsync-operator/connectors/xero/sim"
	"github.com/erpsync/erpsync-operator/internal/engine"
	"github.com/erpsync/erpsync-operator/sinks/memory"
)

// The token rotation cases of the issue. In each, every sync that should
// succeed does, and the Secret ends with a refresh token that works.

func TestTokenRotation(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"refreshed before expiry, written back first", func(t *testing.T, h *harness) {
			before := h.store.Value("refreshToken")
			writes := 0
			h.store.BeforeUpdate = func() { writes++ }
			mustRun(t, h)
			if h.store.Value("refreshToken") == before || writes != 1 {
				t.Fatalf("the rotated token was not written back (writes %d)", writes)
			}
			// 24 minutes on, the token still has 6 minutes: reused.
			h.clock.Advance(24 * time.Minute)
			mustRun(t, h)
			if h.sim.Refreshes() != 1 {
				t.Fatalf("%d refreshes, want 1 while the token is fresh", h.sim.Refreshes())
			}
			// 26 minutes after the refresh it has less than the 5-minute
			// margin: refreshed before it expires, never refused.
			h.clock.Advance(2 * time.Minute)
			mustRun(t, h)
			if h.sim.Refreshes() != 2 || h.sim.Stats().AuthFails.Load() != 0 {
				t.Fatalf("%d refreshes, %d refused calls; want a second refresh before expiry and no refusal", h.sim.Refreshes(), h.sim.Stats().AuthFails.Load())
			}
		}},
		{"refresh response lost", func(t *testing.T, h *harness) {
			h.sim.LoseTokenResponses(1)
			mustRun(t, h)
			// Xero carried out the first refresh but the answer was lost; the
			// retry with the same token (within the grace period) worked.
			if h.sim.Refreshes() != 2 {
				t.Fatalf("%d refreshes, want 2 (lost + retried)", h.sim.Refreshes())
			}
		}},
		{"every refresh response lost, then the next run", func(t *testing.T, h *harness) {
			h.sim.LoseTokenResponses(100)
			_, err := h.run(context.Background())
			if err == nil || connectors.KindOf(err) == connectors.KindAuthenticationFailed {
				t.Fatalf("error %v: want a transient failure, not AuthenticationFailed", err)
			}
			h.secretUsable(t, h.store) // the used token is still in its grace period
			h.sim.LoseTokenResponses(0)
			h.clock.Advance(5 * time.Minute)
			mustRun(t, h)
		}},
		{"crash between refresh and Secret update", func(t *testing.T, h *harness) {
			old := h.store.Value("refreshToken")
			h.store.FailUpdates = 1 + writeAttempts // the first write and every retry of the call
			_, err := h.run(context.Background())
			if err == nil || !strings.Contains(err.Error(), "saving the rotated Xero refresh token") {
				t.Fatalf("error %v, want the failed write reported", err)
			}
			if h.apiCalls() != 0 {
				t.Fatalf("%d API calls: the new access token was used before its refresh token was saved", h.apiCalls())
			}
			if h.store.Value("refreshToken") != old {
				t.Fatal("the Secret changed although the write failed")
			}
			h.secretUsable(t, h.store)
			// The manager restarts: a new process, nothing in memory.
			h.tokens = newTokenCache()
			h.conn = h.connector(t, h.store, "")
			h.clock.Advance(time.Minute)
			mustRun(t, h)
		}},
		{"the Secret write fails once: retried at once", func(t *testing.T, h *harness) {
			h.store.FailUpdates = 1
			mustRun(t, h)
			if h.sim.Refreshes() != 1 {
				t.Fatalf("%d refreshes, want 1: the rotated token must be written, not replaced by another refresh", h.sim.Refreshes())
			}
		}},
		{"two ErpSyncs share one Secret and refresh at the same moment", func(t *testing.T, h *harness) {
			other := newHarnessOn(t, h, h.sim.Tenants()[1])
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, x := range []*harness{h, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = x.run(context.Background())
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("sync %d: %v", i, err)
				}
			}
			if h.sim.Refreshes() != 1 {
				t.Fatalf("%d refreshes for one Secret in one manager, want 1", h.sim.Refreshes())
			}
		}},
		{"two managers refresh one Secret at the same moment", func(t *testing.T, h *harness) {
			// A second process (another replica during a leader hand-over)
			// has its own token cache: both refresh with the same token.
			// The loser of the write re-reads and uses the winner's token.
			other := newHarnessOn(t, h, "")
			other.tokens = newTokenCache()
			other.conn = other.connector(t, h.store, "")
			// Both refresh before either writes: the first two writes wait
			// for each other, so both carry the version they read.
			var mu sync.Mutex
			arrived := 0
			both := make(chan struct{})
			h.store.BeforeUpdate = func() {
				mu.Lock()
				arrived++
				n := arrived
				if n == 2 {
					close(both)
				}
				mu.Unlock()
				if n <= 2 {
					<-both
				}
			}
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, x := range []*harness{h, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = x.run(context.Background())
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("manager %d: %v", i, err)
				}
			}
			if r := h.sim.Refreshes(); r != 3 {
				t.Fatalf("%d refreshes, want 3: both at once, then the loser once more with the winner's token", r)
			}
		}},
		{"a person edits the Secret mid-run", func(t *testing.T, h *harness) {
			fresh := h.sim.Authorize() // the person reconnected the app
			cp := func(_ context.Context, _ []engine.EntityState, p engine.Progress) error {
				if p.Entity == model.KindCustomer && h.store.Value("refreshToken") != fresh && !strings.HasPrefix(h.store.Value("refreshToken"), "edited") {
					h.store.Set("refreshToken", fresh)
					h.store.Set("note", "edited") // an unrelated key changes too
					h.sim.ExpireAccessTokens()    // the old connection's token stops working
				}
				return nil
			}
			if _, err := h.runWith(context.Background(), cp); err != nil {
				t.Fatalf("run: %v", err)
			}
			if h.store.Value("refreshToken") == fresh || h.sim.Refreshes() != 2 || h.sim.Stats().AuthFails.Load() != 1 {
				t.Fatalf("refreshes %d, refused calls %d: want the expired token refused once, then the person's token used and rotated",
					h.sim.Refreshes(), h.sim.Stats().AuthFails.Load())
			}
			if h.store.Value("note") != "edited" {
				t.Fatal("the person's other edit was lost")
			}
			if got, want := h.counts()[model.KindInvoice], h.sim.Expected()[model.KindInvoice]; got != want {
				t.Fatalf("invoices %d, want %d", got, want)
			}
		}},
		{"a person edits the Secret during the refresh", func(t *testing.T, h *harness) {
			fresh := h.sim.Authorize()
			var once sync.Once
			h.store.BeforeUpdate = func() { once.Do(func() { h.store.Set("refreshToken", fresh) }) }
			mustRun(t, h)
			// Our write conflicted; the person's token was used instead of
			// being overwritten, and its successor saved.
			if h.sim.Refreshes() != 2 || h.store.Value("refreshToken") == fresh {
				t.Fatalf("%d refreshes; the person's token must be used and rotated", h.sim.Refreshes())
			}
		}},
		{"another key changes during the refresh", func(t *testing.T, h *harness) {
			var once sync.Once
			h.store.BeforeUpdate = func() { once.Do(func() { h.store.Set("label", "x") }) }
			mustRun(t, h)
			if h.sim.Refreshes() != 1 || h.store.Value("label") != "x" {
				t.Fatalf("%d refreshes, label %q: want our token written on the new version, keeping the edit", h.sim.Refreshes(), h.store.Value("label"))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, sim.Options{Tenants: 2}, nil)
			tc.run(t, h)
			h.secretUsable(t, h.store)
		})
	}
}

// TestRotatedTokenWriteFailure: when writing a rotated refresh token to the
// Secret fails, the new tokens are kept and their write is retried before
// any later refresh, and the run asks to be retried inside the grace of the
// token the Secret still holds. Dropping them (as before) leaves a Secret
// whose token dies with the grace: invalid_grant, and the organisation must
// be reconnected.
func TestRotatedTokenWriteFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"the run asks for a retry inside the grace, which saves the token", func(t *testing.T, h *harness) {
			h.store.FailUpdates = 1 + writeAttempts // the first write and every retry of the call
			start := h.clock.Now()
			_, err := h.run(context.Background())
			retryAt := connectors.RetryAtOf(err)
			if err == nil || retryAt.IsZero() {
				t.Fatalf("error %v with RetryAt %v: want a failure that says when to retry", err, retryAt)
			}
			if !retryAt.After(h.clock.Now()) || !retryAt.Before(start.Add(refreshGrace)) {
				t.Fatalf("RetryAt %v is not between now (%v) and the end of the grace (%v)", retryAt, h.clock.Now(), start.Add(refreshGrace))
			}
			if n := connectors.KindOf(err); n == connectors.KindAuthenticationFailed {
				t.Fatalf("kind %s: nothing is wrong with the credentials", n)
			}
			h.clock.Set(retryAt)
			mustRun(t, h)
			if h.sim.Refreshes() != 1 {
				t.Fatalf("%d refreshes, want 1: the kept token is written, not refreshed again", h.sim.Refreshes())
			}
		}},
		{"the write keeps failing past the grace", func(t *testing.T, h *harness) {
			h.store.FailUpdates = 1000
			var retries []time.Time
			for range 4 {
				_, err := h.run(context.Background())
				at := connectors.RetryAtOf(err)
				if err == nil || at.IsZero() {
					t.Fatalf("error %v, RetryAt %v", err, at)
				}
				retries = append(retries, at)
				h.clock.Set(at)
			}
			for i := 1; i < len(retries); i++ {
				if !retries[i].After(retries[i-1]) {
					t.Fatalf("retry times %v do not back off", retries)
				}
			}
			// Long past the grace of the Secret's token: only the kept one
			// works. The store recovers.
			h.clock.Advance(40 * time.Minute)
			if h.sim.RefreshTokenUsable(h.store.Value("refreshToken")) {
				t.Fatal("the test needs the Secret's token to be past its grace")
			}
			h.store.FailUpdates = 0
			mustRun(t, h)
			if h.sim.Refreshes() != 2 || h.sim.Stats().AuthFails.Load() != 0 {
				// The kept access token expired meanwhile: one refresh with
				// the kept (now saved) refresh token, none with the dead one,
				// and the expired access token never sent.
				t.Fatalf("%d refreshes, %d refused calls; want 2 and none", h.sim.Refreshes(), h.sim.Stats().AuthFails.Load())
			}
		}},
		{"a person replaces the token while the write is pending", func(t *testing.T, h *harness) {
			h.store.FailUpdates = 1 + writeAttempts // the first write and every retry of the call
			if _, err := h.run(context.Background()); err == nil {
				t.Fatal("the run succeeded although the Secret could not be written")
			}
			fresh := h.sim.Authorize()
			h.store.Set("refreshToken", fresh)
			mustRun(t, h)
			if h.sim.Refreshes() != 2 || h.store.Value("refreshToken") == fresh {
				t.Fatalf("%d refreshes: want the person's token used and rotated, the pending one dropped", h.sim.Refreshes())
			}
		}},
		{"another ErpSync on the Secret waits for the pending write", func(t *testing.T, h *harness) {
			h.store.FailUpdates = 1 + writeAttempts // the first write and every retry of the call
			if _, err := h.run(context.Background()); err == nil {
				t.Fatal("the run succeeded although the Secret could not be written")
			}
			other := newHarnessOn(t, h, "")
			h.clock.Advance(time.Minute)
			mustRun(t, other)
			if h.sim.Refreshes() != 1 {
				t.Fatalf("%d refreshes, want 1: the other ErpSync must save and use the kept token", h.sim.Refreshes())
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, sim.Options{}, nil)
			tc.run(t, h)
			h.secretUsable(t, h.store)
		})
	}
}

// TestForbiddenDropsTheAccessToken: a 403 (the connection lost the
// organisation or its scopes) drops the cached access token, so that the
// next request gets a fresh one rather than a refused one again.
func TestForbiddenDropsTheAccessToken(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	mustRun(t, h)
	src := h.tokens.source(h.store.Key())
	if _, ok := src.current(h.clock.Now()); !ok {
		t.Fatal("no access token cached after a run")
	}
	h.conn = h.connector(t, h.store, "00000000-0000-4000-8000-000000000000")
	if _, err := h.run(context.Background()); connectors.KindOf(err) != connectors.KindAuthenticationFailed {
		t.Fatalf("error %v, want AuthenticationFailed", err)
	}
	if _, ok := src.current(h.clock.Now()); ok {
		t.Fatal("the access token Xero refused with 403 is still cached")
	}
}

// TestInvalidGrantDoesNotLoop: a Secret whose token is spent fails once with
// AuthenticationFailed and a reconnect message; the next run fails the same
// way without hammering Xero.
func TestInvalidGrantDoesNotLoop(t *testing.T) {
	h := newHarness(t, sim.Options{}, nil)
	mustRun(t, h)
	spent := h.store.Value("refreshToken")
	// The token is used elsewhere and its grace period passes.
	h.tokens = newTokenCache()
	h.conn = h.connector(t, h.store, "")
	h.clock.Advance(40 * time.Minute)
	other := NewMemoryCredentialStore("elsewhere", map[string]string{"clientId": h.store.Value("clientId"), "clientSecret": h.store.Value("clientSecret"), "refreshToken": spent})
	o := newHarnessOn(t, h, "")
	o.tokens = newTokenCache()
	o.conn = o.connector(t, other, "")
	mustRun(t, o)
	h.clock.Advance(40 * time.Minute)
	before := h.sim.Stats().ByPath()[sim.TokenPath]
	for range 2 {
		_, err := h.run(context.Background())
		if connectors.KindOf(err) != connectors.KindAuthenticationFailed || !strings.Contains(err.Error(), "Reconnect the Xero app") {
			t.Fatalf("error %v, want AuthenticationFailed asking for a reconnect", err)
		}
	}
	if n := h.sim.Stats().ByPath()[sim.TokenPath] - before; n != 2 {
		t.Fatalf("%d token requests for two runs, want one each", n)
	}
}

// newHarnessOn shares h's simulator, clock, limiter registry, Secret store
// and token cache (one manager), with its own sink and state: another
// ErpSync. tenant selects the organisation ("" keeps the Secret's).
func newHarnessOn(t *testing.T, h *harness, tenant string) *harness {
	x := &harness{t: t, sim: h.sim, srv: h.srv, clock: h.clock, store: h.store, tokens: h.tokens, reg: h.reg, sink: memory.New()}
	x.conn = x.connector(t, h.store, tenant)
	return x
}

func mustRun(t *testing.T, h *harness) {
	t.Helper()
	if _, err := h.run(context.Background()); err != nil {
		t.Fatalf("run: %v", err)
	}
}
