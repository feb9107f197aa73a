package xero

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/erpsync/erpsync-operator/connectors"
)

// Xero's OAuth 2.0 refresh tokens rotate: every refresh returns a new one and
// the old one stops working (after a 30-minute grace period meant for a lost
// response). The connector therefore:
//
//   - keeps one access token per credentials Secret in a process-wide cache,
//     so every ErpSync sharing the Secret shares it;
//   - serialises refreshes per Secret across the process, and re-checks the
//     cache after waiting, so concurrent syncs refresh once;
//   - reads the refresh token from the Secret right before refreshing (the
//     Secret, not memory, is the truth: a person may have pasted a new one);
//   - writes the new refresh token back with an optimistic-concurrency update
//     before it uses the new access token, so a crash at any point leaves a
//     Secret that works (the old token within the grace period, or the new
//     one);
//   - on a conflict, re-reads: if the Secret now holds another refresh token
//     (another manager, a person), it refreshes with that one instead, and
//     never overwrites it;
//   - when the write itself fails (the API server is down), keeps the new
//     tokens in the process-wide cache as a pending write: the access token
//     is not used, and the write is retried with back-off before anything
//     else uses or refreshes the Secret's tokens. The run fails with a
//     RetryAt inside the 30-minute grace of the token the Secret still
//     holds, so the retry comes while either token works; past the grace
//     the pending token is the only one that works, and it is kept until it
//     is written or the Secret gets another token;
//   - on invalid_grant, re-reads once more in case the token was rotated
//     elsewhere, then fails with AuthenticationFailed and a message asking
//     for a reconnect, without retrying.

// refreshMargin is how long before expiry an access token is replaced, so
// that no request starts with a token about to run out.
const refreshMargin = 5 * time.Minute

// maxRotations bounds how often one refresh restarts because the Secret
// changed under it.
const maxRotations = 4

// refreshGrace is how long Xero accepts a used refresh token again (for a
// lost response).
const refreshGrace = 30 * time.Minute

// Writing a rotated refresh token back: writeAttempts tries per call,
// writeBackoff after the first failed try, doubling; a call that still
// fails asks to be retried after retryBackoff (doubling per failed call, at
// most maxRetryBackoff), and while the grace lasts at least graceMargin
// before it ends.
const (
	writeAttempts   = 3
	writeBackoff    = time.Second
	retryBackoff    = time.Minute
	maxRetryBackoff = 8 * time.Minute
	graceMargin     = 2 * time.Minute
)

// reconnectMsg is what a person must do when Xero refuses the refresh token.
const reconnectMsg = "Xero refused the refresh token (invalid_grant): it was revoked, expired after 60 days unused, or already used. " +
	"Reconnect the Xero app (authorization-code flow with the offline_access scope) and put the new refresh token in the credentials Secret under refreshToken"

// tokenCache holds the access tokens of the process, one per credentials
// Secret.
type tokenCache struct {
	mu      sync.Mutex
	sources map[string]*tokenSource
}

func newTokenCache() *tokenCache { return &tokenCache{sources: map[string]*tokenSource{}} }

// sharedTokens is the process-wide cache every connector uses unless its
// Options name another (tests that play a second manager process).
var sharedTokens = newTokenCache()

func (c *tokenCache) source(key string) *tokenSource {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.sources[key]
	if !ok {
		s = &tokenSource{sem: make(chan struct{}, 1)}
		c.sources[key] = s
	}
	return s
}

// tokenSource is the access token of one Secret and the lock that
// serialises its refreshes.
type tokenSource struct {
	sem    chan struct{}
	mu     sync.Mutex
	access string
	expiry time.Time
	// pending, when set, is a rotation whose refresh token is not in the
	// Secret yet (its write failed). Guarded by sem.
	pending *pendingWrite
}

// pendingWrite is a rotated token set waiting to be written to the Secret.
type pendingWrite struct {
	used   string // the refresh token the Secret holds, spent at usedAt
	next   string // its successor, to be written
	usedAt time.Time
	access string
	expiry time.Time
	fails  int // calls that failed to write it
}

func (s *tokenSource) current(now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending == nil && s.access != "" && now.Add(refreshMargin).Before(s.expiry) {
		return s.access, true
	}
	return "", false
}

func (s *tokenSource) set(tok string, exp time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access, s.expiry = tok, exp
}

// drop forgets tok if it is still the cached token (Xero refused it).
func (s *tokenSource) drop(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.access == tok {
		s.access, s.expiry = "", time.Time{}
	}
}

