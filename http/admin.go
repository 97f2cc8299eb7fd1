package http

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"strconv"

	"github.com/pentecost/pentecost"
)

// The admin API (/admin/api/...) serves the admin page: embedded accounts
// and every speaker's live sessions. Its routes take the same bearer tokens
// as the rest of the API, from the same sign-in, and answer 403 FORBIDDEN
// to any account that is not an admin. The role is the one the verifier
// read from the store for this request, so a demoted admin is refused at
// its next request. Bearer tokens are never sent by the browser on its own,
// so no other site can make a signed-in admin's browser call these routes
// (no CSRF token is needed).

// Log keys of the admin API's audit lines.
const (
	logKeyAdmin   = "admin"
	logKeyAccount = "account"
	logKeyRole    = "role"
)

// Bounds of GET /admin/api/sessions.
const (
	defaultAdminSessions = 50
	maxAdminSessions     = 100
)

// accountManager is what the admin API needs of Accounts: auth.Accounts
// has it. Without it the account routes answer NOT_FOUND.
type accountManager interface {
	// List returns every account by name, without password hashes.
	List(ctx context.Context) ([]*pentecost.User, error)
	// AddWithRole creates an account.
	// Errors: EVALIDATIONFIELD, ECONFLICT, EUNAVAILABLE.
	AddWithRole(ctx context.Context, name, password string, role pentecost.Role) (*pentecost.User, error)
	// SetPassword replaces an account's password, signing it out.
	// Errors: EVALIDATIONFIELD, EUSERNOTFOUND, EUNAVAILABLE.
	SetPassword(ctx context.Context, name, password string) error
	// SetRole changes an account's role.
	// Errors: EVALIDATIONFIELD, EUSERNOTFOUND, ECONFLICT (last admin), EUNAVAILABLE.
	SetRole(ctx context.Context, name string, role pentecost.Role) error
	// Remove deletes an account.
	// Errors: EUSERNOTFOUND, ECONFLICT (last admin), EUNAVAILABLE.
	Remove(ctx context.Context, name string) error
}

// adminAccount is an account as the admin API shows it. Times are Unix
// milliseconds.
type adminAccount struct {
	Name              string         `json:"name"`
	Role              pentecost.Role `json:"role"`
	CreatedAt         int64          `json:"createdAt"`
	PasswordChangedAt int64          `json:"passwordChangedAt"`
}

func newAdminAccount(u *pentecost.User) adminAccount {
	role := u.Role
	if role == "" {
		role = pentecost.RoleSpeaker
	}
	return adminAccount{Name: u.Name, Role: role,
		CreatedAt: pentecost.UnixMilli(u.CreatedAt), PasswordChangedAt: pentecost.UnixMilli(u.PasswordChangedAt)}
}

// adminAccountsResponse is GET /admin/api/accounts.
type adminAccountsResponse struct {
	Accounts []adminAccount `json:"accounts"`
}

// addAccountRequest is the body of POST /admin/api/accounts. Without a
// password one is generated and returned once.
type addAccountRequest struct {
	Name     string         `json:"name"`
	Role     pentecost.Role `json:"role,omitempty"`
	Password string         `json:"password,omitempty"`
}

// accountPasswordResponse is what POST /admin/api/accounts and its
// password reset answer: the account, and the password when the server
// made it (it is shown this once and never stored in clear).
type accountPasswordResponse struct {
	Account  adminAccount `json:"account"`
	Password string       `json:"password,omitempty"`
}

// setPasswordRequest is the body of POST /admin/api/accounts/{name}/password:
// {} has a password generated.
type setPasswordRequest struct {
	Password string `json:"password,omitempty"`
}

// updateAccountRequest is the body of PATCH /admin/api/accounts/{name}.
type updateAccountRequest struct {
	Role pentecost.Role `json:"role"`
}

// adminSession is a live session as GET /admin/api/sessions shows it.
type adminSession struct {
	// Session shows its speaker (speakerId), unlike GET /sessions/{id}.
	Session *pentecost.Session `json:"session"`
	// Listeners are the live listener connections on every node, in total
	// and by language.
	Listeners adminListeners `json:"listeners"`
	// Translations are the languages a worker produces for it now.
	Translations     []string `json:"translations"`
	SpeakerConnected bool     `json:"speakerConnected"`
}

type adminListeners struct {
	Total      int            `json:"total"`
	ByLanguage map[string]int `json:"byLanguage"`
}

// adminSessionsResponse is GET /admin/api/sessions: the live sessions,
// how many there are in all, and what the connected workers offer.
type adminSessionsResponse struct {
	Sessions  []adminSession          `json:"sessions"`
	Total     int                     `json:"total"`
	Workers   *pentecost.Capabilities `json:"workers"`
	Timestamp int64                   `json:"timestamp"`
}

