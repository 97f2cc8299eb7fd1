package realtime_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"testing"

	"github.com/pentecost/pentecost"
)

// TestWorker proves the worker path with a test-only worker that
// republishes the source audio under another language tag. It is not a
// translator; it shows that audio and captions flow through a worker.
func TestWorker(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	es := e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	es.expect("sessionJoined")
	// No worker produces Spanish yet: the listener is told, not fed English.
	if m := es.expect("translationUnavailable"); m.m["targetLanguage"] != "es" {
		t.Fatalf("translationUnavailable = %v", m.m)
	}

	t.Run("ErrSpeakerTokenIsNotAWorkerCredential", func(t *testing.T) {
		c := e.dial("role=worker&token=" + e.token("alice"))
		if m := c.expect("error"); m.m["code"] != pentecost.EAUTHINVALID {
			t.Fatalf("code = %v", m.m["code"])
		}
	})

	w := e.dial("role=worker", dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}})
	hello := w.expect("workerConnected")
	sessions, _ := hello.m["sessions"].([]any)
	if len(sessions) != 1 {
		t.Fatalf("workerConnected sessions = %v", hello.m["sessions"])
	}
	first := sessions[0].(map[string]any)
	if first["sessionId"] != sess.ID || first["targetLanguages"].(map[string]any)["es"] != 1.0 {
		t.Fatalf("session = %v", first)
	}

	w.send(map[string]any{"action": "publishAudio", "sessionId": sess.ID, "targetLanguage": "es", "audioData": base64.StdEncoding.EncodeToString(audio(1, 640))})
	if m := w.expect("error"); m.m["code"] != pentecost.EACTIONNOTALLOWED {
		t.Fatalf("publish without claim: %v", m.m)
	}

	w.send(map[string]any{"action": "subscribeSession", "sessionId": sess.ID})
	w.expect("subscribed")
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
	w.expect("languageClaimed")
	es.expect("translationAvailable")

	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	for i := 1; i <= 5; i++ {
		sp.sendBinary(audio(i, 640))
	}
	for i := 1; i <= 5; i++ {
		m := w.expect("audioData")
		if m.m["sequenceNumber"] != float64(i) || m.m["language"] != "en" {
			t.Fatalf("source frame %d = %v", i, m.m)
		}
		w.send(map[string]any{"action": "publishAudio", "sessionId": sess.ID, "targetLanguage": "es", "audioData": m.m["audioData"]})
	}
	w.send(map[string]any{"action": "publishCaption", "sessionId": sess.ID, "targetLanguage": "es", "text": "hola", "final": true})
	for i := 1; i <= 5; i++ {
		m := es.expect("audioData")
		got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string))
		if m.m["language"] != "es" || m.m["sequenceNumber"] != float64(i) || !bytes.Equal(got, audio(i, 640)) {
			t.Fatalf("es frame %d = %v", i, m.m["sequenceNumber"])
		}
	}
	if m := es.expect("caption"); m.m["text"] != "hola" || m.m["final"] != true || m.m["sequenceNumber"] != 6.0 {
		t.Fatalf("caption = %v", m.m)
	}

	// The worker leaves: Spanish listeners are told.
	w.closeNormally()
	es.expect("translationUnavailable")
}