// accessToken returns a usable access token for the connector's Secret,
// refreshing it (once per Secret across the process) when it is missing or
// about to expire.
func (c *connector) accessToken(ctx context.Context) (string, error) {
	src := c.tokens.source(c.storeKey)
	if tok, ok := src.current(c.auth.Clock().Now()); ok {
		return tok, nil
	}
	select {
	case src.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("waiting for the Xero token refresh of Secret %s: %w", c.storeKey, ctx.Err())
	}
	defer func() { <-src.sem }()
	// Another sync may have refreshed while we waited.
	if tok, ok := src.current(c.auth.Clock().Now()); ok {
		return tok, nil
	}
	if src.pending != nil {
		// A rotation is not saved yet: save it before anything else.
		tok, ok, err := c.flushPending(ctx, src)
		if err != nil || ok {
			return tok, err
		}
		// The Secret got another token meanwhile: refresh with it.
	}
	tok, exp, err := c.refresh(ctx, src)
	if err != nil {
		return "", err
	}
	src.set(tok, exp)
	return tok, nil
}

// flushPending writes the pending rotation's refresh token to the Secret,
// trying writeAttempts times with back-off. It returns the pending access
// token when the write succeeded (or had landed already), ok=false when the
// Secret meanwhile got a token other than the one the rotation spent (a
// person or another manager: theirs wins, the pending set is dropped) or
// when the write succeeded after the kept access token expired (the caller
// refreshes with the Secret's token either way), and
// an error with a RetryAt when the write still fails. The caller holds the
// Secret's refresh lock.
func (c *connector) flushPending(ctx context.Context, src *tokenSource) (string, bool, error) {
	p := src.pending
	clock := c.auth.Clock()
	var lastErr error
	for attempt := 1; attempt <= writeAttempts; attempt++ {
		if attempt > 1 {
			wait := writeBackoff << (attempt - 2)
			connectors.BeforeWait(ctx, wait)
			if err := clock.Sleep(ctx, wait); err != nil {
				return "", false, fmt.Errorf("waiting to save the rotated Xero refresh token to Secret %s: %w", c.storeKey, err)
			}
		}
		data, version, err := c.store.Get(ctx)
		if err != nil {
			lastErr = fmt.Errorf("reading the Secret: %w", err)
			continue
		}
		switch cur := strings.TrimSpace(string(data["refreshToken"])); cur {
		case p.next:
			// An earlier write landed although it reported a failure.
		case p.used:
			upd := make(map[string][]byte, len(data)+1)
			for k, v := range data {
				upd[k] = v
			}
			upd["refreshToken"] = []byte(p.next)
			if _, err := c.store.Update(ctx, upd, version); err != nil {
				if ctx.Err() != nil {
					return "", false, fmt.Errorf("saving the rotated Xero refresh token to Secret %s: %w", c.storeKey, ctx.Err())
				}
				lastErr = err
				continue
			}
		default:
			c.log.Info("the credentials Secret got a new Xero refresh token while a rotated one waited to be saved; using the Secret's", "secret", c.storeKey)
			src.pending = nil
			return "", false, nil
		}
		src.pending = nil
		if p.fails > 0 {
			c.log.Info("saved the rotated Xero refresh token after failed writes", "secret", c.storeKey, "failedCalls", p.fails)
		}
		if !clock.Now().Add(refreshMargin).Before(p.expiry) {
			// The kept access token ran out while its refresh token waited:
			// refresh with the one just saved.
			return "", false, nil
		}
		src.set(p.access, p.expiry)
		return p.access, true, nil
	}
	p.fails++
	now := clock.Now()
	retryAt := now.Add(min(retryBackoff<<(p.fails-1), maxRetryBackoff))
	graceEnd := p.usedAt.Add(refreshGrace)
	if latest := graceEnd.Add(-graceMargin); now.Before(latest) && retryAt.After(latest) {
		retryAt = latest
	}
	msg := fmt.Sprintf("saving the rotated Xero refresh token to Secret %s failed %d times; the new tokens are kept in memory and the write is retried first thing (the Secret's previous token works until %s)",
		c.storeKey, writeAttempts*p.fails, graceEnd.UTC().Format(time.RFC3339))
	if !now.Before(graceEnd) {
		msg = fmt.Sprintf("saving the rotated Xero refresh token to Secret %s keeps failing (%d times); the Secret's token is past Xero's grace, so only the token kept in memory works: restore write access to the Secret",
			c.storeKey, writeAttempts*p.fails)
	}
	c.log.Info("could not save the rotated Xero refresh token; keeping it and retrying", "secret", c.storeKey, "retryAt", retryAt, "error", lastErr.Error())
	return "", false, &connectors.Error{Kind: connectors.KindCredentialsWriteFailed, Msg: msg, RetryAt: retryAt, Err: lastErr}
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	TokenType    string `json:"token_type"`
	Error        string `json:"error"`
}

