package realtime_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

// TestRefreshMidStream: a listener that refreshes in the middle of a
// stream, passing the last sequence it played, hears every sequence number
// exactly once across both connections.
func TestRefreshMidStream(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=en"
	old := e.dial(q)
	old.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")

	const total = 300
	go func() {
		for i := 1; i <= total; i++ {
			sp.sendBinary(audio(i, 320))
		}
	}()
	seen := map[float64]int{}
	var last float64
	for last < 100 {
		m := old.expect("audioData")
		last = m.m["sequenceNumber"].(float64)
		seen[last]++
	}
	// Frames still queued on the old connection are abandoned with it.
	fresh := e.dial("action=refreshConnection&role=listener&" + q + "&lastSequenceNumber=" + strconv.Itoa(int(last)))
	r := fresh.expect("connectionRefreshComplete")
	old.closeNormally()
	if r.m["role"] != "listener" || r.m["targetLanguage"] != "en" {
		t.Fatalf("refresh reply = %v", r.m)
	}
	for last < total {
		m := fresh.next()
		if m.typ() == "streamGap" {
			t.Fatalf("unexpected gap: %v", m.m)
		}
		if m.typ() != "audioData" {
			continue
		}
		seq := m.m["sequenceNumber"].(float64)
		if seq != last+1 {
			t.Fatalf("after %v got %v", last, seq)
		}
		got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string))
		if !bytes.Equal(got, audio(int(seq), 320)) {
			t.Fatalf("frame %v corrupted: %d bytes, head %x", seq, len(got), got[:8])
		}
		last = seq
		seen[seq]++
	}
	for i := 1; i <= total; i++ {
		if seen[float64(i)] != 1 {
			t.Fatalf("sequence %d heard %d times", i, seen[float64(i)])
		}
	}
}

// TestResumeGap: a position older than the history, or from another epoch,
// is reported plainly with streamGap.
func TestResumeGap(t *testing.T) {
	e := newEnv(t)
	e.Broker.HistorySize = 10
	sess := e.createSession("alice")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	watch := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	j := watch.expect("sessionJoined")
	epoch := j.m["epoch"].(string)
	for i := 1; i <= 30; i++ {
		sp.sendBinary(audio(i, 200))
	}
	for i := 1; i <= 30; i++ {
		watch.expect("audioData")
	}
	q := "sessionId=" + sess.ID + "&targetLanguage=en&epoch=" + epoch + "&lastSequenceNumber="

	t.Run("Continuous", func(t *testing.T) {
		c := e.dial(q + "25")
		c.expect("sessionJoined")
		for want := 26.0; want <= 30; want++ {
			m := c.next()
			if m.typ() != "audioData" || m.m["sequenceNumber"] != want {
				t.Fatalf("want audio %v, got %v", want, m.m)
			}
		}
	})
	t.Run("HistoryExpired", func(t *testing.T) {
		c := e.dial(q + "5")
		c.expect("sessionJoined")
		g := c.next()
		if g.typ() != "streamGap" || g.m["reason"] != "historyExpired" || g.m["firstSequenceNumber"] != 21.0 {
			t.Fatalf("gap = %v", g.m)
		}
		if m := c.next(); m.m["sequenceNumber"] != 21.0 {
			t.Fatalf("first replayed = %v", m.m)
		}
	})
	t.Run("EpochChanged", func(t *testing.T) {
		c := e.dial(strings.Replace(q, epoch, "deadbeef", 1) + "25")
		c.expect("sessionJoined")
		if g := c.next(); g.typ() != "streamGap" || g.m["reason"] != "epochChanged" {
			t.Fatalf("gap = %v", g.m)
		}
		sp.sendBinary(audio(31, 200))
		if m := c.next(); m.m["sequenceNumber"] != 31.0 {
			t.Fatalf("live = %v", m.m)
		}
	})
}

