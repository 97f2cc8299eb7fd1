package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pentecost/pentecost"
	phttp "github.com/pentecost/pentecost/http"
)

// adminAccount and the other shapes are the admin API's answers as a
// client reads them.
type adminAccount struct {
	Name              string `json:"name"`
	Role              string `json:"role"`
	CreatedAt         int64  `json:"createdAt"`
	PasswordChangedAt int64  `json:"passwordChangedAt"`
}

type accountPassword struct {
	Account  adminAccount `json:"account"`
	Password string       `json:"password"`
}

type adminSessions struct {
	Sessions []struct {
		Session   map[string]any `json:"session"`
		Listeners struct {
			Total      int            `json:"total"`
			ByLanguage map[string]int `json:"byLanguage"`
		} `json:"listeners"`
		Translations     []string `json:"translations"`
		SpeakerConnected bool     `json:"speakerConnected"`
	} `json:"sessions"`
	Total   int                     `json:"total"`
	Workers *pentecost.Capabilities `json:"workers"`
}

func mustUnmarshalOK(tb testing.TB, resp *Response, status int, v any) {
	tb.Helper()
	if resp.Status != status {
		tb.Fatalf("status = %d, want %d; body %s", resp.Status, status, resp.Body)
	}
	if v != nil {
		if err := json.Unmarshal(resp.Body, v); err != nil {
			tb.Fatalf("body %s: %v", resp.Body, err)
		}
	}
}

// login signs in over the API and returns the token, or the response of
// a refusal.
func login(tb testing.TB, ts *TestServer, name, password string) (string, *Response) {
	tb.Helper()
	ts.Clock.Add(7e9) // clear of the login limits
	body, _ := json.Marshal(map[string]string{"username": name, "password": password})
	resp := ts.Do(tb, Request{Method: "POST", Path: "/auth/login", Body: string(body)})
	if resp.Status != http.StatusOK {
		return "", resp
	}
	var lr phttp.LoginResponse
	mustUnmarshal(tb, resp.Body, &lr)
	return lr.Token, resp
}

