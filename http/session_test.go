package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	phttp "github.com/pentecost/pentecost/http"
)

func TestCreateSession(t *testing.T) {
	ts := MustOpenServer(t)
	alice := ts.Token(t, "alice")

	t.Run("OK", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "POST", Path: "/sessions", Token: alice,
			Body: `{"sourceLanguage":"ES","qualityTier":"premium"}`})
		if resp.Status != http.StatusCreated {
			t.Fatalf("status = %d; body %s", resp.Status, resp.Body)
		}
		var got map[string]any
		if err := json.Unmarshal(resp.Body, &got); err != nil {
			t.Fatal(err)
		}
		id, _ := got["sessionId"].(string)
		if id == "" || got["speakerId"] != "alice" || got["sourceLanguage"] != "es" ||
			got["qualityTier"] != "premium" || got["status"] != "active" || got["audioFormat"] != pentecost.AudioPCM16 {
			t.Fatalf("body = %s", resp.Body)
		}
		if loc := resp.Header.Get("Location"); loc != "/sessions/"+id {
			t.Fatalf("Location = %q", loc)
		}
		// Timestamps are Unix milliseconds of the store's (injected) clock.
		wantMs := float64(ts.Clock.Now().UnixMilli())
		for _, k := range []string{"createdAt", "lastActiveAt"} {
			if got[k] != wantMs {
				t.Fatalf("%s = %v, want %v", k, got[k], wantMs)
			}
		}
		if exp, _ := got["expiresAt"].(float64); exp <= wantMs {
			t.Fatalf("expiresAt = %v, want after %v", got["expiresAt"], wantMs)
		}
		if got["endedAt"] != nil {
			t.Fatalf("endedAt = %v, want null", got["endedAt"])
		}
		bs, _ := got["broadcastState"].(map[string]any)
		if bs["isPaused"] != false || bs["volume"] != 1.0 {
			t.Fatalf("broadcastState = %v", bs)
		}
	})

	t.Run("DefaultTier", func(t *testing.T) {
		s := &pentecost.Session{SourceLanguage: "fr"}
		if err := ts.Client(t, "alice").CreateSession(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		if s.QualityTier != pentecost.QualityStandard || !s.CreatedAt.Equal(ts.Clock.Now()) {
			t.Fatalf("session = %+v", s)
		}
	})

	big := `{"sourceLanguage":"en","qualityTier":"` + strings.Repeat("x", phttp.DefaultMaxBodyBytes) + `"}`
	for _, tt := range []struct {
		name   string
		req    Request
		status int
		code   string
	}{
		{"ErrAuthRequired", Request{Body: `{"sourceLanguage":"en"}`}, 401, pentecost.EAUTHREQUIRED},
		{"ErrAuthInvalidToken", Request{Token: "not.a.jwt", Body: `{"sourceLanguage":"en"}`}, 401, pentecost.EAUTHINVALID},
		{"ErrAuthWrongScheme", Request{Header: map[string]string{"Authorization": "Basic YWxpY2U6cHc="}, Body: `{"sourceLanguage":"en"}`}, 401, pentecost.EAUTHINVALID},
		{"ErrInvalidLanguage", Request{Token: alice, Body: `{"sourceLanguage":"english"}`}, 400, pentecost.EINVALIDLANGUAGE},
		{"ErrMissingLanguage", Request{Token: alice, Body: `{}`}, 400, pentecost.EINVALIDLANGUAGE},
		{"ErrUnsupportedLanguage", Request{Token: alice, Body: `{"sourceLanguage":"xx"}`}, 400, pentecost.EUNSUPPORTEDLANG},
		{"ErrBadTier", Request{Token: alice, Body: `{"sourceLanguage":"en","qualityTier":"gold"}`}, 400, pentecost.EVALIDATIONFIELD},
		{"ErrTierWrongType", Request{Token: alice, Body: `{"sourceLanguage":"en","qualityTier":3}`}, 400, pentecost.EVALIDATIONFIELD},
		{"ErrUnknownField", Request{Token: alice, Body: `{"sourceLanguage":"en","speakerId":"bob"}`}, 400, pentecost.EVALIDATIONBODY},
		{"ErrMalformedJSON", Request{Token: alice, Body: `{"sourceLanguage":`}, 400, pentecost.EVALIDATIONBODY},
		{"ErrSyntax", Request{Token: alice, Body: `{"sourceLanguage" "en"}`}, 400, pentecost.EVALIDATIONBODY},
		{"ErrNotObject", Request{Token: alice, Body: `["en"]`}, 400, pentecost.EVALIDATIONBODY},
		{"ErrNull", Request{Token: alice, Body: `null`}, 400, pentecost.EVALIDATIONBODY},
		{"ErrString", Request{Token: alice, Body: ` "en" `}, 400, pentecost.EVALIDATIONBODY},
		{"ErrTrailingData", Request{Token: alice, Body: `{"sourceLanguage":"en"} {}`}, 400, pentecost.EVALIDATIONBODY},
		{"ErrEmptyBody", Request{Token: alice}, 400, pentecost.EVALIDATIONBODY},
		{"ErrContentType", Request{Token: alice, Body: `{"sourceLanguage":"en"}`, ContentType: "text/plain"}, 400, pentecost.EVALIDATIONBODY},
		{"ErrNoContentType", Request{Token: alice, Body: `{"sourceLanguage":"en"}`, ContentType: "-"}, 400, pentecost.EVALIDATIONBODY},
		{"ErrPayloadTooLarge", Request{Token: alice, Body: big}, 413, pentecost.EPAYLOADTOOLARGE},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Method, tt.req.Path = "POST", "/sessions"
			resp := ts.Do(t, tt.req)
			MustError(t, resp, tt.status, tt.code)
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("UnknownFieldNamed", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "POST", Path: "/sessions", Token: alice, Body: `{"sourceLanguage":"en","speakerId":"bob"}`})
		e := MustError(t, resp, 400, pentecost.EVALIDATIONBODY)
		if d, _ := e.Details.(map[string]any); d["field"] != "speakerId" {
			t.Fatalf("details = %v, want field speakerId", e.Details)
		}
	})

	t.Run("ErrorsCreateNothing", func(t *testing.T) {
		_, total, err := ts.Client(t, "alice").FindSessions(context.Background(), pentecost.SessionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if total != 2 { // OK and DefaultTier only
			t.Fatalf("total = %d, want 2", total)
		}
	})
}

