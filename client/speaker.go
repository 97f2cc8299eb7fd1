package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Audio chunk bounds the server enforces: PCM chunks of MinAudioChunk to
// MaxAudioChunk bytes, Opus packets of MinOpusPacket to MaxAudioChunk.
const (
	MinAudioChunk = 100
	MaxAudioChunk = 32 << 10
	MinOpusPacket = 1
)

// DefaultResendWindow is how many recent chunks a Speaker in JSON mode keeps
// to send again after a connection was lost (about a second of 20 ms chunks).
const DefaultResendWindow = 50

// SpeakerConnected describes an accepted speaker connection.
type SpeakerConnected struct {
	SessionID      string
	SourceLanguage string // empty on a refresh
	QualityTier    string // set when the session was created
	ConnectionID   string
	BroadcastState BroadcastState
	ListenerCount  int
	// ExpiresAt is set when the connection created the session.
	ExpiresAt time.Time
	// Created is set when the session was created by this connection;
	// Reconnect after a lost connection; Refresh after a refresh.
	Created, Reconnect, Refresh bool
	// Codec is what the server takes from this connection: CodecOpus or
	// CodecPCM; empty from a server that does not say (it knows only PCM).
	Codec string
}

// Speaker broadcasts audio into a session: an existing one (SessionID), or
// one it creates with the original system's createSession (SourceLanguage).
// Create it with NewSpeaker, then Open it.
//
// Audio goes as binary frames by default. With JSONAudio it goes as the
// original system's sendAudio messages, numbered: after a lost connection
// the Speaker reconnects as a refresh (so the server keeps its numbering)
// and sends its last ResendWindow chunks again; the server drops those it
// already had. A refresh never loses or repeats audio in either mode: the
// Speaker holds new audio until the server has processed everything sent on
// the old connection.
type Speaker struct {
	Options

	// URL is the server's address: http(s)://host or ws(s)://host/ws.
	URL string
	// Token is the speaker's bearer token (a JWT); it is sent in the
	// Authorization header, never in the URL.
	Token string
	// SessionID is the session to speak in. When empty, Open creates a
	// session in SourceLanguage with QualityTier (default "standard").
	SessionID      string
	SourceLanguage string
	QualityTier    string
	// JSONAudio sends audio as numbered base64 sendAudio messages.
	JSONAudio bool
	// Codec is what SendAudio sends: CodecPCM (the default, also when
	// empty) or CodecOpus, one Opus packet per call (mono; 16 kHz input
	// and 100 ms packets recommended). The server forwards Opus to
	// listeners who accept it and decodes it once for everyone else.
	Codec string
	// ResendWindow is the number of chunks kept for resending (JSONAudio).
	ResendWindow int

	// OnConnected is called when a connection was accepted.
	OnConnected func(SpeakerConnected)
	// OnStatus receives sessionStatus and stateRestored messages.
	OnStatus func(Status)
	// OnEvent receives the session's state messages (its own controls come
	// back too) and sessionEnded.
	OnEvent func(Event)
	// OnError receives reply errors (*Error) and connection losses the
	// Speaker recovers from.
	OnError func(error)

	b base

	sendMu sync.Mutex // orders SendAudio calls
	seq    uint64
	buf    []byte

	ringMu sync.Mutex
	ring   [][]byte
	ringAt int

	mu        sync.Mutex
	sessionID string
	waiters   []chan Status

	state stateFilter // guarded by b.cbMu
	ended bool        // guarded by b.cbMu
}

// NewSpeaker returns a Speaker for the server at serverURL with token.
// Set SessionID to join an existing session, or SourceLanguage to create one.
func NewSpeaker(serverURL, token string) *Speaker {
	return &Speaker{URL: serverURL, Token: token, ResendWindow: DefaultResendWindow}
}

// Open connects (creating the session if SessionID is empty) and returns
// once the server accepted the speaker, or with its reason for refusing
// (e.g. an *Error with FORBIDDEN inside a *CloseError).
func (s *Speaker) Open(ctx context.Context) error {
	if s.SessionID == "" && s.SourceLanguage == "" {
		return errors.New("pentecost: Speaker needs a SessionID or a SourceLanguage")
	}
	if err := checkCodec(s.Codec); err != nil {
		return err
	}
	if err := s.b.init(&s.Options, s); err != nil {
		return err
	}
	s.mu.Lock()
	s.sessionID = s.SessionID
	s.mu.Unlock()
	if s.ResendWindow > 0 {
		s.ring = make([][]byte, s.ResendWindow)
	}
	s.b.onError = s.OnError
	return s.b.open(ctx, "speaker")
}