// requireAdmin refuses a signed-in account that is not an admin.
func requireAdmin(r *http.Request) error {
	if !pentecost.UserFromContext(r.Context()).IsAdmin() {
		return pentecost.Errorf(pentecost.EFORBIDDEN, "This account is not an administrator.")
	}
	return nil
}

// accounts returns the account manager, or NOT_FOUND when there is none.
func (s *Server) accounts() (accountManager, error) {
	m, ok := s.Accounts.(accountManager)
	if !ok {
		return nil, pentecost.Errorf(pentecost.ENOTFOUND, "Account management is not enabled on this server.")
	}
	return m, nil
}

// audit logs what an admin changed, by name; never a password.
func (s *Server) audit(r *http.Request, msg string, args ...any) {
	args = append([]any{logKeyAdmin, pentecost.UserIDFromContext(r.Context()), logKeyCorrelationID, CorrelationID(r.Context())}, args...)
	s.Logger.InfoContext(r.Context(), msg, args...)
}

// handleAdminAccounts lists every embedded account.
func (s *Server) handleAdminAccounts(w http.ResponseWriter, r *http.Request) {
	m, err := s.accounts()
	if err != nil {
		Error(w, r, err)
		return
	}
	users, err := m.List(r.Context())
	if err != nil {
		Error(w, r, err)
		return
	}
	out := adminAccountsResponse{Accounts: make([]adminAccount, 0, len(users))}
	for _, u := range users {
		out.Accounts = append(out.Accounts, newAdminAccount(u))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAdminAddAccount creates an account, a speaker unless the body says
// otherwise, with the password given or one generated and returned once.
func (s *Server) handleAdminAddAccount(w http.ResponseWriter, r *http.Request) {
	m, err := s.accounts()
	if err != nil {
		Error(w, r, err)
		return
	}
	var req addAccountRequest
	if err := decodeJSON(r, &req); err != nil {
		Error(w, r, err)
		return
	}
	if req.Name == "" {
		Error(w, r, invalidField("name", "name is required."))
		return
	}
	if req.Role == "" {
		req.Role = pentecost.RoleSpeaker
	} else if !req.Role.Valid() {
		Error(w, r, invalidField("role", `role must be "admin" or "speaker".`))
		return
	}
	password, shown := choosePassword(req.Password)
	u, err := m.AddWithRole(r.Context(), req.Name, password, req.Role)
	if err != nil {
		Error(w, r, err)
		return
	}
	s.audit(r, "admin added an account", logKeyAccount, u.Name, logKeyRole, string(u.Role))
	w.Header().Set("Location", "/admin/api/accounts/"+url.PathEscape(u.Name))
	writeJSON(w, http.StatusCreated, accountPasswordResponse{Account: newAdminAccount(u), Password: shown})
}

// handleAdminSetPassword replaces an account's password with the one given
// or, for {}, one generated and returned once. The account is signed out
// everywhere: its tokens issued before are refused.
func (s *Server) handleAdminSetPassword(w http.ResponseWriter, r *http.Request) {
	m, err := s.accounts()
	if err != nil {
		Error(w, r, err)
		return
	}
	var req setPasswordRequest
	if err := decodeJSON(r, &req); err != nil {
		Error(w, r, err)
		return
	}
	name := r.PathValue("name")
	password, shown := choosePassword(req.Password)
	if err := m.SetPassword(r.Context(), name, password); err != nil {
		Error(w, r, err)
		return
	}
	u, err := s.findManaged(r.Context(), m, name)
	if err != nil {
		Error(w, r, err)
		return
	}
	s.audit(r, "admin set an account's password", logKeyAccount, name)
	writeJSON(w, http.StatusOK, accountPasswordResponse{Account: newAdminAccount(u), Password: shown})
}

// handleAdminUpdateAccount changes an account's role. The last admin
// cannot be made a speaker (CONFLICT).
func (s *Server) handleAdminUpdateAccount(w http.ResponseWriter, r *http.Request) {
	m, err := s.accounts()
	if err != nil {
		Error(w, r, err)
		return
	}
	var req updateAccountRequest
	if err := decodeJSON(r, &req); err != nil {
		Error(w, r, err)
		return
	}
	if !req.Role.Valid() {
		Error(w, r, invalidField("role", `role must be "admin" or "speaker".`))
		return
	}
	name := r.PathValue("name")
	if err := m.SetRole(r.Context(), name, req.Role); err != nil {
		Error(w, r, err)
		return
	}
	u, err := s.findManaged(r.Context(), m, name)
	if err != nil {
		Error(w, r, err)
		return
	}
	s.audit(r, "admin changed an account's role", logKeyAccount, name, logKeyRole, string(req.Role))
	writeJSON(w, http.StatusOK, newAdminAccount(u))
}

// handleAdminRemoveAccount removes an account. Its tokens stop working at
// once and its live broadcasts are closed by the real-time server's
// account checks; the last admin cannot be removed (CONFLICT).
func (s *Server) handleAdminRemoveAccount(w http.ResponseWriter, r *http.Request) {
	m, err := s.accounts()
	if err != nil {
		Error(w, r, err)
		return
	}
	name := r.PathValue("name")
	if err := m.Remove(r.Context(), name); err != nil {
		Error(w, r, err)
		return
	}
	s.audit(r, "admin removed an account", logKeyAccount, name)
	w.WriteHeader(http.StatusNoContent)
}

// choosePassword returns the password to set: the one given, or one made
// here (130 random bits) and, then only, also as shown, for the answer.
func choosePassword(given string) (password, shown string) {
	if given != "" {
		return given, ""
	}
	password = rand.Text()
	return password, password
}

// findManaged returns an account just changed, for the answer.
func (s *Server) findManaged(ctx context.Context, m accountManager, name string) (*pentecost.User, error) {
	f, ok := m.(accountFinder)
	if !ok {
		return &pentecost.User{ID: name, Name: name}, nil
	}
	return f.Find(ctx, name)
}

// handleAdminSessions lists every speaker's live sessions, newest first,
// with their listeners by language and the translations workers produce,
// and what the connected workers offer. Without a LiveSessionService
// (no real-time server) the listeners are the stored counts.
func (s *Server) handleAdminSessions(w http.ResponseWriter, r *http.Request) {
	limit := defaultAdminSessions
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAdminSessions {
			Error(w, r, invalidField("limit", "limit must be a whole number from 1 to "+strconv.Itoa(maxAdminSessions)+"."))
			return
		}
		limit = n
	}
	ctx := r.Context()
	var live []*pentecost.LiveSession
	var total int
	var err error
	if svc, ok := s.Sessions.(pentecost.LiveSessionService); ok {
		live, total, err = svc.LiveSessions(ctx, limit)
	} else {
		var sessions []*pentecost.Session
		sessions, total, err = pentecost.FindLiveSessions(ctx, s.Sessions, limit)
		for _, sess := range sessions {
			live = append(live, &pentecost.LiveSession{Session: sess, Listeners: pentecost.PresenceCounts{Total: sess.ListenerCount}})
		}
	}
	if err != nil {
		Error(w, r, err)
		return
	}
	workers := pentecost.CapabilitiesOf(nil)
	if svc, ok := s.Sessions.(pentecost.CapabilityService); ok {
		if workers, err = svc.Capabilities(ctx); err != nil {
			Error(w, r, err)
			return
		}
	}
	out := adminSessionsResponse{Sessions: make([]adminSession, 0, len(live)), Total: total, Workers: workers, Timestamp: s.Now().UnixMilli()}
	for _, l := range live {
		by := l.Listeners.ByLanguage
		if by == nil {
			by = map[string]int{}
		}
		produced := l.Produced
		if produced == nil {
			produced = []string{}
		}
		out.Sessions = append(out.Sessions, adminSession{
			Session:          l.Session,
			Listeners:        adminListeners{Total: l.Listeners.Total, ByLanguage: by},
			Translations:     produced,
			SpeakerConnected: l.SpeakerConnected,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAdminEndSession ends anyone's session at once, as its speaker's
// "End session" does: every listener gets sessionEnded.
func (s *Server) handleAdminEndSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var id string
	err := s.lookup(r, func() error {
		sess, err := s.Sessions.FindSessionByID(ctx, r.PathValue("id"))
		if err != nil {
			return err
		}
		id = sess.ID
		if sess.Status == pentecost.SessionEnded {
			return pentecost.Errorf(pentecost.ESESSIONENDED, "Session has ended.")
		}
		// The store lets only a session's speaker end it; the admin acts on
		// the speaker's behalf here, and only here, so that being admin
		// widens no route a speaker uses.
		owner := &pentecost.User{ID: sess.OwnerID, Name: sess.OwnerID}
		_, err = s.Sessions.EndSession(pentecost.NewContextWithUser(ctx, owner), sess.ID)
		return err
	})
	if err != nil {
		Error(w, r, err)
		return
	}
	s.audit(r, "admin ended a session", logKeySessionID, id)
	w.WriteHeader(http.StatusNoContent)
}
