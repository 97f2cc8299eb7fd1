package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// Joined describes an accepted listener connection: the first, and each
// reconnection or refresh after it.
type Joined struct {
	SessionID      string
	TargetLanguage string
	SourceLanguage string // empty on a refresh
	ConnectionID   string
	BroadcastState BroadcastState
	// Epoch and Seq are the stream's epoch and newest sequence number when
	// the connection was accepted.
	Epoch string
	Seq   uint64
	// Reconnect is set after a lost connection, Refresh after a refresh.
	Reconnect, Refresh bool
	// SpeakerConnected says whether the session's speaker was connected
	// (on any node) at the join; nil from a server that does not say. After
	// false, speakerReconnected (an Event) tells that the speaker arrived.
	SpeakerConnected *bool
	// Codec is the stream the server put the listener on: CodecOpus or
	// CodecPCM; empty from a server that does not say (it knows only PCM).
	Codec string
}

// Listener hears one session in one language. Create it with NewListener,
// set its callbacks, then Open it.
//
// The Listener delivers every audio chunk and caption of its stream once,
// in sequence order: across reconnections and refreshes it asks the server
// for what it missed after the last sequence number it delivered, and drops
// anything it already delivered. When the server cannot honour that (the
// history no longer holds the missed frames), OnEvent receives a streamGap.
// Audio of a language other than the current one is never delivered.
type Listener struct {
	Options

	// URL is the server's address: http(s)://host or ws(s)://host/ws.
	URL string
	// SessionID is the session to join, as a person typed it.
	SessionID string
	// TargetLanguage is the ISO 639-1 code to hear; see ChangeLanguage.
	TargetLanguage string
	// Binary asks for binary audio frames (no base64 on either side).
	Binary bool
	// Codec is the audio the listener accepts: CodecPCM (the default, also
	// when empty) or CodecOpus, about a tenth of PCM's bytes. A listener of
	// Opus gets PCM frames too, where the producer of the language has no
	// Opus: Frame.Codec says which, and a Decoder plays both. It applies to
	// every connection, across reconnections, refreshes and language
	// changes.
	Codec string

	// OnJoined is called when a connection was accepted, including after
	// each reconnection and refresh.
	OnJoined func(Joined)
	// OnAudio receives audio; f.Data is valid only during the call.
	OnAudio func(f Frame)
	// OnCaption receives captions of the listener's language.
	OnCaption func(Caption)
	// OnEvent receives state messages (the Event constants). State changes
	// arrive once each, even across refreshes.
	OnEvent func(Event)
	// OnError receives reply errors (*Error) and connection losses that
	// the Listener recovers from (*CloseError, *HandshakeError).
	OnError func(error)

	b base

	mu         sync.Mutex // guards the wanted settings
	wantLang   string
	wantPaused bool

	// Stream state, guarded by b.cbMu.
	src         *conn // the connection whose messages are delivered
	sessionID   string
	lang        string
	epoch       string
	last        uint64
	started     bool
	unavailable bool
	state       stateFilter
}

// NewListener returns a Listener of sessionID in targetLanguage on the
// server at serverURL.
func NewListener(serverURL, sessionID, targetLanguage string) *Listener {
	return &Listener{URL: serverURL, SessionID: sessionID, TargetLanguage: targetLanguage}
}

// Open joins the session. It returns once the server accepted the listener,
// or with the reason it refused (an *Error inside a *CloseError, e.g.
// SESSION_NOT_FOUND), or a *HandshakeError. ctx bounds only this first
// connection; the Listener then runs until Close or until it must stop
// (see Done).
func (l *Listener) Open(ctx context.Context) error {
	if err := checkCodec(l.Codec); err != nil {
		return err
	}
	if err := l.b.init(&l.Options, l); err != nil {
		return err
	}
	l.mu.Lock()
	l.wantLang = l.TargetLanguage
	l.mu.Unlock()
	l.sessionID = l.SessionID
	l.b.onError = l.OnError
	return l.b.open(ctx, "listener")
}

// Close leaves the session (closing with 1000) and waits until the
// Listener's goroutines have ended. It must not be called from a callback.
func (l *Listener) Close() error { return l.b.close() }

// Done is closed when the Listener stopped: after Close, after the
// session ended, or when the server said stop.
func (l *Listener) Done() <-chan struct{} { return l.b.done }

