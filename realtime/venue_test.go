package realtime_test

import (
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

// worker connects a test worker.
func (e *env) worker() *client {
	e.t.Helper()
	w := e.dial("role=worker", dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}})
	w.expect("workerConnected")
	return w
}

// TestOfferLanguages covers the worker action: the reply, its errors (the
// connection carries on), and that an offer is replaced and withdrawn.
func TestOfferLanguages(t *testing.T) {
	e := newEnv(t)
	w := e.worker()
	offered := func(source string) []string {
		t.Helper()
		langs, err := e.Presence.OfferedLanguages(t.Context(), source)
		if err != nil {
			t.Fatal(err)
		}
		return langs
	}

	w.send(map[string]any{"action": "offerLanguages", "languages": map[string]any{"EN": []string{"gl", "es", "ca", "es", "en"}}})
	m := w.expect("languagesOffered")
	if got := m.m["languages"]; !reflect.DeepEqual(got, map[string]any{"en": []any{"ca", "es", "gl"}}) {
		t.Fatalf("languagesOffered = %v, want en → ca es gl (normalised, no duplicate, no source)", got)
	}
	if got := offered("en"); !reflect.DeepEqual(got, []string{"ca", "es", "gl"}) {
		t.Fatalf("offered = %v", got)
	}

	for _, tt := range []struct {
		name      string
		languages any
		code      string
	}{
		{"ErrMissing", nil, pentecost.EINVALIDMESSAGE},
		{"ErrNotAnObject", []string{"es"}, pentecost.EINVALIDMESSAGE},
		{"ErrTargetsNotStrings", map[string]any{"en": []any{1, 2}}, pentecost.EINVALIDMESSAGE},
		{"ErrInvalidLanguage", map[string]any{"en": []string{"spanish"}}, pentecost.EINVALIDLANGUAGE},
		{"ErrInvalidSource", map[string]any{"e1": []string{"es"}}, pentecost.EINVALIDLANGUAGE},
		{"ErrUnsupportedLanguage", map[string]any{"en": []string{"qq"}}, pentecost.EUNSUPPORTEDLANG},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := map[string]any{"action": "offerLanguages"}
			if tt.languages != nil {
				req["languages"] = tt.languages
			}
			w.send(req)
			m := w.expect("error")
			if m.m["code"] != tt.code || m.m["action"] != "offerLanguages" {
				t.Fatalf("error = %v, want %s naming the action", m.m, tt.code)
			}
			// The connection carries on, and the last good offer stands.
			w.send(map[string]any{"action": "heartbeat"})
			w.expect("heartbeatAck")
			if got := offered("en"); !reflect.DeepEqual(got, []string{"ca", "es", "gl"}) {
				t.Fatalf("offered after a refused offer = %v", got)
			}
		})
	}

	t.Run("Replaces", func(t *testing.T) {
		w.send(map[string]any{"action": "offerLanguages", "languages": map[string]any{"en": []string{"fr"}}})
		w.expect("languagesOffered")
		if got := offered("en"); !reflect.DeepEqual(got, []string{"fr"}) {
			t.Fatalf("offered = %v, want fr only", got)
		}
	})
	t.Run("DroppedOnDisconnect", func(t *testing.T) {
		w.closeNormally()
		poll(t, "offer withdrawn", func() bool { return len(offered("en")) == 0 })
	})
	t.Run("ListenerMayNotOffer", func(t *testing.T) {
		sess := e.createSession("alice")
		l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		l.expect("sessionJoined")
		l.send(map[string]any{"action": "offerLanguages", "languages": map[string]any{"en": []string{"es"}}})
		if m := l.expect("error"); m.m["code"] != pentecost.EUNKNOWNACTION {
			t.Fatalf("error = %v", m.m)
		}
	})
}

