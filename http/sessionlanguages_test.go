package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/pentecost/pentecost"
	phttp "github.com/pentecost/pentecost/http"
	"github.com/pentecost/pentecost/servertest"
)

// TestSessionLanguages serves GET /sessions/{id}/languages from a whole
// server (servertest: the real-time server's presence behind the API), with
// workers' claims and offers recorded in that presence as the worker
// protocol records them.
func TestSessionLanguages(t *testing.T) {
	srv := servertest.Start(t)
	ctx := t.Context()
	plain := srv.CreateSession("alice", "en") // nothing produced or offered
	busy := srv.CreateSession("alice", "en")  // es live, ca and gl available
	frSrc := srv.CreateSession("alice", "fr") // offered pairs are en → …: source only
	ended := srv.CreateSession("alice", "en") // ended: source only
	if _, err := srv.Presence.ClaimLanguage(ctx, busy.ID, "es", "c-worker1"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Presence.OfferLanguages(ctx, "c-worker1", pentecost.LanguageOffer{"en": {"es", "gl"}}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Presence.OfferLanguages(ctx, "c-worker2", pentecost.LanguageOffer{"en": {"ca"}, "es": {"en"}}); err != nil {
		t.Fatal(err)
	}
	u := &pentecost.User{ID: "alice", Name: "alice", Issuer: pentecost.EmbeddedIssuer}
	if _, err := srv.Sessions.EndSession(pentecost.NewContextWithUser(ctx, u), ended.ID); err != nil {
		t.Fatal(err)
	}

	src := pentecost.SessionLanguage{Code: "en", Status: pentecost.LanguageSource}
	available := func(code string) pentecost.SessionLanguage {
		return pentecost.SessionLanguage{Code: code, Status: pentecost.LanguageAvailable}
	}
	for _, tt := range []struct {
		name   string
		path   string
		status int
		code   string // error code, when status is not 200
		id     string
		source string
		want   []pentecost.SessionLanguage
	}{
		{name: "OK", path: busy.ID, status: 200, id: busy.ID, source: "en",
			want: []pentecost.SessionLanguage{src, {Code: "es", Status: pentecost.LanguageLive}, available("ca"), available("gl")}},
		{name: "OKForgivingID", path: strings.ReplaceAll(strings.ToUpper(busy.ID), "-", "%20"), status: 200, id: busy.ID, source: "en",
			want: []pentecost.SessionLanguage{src, {Code: "es", Status: pentecost.LanguageLive}, available("ca"), available("gl")}},
		{name: "OKAvailableOnly", path: plain.ID, status: 200, id: plain.ID, source: "en",
			want: []pentecost.SessionLanguage{src, available("ca"), available("es"), available("gl")}},
		{name: "OKSourceOnly", path: frSrc.ID, status: 200, id: frSrc.ID, source: "fr",
			want: []pentecost.SessionLanguage{{Code: "fr", Status: pentecost.LanguageSource}}},
		{name: "OKEnded", path: ended.ID, status: 200, id: ended.ID, source: "en", want: []pentecost.SessionLanguage{src}},
		{name: "ErrSessionNotFound", path: "silent-otter-999", status: 404, code: pentecost.ESESSIONNOTFOUND},
		{name: "ErrInvalidSessionID", path: "not-an-id!", status: 400, code: pentecost.EINVALIDSESSIONID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/sessions/" + tt.path + "/languages")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status != 200 {
				var e phttp.ErrorResponse
				if err := json.Unmarshal(body, &e); err != nil || e.Code != tt.code {
					t.Fatalf("error = %s, want %s", body, tt.code)
				}
				return
			}
			var got struct {
				SessionID      string                      `json:"sessionId"`
				SourceLanguage string                      `json:"sourceLanguage"`
				Languages      []pentecost.SessionLanguage `json:"languages"`
				Timestamp      int64                       `json:"timestamp"`
			}
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatal(err)
			}
			if got.SessionID != tt.id || got.SourceLanguage != tt.source || got.Timestamp == 0 || !reflect.DeepEqual(got.Languages, tt.want) {
				t.Fatalf("body = %s, want languages %+v", body, tt.want)
			}
		})
	}
}

// TestSessionLanguages_NoPresence: a server whose Sessions cannot tell what
// workers produce answers with the source language alone.
func TestSessionLanguages_NoPresence(t *testing.T) {
	ts := MustOpenServer(t)
	sess := ts.MustCreateSession(t, "alice", "en")
	resp := ts.Do(t, Request{Method: "GET", Path: "/sessions/" + sess.ID + "/languages"})
	if resp.Status != http.StatusOK {
		t.Fatalf("status = %d: %s", resp.Status, resp.Body)
	}
	var got pentecost.SessionLanguages
	if err := json.Unmarshal(resp.Body, &got); err != nil {
		t.Fatal(err)
	}
	if want := []pentecost.SessionLanguage{{Code: "en", Status: pentecost.LanguageSource}}; !reflect.DeepEqual(got.Languages, want) {
		t.Fatalf("languages = %+v, want %+v", got.Languages, want)
	}
	MustError(t, ts.Do(t, Request{Method: "GET", Path: "/sessions/silent-otter-999/languages"}), http.StatusNotFound, pentecost.ESESSIONNOTFOUND)
}