// Close disconnects without ending the session: listeners hear
// speakerDisconnected and the session ends after the server's grace period
// unless a speaker connects again. Use End to end it.
func (s *Speaker) Close() error { return s.b.close() }

// Done is closed when the Speaker stopped (Close, the session ended, or the
// server said stop: e.g. 4003 when another speaker connection took over).
func (s *Speaker) Done() <-chan struct{} { return s.b.done }

// Err returns why the Speaker stopped, once Done is closed.
func (s *Speaker) Err() error { return s.b.errValue() }

// Session returns the session's ID: SessionID, or the one created by Open.
func (s *Speaker) Session() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionID
}

// SendAudio sends one chunk of audio: PCM 16-bit mono 16 kHz, between
// MinAudioChunk and MaxAudioChunk bytes, or with Codec set to CodecOpus
// one Opus packet, between MinOpusPacket and MaxAudioChunk bytes (the
// server refuses a packet that does not parse as Opus with an
// INVALID_AUDIO_CHUNK reply error, through OnError). pcm is not kept after
// the call. While the Speaker reconnects, SendAudio waits for the new
// connection or ctx. In JSON mode a chunk caught by a lost connection is
// sent again after reconnecting, and SendAudio returns nil.
func (s *Speaker) SendAudio(ctx context.Context, pcm []byte) error {
	least := MinAudioChunk
	if s.Codec == CodecOpus {
		least = MinOpusPacket
	}
	if len(pcm) < least || len(pcm) > MaxAudioChunk {
		return &Error{Code: "INVALID_AUDIO_CHUNK", Message: fmt.Sprintf("Audio chunks must be between %d bytes and %d KB.", least, MaxAudioChunk>>10), HTTPStatus: 400}
	}
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	if !s.JSONAudio {
		return s.b.write(ctx, websocket.MessageBinary, pcm)
	}
	s.seq++
	s.buf = appendAudioAction(s.buf[:0], "sendAudio", s.Session(), "", pcm, s.seq)
	// Only chunks that went to a connection are kept for resending: those
	// held during a refresh are kept when the switch writes them (or fails
	// to), after the resent ones, in order.
	err := s.b.writeThen(ctx, websocket.MessageText, s.buf, func(_ *conn, p []byte, held bool) {
		if !held {
			s.remember(p)
		}
	})
	if errors.Is(err, errConnLost) && len(s.ring) > 0 {
		return nil
	}
	return err
}

// remember keeps a sent chunk for resending.
func (s *Speaker) remember(p []byte) {
	if len(s.ring) == 0 {
		return
	}
	s.ringMu.Lock()
	s.ring[s.ringAt] = append(s.ring[s.ringAt][:0], p...)
	s.ringAt = (s.ringAt + 1) % len(s.ring)
	s.ringMu.Unlock()
}

// installed implements role: after a lost connection, or a refresh whose
// old connection did not close cleanly, send the recent chunks again. The
// server drops the ones it already has by their sequence numbers.
func (s *Speaker) installed(c *conn, clean bool) {
	if clean || !s.JSONAudio || len(s.ring) == 0 {
		return
	}
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.b.opts.DialTimeout)
	defer cancel()
	for i := range s.ring {
		p := s.ring[(s.ringAt+i)%len(s.ring)]
		if len(p) == 0 {
			continue
		}
		if err := c.ws.Write(ctx, websocket.MessageText, p); err != nil {
			return
		}
	}
}

// Pause pauses the broadcast: listeners get sessionPaused and no audio.
func (s *Speaker) Pause(ctx context.Context) error { return s.control(ctx, "pause") }

// Resume resumes a paused broadcast (sessionResumed).
func (s *Speaker) Resume(ctx context.Context) error { return s.control(ctx, "resume") }

// Mute mutes the broadcast (broadcastMuted).
func (s *Speaker) Mute(ctx context.Context) error { return s.control(ctx, "mute") }

// Unmute unmutes the broadcast (broadcastUnmuted).
func (s *Speaker) Unmute(ctx context.Context) error { return s.control(ctx, "unmute") }

func (s *Speaker) control(ctx context.Context, cmd string) error {
	return s.send(ctx, map[string]any{"action": "controlSession", "command": cmd})
}

// SetVolume sets the broadcast volume, 0.0–1.0 (volumeChanged).
func (s *Speaker) SetVolume(ctx context.Context, v float64) error {
	return s.send(ctx, map[string]any{"action": "setVolume", "volumeLevel": v})
}