func TestCreateSession_RateLimit(t *testing.T) {
	ts := MustOpenServer(t)
	ctx := context.Background()
	carol := ts.Client(t, "carol")

	limit := phttp.DefaultLimits().SessionsPerHour
	if limit.Events != 50 || limit.Per != time.Hour {
		t.Fatalf("default limit = %+v, want 50/hour", limit)
	}
	for i := 0; i < limit.Events; i++ {
		if err := carol.CreateSession(ctx, &pentecost.Session{SourceLanguage: "en"}); err != nil {
			t.Fatalf("create %d: %v", i+1, err)
		}
	}

	t.Run("ErrRateLimitExceeded", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "POST", Path: "/sessions", Token: carol.Token, Body: `{"sourceLanguage":"en"}`})
		e := MustError(t, resp, http.StatusTooManyRequests, pentecost.ERATELIMIT)
		header, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || header < 1 || header > 3600 {
			t.Fatalf("Retry-After = %q", resp.Header.Get("Retry-After"))
		}
		if e.RetryAfter != header {
			t.Fatalf("retryAfter = %d, header %d", e.RetryAfter, header)
		}
	})

	t.Run("OtherSpeakerUnaffected", func(t *testing.T) {
		ts.MustCreateSession(t, "dave", "en")
	})

	t.Run("ClientSeesRetryAfter", func(t *testing.T) {
		err := carol.CreateSession(ctx, &pentecost.Session{SourceLanguage: "en"})
		MustCode(t, err, pentecost.ERATELIMIT)
		d := pentecost.ErrorRetryAfter(err)
		if d <= 0 || d > time.Hour {
			t.Fatalf("RetryAfter = %v", d)
		}
		ts.Clock.Add(d)
		if err := carol.CreateSession(ctx, &pentecost.Session{SourceLanguage: "en"}); err != nil {
			t.Fatalf("after waiting RetryAfter: %v", err)
		}
	})
}

