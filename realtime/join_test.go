package realtime_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/realtime"
)

func TestJoin(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")

	t.Run("OK", func(t *testing.T) {
		l := e.dial("action=joinSession&sessionId=" + sess.ID + "&targetLanguage=en")
		m := l.expect("sessionJoined")
		if m.m["sessionId"] != sess.ID || m.m["targetLanguage"] != "en" || m.m["sourceLanguage"] != "en" || m.m["connectionId"] == "" {
			t.Fatalf("sessionJoined = %v", m.m)
		}
		if _, ok := m.m["broadcastState"].(map[string]any); !ok {
			t.Fatalf("no broadcastState in %v", m.m)
		}
	})

	t.Run("ForgivingID", func(t *testing.T) {
		l := e.dial("sessionId=" + url.QueryEscape(" "+sess.ID+" ") + "&targetLanguage=en")
		if m := l.expect("sessionJoined"); m.m["sessionId"] != sess.ID {
			t.Fatalf("sessionId = %v", m.m["sessionId"])
		}
	})

	t.Run("Speaker", func(t *testing.T) {
		s := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
		m := s.expect("speakerConnected")
		if m.m["sessionId"] != sess.ID {
			t.Fatalf("speakerConnected = %v", m.m)
		}
		s.closeNormally()
	})

	t.Run("SpeakerAuthorizationHeader", func(t *testing.T) {
		h := http.Header{"Authorization": {"Bearer " + e.token("alice")}}
		s := e.dial("sessionId="+sess.ID, dialOpts{header: h})
		s.expect("speakerConnected")
		s.closeNormally()
	})

	t.Run("SpeakerSubprotocol", func(t *testing.T) {
		s := e.dial("sessionId="+sess.ID, dialOpts{protocols: []string{"pentecost", "bearer." + e.token("alice")}})
		s.expect("speakerConnected")
		s.closeNormally()
	})

	ended := e.createSession("alice")
	if _, err := e.Store.EndSession(pentecost.NewContextWithUser(t.Context(), &pentecost.User{ID: "alice"}), ended.ID); err != nil {
		t.Fatal(err)
	}

	// Every refused join completes the upgrade, says why in one error
	// message and closes with 1008 (1013 when full).
	for _, tt := range []struct {
		name, query, code string
		close             ws.StatusCode
	}{
		{"ErrSessionNotFound", "sessionId=no-such-123&targetLanguage=en", pentecost.ESESSIONNOTFOUND, 1008},
		{"ErrSessionEnded", "sessionId=" + ended.ID + "&targetLanguage=en", pentecost.ESESSIONNOTFOUND, 1008},
		{"ErrInvalidSessionID", "sessionId=" + url.QueryEscape("<script>") + "&targetLanguage=en", pentecost.EINVALIDSESSIONID, 1008},
		{"ErrHugeSessionID", "sessionId=" + strings.Repeat("x", 5000) + "&targetLanguage=en", pentecost.EINVALIDSESSIONID, 1008},
		{"ErrUnsupportedLanguage", "sessionId=" + sess.ID + "&targetLanguage=qq", pentecost.EUNSUPPORTEDLANG, 1008},
		{"ErrInvalidLanguage", "sessionId=" + sess.ID + "&targetLanguage=english", pentecost.EINVALIDLANGUAGE, 1008},
		{"ErrAuthRequired", "sessionId=" + sess.ID, pentecost.EAUTHREQUIRED, 1008},
		{"ErrAuthInvalid", "sessionId=" + sess.ID + "&token=not.a.jwt", pentecost.EAUTHINVALID, 1008},
		{"ErrForbidden", "sessionId=" + sess.ID + "&token=" + e.token("mallory"), pentecost.EFORBIDDEN, 1008},
		{"ErrUnknownAction", "action=fly&sessionId=" + sess.ID, pentecost.EUNKNOWNACTION, 1008},
		{"ErrWorkerCredential", "role=worker&token=wrong", pentecost.EAUTHINVALID, 1008},
		// role=listener without a language is a listener's mistake, not a
		// missing speaker token.
		{"ErrListenerNoLanguage", "role=listener&sessionId=" + sess.ID, pentecost.EVALIDATIONFIELD, 1008},
		{"ErrListenerEmptyLanguage", "role=listener&targetLanguage=&sessionId=" + sess.ID, pentecost.EVALIDATIONFIELD, 1008},
		{"ErrSpeakerWithLanguage", "role=speaker&targetLanguage=es&sessionId=" + sess.ID + "&token=" + e.token("alice"), pentecost.EVALIDATIONFIELD, 1008},
		{"ErrUnknownRole", "role=dj&targetLanguage=es&sessionId=" + sess.ID, pentecost.EVALIDATIONFIELD, 1008},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := e.dial(tt.query)
			m := c.expect("error")
			if m.m["code"] != tt.code {
				t.Fatalf("code = %v, want %s", m.m["code"], tt.code)
			}
			if m.m["httpStatus"] == nil || m.m["message"] == "" || m.m["timestamp"] == nil {
				t.Fatalf("error lacks fields: %v", m.m)
			}
			if id, _ := m.m["sessionId"].(string); len(id) > 64 {
				t.Fatalf("error echoes a %d-byte sessionId", len(id))
			}
			if got := c.expectClose(); got != tt.close {
				t.Fatalf("close = %d, want %d", got, tt.close)
			}
		})
	}
}