// SetSpeakerState reports the speaker's state, free text of at most 64
// characters such as "speaking" (speakerStateChanged).
func (s *Speaker) SetSpeakerState(ctx context.Context, state string) error {
	return s.send(ctx, map[string]any{"action": "speakerStateChange", "state": state})
}

// GetStatus asks for the session's status and waits for it.
func (s *Speaker) GetStatus(ctx context.Context) (*Status, error) {
	ch := make(chan Status, 1)
	s.mu.Lock()
	s.waiters = append(s.waiters, ch)
	s.mu.Unlock()
	if err := s.send(ctx, map[string]any{"action": "getSessionStatus"}); err != nil {
		return nil, err
	}
	select {
	case st := <-ch:
		return &st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.b.done:
		return nil, ErrClosed
	}
}

// End ends the session for everyone and waits until the server confirmed
// it (every listener gets sessionEnded). The Speaker then stops.
func (s *Speaker) End(ctx context.Context) error {
	if err := s.send(ctx, map[string]any{"action": "endSession"}); err != nil {
		return err
	}
	select {
	case <-s.b.done:
		if err := s.Err(); !errors.Is(err, ErrSessionEnded) {
			return err
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Speaker) send(ctx context.Context, v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.b.write(ctx, websocket.MessageText, p)
}

// dialURL implements role.
func (s *Speaker) dialURL(k dialKind, ticket string) (string, error) {
	id := s.Session()
	var q url.Values
	switch {
	case id == "":
		tier := s.QualityTier
		if tier == "" {
			tier = "standard"
		}
		q = url.Values{"action": {"createSession"}, "sourceLanguage": {s.SourceLanguage}, "qualityTier": {tier}}
	case k == dialRefresh || (k == dialReconnect && s.JSONAudio):
		// A reconnection in JSON mode is a refresh, so the server keeps
		// the numbering that drops resent chunks.
		q = url.Values{"action": {"refreshConnection"}, "sessionId": {id}, "role": {"speaker"}}
		if ticket != "" {
			q.Set("refreshTicket", ticket)
		}
	default:
		q = url.Values{"sessionId": {id}}
	}
	if s.Codec != "" {
		q.Set("codec", s.Codec)
	}
	return wsURL(s.URL, q)
}

// header implements role.
func (s *Speaker) header(h http.Header) {
	if s.Token != "" {
		h.Set("Authorization", "Bearer "+s.Token)
	}
}

func (s *Speaker) prepare(context.Context, *conn) error { return nil }

func (s *Speaker) handleBinary(*conn, []byte) {}

// handle implements role; it runs under b.cbMu.
func (s *Speaker) handle(c *conn, m *wireMsg) {
	switch m.Type {
	case "sessionCreated", "speakerConnected", "connectionRefreshComplete":
		s.mu.Lock()
		s.sessionID = m.SessionID
		s.mu.Unlock()
		missed := s.state.resync(m.BroadcastState, m.SessionID)
		if s.OnConnected != nil {
			sc := SpeakerConnected{SessionID: m.SessionID, SourceLanguage: m.SourceLanguage, QualityTier: m.QualityTier,
				ConnectionID: m.ConnectionID, ListenerCount: m.ListenerCount, ExpiresAt: msTime(m.ExpiresAt),
				Created: m.Type == "sessionCreated", Reconnect: c.kind == dialReconnect, Refresh: c.kind == dialRefresh,
				Codec: m.Codec}
			if m.BroadcastState != nil {
				sc.BroadcastState = *m.BroadcastState
			}
			s.OnConnected(sc)
		}
		for _, e := range missed {
			s.event(e)
		}
	case "sessionStatus", "stateRestored":
		st := m.status()
		if m.Type == "stateRestored" && st.UpdateReason == "" {
			st.UpdateReason = "stateRestored"
		}
		if st.UpdateReason == "requested" {
			s.mu.Lock()
			if len(s.waiters) > 0 {
				s.waiters[0] <- st
				s.waiters = s.waiters[1:]
			}
			s.mu.Unlock()
		}
		if s.OnStatus != nil {
			s.OnStatus(st)
		}
	case EventSessionEnded:
		if !s.ended {
			s.ended = true
			s.b.markEnded()
			s.event(m.event())
		}
	default:
		if s.state.changes(m) {
			s.event(m.event())
		}
	}
}

func (s *Speaker) event(e Event) {
	if s.OnEvent != nil {
		s.OnEvent(e)
	}
}