func TestGetSession(t *testing.T) {
	ts := MustOpenServer(t)
	ts.NextIDs("golden-eagle-427")
	created := ts.MustCreateSession(t, "alice", "es")
	if created.ID != "golden-eagle-427" {
		t.Fatalf("id = %q", created.ID)
	}
	anon := ts.Client(t, "")

	for _, id := range []string{"golden-eagle-427", "Golden-Eagle-427", " golden eagle 427 ", "GOLDEN_EAGLE_427"} {
		t.Run("OK/"+id, func(t *testing.T) {
			s, err := anon.FindSessionByID(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if s.ID != created.ID || s.OwnerID != "" || !s.CreatedAt.Equal(created.CreatedAt) {
				t.Fatalf("session = %+v", s)
			}
		})
	}

	// Only the owner, signed in, learns whose session it is: for embedded
	// accounts the owner ID is the login name. A token that does not verify
	// on this public route makes the caller anonymous, not refused.
	for _, tt := range []struct {
		name  string
		token string
		owner bool
	}{
		{"SpeakerIDForOwner", ts.Token(t, "alice"), true},
		{"NoSpeakerIDAnonymous", "", false},
		{"NoSpeakerIDForOtherSpeaker", ts.Token(t, "bob"), false},
		{"NoSpeakerIDBadToken", ts.Token(t, "alice") + "x", false},
		{"NoSpeakerIDGarbageToken", "garbage", false},
	} {
		t.Run("OK/"+tt.name, func(t *testing.T) {
			resp := ts.Do(t, Request{Method: "GET", Path: "/sessions/golden-eagle-427", Token: tt.token})
			if resp.Status != 200 {
				t.Fatalf("status %d body %s", resp.Status, resp.Body)
			}
			var got map[string]any
			mustUnmarshal(t, resp.Body, &got)
			id, present := got["speakerId"]
			if present != tt.owner || tt.owner && id != "alice" || got["sessionId"] != created.ID {
				t.Fatalf("body %s", resp.Body)
			}
		})
	}
	t.Run("OK/NoSpeakerIDNotBearer", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "GET", Path: "/sessions/golden-eagle-427",
			Header: map[string]string{"Authorization": "Basic YWxpY2U6eA=="}})
		if resp.Status != 200 || strings.Contains(string(resp.Body), "speakerId") {
			t.Fatalf("status %d body %s", resp.Status, resp.Body)
		}
	})

	t.Run("OK/RawEscapedPath", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "GET", Path: "/sessions/%20golden%20eagle%20427%20"})
		if resp.Status != 200 || !strings.Contains(string(resp.Body), `"sessionId":"golden-eagle-427"`) {
			t.Fatalf("status %d body %s", resp.Status, resp.Body)
		}
	})

	t.Run("ErrInvalidSessionID", func(t *testing.T) {
		MustError(t, ts.Do(t, Request{Method: "GET", Path: "/sessions/not-an-id"}), 400, pentecost.EINVALIDSESSIONID)
	})

	t.Run("ErrSessionNotFound", func(t *testing.T) {
		MustError(t, ts.Do(t, Request{Method: "GET", Path: "/sessions/silver-otter-123"}), 404, pentecost.ESESSIONNOTFOUND)
	})
}

