package http

import (
	"net/http"
	"net/netip"

	"github.com/pentecost/pentecost"
)

// loginRequest is the body of POST /auth/login. Name is accepted as another
// spelling of Username.
type loginRequest struct {
	Username string `json:"username"`
	Name     string `json:"name,omitempty"`
	Password string `json:"password"`
}

// LoginResponse is the body of a successful POST /auth/login.
type LoginResponse struct {
	Token     string    `json:"token"`
	TokenType string    `json:"tokenType"` // always "Bearer"
	ExpiresAt int64     `json:"expiresAt"` // Unix milliseconds
	User      LoginUser `json:"user"`
}

// LoginUser names the account a token was issued for.
type LoginUser struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// handleLogin checks an embedded account's password and issues a token.
// Every attempt counts against the client IP's limit, before any check, so
// that guessing is slow whatever the guesses look like.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if s.Accounts == nil || s.Issuer == nil {
		Error(w, r, pentecost.Errorf(pentecost.ENOTFOUND, "Password sign-in is not enabled on this server."))
		return
	}
	ip := ClientIP(r, s.TrustedProxies)
	if err := s.allow(r, "login:"+rateKeyIP(ip), s.Limits.LoginAttemptsPerMinute); err != nil {
		Error(w, r, err)
		return
	}

	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		Error(w, r, err)
		return
	}
	name := req.Username
	if name == "" {
		name = req.Name
	}
	if name == "" {
		Error(w, r, invalidField("username", "username is required."))
		return
	}
	if req.Password == "" {
		Error(w, r, invalidField("password", "password is required."))
		return
	}

	u, err := s.Accounts.Authenticate(r.Context(), name, req.Password)
	if err != nil {
		Error(w, r, err)
		return
	}
	expiresAt := s.Now().Add(s.TokenTTL)
	token, err := s.Issuer.IssueToken(r.Context(), u, s.TokenTTL)
	if err != nil {
		Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, LoginResponse{
		Token:     token,
		TokenType: "Bearer",
		ExpiresAt: expiresAt.UnixMilli(),
		User:      LoginUser{ID: u.ID, Name: u.Name},
	})
}

// rateKeyIP is the part of a client address that per-IP limits count: the
// whole IPv4 address, but the /64 of an IPv6 one, since a single subscriber
// usually holds a whole /64 and could otherwise take a fresh address for
// every attempt.
func rateKeyIP(a netip.Addr) string {
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			return p.String()
		}
	}
	return a.String()
}