// TestSessionLanguages covers what GET /sessions/{id}/languages serves:
// the source, live (claimed) and available (offered) languages.
func TestSessionLanguages(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	svc, ok := e.Sessions.(pentecost.SessionLanguageService)
	if !ok {
		t.Fatal("NotifyingSessions is not a SessionLanguageService")
	}
	want := func(langs ...pentecost.SessionLanguage) {
		t.Helper()
		got, err := svc.SessionLanguages(t.Context(), sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.SessionID != sess.ID || got.SourceLanguage != "en" || !reflect.DeepEqual(got.Languages, langs) {
			t.Fatalf("languages = %+v, want %+v", got, langs)
		}
	}
	src := pentecost.SessionLanguage{Code: "en", Status: pentecost.LanguageSource}
	want(src)

	w := e.worker()
	w.send(map[string]any{"action": "offerLanguages", "languages": map[string]any{"en": []string{"es", "ca"}, "fr": []string{"de"}}})
	w.expect("languagesOffered")
	want(src, pentecost.SessionLanguage{Code: "ca", Status: pentecost.LanguageAvailable}, pentecost.SessionLanguage{Code: "es", Status: pentecost.LanguageAvailable})

	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")
	want(src, pentecost.SessionLanguage{Code: "es", Status: pentecost.LanguageLive}, pentecost.SessionLanguage{Code: "ca", Status: pentecost.LanguageAvailable})

	if _, err := svc.SessionLanguages(t.Context(), "not an id!"); pentecost.ErrorCode(err) != pentecost.EINVALIDSESSIONID {
		t.Fatalf("invalid id: %v", err)
	}
	if _, err := svc.SessionLanguages(t.Context(), "silent-otter-999"); pentecost.ErrorCode(err) != pentecost.ESESSIONNOTFOUND {
		t.Fatalf("unknown session: %v", err)
	}
}

// TestSpeakerPresence covers speakerConnected at join (and refresh) and
// speakerReconnected when a speaker arrives after a time with none.
func TestSpeakerPresence(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.SpeakerGrace = time.Minute })
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=en"

	early := e.dial(q)
	if m := early.expect("sessionJoined"); m.m["speakerConnected"] != false {
		t.Fatalf("before the speaker: speakerConnected = %v", m.m["speakerConnected"])
	}

	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	early.expect("speakerReconnected") // first connect: told, under the legacy name

	during := e.dial(q)
	if m := during.expect("sessionJoined"); m.m["speakerConnected"] != true {
		t.Fatalf("with the speaker: speakerConnected = %v", m.m["speakerConnected"])
	}
	refresh := e.dial("action=refreshConnection&role=listener&" + q)
	if m := refresh.expect("connectionRefreshComplete"); m.m["speakerConnected"] != true {
		t.Fatalf("refresh: speakerConnected = %v", m.m["speakerConnected"])
	}

	// A speaker refresh is no arrival: nobody hears speakerReconnected.
	sp2 := e.dial("action=refreshConnection&role=speaker&sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp2.expect("connectionRefreshComplete")
	sp.closeNormally()
	// Until the server has let the old connection go it is a live speaker
	// connection, and a listener joining meanwhile is right to hear so.
	poll(t, "the old speaker connection gone", func() bool { return e.speakerConns() == 1 })

	// The speaker drops: within the grace period a joining listener hears
	// it is away.
	sp2.conn.Close()
	for m := during.next(); m.typ() != "speakerDisconnected"; m = during.next() {
		if m.typ() == "speakerReconnected" {
			t.Fatal("speakerReconnected for a speaker refresh")
		}
	}
	late := e.dial(q)
	if m := late.expect("sessionJoined"); m.m["speakerConnected"] != false {
		t.Fatalf("in the grace period: speakerConnected = %v", m.m["speakerConnected"])
	}
	sp3 := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp3.expect("speakerConnected")
	late.expect("speakerReconnected")
	early.expect("speakerReconnected")
	during.expect("speakerReconnected")
	// None more: not for the speaker's refresh, not twice for one
	// arrival. A heartbeat marks the end of what came.
	for name, c := range map[string]*client{"early": early, "during": during, "late": late} {
		c.send(map[string]any{"action": "heartbeat"})
		for {
			m := c.next()
			if m.typ() == "heartbeatAck" {
				break
			}
			if m.typ() == "speakerReconnected" {
				t.Fatalf("%s: one speakerReconnected too many", name)
			}
		}
	}
}

// TestSourceTimestamp: a worker's sourceTimestamp becomes the timestamp of
// its audio for listeners, in JSON and in the binary header; a missing,
// mistyped or absurd one falls back to the server's receive time, and the
// publish never fails.
func TestSourceTimestamp(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	js := e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	js.expect("sessionJoined")
	bin := e.dial("sessionId=" + sess.ID + "&targetLanguage=es&audioFormat=binary")
	bin.expect("sessionJoined")
	w := e.worker()
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")

	now := time.Now()
	spoken := now.Add(-3 * time.Second).UnixMilli()
	for _, tt := range []struct {
		name   string
		source any // nil: no field
		want   int64
	}{
		{"OK", spoken, spoken},
		{"OKFraction", float64(spoken) + 0.4, spoken},
		{"Missing", nil, 0},
		{"Future", now.Add(time.Hour).UnixMilli(), 0},
		{"TooOld", now.Add(-time.Hour).UnixMilli(), 0},
		{"Zero", 0, 0},
		{"NotANumber", "yesterday", 0},
		{"Huge", 1e300, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := map[string]any{"action": "publishAudio", "sessionId": sess.ID, "targetLanguage": "es",
				"audioData": base64.StdEncoding.EncodeToString(audio(1, 640))}
			if tt.source != nil {
				req["sourceTimestamp"] = tt.source
			}
			before := time.Now().UnixMilli()
			w.send(req)
			m := js.expect("audioData")
			after := time.Now().UnixMilli()
			b, err := bin.nextBinary()
			if err != nil {
				t.Fatal(err)
			}
			_, _, binTS, _, err := realtime.DecodeBinaryAudio(b.data)
			if err != nil {
				t.Fatal(err)
			}
			jsonTS := int64(m.m["timestamp"].(float64))
			if binTS != jsonTS {
				t.Fatalf("binary timestamp %d, JSON %d", binTS, jsonTS)
			}
			if tt.want != 0 {
				if jsonTS != tt.want {
					t.Fatalf("timestamp = %d, want the source time %d", jsonTS, tt.want)
				}
				return
			}
			if jsonTS < before || jsonTS > after {
				t.Fatalf("timestamp = %d, want the receive time in [%d, %d]", jsonTS, before, after)
			}
		})
	}

	t.Run("SpeakerAudioKeepsReceiveTime", func(t *testing.T) {
		en := e.dial("sessionId=" + sess.ID + "&targetLanguage=en&audioFormat=binary")
		en.expect("sessionJoined")
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		sp.expect("speakerConnected")
		before := time.Now().UnixMilli()
		sp.sendBinary(audio(1, 640))
		b, err := en.nextBinary()
		if err != nil {
			t.Fatal(err)
		}
		if ts := int64(binary.BigEndian.Uint64(b.data[12:20])); ts < before || ts > time.Now().UnixMilli() {
			t.Fatalf("speaker frame timestamp %d, sent at %d", ts, before)
		}
	})
}