func TestListSessions(t *testing.T) {
	ts := MustOpenServer(t)
	ctx := context.Background()
	var aliceIDs []string
	for i := 0; i < 3; i++ {
		aliceIDs = append(aliceIDs, ts.MustCreateSession(t, "alice", "en").ID)
		ts.Clock.Add(time.Second)
	}
	ts.MustCreateSession(t, "bob", "en")
	alice := ts.Client(t, "alice")

	t.Run("OK", func(t *testing.T) {
		got, total, err := alice.FindSessions(ctx, pentecost.SessionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if total != 3 || len(got) != 3 {
			t.Fatalf("total %d len %d, want 3", total, len(got))
		}
		for i, s := range got { // newest first
			if s.OwnerID != "alice" || s.ID != aliceIDs[2-i] {
				t.Fatalf("session %d = %s of %s", i, s.ID, s.OwnerID)
			}
		}
	})

	t.Run("OwnerIDIgnored", func(t *testing.T) {
		bob := "bob"
		got, total, err := alice.FindSessions(ctx, pentecost.SessionFilter{OwnerID: &bob})
		if err != nil {
			t.Fatal(err)
		}
		if total != 3 || got[0].OwnerID != "alice" {
			t.Fatalf("total %d, owner %s", total, got[0].OwnerID)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		got, total, err := alice.FindSessions(ctx, pentecost.SessionFilter{Limit: 1, Offset: 1})
		if err != nil {
			t.Fatal(err)
		}
		if total != 3 || len(got) != 1 || got[0].ID != aliceIDs[1] {
			t.Fatalf("total %d, got %d", total, len(got))
		}
	})

	t.Run("StatusFilter", func(t *testing.T) {
		if err := alice.EndSession(ctx, aliceIDs[0]); err != nil {
			t.Fatal(err)
		}
		ended := pentecost.SessionEnded
		got, total, err := alice.FindSessions(ctx, pentecost.SessionFilter{Status: &ended})
		if err != nil {
			t.Fatal(err)
		}
		if total != 1 || got[0].ID != aliceIDs[0] {
			t.Fatalf("total %d", total)
		}
	})

	t.Run("EmptyIsArray", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "GET", Path: "/sessions", Token: ts.Token(t, "nobody")})
		if resp.Status != 200 || strings.TrimSpace(string(resp.Body)) != `{"sessions":[],"total":0}` {
			t.Fatalf("status %d body %s", resp.Status, resp.Body)
		}
	})

	t.Run("ErrAuthRequired", func(t *testing.T) {
		MustError(t, ts.Do(t, Request{Method: "GET", Path: "/sessions"}), 401, pentecost.EAUTHREQUIRED)
	})

	for _, q := range []string{"status=live", "limit=0", "limit=101", "limit=x", "offset=-1", "offset=1e3"} {
		t.Run("ErrValidation/"+q, func(t *testing.T) {
			resp := ts.Do(t, Request{Method: "GET", Path: "/sessions?" + q, Token: alice.Token})
			e := MustError(t, resp, 400, pentecost.EVALIDATIONFIELD)
			field, _, _ := strings.Cut(q, "=")
			if d, _ := e.Details.(map[string]any); d["field"] != field {
				t.Fatalf("details = %v", e.Details)
			}
		})
	}
}