func TestAdmin_Accounts(t *testing.T) {
	ts := MustOpenAccountServer(t)
	admin := ts.MustAddAccount(t, "root", pentecost.RoleAdmin)
	do := func(method, path, body string) *Response {
		return ts.Do(t, Request{Method: method, Path: path, Token: admin, Body: body})
	}

	t.Run("AddGenerated", func(t *testing.T) {
		var got accountPassword
		resp := do("POST", "/admin/api/accounts", `{"name":"pastor.john"}`)
		mustUnmarshalOK(t, resp, http.StatusCreated, &got)
		if got.Account.Name != "pastor.john" || got.Account.Role != "speaker" || got.Account.CreatedAt != ts.Clock.Now().UnixMilli() {
			t.Fatalf("account %+v", got.Account)
		}
		if len(got.Password) < 20 {
			t.Fatalf("generated password %q", got.Password)
		}
		if loc := resp.Header.Get("Location"); loc != "/admin/api/accounts/pastor.john" {
			t.Fatalf("Location %q", loc)
		}
		if tok, resp := login(t, ts, "pastor.john", got.Password); tok == "" {
			t.Fatalf("the generated password does not sign in: %s", resp.Body)
		}
		if strings.Contains(ts.Logs.String(), got.Password) {
			t.Fatal("the generated password is in the log")
		}
	})

	t.Run("AddGiven", func(t *testing.T) {
		var got accountPassword
		mustUnmarshalOK(t, do("POST", "/admin/api/accounts", `{"name":"deacon","role":"admin","password":"correct horse battery"}`), http.StatusCreated, &got)
		if got.Account.Role != "admin" || got.Password != "" {
			t.Fatalf("got %+v; want an admin and no password echoed", got)
		}
		if tok, resp := login(t, ts, "deacon", "correct horse battery"); tok == "" {
			t.Fatalf("the given password does not sign in: %s", resp.Body)
		}
	})

	t.Run("List", func(t *testing.T) {
		var got struct{ Accounts []adminAccount }
		mustUnmarshalOK(t, do("GET", "/admin/api/accounts", ""), http.StatusOK, &got)
		var names, roles []string
		for _, a := range got.Accounts {
			names, roles = append(names, a.Name), append(roles, a.Role)
			if a.CreatedAt == 0 || a.PasswordChangedAt == 0 {
				t.Fatalf("account without times: %+v", a)
			}
		}
		if strings.Join(names, ",") != "deacon,pastor.john,root" || strings.Join(roles, ",") != "admin,speaker,admin" {
			t.Fatalf("accounts %v %v", names, roles)
		}
		if strings.Contains(string(do("GET", "/admin/api/accounts", "").Body), "argon2") {
			t.Fatal("the list shows password hashes")
		}
	})

	t.Run("ErrAdd", func(t *testing.T) {
		for _, tt := range []struct {
			name, body  string
			status      int
			code, field string
		}{
			{"NoName", `{}`, 400, pentecost.EVALIDATIONFIELD, "name"},
			{"BadName", `{"name":"pastor john"}`, 400, pentecost.EVALIDATIONFIELD, "name"},
			{"IssuerName", `{"name":"corp:alice"}`, 400, pentecost.EVALIDATIONFIELD, "name"},
			{"ShortPassword", `{"name":"x1","password":"short"}`, 400, pentecost.EVALIDATIONFIELD, "password"},
			{"BadRole", `{"name":"x2","role":"root"}`, 400, pentecost.EVALIDATIONFIELD, "role"},
			{"UnknownField", `{"name":"x3","admin":true}`, 400, pentecost.EVALIDATIONBODY, ""},
			{"NotJSON", `name=x4`, 400, pentecost.EVALIDATIONBODY, ""},
			{"Taken", `{"name":"deacon"}`, 409, pentecost.ECONFLICT, ""},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e := MustError(t, do("POST", "/admin/api/accounts", tt.body), tt.status, tt.code)
				if tt.field != "" {
					if d, _ := e.Details.(map[string]any); d["field"] != tt.field {
						t.Fatalf("details %v, want field %s", e.Details, tt.field)
					}
				}
			})
		}
		var got struct{ Accounts []adminAccount }
		mustUnmarshalOK(t, do("GET", "/admin/api/accounts", ""), http.StatusOK, &got)
		if len(got.Accounts) != 3 {
			t.Fatalf("refused adds stored accounts: %+v", got.Accounts)
		}
	})

	t.Run("ResetPassword", func(t *testing.T) {
		old, _ := login(t, ts, "deacon", "correct horse battery")
		ts.Clock.Add(2e9) // the reset is in a later second than the token
		var got accountPassword
		mustUnmarshalOK(t, do("POST", "/admin/api/accounts/deacon/password", `{}`), http.StatusOK, &got)
		if got.Account.Name != "deacon" || got.Password == "" || got.Account.PasswordChangedAt != ts.Clock.Now().UnixMilli() {
			t.Fatalf("got %+v", got)
		}
		if tok, _ := login(t, ts, "deacon", "correct horse battery"); tok != "" {
			t.Fatal("the old password still signs in")
		}
		if tok, resp := login(t, ts, "deacon", got.Password); tok == "" {
			t.Fatalf("the new password does not sign in: %s", resp.Body)
		}
		// A reset signs the account out everywhere.
		MustError(t, ts.Do(t, Request{Method: "GET", Path: "/sessions", Token: old}), 401, pentecost.EAUTHINVALID)

		got = accountPassword{}
		mustUnmarshalOK(t, do("POST", "/admin/api/accounts/deacon/password", `{"password":"another good one"}`), http.StatusOK, &got)
		if got.Password != "" {
			t.Fatalf("a given password was echoed: %+v", got)
		}
		if tok, _ := login(t, ts, "deacon", "another good one"); tok == "" {
			t.Fatal("the given password does not sign in")
		}
		e := MustError(t, do("POST", "/admin/api/accounts/deacon/password", `{"password":"short"}`), 400, pentecost.EVALIDATIONFIELD)
		if d, _ := e.Details.(map[string]any); d["field"] != "password" {
			t.Fatalf("details %v", e.Details)
		}
		MustError(t, do("POST", "/admin/api/accounts/nobody/password", `{}`), 404, pentecost.EUSERNOTFOUND)
		MustError(t, do("POST", "/admin/api/accounts/deacon/password", ``), 400, pentecost.EVALIDATIONBODY)
	})

	t.Run("Role", func(t *testing.T) {
		var got adminAccount
		mustUnmarshalOK(t, do("PATCH", "/admin/api/accounts/pastor.john", `{"role":"admin"}`), http.StatusOK, &got)
		if got.Name != "pastor.john" || got.Role != "admin" {
			t.Fatalf("got %+v", got)
		}
		mustUnmarshalOK(t, do("PATCH", "/admin/api/accounts/pastor.john", `{"role":"speaker"}`), http.StatusOK, &got)
		if got.Role != "speaker" {
			t.Fatalf("got %+v", got)
		}
		MustError(t, do("PATCH", "/admin/api/accounts/pastor.john", `{"role":"root"}`), 400, pentecost.EVALIDATIONFIELD)
		MustError(t, do("PATCH", "/admin/api/accounts/pastor.john", `{}`), 400, pentecost.EVALIDATIONFIELD)
		MustError(t, do("PATCH", "/admin/api/accounts/nobody", `{"role":"admin"}`), 404, pentecost.EUSERNOTFOUND)
	})

	t.Run("DemotedAtOnce", func(t *testing.T) {
		// deacon, an admin, is made a speaker by root: its token, still
		// valid, is refused the admin API at its next request.
		deacon, resp := login(t, ts, "deacon", "another good one")
		if deacon == "" {
			t.Fatalf("login: %s", resp.Body)
		}
		mustUnmarshalOK(t, ts.Do(t, Request{Method: "GET", Path: "/admin/api/accounts", Token: deacon}), http.StatusOK, nil)
		mustUnmarshalOK(t, do("PATCH", "/admin/api/accounts/deacon", `{"role":"speaker"}`), http.StatusOK, nil)
		MustError(t, ts.Do(t, Request{Method: "GET", Path: "/admin/api/accounts", Token: deacon}), 403, pentecost.EFORBIDDEN)
		// It is still a speaker with that token.
		mustUnmarshalOK(t, ts.Do(t, Request{Method: "GET", Path: "/sessions", Token: deacon}), http.StatusOK, nil)
	})

	t.Run("LastAdmin", func(t *testing.T) {
		// root is the only admin now: it can neither step down nor go.
		MustError(t, do("PATCH", "/admin/api/accounts/root", `{"role":"speaker"}`), 409, pentecost.ECONFLICT)
		MustError(t, do("DELETE", "/admin/api/accounts/root", ``), 409, pentecost.ECONFLICT)
		mustUnmarshalOK(t, do("GET", "/admin/api/accounts", ""), http.StatusOK, nil)
	})

	t.Run("Remove", func(t *testing.T) {
		speaker := ts.Token(t, "pastor.john")
		mustUnmarshalOK(t, do("DELETE", "/admin/api/accounts/pastor.john", ""), http.StatusNoContent, nil)
		MustError(t, do("DELETE", "/admin/api/accounts/pastor.john", ""), 404, pentecost.EUSERNOTFOUND)
		MustError(t, ts.Do(t, Request{Method: "GET", Path: "/sessions", Token: speaker}), 401, pentecost.EAUTHINVALID)
	})

	t.Run("Audit", func(t *testing.T) {
		logs := ts.Logs.String()
		for _, msg := range []string{"admin added an account", "admin set an account's password", "admin changed an account's role", "admin removed an account"} {
			if !strings.Contains(logs, `"msg":"`+msg+`"`) || !strings.Contains(logs, `"admin":"root"`) {
				t.Fatalf("no audit line %q by root in the log", msg)
			}
		}
		if strings.Contains(logs, "another good one") || strings.Contains(logs, "correct horse battery") {
			t.Fatal("a password is in the log")
		}
	})
}