// refresh rotates the Secret's refresh token and returns the new access
// token. The caller holds the Secret's refresh lock.
func (c *connector) refresh(ctx context.Context, src *tokenSource) (string, time.Time, error) {
	for rotation := 1; rotation <= maxRotations; rotation++ {
		data, version, err := c.store.Get(ctx)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("reading the credentials Secret %s: %w", c.storeKey, err)
		}
		rt := strings.TrimSpace(string(data["refreshToken"]))
		if rt == "" {
			return "", time.Time{}, connectors.Errorf(connectors.KindSecretKeyMissing, "the credentials Secret %s has no key %q", c.storeKey, "refreshToken")
		}
		clientID, secret := c.clientID, c.clientSecret
		if v := strings.TrimSpace(string(data["clientId"])); v != "" {
			clientID = v
		}
		if v := strings.TrimSpace(string(data["clientSecret"])); v != "" {
			secret = v
		}
		now := c.auth.Clock().Now()
		tr, err := c.postRefresh(ctx, clientID, secret, rt)
		if err != nil {
			return "", time.Time{}, err
		}
		switch tr.Error {
		case "":
		case "invalid_grant":
			// Spent or revoked. If the Secret holds another token by now
			// (rotated by another manager, replaced by a person), use it.
			if cur, _, err := c.store.Get(ctx); err == nil {
				if next := strings.TrimSpace(string(cur["refreshToken"])); next != "" && next != rt {
					c.log.Info("the Xero refresh token was replaced while it was in use; using the Secret's new one", "secret", c.storeKey)
					continue
				}
			}
			return "", time.Time{}, connectors.Errorf(connectors.KindAuthenticationFailed, "%s", reconnectMsg)
		case "invalid_client", "unauthorized_client":
			return "", time.Time{}, connectors.Errorf(connectors.KindAuthenticationFailed,
				"Xero refused the app's credentials (%s): check clientId and clientSecret in the credentials Secret against the app at developer.xero.com", tr.Error)
		default:
			return "", time.Time{}, connectors.Errorf(connectors.KindAuthenticationFailed, "Xero refused the token refresh (%s)", tr.Error)
		}
		if tr.AccessToken == "" || tr.RefreshToken == "" || tr.ExpiresIn <= 0 {
			return "", time.Time{}, connectors.Errorf(connectors.KindInvalidResponse, "the Xero token endpoint answered without an access token, refresh token or lifetime")
		}
		expiry := now.Add(time.Duration(tr.ExpiresIn) * time.Second)

		// Persist the new refresh token before using the access token.
		retry, err := c.saveRefreshToken(ctx, data, version, rt, tr.RefreshToken)
		var failed *writeFailed
		if errors.As(err, &failed) {
			// Xero has rotated: the new refresh token is the one that
			// lasts. Keep it and retry the write, never drop it.
			src.pending = &pendingWrite{used: rt, next: tr.RefreshToken, usedAt: now, access: tr.AccessToken, expiry: expiry}
			tok, ok, err := c.flushPending(ctx, src)
			if err != nil {
				return "", time.Time{}, err
			}
			if !ok {
				continue // the Secret holds another token now: use it
			}
			return tok, expiry, nil
		}
		if err != nil {
			return "", time.Time{}, err
		}
		if retry {
			continue
		}
		c.log.V(1).Info("rotated the Xero refresh token", "secret", c.storeKey, "expiresIn", time.Duration(tr.ExpiresIn)*time.Second)
		return tr.AccessToken, expiry, nil
	}
	return "", time.Time{}, fmt.Errorf("the credentials Secret %s kept changing while the Xero token was refreshed; giving up after %d attempts", c.storeKey, maxRotations)
}