// TestSpeakerGrace: a dropped speaker may come back within the grace
// period; otherwise the session ends.
func TestSpeakerGrace(t *testing.T) {
	t.Run("Reconnect", func(t *testing.T) {
		e := newEnv(t, func(s *realtime.Server) { s.SpeakerGrace = time.Minute })
		sess := e.createSession("alice")
		l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		l.expect("sessionJoined")
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		sp.expect("speakerConnected")
		_ = sp.conn.Close() // dropped, no close frame
		if m := l.expect("speakerDisconnected"); m.m["gracePeriodSeconds"] != 60.0 {
			t.Fatalf("speakerDisconnected = %v", m.m)
		}
		back := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		back.expect("speakerConnected")
		if m := back.expect("stateRestored"); m.m["listenerCount"] != 1.0 {
			t.Fatalf("stateRestored = %v", m.m)
		}
		l.expect("speakerReconnected")
		back.sendBinary(audio(1, 640))
		l.expect("audioData")
	})

	t.Run("EndAfterGrace", func(t *testing.T) {
		e := newEnv(t, func(s *realtime.Server) { s.SpeakerGrace = 50 * time.Millisecond })
		sess := e.createSession("alice")
		l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		l.expect("sessionJoined")
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		sp.expect("speakerConnected")
		_ = sp.conn.Close()
		l.expect("speakerDisconnected")
		if m := l.expect("sessionEnded"); m.m["reason"] != "speakerTimeout" {
			t.Fatalf("sessionEnded = %v", m.m)
		}
		if code := l.expectClose(); code != 1000 {
			t.Fatalf("close = %d", code)
		}
		s, err := e.Store.FindSessionByID(t.Context(), sess.ID)
		if err != nil || s.Status != pentecost.SessionEnded {
			t.Fatalf("stored status = %v, %v", s.Status, err)
		}
	})

	t.Run("SpeakerRefresh", func(t *testing.T) {
		e := newEnv(t, func(s *realtime.Server) { s.SpeakerGrace = 50 * time.Millisecond })
		sess := e.createSession("alice")
		l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		l.expect("sessionJoined")
		sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		sp.expect("speakerConnected")
		sp.send(map[string]any{"action": "sendAudio", "audioData": base64.StdEncoding.EncodeToString(audio(1, 640)), "sequenceNumber": 1})
		fresh := e.dial("action=refreshConnection&role=speaker&sessionId=" + sess.ID + "&token=" + e.token("alice"))
		fresh.expect("connectionRefreshComplete")
		fresh.expect("stateRestored")
		// The old connection resends chunk 1 (dropped) and the new one goes on.
		sp.send(map[string]any{"action": "sendAudio", "audioData": base64.StdEncoding.EncodeToString(audio(1, 640)), "sequenceNumber": 1})
		sp.closeNormally()
		fresh.send(map[string]any{"action": "sendAudio", "audioData": base64.StdEncoding.EncodeToString(audio(2, 640)), "sequenceNumber": 2})
		for want := 1.0; want <= 2; want++ {
			m := l.expect("audioData")
			got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string))
			if !bytes.Equal(got, audio(int(want), 640)) {
				t.Fatalf("chunk %v: wrong audio (duplicate not dropped?)", want)
			}
		}
		// Closing the old connection was not a speaker drop: no notice, no end.
		fresh.send(map[string]any{"action": "getSessionStatus"})
		fresh.expect("sessionStatus")
		l.send(map[string]any{"action": "heartbeat"})
		for m := l.next(); m.typ() != "heartbeatAck"; m = l.next() {
			if m.typ() == "speakerDisconnected" || m.typ() == "sessionEnded" {
				t.Fatalf("refresh seen as a drop: %v", m.m)
			}
		}
	})

	t.Run("ErrForbiddenOtherUser", func(t *testing.T) {
		e := newEnv(t)
		sess := e.createSession("alice")
		c := e.dial("action=refreshConnection&role=speaker&sessionId=" + sess.ID + "&token=" + e.token("bob"))
		if m := c.expect("error"); m.m["code"] != pentecost.EFORBIDDEN {
			t.Fatalf("code = %v", m.m["code"])
		}
	})
}