func TestJoinRateLimit(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.JoinLimit = pentecost.Limit{Events: 2, Per: time.Minute} })
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=en"
	e.dial(q).expect("sessionJoined")
	e.dial(q).expect("sessionJoined")
	c := e.dial(q)
	m := c.expect("error")
	if m.m["code"] != pentecost.ERATELIMIT || m.m["retryAfter"] == nil || m.m["httpStatus"] != float64(429) {
		t.Fatalf("error = %v", m.m)
	}
	if code := c.expectClose(); code != 1008 {
		t.Fatalf("close = %d", code)
	}
}

func TestCapacity(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.MaxListeners = 2 })
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=en"
	a := e.dial(q)
	a.expect("sessionJoined")
	e.dial(q).expect("sessionJoined")

	t.Run("ErrSessionFull", func(t *testing.T) {
		c := e.dial(q)
		if m := c.expect("error"); m.m["code"] != pentecost.ESESSIONFULL {
			t.Fatalf("code = %v", m.m["code"])
		}
		if code := c.expectClose(); code != 1013 {
			t.Fatalf("close = %d, want 1013", code)
		}
	})

	t.Run("RefreshMayExceed", func(t *testing.T) {
		r := e.dial("action=refreshConnection&role=listener&" + q)
		r.expect("connectionRefreshComplete")
		a.closeNormally()
		poll(t, "count back to 2", func() bool {
			c, _ := e.Presence.Counts(t.Context(), sess.ID)
			return c.Total == 2
		})
	})
}