// Err returns why the Listener stopped, once Done is closed:
// ErrSessionEnded, ErrClosed after Close, or the *CloseError or
// *HandshakeError that made it stop.
func (l *Listener) Err() error { return l.b.errValue() }

// Position returns the epoch and the last sequence number delivered (or,
// before any audio, the stream's position when the Listener joined).
func (l *Listener) Position() (epoch string, seq uint64) {
	l.b.cbMu.Lock()
	defer l.b.cbMu.Unlock()
	return l.epoch, l.last
}

// ChangeLanguage asks to hear another language. The server confirms with
// a languageChanged event; audio of the old language stops before it. If
// the Listener is reconnecting, the new language applies to the next
// connection.
func (l *Listener) ChangeLanguage(ctx context.Context, lang string) error {
	l.mu.Lock()
	l.wantLang = lang
	l.mu.Unlock()
	return l.send(ctx, map[string]string{"action": "changeLanguage", "targetLanguage": lang},
		func(c *conn) { c.lang = canonicalLang(lang) })
}

// PausePlayback stops audio to this listener only (the server confirms with
// playbackPaused); other messages continue. The pause is kept across
// reconnections.
func (l *Listener) PausePlayback(ctx context.Context) error {
	l.mu.Lock()
	l.wantPaused = true
	l.mu.Unlock()
	return l.send(ctx, map[string]string{"action": "pausePlayback"}, func(c *conn) { c.paused = true })
}

// ResumePlayback resumes audio after PausePlayback, live: what was published
// meanwhile is not replayed.
func (l *Listener) ResumePlayback(ctx context.Context) error {
	l.mu.Lock()
	l.wantPaused = false
	l.mu.Unlock()
	return l.send(ctx, map[string]string{"action": "resumePlayback"}, func(c *conn) { c.paused = false })
}

// send writes a setting; asked records it on the connection it goes to, so
// that installed knows what a new connection still needs.
func (l *Listener) send(ctx context.Context, v any, asked func(c *conn)) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = l.b.writeThen(ctx, websocket.MessageText, p, func(c *conn, _ []byte, _ bool) { asked(c) })
	if errors.Is(err, errConnLost) {
		return nil // the wanted setting is applied on the next connection
	}
	return err
}

// dialURL implements role.
func (l *Listener) dialURL(k dialKind, ticket string) (string, error) {
	l.mu.Lock()
	lang := l.wantLang
	l.mu.Unlock()
	l.b.cbMu.Lock()
	id, started, last, epoch := l.sessionID, l.started, l.last, l.epoch
	l.b.cbMu.Unlock()
	q := url.Values{"sessionId": {id}, "targetLanguage": {lang}}
	if k == dialRefresh {
		q.Set("action", "refreshConnection")
		q.Set("role", "listener")
		if ticket != "" {
			q.Set("refreshTicket", ticket)
		}
	} else {
		q.Set("action", "joinSession")
	}
	if l.Binary {
		q.Set("audioFormat", "binary")
	}
	if l.Codec != "" {
		q.Set("codec", l.Codec)
	}
	if started {
		q.Set("lastSequenceNumber", strconv.FormatUint(last, 10))
		if epoch != "" {
			q.Set("epoch", epoch)
		}
	}
	return wsURL(l.URL, q)
}

func (l *Listener) header(http.Header)                   {}
func (l *Listener) prepare(context.Context, *conn) error { return nil }

// installed implements role: with writes held, it applies to c the
// language and pause wanted now, which may have been set on the previous
// connection after c joined (a refresh) or while c was being opened.
func (l *Listener) installed(c *conn, _ bool) {
	l.mu.Lock()
	lang, paused := l.wantLang, l.wantPaused
	l.mu.Unlock()
	if canonicalLang(lang) != c.lang {
		c.lang = canonicalLang(lang)
		l.writeDirect(c, map[string]string{"action": "changeLanguage", "targetLanguage": lang})
	}
	if paused != c.paused {
		c.paused = paused
		l.writeDirect(c, map[string]string{"action": map[bool]string{true: "pausePlayback", false: "resumePlayback"}[paused]})
	}
}

func (l *Listener) event(e Event) {
	if l.OnEvent != nil {
		l.OnEvent(e)
	}
}

