package realtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost/realtime"
)

func TestHeartbeat(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) {
		// The timeout is ten intervals, so that a test goroutine paused
		// by a busy CI machine still answers in time.
		s.HeartbeatInterval = 50 * time.Millisecond
		s.HeartbeatTimeout = 500 * time.Millisecond
	})
	sess := e.createSession("alice")
	q := "sessionId=" + sess.ID + "&targetLanguage=en"

	t.Run("Ack", func(t *testing.T) {
		c := e.dial(q)
		c.expect("sessionJoined")
		c.send(map[string]any{"action": "heartbeat"})
		if m := c.expect("heartbeatAck"); m.m["timestamp"] == nil {
			t.Fatalf("heartbeatAck = %v", m.m)
		}
	})
	t.Run("Ping", func(t *testing.T) {
		c := e.dial(q)
		c.expect("sessionJoined")
		for m := c.next(); m.op != ws.OpPing; m = c.next() {
		}
	})
	t.Run("PongsKeepAlive", func(t *testing.T) {
		c := e.dial(q)
		c.expect("sessionJoined")
		// Outlive the timeout several times over by answering pings.
		deadline := time.Now().Add(4 * 500 * time.Millisecond)
		for time.Now().Before(deadline) {
			c.next()
		}
	})
	t.Run("IdleTimeout", func(t *testing.T) {
		quiet := e.createSession("alice")
		c := e.dial("sessionId="+quiet.ID+"&targetLanguage=en", dialOpts{noPong: true})
		c.expect("sessionJoined")
		if code := c.expectClose(); code != realtime.CloseIdle {
			t.Fatalf("close = %d, want %d", code, realtime.CloseIdle)
		}
		expectCount(t, e, quiet.ID, 0)
	})
}

func TestHeartbeatRateLimit(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.HeartbeatLimit.Events = 2 })
	sess := e.createSession("alice")
	c := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	c.expect("sessionJoined")
	for range 2 {
		c.send(map[string]any{"action": "heartbeat"})
		c.expect("heartbeatAck")
	}
	c.send(map[string]any{"action": "heartbeat"})
	if m := c.expect("error"); m.m["code"] != "RATE_LIMIT_EXCEEDED" {
		t.Fatalf("error = %v", m.m)
	}
}

// TestConnectionAge: refresh request, warning and maximum duration.
func TestConnectionAge(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) {
		// Wide gaps: a tick delayed past the next threshold by a busy
		// machine would skip a message (the close wins over the warning).
		s.RefreshAfter = 100 * time.Millisecond
		s.WarningAfter = 700 * time.Millisecond
		s.MaxConnDuration = 1400 * time.Millisecond
	})
	sess := e.createSession("alice")
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=es")
	l.expect("sessionJoined")
	m := l.expect("connectionRefreshRequired")
	if m.m["sessionId"] != sess.ID || m.m["role"] != "listener" || m.m["targetLanguage"] != "es" {
		t.Fatalf("connectionRefreshRequired = %v", m.m)
	}
	if m := l.expect("connectionWarning"); m.m["remainingMinutes"] == nil {
		t.Fatalf("connectionWarning = %v", m.m)
	}
	if code := l.expectClose(); code != realtime.CloseMaxDuration {
		t.Fatalf("close = %d", code)
	}

	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	if m := sp.expect("connectionRefreshRequired"); m.m["role"] != "speaker" {
		t.Fatalf("connectionRefreshRequired = %v", m.m)
	}
}

func TestConnectionAgeDisabled(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) {
		s.RefreshAfter, s.WarningAfter, s.MaxConnDuration = 0, 0, 0
		s.HeartbeatInterval = 10 * time.Millisecond
	})
	sess := e.createSession("alice")
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	l.expect("sessionJoined")
	// Pings show time passing; nothing else may arrive.
	for range 20 {
		if m := l.next(); m.op != ws.OpPing {
			t.Fatalf("unexpected %v", m.m)
		}
	}
}

func TestPeriodicStatus(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.StatusInterval = 30 * time.Millisecond })
	sess := e.createSession("alice")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	for m := sp.expect("sessionStatus"); m.m["updateReason"] != "periodic"; m = sp.expect("sessionStatus") {
	}
}

// TestStatusOnChange: a new language or a >10 % change reaches the speaker at once.
func TestStatusOnChange(t *testing.T) {
	e := newEnv(t)
	sess := e.createSession("alice")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	e.dial("sessionId=" + sess.ID + "&targetLanguage=en").expect("sessionJoined")
	sp.expect("sessionStatus")
	e.dial("sessionId=" + sess.ID + "&targetLanguage=fr").expect("sessionJoined")
	m := sp.expect("sessionStatus")
	if m.m["listenerCount"] != 2.0 {
		t.Fatalf("sessionStatus = %v", m.m)
	}
}

// TestDrain: Shutdown asks everyone to refresh, then closes with 1001.
func TestDrain(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.DrainTimeout = 100 * time.Millisecond })
	sess := e.createSession("alice")
	l := e.dial("sessionId=" + sess.ID + "&targetLanguage=en")
	l.expect("sessionJoined")
	sp := e.dial("sessionId=" + sess.ID + "&token=" + e.token("alice"))
	sp.expect("speakerConnected")
	done := make(chan error, 1)
	go func() { done <- e.Realtime.Shutdown(context.Background()) }()
	l.expect("connectionRefreshRequired")
	sp.expect("connectionRefreshRequired")
	if code := l.expectClose(); code != ws.StatusGoingAway {
		t.Fatalf("close = %d", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The session survives a drain: the speaker will come back elsewhere.
	s, _ := e.Store.FindSessionByID(context.Background(), sess.ID)
	if s.Status == "ended" {
		t.Fatal("drain ended the session")
	}
}