// TestNotAHandshake: requests to /ws that are no WebSocket handshake get
// the API's JSON error, like every other refusal before the upgrade.
func TestNotAHandshake(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.AllowedOrigins = []string{"https://church.example"} })
	sess := e.createSession("alice")
	handshake := http.Header{"Upgrade": {"websocket"}, "Connection": {"keep-alive, Upgrade"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	for _, tt := range []struct {
		name   string
		header func(h http.Header)
		status int
		code   string
	}{
		{"ErrPlainGET", func(h http.Header) { h.Del("Upgrade"); h.Del("Connection") }, 400, pentecost.EVALIDATION},
		{"ErrNoConnectionUpgrade", func(h http.Header) { h.Set("Connection", "keep-alive") }, 400, pentecost.EVALIDATION},
		{"ErrVersion", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, 400, pentecost.EVALIDATION},
		{"ErrNoKey", func(h http.Header) { h.Del("Sec-Websocket-Key") }, 400, pentecost.EVALIDATION},
		{"ErrOrigin", func(h http.Header) { h.Set("Origin", "https://evil.example") }, 403, pentecost.EFORBIDDEN},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", e.URL+"/ws?sessionId="+sess.ID+"&targetLanguage=en", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header = handshake.Clone()
			tt.header(req.Header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Type, Code, Message string }
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("status %d, body not JSON: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tt.status || body.Type != "error" || body.Code != tt.code || body.Message == "" {
				t.Fatalf("status %d, %+v; want %d %s", resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
}

func TestOrigin(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.AllowedOrigins = []string{"https://church.example"} })
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=en"

	t.Run("ErrForbidden", func(t *testing.T) {
		_, err := e.tryDial(q, dialOpts{header: http.Header{"Origin": {"https://evil.example"}}})
		var se ws.StatusError
		if !errors.As(err, &se) || int(se) != http.StatusForbidden {
			t.Fatalf("err = %v, want status 403", err)
		}
	})
	t.Run("Allowlisted", func(t *testing.T) {
		e.dial(q, dialOpts{header: http.Header{"Origin": {"https://church.example"}}}).expect("sessionJoined")
	})
	t.Run("SameOrigin", func(t *testing.T) {
		e.dial(q, dialOpts{header: http.Header{"Origin": {e.URL}}}).expect("sessionJoined")
	})
	t.Run("NoOrigin", func(t *testing.T) {
		e.dial(q).expect("sessionJoined")
	})
}

// TestBadInput: malformed or misplaced messages get an error and the
// connection stays; an oversized one closes only that connection with 1009.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	l.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")

	for _, tt := range []struct {
		name string
		c    *client
		send func(c *client)
		code string
	}{
		{"ErrMalformedJSON", l, func(c *client) { c.sendText([]byte(`{"action":`)) }, pentecost.EINVALIDMESSAGE},
		{"ErrNotObject", l, func(c *client) { c.sendText([]byte(`[1,2]`)) }, pentecost.EINVALIDMESSAGE},
		{"ErrWrongType", sp, func(c *client) { c.sendText([]byte(`{"action":"setVolume","volumeLevel":"loud"}`)) }, pentecost.EINVALIDMESSAGE},
		{"ErrUnknownAction", l, func(c *client) { c.send(map[string]any{"action": "dance"}) }, pentecost.EUNKNOWNACTION},
		{"ErrNoAction", l, func(c *client) { c.send(map[string]any{"hello": 1}) }, pentecost.EUNKNOWNACTION},
		{"ErrListenerAudioBinary", l, func(c *client) { c.sendBinary(audio(1, 640)) }, pentecost.EACTIONNOTALLOWED},
		{"ErrListenerSendAudio", l, func(c *client) {
			c.send(map[string]any{"action": "sendAudio", "audioData": base64.StdEncoding.EncodeToString(audio(1, 640))})
		}, pentecost.EACTIONNOTALLOWED},
		{"ErrChunkTooSmall", sp, func(c *client) { c.sendBinary(audio(1, 99)) }, pentecost.EINVALIDAUDIO},
		{"ErrChunkTooBig", sp, func(c *client) { c.sendBinary(audio(1, 32<<10+1)) }, pentecost.EINVALIDAUDIO},
		{"ErrChunkBase64", sp, func(c *client) { c.send(map[string]any{"action": "sendAudio", "audioData": "!!!"}) }, pentecost.EINVALIDAUDIO},
		{"ErrVolume", sp, func(c *client) { c.send(map[string]any{"action": "setVolume", "volumeLevel": 1.5}) }, pentecost.EVALIDATIONFIELD},
		{"ErrCommand", sp, func(c *client) { c.send(map[string]any{"action": "controlSession", "command": "explode"}) }, pentecost.EVALIDATIONFIELD},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.send(tt.c)
			if m := tt.c.expect("error"); m.m["code"] != tt.code {
				t.Fatalf("code = %v, want %s", m.m["code"], tt.code)
			}
			// Still up: a heartbeat is answered.
			tt.c.send(map[string]any{"action": "heartbeat"})
			tt.c.expect("heartbeatAck")
		})
	}

	t.Run("ChunkBounds", func(t *testing.T) {
		for _, n := range []int{100, 32 << 10} {
			sp.sendBinary(audio(n, n))
			m := l.expect("audioData")
			got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string))
			if !bytes.Equal(got, audio(n, n)) {
				t.Fatalf("chunk of %d bytes not delivered intact", n)
			}
		}
	})

	t.Run("ErrTooBig", func(t *testing.T) {
		big := bytes.Repeat([]byte("a"), 1<<20+1)
		l.sendText(big)
		if code := l.expectClose(); code != 1009 {
			t.Fatalf("close = %d, want 1009", code)
		}
		// Only that connection: the speaker is still served.
		sp.send(map[string]any{"action": "heartbeat"})
		sp.expect("heartbeatAck")
	})

	t.Run("ErrTooBigFragmented", func(t *testing.T) {
		// A first fragment, then a continuation claiming 2^63-1 bytes: the
		// sum once wrapped negative, passed the limit and crashed the
		// whole process in make.
		c := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		c.expect("sessionJoined")
		c.writeFrame(ws.Header{OpCode: ws.OpText}, []byte(`{"action":`))
		c.writeFrame(ws.Header{OpCode: ws.OpContinuation, Fin: true, Length: math.MaxInt64}, nil)
		if code := c.expectClose(); code != 1009 {
			t.Fatalf("close = %d, want 1009", code)
		}
		// The process and the session live on: a listener still hears.
		other := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		other.expect("sessionJoined")
		sp.sendBinary(audio(7, 640))
		m := other.expect("audioData")
		if got, _ := base64.StdEncoding.DecodeString(m.m["audioData"].(string)); !bytes.Equal(got, audio(7, 640)) {
			t.Fatal("wrong audio after the oversized fragment")
		}
	})
}

// TestPeerCloseCodes: the server answers a client's close with the same
// code when RFC 6455 lets a peer send it, and with 1002 when not.
func TestPeerCloseCodes(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	for _, tt := range []struct{ sent, want int }{
		{1000, 1000}, {1001, 1001}, {4100, 4100}, {3000, 3000},
		{1004, 1002}, {1005, 1002}, {1016, 1002}, {2999, 1002}, {5000, 1002},
	} {
		c := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
		c.expect("sessionJoined")
		if err := c.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(tt.sent), "")); err != nil {
			t.Fatal(err)
		}
		if code := c.expectClose(); int(code) != tt.want {
			t.Errorf("client closed with %d: server answered %d, want %d", tt.sent, code, tt.want)
		}
	}
}