// saveRefreshToken writes next into the Secret read at version. When the
// Secret changed meanwhile it re-reads it: another key changed → write again
// on the new version; the refresh token changed → retry=true (someone else's
// token is the truth now; ours is dropped, never written over theirs).
func (c *connector) saveRefreshToken(ctx context.Context, data map[string][]byte, version, used, next string) (retry bool, err error) {
	for range 3 {
		upd := make(map[string][]byte, len(data))
		for k, v := range data {
			upd[k] = v
		}
		upd["refreshToken"] = []byte(next)
		_, err := c.store.Update(ctx, upd, version)
		if err == nil {
			return false, nil
		}
		if ctx.Err() != nil {
			// Whether the write landed is unknown: keep the tokens.
			return false, &writeFailed{ctx.Err()}
		}
		cur, curVersion, gerr := c.store.Get(ctx)
		if gerr != nil {
			// The write's error is the cause; the re-read's is context only
			// and must not steer errors.Is or errors.As.
			return false, &writeFailed{fmt.Errorf("%w; re-reading the Secret failed too: %v", err, gerr)} //nolint:errorlint // see above
		}
		if curVersion == version {
			// Nothing changed the Secret: the write itself failed.
			return false, &writeFailed{err}
		}
		if strings.TrimSpace(string(cur["refreshToken"])) != used {
			c.log.Info("the credentials Secret got a new Xero refresh token during a refresh; using it", "secret", c.storeKey)
			return true, nil
		}
		data, version = cur, curVersion
	}
	return true, nil
}

// writeFailed is a rotated refresh token whose write to the Secret failed
// (or may have): the caller keeps it pending.
type writeFailed struct{ err error }

func (e *writeFailed) Error() string { return "writing the Secret failed: " + e.err.Error() }

func (e *writeFailed) Unwrap() error { return e.err }

// postRefresh calls the token endpoint. A 400/401 answer is returned as an
// OAuth error code, not as an HTTP error.
func (c *connector) postRefresh(ctx context.Context, clientID, secret, rt string) (*tokenResponse, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, connectors.Errorf(connectors.KindInvalidConfig, "the Xero token URL is invalid")
	}
	req.SetBasicAuth(clientID, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.auth.Do(ctx, "refresh_token", req)
	if err != nil {
		return nil, fmt.Errorf("refreshing the Xero access token: %w", err)
	}
	var tr tokenResponse
	if err := json.Unmarshal(resp.Body, &tr); err != nil {
		return nil, connectors.Wrap(connectors.KindInvalidResponse, errors.New("not JSON"), "the Xero token endpoint's answer does not parse")
	}
	if resp.StatusCode >= 400 && tr.Error == "" {
		tr.Error = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return &tr, nil
}

// dropAccessToken forgets an access token Xero refused.
func (c *connector) dropAccessToken(tok string) {
	c.tokens.source(c.storeKey).drop(tok)
}

// connection is one organisation of GET /connections.
type connection struct {
	TenantID   string `json:"tenantId"`
	TenantName string `json:"tenantName"`
	TenantType string `json:"tenantType"`
}

// discoverTenant asks Xero which organisations the connection reaches and
// picks the only one; with several it asks the user to choose.
func (c *connector) discoverTenant(ctx context.Context) (string, error) {
	tok, err := c.accessToken(ctx)
	if err != nil {
		return "", err
	}
	h := http.Header{"Authorization": {"Bearer " + tok}, "Accept": {"application/json"}}
	resp, err := c.auth.Get(ctx, "list_connections", c.connectionsURL, h)
	if err != nil {
		return "", fmt.Errorf("listing the Xero organisations of the connection: %w", err)
	}
	var conns []connection
	if err := json.Unmarshal(resp.Body, &conns); err != nil {
		return "", connectors.Wrap(connectors.KindInvalidResponse, err, "GET /connections: the answer does not parse")
	}
	var orgs []connection
	for _, cn := range conns {
		if cn.TenantType == "" || strings.EqualFold(cn.TenantType, "ORGANISATION") {
			orgs = append(orgs, cn)
		}
	}
	switch len(orgs) {
	case 0:
		return "", connectors.Errorf(connectors.KindAuthenticationFailed, "the Xero connection reaches no organisation: reconnect the app and choose one")
	case 1:
		return orgs[0].TenantID, nil
	}
	names := make([]string, 0, len(orgs))
	for _, o := range orgs {
		names = append(names, fmt.Sprintf("%s (%s)", o.TenantID, o.TenantName))
	}
	return "", connectors.Errorf(connectors.KindInvalidConfig, "the Xero connection reaches %d organisations; set spec.connector.tenantId or the Secret key tenantId to one of: %s", len(orgs), strings.Join(names, ", "))
}
