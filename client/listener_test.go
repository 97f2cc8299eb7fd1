package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pentecost/pentecost/client"
	"github.com/pentecost/pentecost/realtime"
)

// recorder keeps what a Listener delivered, copying audio.
type recorder struct {
	mu     sync.Mutex
	frames []client.Frame
	events []client.Event
	joins  []client.Joined
	errs   []error
}

func (r *recorder) attach(l *client.Listener) {
	l.OnAudio = func(f client.Frame) {
		f.Data = bytes.Clone(f.Data)
		r.mu.Lock()
		r.frames = append(r.frames, f)
		r.mu.Unlock()
	}
	l.OnEvent = func(e client.Event) {
		r.mu.Lock()
		r.events = append(r.events, e)
		r.mu.Unlock()
	}
	l.OnJoined = func(j client.Joined) {
		r.mu.Lock()
		r.joins = append(r.joins, j)
		r.mu.Unlock()
	}
	l.OnError = func(err error) {
		r.mu.Lock()
		r.errs = append(r.errs, err)
		r.mu.Unlock()
	}
}

func (r *recorder) frameCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.frames)
}

func (r *recorder) eventCount(typ string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.Type == typ {
			n++
		}
	}
	return n
}

func (r *recorder) joinCount(refresh, reconnect bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, j := range r.joins {
		if j.Refresh == refresh && j.Reconnect == reconnect {
			n++
		}
	}
	return n
}

// checkFrames asserts that the listener got chunks first … first+n-1 in
// order, byte for byte, with consecutive sequence numbers.
func (r *recorder) checkFrames(t *testing.T, lang string, first, n int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.frames) != n {
		t.Fatalf("got %d frames, want %d", len(r.frames), n)
	}
	for i, f := range r.frames {
		if i > 0 && f.Seq != r.frames[i-1].Seq+1 {
			t.Fatalf("frame %d: seq %d after %d", i, f.Seq, r.frames[i-1].Seq)
		}
		if f.Language != lang {
			t.Fatalf("frame %d: language %q, want %q", i, f.Language, lang)
		}
		if want := chunk(first+i, len(f.Data)); !bytes.Equal(f.Data, want) || len(f.Data) != chunkSize(first+i) {
			t.Fatalf("frame %d (seq %d): got chunk %d of %d bytes, want chunk %d of %d bytes",
				i, f.Seq, chunkIndex(f.Data), len(f.Data), first+i, chunkSize(first+i))
		}
	}
}

// chunkSize varies chunk sizes over the allowed range.
func chunkSize(i int) int {
	sizes := []int{client.MinAudioChunk, 640, 3200, client.MaxAudioChunk, 1000}
	return sizes[i%len(sizes)]
}

