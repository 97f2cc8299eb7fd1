package realtime_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"testing"

	"github.com/pentecost/pentecost"
)

func workerHeader() dialOpts {
	return dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}}
}

// TestReportLanguageStatus: a worker's reports reach the speaker in
// sessionStatus.languageStatus, and bad reports are reply errors that name
// the action while the connection carries on.
func TestReportLanguageStatus(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	w := e.dial("role=worker", workerHeader())
	hello := w.expect("workerConnected")
	workerID := hello.m["workerId"].(string)

	report := func(fields map[string]any) {
		m := map[string]any{"action": "reportLanguageStatus", "sessionId": sess.ID, "targetLanguage": "es"}
		for k, v := range fields {
			m[k] = v
		}
		w.send(m)
	}
	t.Run("ErrNoClaim", func(t *testing.T) {
		report(map[string]any{"latencyMs": 900})
		if m := w.expect("error"); m.m["code"] != pentecost.EACTIONNOTALLOWED || m.m["action"] != "reportLanguageStatus" {
			t.Fatalf("report without claim: %v", m.m)
		}
	})
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")

	for _, tt := range []struct {
		name   string
		fields map[string]any
		code   string
		field  string
	}{
		{"ErrUnknownStage", map[string]any{"stage": "decode"}, pentecost.EVALIDATIONFIELD, "stage"},
		{"ErrUnknownErrorCode", map[string]any{"stage": "translate", "errorCode": "HTTP 500: upstream said no"}, pentecost.EVALIDATIONFIELD, "errorCode"},
		{"ErrNegativeLatency", map[string]any{"latencyMs": -1}, pentecost.EVALIDATIONFIELD, "latencyMs"},
		{"ErrLatencyNotANumber", map[string]any{"latencyMs": "fast"}, pentecost.EVALIDATIONFIELD, "latencyMs"},
		{"ErrStageWrongType", map[string]any{"stage": 3}, pentecost.EINVALIDMESSAGE, ""},
		{"ErrInvalidLanguage", map[string]any{"targetLanguage": "xx-yy"}, pentecost.EINVALIDLANGUAGE, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			report(tt.fields)
			m := w.expect("error")
			if m.m["code"] != tt.code || m.m["action"] != "reportLanguageStatus" {
				t.Fatalf("error = %v, want %s naming the action", m.m, tt.code)
			}
			if tt.field != "" {
				if d, _ := m.m["details"].(map[string]any); d["field"] != tt.field {
					t.Fatalf("details = %v, want field %s", m.m["details"], tt.field)
				}
			}
		})
	}

	t.Run("OK", func(t *testing.T) {
		report(map[string]any{"stage": "translate", "errorCode": "throttled", "latencyMs": 1234})
		st := expectLanguageStatus(t, sp, "es", func(s map[string]any) bool { return s["errorCode"] == "throttled" })
		if st["workerId"] != workerID || st["stage"] != "translate" || st["latencyMs"] != 1234.0 || st["updatedAt"] == nil {
			t.Fatalf("languageStatus.es = %v", st)
		}
		// Recovery replaces it; the update may wait for the 2 s bound.
		report(map[string]any{"latencyMs": 800})
		st = expectLanguageStatus(t, sp, "es", func(s map[string]any) bool { return s["errorCode"] == "" })
		if st["stage"] != "" || st["latencyMs"] != 800.0 {
			t.Fatalf("languageStatus.es after recovery = %v", st)
		}
	})
	t.Run("InRequestedStatus", func(t *testing.T) {
		sp.send(map[string]any{"action": "getSessionStatus"})
		for {
			m := sp.expect("sessionStatus")
			if m.m["updateReason"] != "requested" {
				continue
			}
			ls, _ := m.m["languageStatus"].(map[string]any)
			if es, _ := ls["es"].(map[string]any); es == nil || es["latencyMs"] != 800.0 {
				t.Fatalf("requested status languageStatus = %v", m.m["languageStatus"])
			}
			break
		}
	})
	t.Run("ForgottenOnRelease", func(t *testing.T) {
		w.send(map[string]any{"action": "releaseLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
		for {
			m := sp.expect("sessionStatus")
			if m.m["updateReason"] != "producedLanguagesChanged" {
				continue
			}
			if ls, _ := m.m["languageStatus"].(map[string]any); len(ls) != 0 {
				t.Fatalf("languageStatus after release = %v", ls)
			}
			break
		}
	})
	t.Run("ErrRateLimit", func(t *testing.T) {
		w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
		w.expect("languageClaimed")
		for i := 0; i < 60; i++ {
			report(map[string]any{"latencyMs": i})
		}
		if m := w.expect("error"); m.m["code"] != pentecost.ERATELIMIT || m.m["action"] != "reportLanguageStatus" {
			t.Fatalf("flood: %v", m.m)
		}
		// The connection carries on.
		w.send(map[string]any{"action": "heartbeat"})
		w.expect("heartbeatAck")
	})
}

// expectLanguageStatus waits for a sessionStatus whose languageStatus of
// lang satisfies ok, and returns it.
func expectLanguageStatus(t testing.TB, sp *client, lang string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	for {
		m := sp.expect("sessionStatus")
		ls, _ := m.m["languageStatus"].(map[string]any)
		if st, _ := ls[lang].(map[string]any); st != nil && ok(st) {
			if m.m["updateReason"] != "languageStatusChanged" {
				t.Fatalf("updateReason = %v", m.m["updateReason"])
			}
			return st
		}
	}
}

// TestOfferTiers: tiers in workers' offers reach GET /capabilities, the
// union over connected workers; without a worker only standard is served.
func TestOfferTiers(t *testing.T) {
	e := newEnv(t)
	get := func() (caps struct {
		Tiers     []string            `json:"tiers"`
		Languages map[string][]string `json:"languages"`
		Timestamp int64               `json:"timestamp"`
	}) {
		t.Helper()
		resp, err := http.Get(e.URL + "/capabilities")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /capabilities: %d %s", resp.StatusCode, body)
		}
		if err := json.Unmarshal(body, &caps); err != nil || caps.Timestamp == 0 {
			t.Fatalf("GET /capabilities: %s (%v)", body, err)
		}
		return caps
	}
	want := func(tiers []string, langs map[string][]string) {
		t.Helper()
		got := get()
		if !reflect.DeepEqual(got.Tiers, tiers) || !reflect.DeepEqual(got.Languages, langs) {
			t.Fatalf("capabilities = %+v, want tiers %v languages %v", got, tiers, langs)
		}
	}
	want([]string{"standard"}, map[string][]string{})

	w1 := e.dial("role=worker", workerHeader())
	w1.expect("workerConnected")
	w1.send(map[string]any{"action": "offerLanguages", "languages": map[string][]string{"en": {"es"}}})
	if m := w1.expect("languagesOffered"); !reflect.DeepEqual(m.m["tiers"], []any{"standard"}) || len(m.m["languages"].(map[string]any)) != 1 {
		t.Fatalf("languagesOffered = %v", m.m)
	}
	want([]string{"standard"}, map[string][]string{"en": {"es"}})

	w2 := e.dial("role=worker", workerHeader())
	w2.expect("workerConnected")
	for _, tt := range []struct {
		name  string
		tiers any
		code  string
	}{
		{"ErrUnknownTier", []string{"gold"}, pentecost.EVALIDATIONFIELD},
		{"ErrEmpty", []string{}, pentecost.EVALIDATIONFIELD},
		{"ErrNotAnArray", "premium", pentecost.EINVALIDMESSAGE},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w2.send(map[string]any{"action": "offerLanguages", "languages": map[string][]string{"en": {"ca"}}, "tiers": tt.tiers})
			if m := w2.expect("error"); m.m["code"] != tt.code || m.m["action"] != "offerLanguages" {
				t.Fatalf("error = %v, want %s", m.m, tt.code)
			}
		})
	}
	w2.send(map[string]any{"action": "offerLanguages", "languages": map[string][]string{"en": {"ca", "es"}, "fr": {"en"}}, "tiers": []string{"premium", "standard", "premium"}})
	if m := w2.expect("languagesOffered"); !reflect.DeepEqual(m.m["tiers"], []any{"premium", "standard"}) {
		t.Fatalf("languagesOffered = %v", m.m)
	}
	want([]string{"standard", "premium"}, map[string][]string{"en": {"ca", "es"}, "fr": {"en"}})

	w2.closeNormally()
	poll(t, "the premium worker's offer to go", func() bool { return len(get().Tiers) == 1 })
	want([]string{"standard"}, map[string][]string{"en": {"es"}})
}
