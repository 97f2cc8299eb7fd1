package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsConn is a raw WebSocket client reading JSON messages, as the original
// system's clients do.
type wsConn struct {
	tb testing.TB
	c  *websocket.Conn
}

func dialWS(tb testing.TB, httpURL, query string) *wsConn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(httpURL, "http://", "ws://", 1)+"/ws?"+query, nil)
	if err != nil {
		tb.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	tb.Cleanup(func() { c.CloseNow() })
	return &wsConn{tb, c}
}

// next returns the next JSON message whose type is want, skipping others.
func (w *wsConn) next(want string) map[string]any {
	w.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, data, err := w.c.Read(ctx)
		if err != nil {
			w.tb.Fatalf("waiting for %s: %v", want, err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			w.tb.Fatalf("not JSON: %q", data)
		}
		if m["type"] == want {
			return m
		}
	}
}

func (w *wsConn) send(msg string) {
	w.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		w.tb.Fatal(err)
	}
}

// TestServe_RealtimeWiring checks what only main wires: the /ws endpoint on
// the API's port, HTTP changes reaching listeners, expiry announced to
// them, and shutdown asking clients to refresh before closing.
func TestServe_RealtimeWiring(t *testing.T) {
	dir := t.TempDir()
	m, _ := MustRunMain(t, dir, map[string]string{"SHUTDOWN_TIMEOUT_SECONDS": "0.5"})
	url := m.HTTPServer.URL()
	token := mustToken(t, dir, "admin")

	status, body := do(t, "POST", url+"/sessions", token, `{"sourceLanguage":"en"}`)
	if status != 201 {
		t.Fatalf("create: %d %v", status, body)
	}
	id := body["sessionId"].(string)

	speaker := dialWS(t, url, "sessionId="+id+"&token="+token)
	speaker.next("speakerConnected")
	listener := dialWS(t, url, "sessionId="+id+"&targetLanguage=en")
	listener.next("sessionJoined")

	speaker.send(`{"action":"sendAudio","audioData":"` + strings.Repeat("AAAA", 50) + `"}`)
	if got := listener.next("audioData"); got["audioData"] != strings.Repeat("AAAA", 50) {
		t.Fatalf("audio = %v", got["audioData"])
	}

	// A PATCH over HTTP reaches the listener as the speaker's control would.
	if status, body = do(t, "PATCH", url+"/sessions/"+id, token, `{"status":"paused"}`); status != 200 {
		t.Fatalf("patch: %d %v", status, body)
	}
	listener.next("sessionPaused")
	waitFor(t, func() bool {
		_, b := do(t, "GET", url+"/sessions/"+id, "", "")
		return b["listenerCount"] == 1.0
	})

	// Shutdown drains: every client is asked to refresh first.
	done := make(chan error, 1)
	go func() { done <- m.Close() }()
	listener.next("connectionRefreshRequired")
	speaker.next("connectionRefreshRequired")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestServe_ExpiryEndsListeners checks that a session ended by the idle
// sweep tells its listeners.
func TestServe_ExpiryEndsListeners(t *testing.T) {
	dir := t.TempDir()
	m, _ := MustRunMain(t, dir, map[string]string{"SESSION_MAX_DURATION_HOURS": "0.0002"}, // 0.72 s
		func(m *Main) { m.SweepInterval = 50 * time.Millisecond })
	url := m.HTTPServer.URL()
	token := mustToken(t, dir, "admin")
	_, body := do(t, "POST", url+"/sessions", token, `{"sourceLanguage":"en"}`)
	id := body["sessionId"].(string)
	listener := dialWS(t, url, "sessionId="+id+"&targetLanguage=en")
	listener.next("sessionJoined")

	// The background sweep ends it and tells the listener.
	if got := listener.next("sessionEnded"); got["reason"] != "expired" {
		t.Fatalf("reason = %v", got["reason"])
	}
}
