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

	// A field of the wrong type: the error still names the request.
	w.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es", "exclusive": "yes"})
	if m := w.expect("error"); m.m["code"] != pentecost.EINVALIDMESSAGE || m.m["action"] != "claimLanguage" ||
		m.m["sessionId"] != sess.ID || m.m["targetLanguage"] != "es" {
		t.Fatalf("undecodable claim: %v", m.m)
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

// claimReply waits for a worker's answer to claimLanguage: languageClaimed
// or an error.
func claimReply(t *testing.T, c *client) msg {
	t.Helper()
	for {
		m := c.next()
		if m.typ() == "languageClaimed" || m.typ() == "error" {
			return m
		}
	}
}

// TestWorkerExclusiveClaim races several workers for one language: exactly
// one wins, the others get CONFLICT naming the request, and listeners hear
// the language once.
func TestWorkerExclusiveClaim(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	es := e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	es.expect("sessionJoined")
	es.expect("translationUnavailable")

	auth := dialOpts{header: http.Header{"Authorization": {"Bearer worker-secret"}}}
	const n = 4
	workers := make([]*client, n)
	ids := make([]string, n)
	for i := range workers {
		workers[i] = e.dial("role=worker", auth)
		ids[i], _ = workers[i].expect("workerConnected").m["connectionId"].(string)
	}
	claim := map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es", "exclusive": true}
	for _, w := range workers {
		w.send(claim) // all in flight before any reply is read
	}
	winner := -1
	for i, w := range workers {
		m := claimReply(t, w)
		if m.typ() == "languageClaimed" {
			if winner >= 0 {
				t.Fatalf("workers %d and %d both won", winner, i)
			}
			winner = i
			continue
		}
		if m.m["code"] != pentecost.ECONFLICT || m.m["httpStatus"] != 409.0 || m.m["action"] != "claimLanguage" ||
			m.m["sessionId"] != sess.ID || m.m["targetLanguage"] != "es" {
			t.Fatalf("loser %d: %v", i, m.m)
		}
	}
	if winner < 0 {
		t.Fatal("no worker won")
	}
	es.expect("translationAvailable")

	// Every loser tries to publish and is refused (the refusals prove the
	// server processed those frames); then the winner publishes. The
	// listener hears the winner's frames once, numbered from 1, with
	// nothing in between.
	frame := func(i int) string { return base64.StdEncoding.EncodeToString(audio(i, 640)) }
	for i, w := range workers {
		if i == winner {
			continue
		}
		w.send(map[string]any{"action": "publishAudio", "sessionId": sess.ID, "targetLanguage": "es", "audioData": frame(100 + i)})
		if m := w.expect("error"); m.m["code"] != pentecost.EACTIONNOTALLOWED || m.m["action"] != "publishAudio" || m.m["targetLanguage"] != "es" {
			t.Fatalf("loser publish: %v", m.m)
		}
	}
	for i := 1; i <= 3; i++ {
		workers[winner].send(map[string]any{"action": "publishAudio", "sessionId": sess.ID, "targetLanguage": "es", "audioData": frame(i)})
	}
	workers[winner].send(map[string]any{"action": "publishCaption", "sessionId": sess.ID, "targetLanguage": "es", "text": "fin", "final": true})
	for i := 1; i <= 3; i++ {
		m := es.next()
		if m.typ() != "audioData" || m.m["sequenceNumber"] != float64(i) || m.m["audioData"] != frame(i) {
			t.Fatalf("es message %d = %v", i, m.m)
		}
	}
	if m := es.next(); m.typ() != "caption" || m.m["sequenceNumber"] != 4.0 {
		t.Fatalf("after the audio: %v", m.m)
	}

	loser := workers[(winner+1)%n]
	t.Run("ReplacingOwnConnection", func(t *testing.T) {
		// A worker's new connection takes over from its old one, which
		// still holds the claim; a bad previousConnectionId is refused.
		next := e.dial("role=worker", auth)
		next.expect("workerConnected")
		bad := map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es", "exclusive": true,
			"previousConnectionId": string(bytes.Repeat([]byte("x"), 65))}
		next.send(bad)
		if m := claimReply(t, next); m.m["code"] != pentecost.EVALIDATIONFIELD {
			t.Fatalf("long previousConnectionId: %v", m.m)
		}
		next.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es", "exclusive": true,
			"previousConnectionId": ids[winner]})
		if m := claimReply(t, next); m.typ() != "languageClaimed" || m.m["exclusive"] != true {
			t.Fatalf("replacing claim: %v", m.m)
		}
		loser.send(claim)
		if m := claimReply(t, loser); m.m["code"] != pentecost.ECONFLICT {
			t.Fatalf("claim against the replacement: %v", m.m)
		}
		next.send(map[string]any{"action": "releaseLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
		next.expect("languageReleased")
	})

	t.Run("ClaimAfterWinnerLeaves", func(t *testing.T) {
		workers[winner].closeNormally()
		es.expect("translationUnavailable")
		loser.send(claim)
		if m := claimReply(t, loser); m.typ() != "languageClaimed" {
			t.Fatalf("claim after the winner left: %v", m.m)
		}
		es.expect("translationAvailable")
	})

	t.Run("NonExclusiveShares", func(t *testing.T) {
		// Compatibility: a claim without "exclusive" joins as before.
		other := workers[(winner+2)%n]
		other.send(map[string]any{"action": "claimLanguage", "sessionId": sess.ID, "targetLanguage": "es"})
		if m := claimReply(t, other); m.typ() != "languageClaimed" || m.m["exclusive"] != false {
			t.Fatalf("plain claim: %v", m.m)
		}
	})

	t.Run("ErrorsNameTheRequest", func(t *testing.T) {
		loser.send(map[string]any{"action": "subscribeSession", "sessionId": "no-such-session-1"})
		m := loser.expect("error")
		if m.m["action"] != "subscribeSession" || m.m["sessionId"] != "no-such-session-1" {
			t.Fatalf("subscribe error: %v", m.m)
		}
		loser.send(map[string]any{"action": "releaseLanguage", "sessionId": sess.ID, "targetLanguage": "xx-invalid!"})
		m = loser.expect("error")
		if m.m["action"] != "releaseLanguage" || m.m["sessionId"] != sess.ID || m.m["targetLanguage"] != "xx-invalid!" {
			t.Fatalf("release error: %v", m.m)
		}
	})
}