func TestUpdateSession(t *testing.T) {
	ts := MustOpenServer(t)
	ctx := context.Background()
	s := ts.MustCreateSession(t, "alice", "en")
	alice, bob := ts.Client(t, "alice"), ts.Client(t, "bob")
	path := "/sessions/" + s.ID

	t.Run("OK", func(t *testing.T) {
		ts.Clock.Add(time.Minute)
		paused, vol := pentecost.SessionPaused, 0.25
		got, err := alice.UpdateSession(ctx, s.ID, pentecost.SessionUpdate{
			Status:         &paused,
			BroadcastState: &pentecost.BroadcastStateUpdate{Volume: &vol},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != paused || !got.BroadcastState.Paused || got.BroadcastState.Volume != vol {
			t.Fatalf("session = %+v", got)
		}
		if !got.BroadcastState.ChangedAt.Equal(ts.Clock.Now()) {
			t.Fatalf("lastStateChange = %v, want %v", got.BroadcastState.ChangedAt, ts.Clock.Now())
		}
	})

	t.Run("OK/RawJSON", func(t *testing.T) {
		resp := ts.Do(t, Request{Method: "PATCH", Path: path, Token: alice.Token,
			Body: `{"status":"active","broadcastState":{"isMuted":true,"speakerState":"speaking"}}`})
		if resp.Status != 200 {
			t.Fatalf("status %d body %s", resp.Status, resp.Body)
		}
		var got struct {
			Status         string
			BroadcastState map[string]any
		}
		if err := json.Unmarshal(resp.Body, &got); err != nil {
			t.Fatal(err)
		}
		b := got.BroadcastState
		if got.Status != "active" || b["isPaused"] != false || b["isMuted"] != true || b["speakerState"] != "speaking" || b["volume"] != 0.25 {
			t.Fatalf("body %s", resp.Body)
		}
	})

	for _, tt := range []struct {
		name   string
		token  string
		body   string
		status int
		code   string
	}{
		{"ErrForbidden", bob.Token, `{"status":"paused"}`, 403, pentecost.EFORBIDDEN},
		{"ErrAuthRequired", "", `{"status":"paused"}`, 401, pentecost.EAUTHREQUIRED},
		{"ErrVolume", alice.Token, `{"broadcastState":{"volume":1.5}}`, 400, pentecost.EVALIDATIONFIELD},
		{"ErrEmptyUpdate", alice.Token, `{}`, 400, pentecost.EVALIDATION},
		{"ErrEmptyBroadcastState", alice.Token, `{"broadcastState":{}}`, 400, pentecost.EVALIDATION},
		{"ErrUnknownNestedField", alice.Token, `{"broadcastState":{"loud":true}}`, 400, pentecost.EVALIDATIONBODY},
		{"ErrLanguage", alice.Token, `{"sourceLanguage":"zz"}`, 400, pentecost.EUNSUPPORTEDLANG},
	} {
		t.Run(tt.name, func(t *testing.T) {
			MustError(t, ts.Do(t, Request{Method: "PATCH", Path: path, Token: tt.token, Body: tt.body}), tt.status, tt.code)
		})
	}

	t.Run("ErrSessionNotFound", func(t *testing.T) {
		muted := true
		_, err := alice.UpdateSession(ctx, "silver-otter-123", pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Muted: &muted}})
		MustCode(t, err, pentecost.ESESSIONNOTFOUND)
	})

	t.Run("Unchanged", func(t *testing.T) {
		// None of the refused updates changed anything.
		got, err := alice.FindSessionByID(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != pentecost.SessionActive || got.BroadcastState.Volume != 0.25 || got.SourceLanguage != "en" {
			t.Fatalf("session = %+v", got)
		}
	})
}

func TestEndSession(t *testing.T) {
	ts := MustOpenServer(t)
	ctx := context.Background()
	s := ts.MustCreateSession(t, "alice", "en")
	alice, bob := ts.Client(t, "alice"), ts.Client(t, "bob")

	t.Run("ErrForbidden", func(t *testing.T) {
		MustError(t, ts.Do(t, Request{Method: "DELETE", Path: "/sessions/" + s.ID, Token: bob.Token}), 403, pentecost.EFORBIDDEN)
	})

	t.Run("OK", func(t *testing.T) {
		ts.Clock.Add(time.Minute)
		resp := ts.Do(t, Request{Method: "DELETE", Path: "/sessions/" + s.ID, Token: alice.Token})
		if resp.Status != http.StatusNoContent || len(resp.Body) != 0 {
			t.Fatalf("status %d body %q", resp.Status, resp.Body)
		}
		got, err := bob.FindSessionByID(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != pentecost.SessionEnded || !got.EndedAt.Equal(ts.Clock.Now()) {
			t.Fatalf("session = %+v", got)
		}
	})

	t.Run("ErrSessionEnded", func(t *testing.T) {
		muted := true
		_, err := alice.UpdateSession(ctx, s.ID, pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Muted: &muted}})
		MustCode(t, err, pentecost.ESESSIONENDED)
		MustError(t, ts.Do(t, Request{Method: "PATCH", Path: "/sessions/" + s.ID, Token: alice.Token, Body: `{"status":"active"}`}), 409, pentecost.ESESSIONENDED)
		MustCode(t, alice.EndSession(ctx, s.ID), pentecost.ESESSIONENDED)
	})

	t.Run("ErrInvalidSessionID", func(t *testing.T) {
		MustCode(t, alice.EndSession(ctx, "nope"), pentecost.EINVALIDSESSIONID)
	})
}

func TestLanguages(t *testing.T) {
	ts := MustOpenServer(t)
	langs, err := ts.Client(t, "").Languages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(langs) != len(pentecost.Languages()) {
		t.Fatalf("got %d languages, want %d", len(langs), len(pentecost.Languages()))
	}
	want := pentecost.Language{Code: "es", Name: "Spanish", NativeName: "Español"}
	for _, l := range langs {
		if l == want {
			return
		}
	}
	t.Fatalf("%v missing from %v", want, fmt.Sprint(langs[:3], "…"))
}