func TestAdmin_Sessions(t *testing.T) {
	ts := MustOpenAccountServer(t)
	admin := ts.MustAddAccount(t, "root", pentecost.RoleAdmin)
	ts.MustAddAccount(t, "alice", pentecost.RoleSpeaker)
	ts.MustAddAccount(t, "bob", pentecost.RoleSpeaker)
	ts.NextIDs("golden-eagle-427", "silent-otter-512", "quiet-heron-733")
	first := ts.MustCreateSession(t, "alice", "en")
	ts.Clock.Add(1e9)
	second := ts.MustCreateSession(t, "bob", "es")
	ts.Clock.Add(1e9)
	ended := ts.MustCreateSession(t, "bob", "de")
	if err := ts.Client(t, "bob").EndSession(context.Background(), ended.ID); err != nil {
		t.Fatal(err)
	}
	list := func() adminSessions {
		t.Helper()
		var got adminSessions
		mustUnmarshalOK(t, ts.Do(t, Request{Method: "GET", Path: "/admin/api/sessions", Token: admin}), http.StatusOK, &got)
		return got
	}

	got := list()
	if got.Total != 2 || len(got.Sessions) != 2 {
		t.Fatalf("got %d of %d sessions, want the 2 live ones: %+v", len(got.Sessions), got.Total, got)
	}
	// Newest first, each with its speaker.
	for i, want := range []struct{ id, owner string }{{second.ID, "bob"}, {first.ID, "alice"}} {
		s := got.Sessions[i]
		if s.Session["sessionId"] != want.id || s.Session["speakerId"] != want.owner {
			t.Fatalf("session %d = %v, want %s of %s", i, s.Session, want.id, want.owner)
		}
		if s.Listeners.ByLanguage == nil || s.Translations == nil {
			t.Fatalf("session %d: listeners or translations null: %+v", i, s)
		}
	}
	if got.Workers == nil || len(got.Workers.Tiers) == 0 {
		t.Fatalf("workers %+v", got.Workers)
	}

	t.Run("Limit", func(t *testing.T) {
		var page adminSessions
		mustUnmarshalOK(t, ts.Do(t, Request{Method: "GET", Path: "/admin/api/sessions?limit=1", Token: admin}), http.StatusOK, &page)
		if page.Total != 2 || len(page.Sessions) != 1 || page.Sessions[0].Session["sessionId"] != second.ID {
			t.Fatalf("limit=1: %+v", page)
		}
		for _, q := range []string{"0", "101", "x"} {
			MustError(t, ts.Do(t, Request{Method: "GET", Path: "/admin/api/sessions?limit=" + q, Token: admin}), 400, pentecost.EVALIDATIONFIELD)
		}
	})

	t.Run("End", func(t *testing.T) {
		// Alice's session, ended by the admin, typed loosely.
		mustUnmarshalOK(t, ts.Do(t, Request{Method: "DELETE", Path: "/admin/api/sessions/Golden%20Eagle%20427", Token: admin}), http.StatusNoContent, nil)
		s, err := ts.Client(t, "").FindSessionByID(context.Background(), first.ID)
		if err != nil || s.Status != pentecost.SessionEnded {
			t.Fatalf("after the admin ended it: %+v, %v", s, err)
		}
		if got := list(); got.Total != 1 || got.Sessions[0].Session["sessionId"] != second.ID {
			t.Fatalf("live after ending one: %+v", got)
		}
		MustError(t, ts.Do(t, Request{Method: "DELETE", Path: "/admin/api/sessions/" + first.ID, Token: admin}), 409, pentecost.ESESSIONENDED)
		MustError(t, ts.Do(t, Request{Method: "DELETE", Path: "/admin/api/sessions/no-such-777", Token: admin}), 404, pentecost.ESESSIONNOTFOUND)
		MustError(t, ts.Do(t, Request{Method: "DELETE", Path: "/admin/api/sessions/x", Token: admin}), 400, pentecost.EINVALIDSESSIONID)
		if !strings.Contains(ts.Logs.String(), `"msg":"admin ended a session"`) {
			t.Fatal("no audit line for the end")
		}
	})

	t.Run("SpeakerGainsNothing", func(t *testing.T) {
		// Bob may not end or see others' sessions through the admin API,
		// nor through his own routes.
		bob := ts.Token(t, "bob")
		MustError(t, ts.Do(t, Request{Method: "GET", Path: "/admin/api/sessions", Token: bob}), 403, pentecost.EFORBIDDEN)
		MustError(t, ts.Do(t, Request{Method: "DELETE", Path: "/admin/api/sessions/" + second.ID, Token: bob}), 403, pentecost.EFORBIDDEN)
		// And an admin's own speaker routes are a speaker's: no ending of others' sessions there.
		MustError(t, ts.Do(t, Request{Method: "DELETE", Path: "/sessions/" + second.ID, Token: admin}), 403, pentecost.EFORBIDDEN)
	})
}

// TestAdmin_NoAccountManager: a server whose Accounts only check
// passwords has no account routes to offer.
func TestAdmin_NoAccountManager(t *testing.T) {
	ts := MustOpenAccountServer(t, func(s *phttp.Server) { s.Accounts = passwordsOnly{s.Accounts} })
	admin := ts.MustAddAccount(t, "root", pentecost.RoleAdmin)
	MustError(t, ts.Do(t, Request{Method: "GET", Path: "/admin/api/accounts", Token: admin}), 404, pentecost.ENOTFOUND)
	mustUnmarshalOK(t, ts.Do(t, Request{Method: "GET", Path: "/admin/api/sessions", Token: admin}), http.StatusOK, nil)
}
