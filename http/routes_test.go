package http_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	phttp "github.com/pentecost/pentecost/http"
)

// TestRoutes_Flags checks the route table's declarations, which the OpenAPI
// test relies on, against what each route answers: Auth routes refuse a
// request without a token, Admin routes refuse a speaker's token, Body
// routes refuse a body over the limit (alice, an admin, sends it), and
// Limited routes refuse a second request under a limit of one (for routes
// with a session ID, the limit of lookups that miss: two lookups of an ID
// that does not exist).
func TestRoutes_Flags(t *testing.T) {
	// goodBodies are bodies each route accepts, so that only the limit
	// can refuse a repeat.
	goodBodies := map[string]string{
		"/sessions":      `{"sourceLanguage":"en"}`,
		"/sessions/{id}": `{"status":"paused"}`,
		"/auth/login":    `{"username":"alice","password":"not the password"}`,

		"/admin/api/accounts":                 `{"name":"deacon"}`,
		"/admin/api/accounts/{name}":          `{"role":"speaker"}`,
		"/admin/api/accounts/{name}/password": `{}`,
	}
	open := func(t *testing.T) (*TestServer, string) {
		ts := MustOpenAccountServer(t, func(s *phttp.Server) {
			s.MaxBodyBytes = 64
			s.Limits = phttp.Limits{
				SessionsPerHour:        pentecost.Limit{Events: 1, Per: time.Hour},
				LoginAttemptsPerMinute: pentecost.Limit{Events: 1, Per: time.Minute},
				SessionMisses:          pentecost.Limit{Events: 1, Per: time.Minute},
			}
		})
		ts.MustAddAccount(t, "owner", pentecost.RoleSpeaker)
		ts.MustAddAccount(t, "alice", pentecost.RoleAdmin)
		// Created by another speaker, so that alice's quota stays whole.
		sess := ts.MustCreateSession(t, "owner", "en")
		return ts, sess.ID
	}

	for _, rt := range phttp.Routes() {
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			request := func(ts *TestServer, id, token, body string) *Response {
				path := strings.ReplaceAll(rt.Path, "{id}", id)
				path = strings.ReplaceAll(path, "{name}", "owner")
				return ts.Do(t, Request{Method: rt.Method, Path: path, Token: token, Body: body})
			}

			t.Run("Auth", func(t *testing.T) {
				ts, id := open(t)
				resp := request(ts, id, "", goodBodies[rt.Path])
				got := resp.Status == http.StatusUnauthorized && resp.Err(t).Code == pentecost.EAUTHREQUIRED
				if got != rt.Auth {
					t.Fatalf("status %d without a token; route declares Auth %v", resp.Status, rt.Auth)
				}
			})

			t.Run("Admin", func(t *testing.T) {
				ts, id := open(t)
				resp := request(ts, id, ts.Token(t, "owner"), goodBodies[rt.Path])
				got := resp.Status == http.StatusForbidden && resp.Err(t).Code == pentecost.EFORBIDDEN
				if got != rt.Admin {
					t.Fatalf("status %d with a speaker's token; route declares Admin %v", resp.Status, rt.Admin)
				}
			})

			t.Run("Body", func(t *testing.T) {
				ts, id := open(t)
				resp := request(ts, id, ts.Token(t, "alice"), `{"sourceLanguage":"`+strings.Repeat("a", 200)+`"}`)
				if got := resp.Status == http.StatusRequestEntityTooLarge; got != rt.Body {
					t.Fatalf("status %d for a body over the limit; route declares Body %v", resp.Status, rt.Body)
				}
			})

			t.Run("Limited", func(t *testing.T) {
				ts, _ := open(t)
				id := "silent-otter-999" // no such session: each lookup misses
				token := ts.Token(t, "alice")
				first := request(ts, id, token, goodBodies[rt.Path])
				if first.Status == http.StatusTooManyRequests {
					t.Fatalf("first request refused: %s", first.Body)
				}
				resp := request(ts, id, token, goodBodies[rt.Path])
				if got := resp.Status == http.StatusTooManyRequests; got != rt.Limited {
					t.Fatalf("status %d for a repeat; route declares Limited %v", resp.Status, rt.Limited)
				}
			})
		})
	}
}