// TestStatusProducedLanguages: sessionStatus tells the speaker which
// languages a worker produces, and again when that changes.
func TestStatusProducedLanguages(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	sp.send(map[string]any{"action": "getSessionStatus"})
	if m := sp.expect("sessionStatus"); !reflect.DeepEqual(m.m["producedLanguages"], []any{}) {
		t.Fatalf("producedLanguages = %v, want []", m.m["producedLanguages"])
	}
	w := e.worker()
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")
	for {
		m := sp.expect("sessionStatus")
		if m.m["updateReason"] == "producedLanguagesChanged" {
			if !reflect.DeepEqual(m.m["producedLanguages"], []any{"es"}) {
				t.Fatalf("producedLanguages = %v, want [es]", m.m["producedLanguages"])
			}
			break
		}
	}
	w.send(map[string]any{"action": "releaseLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageReleased")
	for {
		m := sp.expect("sessionStatus")
		if m.m["updateReason"] == "producedLanguagesChanged" {
			if !reflect.DeepEqual(m.m["producedLanguages"], []any{}) {
				t.Fatalf("producedLanguages = %v, want []", m.m["producedLanguages"])
			}
			break
		}
	}
}

// speakerConns is how many speaker connections the server holds.
func (e *env) speakerConns() float64 {
	e.t.Helper()
	mfs, err := e.Registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "pentecost_ws_connections" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "role" && l.GetValue() == "speaker" {
					return value(m)
				}
			}
		}
	}
	return 0
}

// TestLiveSessions covers what the admin API lists: every speaker's live
// sessions, newest first, with their listeners by language, the languages
// workers produce, and whether the speaker is connected; ended sessions
// are left out.
func TestLiveSessions(t *testing.T) {
	e := newEnv(t)
	svc, ok := e.Sessions.(pentecost.LiveSessionService)
	if !ok {
		t.Fatal("NotifyingSessions is not a LiveSessionService")
	}
	older := e.CreateSession("alice", "en")
	newer := e.CreateSession("bob", "de")
	gone := e.CreateSession("bob", "fr")
	if _, err := e.Sessions.EndSession(pentecost.NewContextWithUser(t.Context(), &pentecost.User{ID: "bob"}), gone.ID); err != nil {
		t.Fatal(err)
	}

	for _, lang := range []string{"es", "es", "en"} {
		e.dial("sessionId=" + older.ID + "&targetLanguage=" + lang).expect("sessionJoined")
	}
	e.dial("sessionId=" + older.ID + "&token=" + e.token("alice")).expect("speakerConnected")
	w := e.worker()
	w.send(map[string]any{"action": "claimLanguage", "sessionId": older.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")

	live, total, err := svc.LiveSessions(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || len(live) != 2 || live[0].Session.ID != newer.ID || live[1].Session.ID != older.ID {
		t.Fatalf("got %d of %d: %+v; want %s then %s", len(live), total, live, newer.ID, older.ID)
	}
	if l := live[1]; l.Session.OwnerID != "alice" || l.Listeners.Total != 3 ||
		!reflect.DeepEqual(l.Listeners.ByLanguage, map[string]int{"es": 2, "en": 1}) ||
		!reflect.DeepEqual(l.Produced, []string{"es"}) || !l.SpeakerConnected {
		t.Fatalf("alice's session = %+v", l)
	}
	if l := live[0]; l.Listeners.Total != 0 || len(l.Listeners.ByLanguage) != 0 || len(l.Produced) != 0 || l.SpeakerConnected {
		t.Fatalf("bob's session = %+v", l)
	}

	if live, total, err := svc.LiveSessions(t.Context(), 1); err != nil || total != 2 || len(live) != 1 || live[0].Session.ID != newer.ID {
		t.Fatalf("limit 1: %+v, %d, %v", live, total, err)
	}
}