// handle implements role; it runs under b.cbMu.
func (l *Listener) handle(c *conn, m *wireMsg) {
	switch m.Type {
	case "sessionJoined", "connectionRefreshComplete":
		l.joined(c, m)
		return
	case "sessionEnded":
		l.b.markEnded()
		if c == l.src {
			l.event(m.event())
		}
		return
	}
	if c != l.src {
		return // an old connection, replaced by a refresh
	}
	switch m.Type {
	case "audioData":
		if m.Language != l.lang || !l.advance(m.SequenceNumber) || l.OnAudio == nil {
			return
		}
		l.OnAudio(Frame{SessionID: l.sessionID, Language: l.lang, Seq: m.SequenceNumber,
			Timestamp: msTime(m.Timestamp), Codec: m.codec(), Data: m.AudioData})
	case "caption":
		if m.Language != l.lang || !l.advance(m.SequenceNumber) || l.OnCaption == nil {
			return
		}
		l.OnCaption(Caption{SessionID: l.sessionID, Language: m.Language, Text: m.Text, Final: m.Final,
			Seq: m.SequenceNumber, Timestamp: msTime(m.Timestamp)})
	case EventLanguageChanged:
		if m.Epoch != "" && (m.TargetLanguage != l.lang || m.Epoch != l.epoch) {
			l.epoch, l.last = m.Epoch, m.SequenceNumber
		}
		l.lang, l.unavailable = m.TargetLanguage, false
		l.event(m.event())
	case EventStreamGap:
		l.epoch = m.Epoch
		if m.FirstSequenceNumber > 0 {
			l.last = m.FirstSequenceNumber - 1
		}
		l.event(m.event())
	case EventAudioSkipped:
		// Resume after the skipped frames: asking for them again would
		// only have them skipped again.
		if m.Epoch == l.epoch && m.Language == l.lang && m.ToSequenceNumber > l.last {
			l.last = m.ToSequenceNumber
		}
		l.event(m.event())
	case EventTranslationUnavailable, EventTranslationAvailable:
		unavailable := m.Type == EventTranslationUnavailable
		if m.TargetLanguage != l.lang || unavailable == l.unavailable {
			return // a repeat across a refresh
		}
		l.unavailable = unavailable
		l.event(m.event())
	default:
		if l.state.changes(m) {
			l.event(m.event())
		}
	}
}

// advance reports whether seq is new, recording it.
func (l *Listener) advance(seq uint64) bool {
	if seq <= l.last {
		return false
	}
	l.last = seq
	return true
}

// joined handles the server's acceptance of a connection.
func (l *Listener) joined(c *conn, m *wireMsg) {
	l.src = c
	l.sessionID = m.SessionID
	if !l.started {
		l.started, l.epoch, l.last = true, m.Epoch, m.SequenceNumber
	}
	if m.TargetLanguage != l.lang {
		l.lang, l.unavailable = m.TargetLanguage, false
	}
	missed := l.state.resync(m.BroadcastState, m.SessionID)
	if l.OnJoined != nil {
		j := Joined{SessionID: m.SessionID, TargetLanguage: m.TargetLanguage, SourceLanguage: m.SourceLanguage,
			ConnectionID: m.ConnectionID, Epoch: m.Epoch, Seq: m.SequenceNumber,
			Reconnect: c.kind == dialReconnect, Refresh: c.kind == dialRefresh, SpeakerConnected: m.SpeakerConnected,
			Codec: m.Codec}
		if m.BroadcastState != nil {
			j.BroadcastState = *m.BroadcastState
		}
		l.OnJoined(j)
	}
	for _, e := range missed {
		l.event(e)
	}
	// What the connection has; installed applies what is wanted by then.
	c.lang, c.paused = m.TargetLanguage, false
}

// handleBinary implements role: a binary audio frame.
func (l *Listener) handleBinary(c *conn, p []byte) {
	lang, seq, ts, codec, audio, ok := parseBinary(p)
	if !ok || c != l.src || !sameLang(lang, l.lang) || !l.advance(seq) || l.OnAudio == nil {
		return
	}
	l.OnAudio(Frame{SessionID: l.sessionID, Language: l.lang, Seq: seq, Timestamp: msTime(ts), Codec: codec, Data: audio})
}

// writeDirect writes a small message on c while writes are held.
func (l *Listener) writeDirect(c *conn, v any) {
	p, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(l.b.ctx, l.b.opts.DialTimeout)
	defer cancel()
	_ = c.ws.Write(ctx, websocket.MessageText, p)
}
