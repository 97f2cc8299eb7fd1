package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/realtime"
)

// speakerLog keeps what a Speaker reported.
type speakerLog struct {
	mu       sync.Mutex
	conns    []client.SpeakerConnected
	statuses []client.Status
	events   []string
}

func (s *speakerLog) eventCount(typ string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if e == typ {
			n++
		}
	}
	return n
}

func (s *speakerLog) attach(sp *client.Speaker) {
	sp.OnConnected = func(c client.SpeakerConnected) {
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
	}
	sp.OnEvent = func(e client.Event) {
		s.mu.Lock()
		s.events = append(s.events, e.Type)
		s.mu.Unlock()
	}
	sp.OnStatus = func(st client.Status) {
		s.mu.Lock()
		s.statuses = append(s.statuses, st)
		s.mu.Unlock()
	}
}

func (s *speakerLog) restored() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, st := range s.statuses {
		if st.UpdateReason == "stateRestored" {
			n++
		}
	}
	return n
}

func TestSpeaker_CreateSession(t *testing.T) {
	e := newEnv(t)
	sp := client.NewSpeaker(e.URL, e.token("alice"))
	sp.SourceLanguage = "en"
	var log speakerLog
	log.attach(sp)
	if err := sp.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	id := sp.Session()
	if id == "" || len(log.conns) != 1 || !log.conns[0].Created || log.conns[0].QualityTier != "standard" || log.conns[0].ExpiresAt.IsZero() {
		t.Fatalf("session %q, connected %+v", id, log.conns)
	}
	_, r := openListener(t, e, id, "en", false)
	send(t, sp, 0, 3)
	poll(t, "frames", func() bool { return r.frameCount() == 3 })
	r.checkFrames(t, "en", 0, 3)
}

func TestSpeaker_Refused(t *testing.T) {
	for _, tt := range []struct {
		name, user, code string
		token            bool
	}{
		{name: "ErrForbidden", user: "mallory", code: "FORBIDDEN", token: true},
		{name: "ErrAuthRequired", code: "AUTH_REQUIRED"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.createSession("alice")
			sp := client.NewSpeaker(e.URL, "")
			if tt.token {
				sp.Token = e.token(tt.user)
			}
			sp.SessionID = id
			err := sp.Open(context.Background())
			var ae *client.Error
			if !errors.As(err, &ae) || ae.Code != tt.code {
				t.Fatalf("Open = %v, want %s", err, tt.code)
			}
			if client.Classify(err).Retry {
				t.Fatalf("Classify(%v) says retry", err)
			}
		})
	}
}

// TestSpeaker_Replaced: a second speaker connection takes over; the first
// is closed with 4003 and stops instead of fighting back.
func TestSpeaker_Replaced(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	first := openSpeaker(t, e, "alice", id, false)
	openSpeaker(t, e, "alice", id, false)
	select {
	case <-first.Done():
	case <-time.After(wait):
		t.Fatal("first speaker did not stop")
	}
	var ce *client.CloseError
	if !errors.As(first.Err(), &ce) || ce.Code != client.CloseReplaced {
		t.Fatalf("Err = %v, want close 4003", first.Err())
	}
}

// TestSpeaker_Grace: a speaker whose connection is cut comes back within
// the grace period; listeners hear it went and came back, the speaker
// gets its state restored, and its audio continues.
func TestSpeaker_Grace(t *testing.T) {
	e := newEnv(t, func(s *realtime.Server) { s.SpeakerGrace = time.Minute })
	id := e.createSession("alice")
	sp := client.NewSpeaker(e.URL, e.token("alice"))
	sp.SessionID, sp.MinBackoff = id, 20*time.Millisecond
	var log speakerLog
	log.attach(sp)
	if err := sp.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	if err := sp.Pause(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll(t, "the speaker's own sessionPaused", func() bool { return log.eventCount(client.EventSessionPaused) == 1 })
	_, r := openListener(t, e, id, "en", false)
	if !r.joins[0].BroadcastState.Paused {
		t.Fatal("listener joined a paused session but was not told")
	}

	// Cut only the speaker: it is the first connection the server took.
	speakerConn := e.Conns()[0]
	_ = speakerConn.Close()
	poll(t, "speakerDisconnected", func() bool { return r.eventCount(client.EventSpeakerDisconnected) == 1 })
	poll(t, "speakerReconnected", func() bool { return r.eventCount(client.EventSpeakerReconnected) == 1 })
	poll(t, "stateRestored", func() bool { return log.restored() == 1 })

	if err := sp.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll(t, "sessionResumed", func() bool { return r.eventCount(client.EventSessionResumed) == 1 })
	send(t, sp, 0, 5)
	poll(t, "frames", func() bool { return r.frameCount() == 5 })
	r.checkFrames(t, "en", 0, 5)
}

func TestSpeaker_InvalidChunk(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	sp := openSpeaker(t, e, "alice", id, false)
	for _, n := range []int{0, client.MinAudioChunk - 1, client.MaxAudioChunk + 1} {
		var ae *client.Error
		if err := sp.SendAudio(context.Background(), make([]byte, n)); !errors.As(err, &ae) || ae.Code != "INVALID_AUDIO_CHUNK" {
			t.Fatalf("SendAudio(%d bytes) = %v, want INVALID_AUDIO_CHUNK", n, err)
		}
	}
}

func TestClassify(t *testing.T) {
	rate := &client.Error{Code: "RATE_LIMIT_EXCEEDED", RetryAfter: 7 * time.Second}
	for _, tt := range []struct {
		name string
		err  error
		want client.Decision
	}{
		{"SessionEnded", &client.CloseError{Code: 1000}, client.Decision{}},
		{"GoingAway", &client.CloseError{Code: 1001}, client.Decision{Retry: true, Immediately: true}},
		{"Policy", &client.CloseError{Code: 1008, Err: &client.Error{Code: "SESSION_NOT_FOUND"}}, client.Decision{}},
		{"RateLimited", &client.CloseError{Code: 1008, Err: rate}, client.Decision{Retry: true, After: 7 * time.Second}},
		{"TooBig", &client.CloseError{Code: 1009}, client.Decision{}},
		{"Internal", &client.CloseError{Code: 1011}, client.Decision{Retry: true}},
		{"TryAgain", &client.CloseError{Code: 1013, Err: &client.Error{Code: "SESSION_FULL"}}, client.Decision{Retry: true}},
		{"Idle", &client.CloseError{Code: 4000}, client.Decision{Retry: true}},
		{"Slow", &client.CloseError{Code: 4001}, client.Decision{Retry: true}},
		{"MaxDuration", &client.CloseError{Code: 4002}, client.Decision{Retry: true}},
		{"Replaced", &client.CloseError{Code: 4003}, client.Decision{}},
		{"TokenInvalid", &client.CloseError{Code: 4004}, client.Decision{}},
		{"Lost", &client.CloseError{Code: -1}, client.Decision{Retry: true}},
		{"Forbidden", &client.HandshakeError{Status: 403}, client.Decision{}},
		{"HandshakeRateLimited", &client.HandshakeError{Status: 429}, client.Decision{Retry: true}},
		{"Network", &client.HandshakeError{Err: errors.New("connection refused")}, client.Decision{Retry: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := client.Classify(tt.err); got != tt.want {
				t.Fatalf("Classify(%v) = %+v, want %+v", tt.err, got, tt.want)
			}
		})
	}
}
