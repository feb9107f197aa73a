package sim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
)

// TokenPath is where the simulator serves Xero's identity token endpoint
// (https://identity.xero.com/connect/token).
const TokenPath = "/connect/token"

// ConnectionsPath lists the organisations a token reaches
// (https://api.xero.com/connections).
const ConnectionsPath = "/connections"

// grants holds the simulator's OAuth state: refresh tokens rotate on every
// use; a used refresh token is accepted again only within the grace period
// Xero documents for a lost response; access tokens expire.
type grants struct {
	mu       sync.Mutex
	refresh  map[string]*refreshState
	access   map[string]time.Time
	refreshN int
	lose     int
}

type refreshState struct {
	issued time.Time
	used   time.Time // zero until first used
}

func newToken(prefix string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Authorize issues a new refresh token, as if a person had just connected
// the app to Xero (the authorization-code flow), and returns it.
func (s *Server) Authorize() string {
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	t := newToken("rt_")
	s.grants.refresh[t] = &refreshState{issued: s.Now()}
	return t
}

// RefreshTokenUsable reports whether a refresh with tok would succeed now:
// it is unused and unexpired, or used within the grace period.
func (s *Server) RefreshTokenUsable(tok string) bool {
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	st, ok := s.grants.refresh[tok]
	return ok && s.refreshOK(st)
}

func (s *Server) refreshOK(st *refreshState) bool {
	now := s.Now()
	if st.used.IsZero() {
		return now.Sub(st.issued) < s.opts.RefreshTokenLifetime
	}
	return now.Sub(st.used) < s.opts.RefreshGrace
}

// Refreshes returns how many refreshes the token endpoint granted.
func (s *Server) Refreshes() int {
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	return s.grants.refreshN
}

// LoseTokenResponses makes the token endpoint carry out the next n
// refreshes (the old refresh token is used, a new pair is issued) and then
// drop the connection, so the client never sees the answer.
func (s *Server) LoseTokenResponses(n int) {
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	s.grants.lose = n
}

// ExpireAccessTokens makes every access token issued so far invalid, as if
// it had run out.
func (s *Server) ExpireAccessTokens() {
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	s.grants.access = map[string]time.Time{}
}

func (s *Server) accessOK(tok string) bool {
	s.grants.mu.Lock()
	defer s.grants.mu.Unlock()
	exp, ok := s.grants.access[tok]
	return ok && s.Now().Before(exp)
}

// serveToken is the identity token endpoint: grant_type=refresh_token with
// the client credentials in HTTP Basic (or the form).
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.opts.ClientID || secret != s.opts.ClientSecret {
		s.Stats().AuthFails.Add(1)
		oauthError(w, http.StatusBadRequest, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "refresh_token" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	rt := r.PostForm.Get("refresh_token")
	s.grants.mu.Lock()
	st, known := s.grants.refresh[rt]
	if !known || !s.refreshOK(st) {
		s.grants.mu.Unlock()
		s.Stats().AuthFails.Add(1)
		oauthError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	now := s.Now()
	if st.used.IsZero() {
		st.used = now
	}
	access, next := newToken("at_"), newToken("rt_")
	s.grants.access[access] = now.Add(s.opts.AccessTokenLifetime)
	s.grants.refresh[next] = &refreshState{issued: now}
	s.grants.refreshN++
	lose := s.grants.lose > 0
	if lose {
		s.grants.lose--
	}
	s.grants.mu.Unlock()
	if lose {
		s.Stats().Faults.Add(1)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	s.Stats().Served.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	s.SetDate(w)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token":  access,
		"expires_in":    int(s.opts.AccessTokenLifetime / time.Second),
		"token_type":    "Bearer",
		"refresh_token": next,
		"scope":         "offline_access accounting.settings.read accounting.contacts.read accounting.transactions.read",
	})
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// bearer returns the access token of a request.
func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}