// TestControls: the speaker's controls and HTTP changes reach listeners as
// the same messages, and are stored.
func TestControls(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	l.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")

	for _, tt := range []struct {
		send map[string]any
		want string
	}{
		{map[string]any{"action": "controlSession", "command": "pause"}, "sessionPaused"},
		{map[string]any{"action": "controlSession", "command": "resume"}, "sessionResumed"},
		{map[string]any{"action": "muteBroadcast"}, "broadcastMuted"},
		{map[string]any{"action": "unmuteBroadcast"}, "broadcastUnmuted"},
		{map[string]any{"action": "pauseBroadcast"}, "sessionPaused"},
		{map[string]any{"action": "resumeBroadcast"}, "sessionResumed"},
		{map[string]any{"action": "setVolume", "volumeLevel": 0.5}, "volumeChanged"},
		{map[string]any{"action": "speakerStateChange", "state": "praying"}, "speakerStateChanged"},
	} {
		t.Run(tt.want, func(t *testing.T) {
			sp.send(tt.send)
			l.expect(tt.want)
			sp.expect(tt.want)
		})
	}
	s, _ := e.Store.FindSessionByID(t.Context(), sess.ID)
	if s.BroadcastState.Volume != 0.5 || s.BroadcastState.SpeakerState != "praying" {
		t.Fatalf("stored state = %+v", s.BroadcastState)
	}

	t.Run("PausedHoldsAudio", func(t *testing.T) {
		sp.send(map[string]any{"action": "controlSession", "command": "pause"})
		l.expect("sessionPaused")
		sp.sendBinary(audio(1, 640))
		sp.send(map[string]any{"action": "controlSession", "command": "resume"})
		if m := l.next(); m.typ() != "sessionResumed" {
			t.Fatalf("audio leaked while paused: %v", m.typ())
		}
	})

	t.Run("HTTPPatch", func(t *testing.T) {
		paused := true
		upd, err := e.Store.UpdateSession(pentecost.NewContextWithUser(t.Context(), &pentecost.User{ID: "alice"}), sess.ID,
			pentecost.SessionUpdate{BroadcastState: &pentecost.BroadcastStateUpdate{Paused: &paused}})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Realtime.SessionUpdated(t.Context(), upd); err != nil {
			t.Fatal(err)
		}
		l.expect("sessionPaused")
	})

	t.Run("PlaybackPause", func(t *testing.T) {
		l2 := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		l2.expect("sessionJoined")
		sp.send(map[string]any{"action": "controlSession", "command": "resume"})
		l2.expect("sessionResumed")
		l2.send(map[string]any{"action": "pausePlayback"})
		l2.expect("playbackPaused")
		sp.sendBinary(audio(7, 640))
		l.expect("audioData")
		l2.send(map[string]any{"action": "resumePlayback"})
		if m := l2.next(); m.typ() != "playbackResumed" {
			t.Fatalf("paused listener got %v", m.typ())
		}
	})

	t.Run("Status", func(t *testing.T) {
		sp.send(map[string]any{"action": "getSessionStatus"})
		m := sp.expect("sessionStatus")
		for m.m["updateReason"] != "requested" {
			m = sp.expect("sessionStatus")
		}
		if m.m["listenerCount"] != 2.0 || m.m["languageDistribution"] == nil {
			t.Fatalf("sessionStatus = %v", m.m)
		}
	})

	t.Run("HTTPDelete", func(t *testing.T) {
		ended, err := e.Store.EndSession(pentecost.NewContextWithUser(t.Context(), &pentecost.User{ID: "alice"}), sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Realtime.SessionEnded(t.Context(), ended); err != nil {
			t.Fatal(err)
		}
		l.expect("sessionEnded")
		if code := l.expectClose(); code != 1000 {
			t.Fatalf("close = %d", code)
		}
		sp.expect("sessionEnded")
	})
}

func TestEndSessionAction(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	l.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	sp.send(map[string]any{"action": "endSession"})
	l.expect("sessionEnded")
	sp.expect("sessionEnded")
	if code := sp.expectClose(); code != 1000 {
		t.Fatalf("close = %d", code)
	}
	resp, err := http.Get(e.URL + "/sessions/" + sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s, _ := e.Store.FindSessionByID(context.Background(), sess.ID)
	if s.Status != pentecost.SessionEnded {
		t.Fatalf("status = %s", s.Status)
	}
	expectCount(t, e, sess.ID, 0)
}

func TestLegacyCreateSession(t *testing.T) {
	e := newEnv(t)
	c := e.dial("action=createSession&sourceLanguage=es&qualityTier=premium&token=" + e.token("alice"))
	m := c.expect("sessionCreated")
	id, _ := m.m["sessionId"].(string)
	if id == "" || m.m["sourceLanguage"] != "es" || m.m["qualityTier"] != "premium" || m.m["expiresAt"] == nil || m.m["connectionId"] == nil {
		t.Fatalf("sessionCreated = %v", m.m)
	}
	l := e.dial("sessionId=" + id + "&targetLanguage=es")
	l.expect("sessionJoined")
	c.sendBinary(audio(1, 640))
	l.expect("audioData")
}