// openSpeaker connects a speaker to session id as user.
func openSpeaker(t *testing.T, e *env, user, id string, jsonAudio bool) *client.Speaker {
	t.Helper()
	s := client.NewSpeaker(e.URL, e.token(user))
	s.SessionID, s.JSONAudio = id, jsonAudio
	s.MinBackoff = 20 * time.Millisecond
	if err := s.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openListener joins session id in lang, recording into a new recorder;
// configure, if given, changes its settings before it opens.
func openListener(t *testing.T, e *env, id, lang string, binary bool, configure ...func(*client.Listener)) (*client.Listener, *recorder) {
	t.Helper()
	l := client.NewListener(e.URL, id, lang)
	l.Binary = binary
	l.MinBackoff = 20 * time.Millisecond
	for _, f := range configure {
		f(l)
	}
	r := &recorder{}
	r.attach(l)
	if err := l.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, r
}

// pollFrames waits until r has n frames; on timeout it reports the server's
// counters, which tell lost audio apart from audio never received.
func pollFrames(t *testing.T, e *env, r *recorder, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for r.frameCount() < n {
		if time.Now().After(deadline) {
			var counters []string
			for _, m := range []string{"pentecost_ws_frames_in_total", "pentecost_ws_duplicate_chunks_total", "pentecost_ws_frames_dropped_total"} {
				counters = append(counters, fmt.Sprintf("%s=%v", m, e.metric(m)))
			}
			t.Fatalf("got %d of %d frames; server %v", r.frameCount(), n, counters)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func send(t *testing.T, s *client.Speaker, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.SendAudio(context.Background(), chunk(i, chunkSize(i))); err != nil {
			t.Fatalf("send chunk %d: %v", i, err)
		}
	}
}

func TestListener_Audio(t *testing.T) {
	for _, tt := range []struct {
		name                    string
		binary, speakerJSON, ws bool
	}{
		{name: "JSON", speakerJSON: true},
		{name: "Binary", binary: true},
		{name: "BinaryListenerJSONSpeakerWSURL", binary: true, speakerJSON: true, ws: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.createSession("alice")
			sp := openSpeaker(t, e, "alice", id, tt.speakerJSON)
			l := client.NewListener(e.URL, id, "en")
			if tt.ws {
				l.URL = e.WSURL
			}
			l.Binary = tt.binary
			r := &recorder{}
			r.attach(l)
			if err := l.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer l.Close()

			const n = 60
			send(t, sp, 0, n)
			poll(t, "every frame", func() bool { return r.frameCount() >= n })
			r.checkFrames(t, "en", 0, n)
			if r.frames[0].Seq != r.joins[0].Seq+1 {
				t.Fatalf("first seq %d, joined at %d", r.frames[0].Seq, r.joins[0].Seq)
			}
			if _, seq := l.Position(); seq != r.frames[n-1].Seq {
				t.Fatalf("Position = %d, want %d", seq, r.frames[n-1].Seq)
			}
		})
	}
}

// TestListener_Refresh: the server asks every connection to refresh after
// 300 ms; while audio flows through several refreshes of both the speaker
// and the listener, the listener hears every chunk exactly once, in order.
func TestListener_Refresh(t *testing.T) {
	for _, tt := range []struct {
		name   string
		binary bool
	}{{"JSON", false}, {"Binary", true}} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(s *realtime.Server) { s.RefreshAfter = 300 * time.Millisecond })
			id := e.createSession("alice")
			var spRefreshes sync.WaitGroup
			spRefreshes.Add(2)
			var spMu sync.Mutex
			spCount := 0
			sp := client.NewSpeaker(e.URL, e.token("alice"))
			sp.SessionID, sp.JSONAudio = id, !tt.binary
			sp.OnConnected = func(c client.SpeakerConnected) {
				spMu.Lock()
				defer spMu.Unlock()
				if c.Refresh {
					spCount++
				}
			}
			if err := sp.Open(context.Background()); err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			_, r := openListener(t, e, id, "en", tt.binary)

			// Send bursts of audio until both sides went through two
			// refreshes, so that frames are in flight during every switch.
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			n := 0
			deadline := time.Now().Add(wait)
			for {
				spMu.Lock()
				done := spCount >= 2
				spMu.Unlock()
				if done && r.joinCount(true, false) >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("refreshes: speaker %d, listener %d", spCount, r.joinCount(true, false))
				}
				<-tick.C
				send(t, sp, n, n+4)
				n += 4
			}
			send(t, sp, n, n+20)
			n += 20
			pollFrames(t, e, r, n)
			r.checkFrames(t, "en", 0, n)
			if got := r.joinCount(false, true); got != 0 {
				t.Fatalf("%d reconnections; refreshes should not need any", got)
			}
		})
	}
}

// TestListener_Reconnect cuts every connection at the TCP level in the
// middle of a stream: speaker and listener come back, and the listener
// hears every chunk once, in order.
func TestListener_Reconnect(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	sp := openSpeaker(t, e, "alice", id, true)
	_, r := openListener(t, e, id, "en", true)

	send(t, sp, 0, 20)
	poll(t, "first frames", func() bool { return r.frameCount() >= 20 })
	if n := e.cutAll(); n < 2 {
		t.Fatalf("cut %d connections, want 2", n)
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	n := 20
	for ; n < 80; n++ {
		<-tick.C
		send(t, sp, n, n+1)
	}
	pollFrames(t, e, r, n)
	r.checkFrames(t, "en", 0, n)
	if r.joinCount(false, true) < 1 {
		t.Fatal("listener did not reconnect")
	}
}

func TestListener_Stop(t *testing.T) {
	t.Run("ErrSessionNotFound", func(t *testing.T) {
		e := newEnv(t)
		l := client.NewListener(e.URL, "quiet-harbor-123", "en")
		err := l.Open(context.Background())
		var ce *client.CloseError
		var ae *client.Error
		if !errors.As(err, &ce) || ce.Code != client.ClosePolicy || !errors.As(err, &ae) || ae.Code != "SESSION_NOT_FOUND" {
			t.Fatalf("Open = %v, want SESSION_NOT_FOUND and 1008", err)
		}
		<-l.Done()
	})
	t.Run("ErrInvalidSessionID", func(t *testing.T) {
		e := newEnv(t)
		l := client.NewListener(e.URL, "no", "en")
		var ae *client.Error
		if err := l.Open(context.Background()); !errors.As(err, &ae) || ae.Code != "INVALID_SESSION_ID" {
			t.Fatalf("Open = %v, want INVALID_SESSION_ID", err)
		}
	})
	t.Run("ErrOrigin", func(t *testing.T) {
		e := newEnv(t)
		id := e.createSession("alice")
		l := client.NewListener(e.URL, id, "en")
		l.Origin = "https://elsewhere.example"
		var he *client.HandshakeError
		if err := l.Open(context.Background()); !errors.As(err, &he) || he.Status != 403 {
			t.Fatalf("Open = %v, want a 403 handshake error", err)
		}
	})
	t.Run("SessionEnded", func(t *testing.T) {
		e := newEnv(t)
		id := e.createSession("alice")
		sp := openSpeaker(t, e, "alice", id, false)
		l, r := openListener(t, e, id, "en", false)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := sp.End(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-l.Done():
		case <-ctx.Done():
			t.Fatal("listener did not stop")
		}
		if !errors.Is(l.Err(), client.ErrSessionEnded) || r.eventCount(client.EventSessionEnded) != 1 {
			t.Fatalf("Err = %v, %d sessionEnded events", l.Err(), r.eventCount(client.EventSessionEnded))
		}
	})
	t.Run("Close", func(t *testing.T) {
		e := newEnv(t)
		id := e.createSession("alice")
		l, _ := openListener(t, e, id, "en", false)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(l.Err(), client.ErrClosed) {
			t.Fatalf("Err = %v, want ErrClosed", l.Err())
		}
	})
}

// TestListener_Controls: the speaker's controls reach the listener once
// each; the listener's own playback pause and language change work.
func TestListener_Controls(t *testing.T) {
	e := newEnv(t)
	id := e.createSession("alice")
	sp := openSpeaker(t, e, "alice", id, false)
	l, r := openListener(t, e, id, "en", true)
	ctx := context.Background()

	for _, c := range []struct {
		typ string
		do  func() error
	}{
		{client.EventSessionPaused, func() error { return sp.Pause(ctx) }},
		{client.EventSessionResumed, func() error { return sp.Resume(ctx) }},
		{client.EventBroadcastMuted, func() error { return sp.Mute(ctx) }},
		{client.EventBroadcastUnmuted, func() error { return sp.Unmute(ctx) }},
		{client.EventVolumeChanged, func() error { return sp.SetVolume(ctx, 0.5) }},
		{client.EventSpeakerStateChanged, func() error { return sp.SetSpeakerState(ctx, "speaking") }},
		{client.EventPlaybackPaused, func() error { return l.PausePlayback(ctx) }},
		{client.EventPlaybackResumed, func() error { return l.ResumePlayback(ctx) }},
	} {
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		poll(t, c.typ, func() bool { return r.eventCount(c.typ) == 1 })
	}
	st, err := sp.GetStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.ListenerCount != 1 || st.BroadcastState.Volume != 0.5 || st.BroadcastState.SpeakerState != "speaking" {
		t.Fatalf("status = %+v", st)
	}

	// A language nobody produces: the listener is told, and hears nothing.
	if err := l.ChangeLanguage(ctx, "fr"); err != nil {
		t.Fatal(err)
	}
	poll(t, "languageChanged", func() bool { return r.eventCount(client.EventLanguageChanged) == 1 })
	poll(t, "translationUnavailable", func() bool { return r.eventCount(client.EventTranslationUnavailable) == 1 })
	_, witness := openListener(t, e, id, "en", false)
	send(t, sp, 0, 5)
	// The server published the chunks once another English listener has them.
	poll(t, "witness frames", func() bool { return witness.frameCount() == 5 })
	if err := l.ChangeLanguage(ctx, "en"); err != nil {
		t.Fatal(err)
	}
	poll(t, "languageChanged back", func() bool { return r.eventCount(client.EventLanguageChanged) == 2 })
	send(t, sp, 5, 10)
	poll(t, "frames", func() bool { return r.frameCount() >= 5 })
	r.checkFrames(t, "en", 5, 5)
}
