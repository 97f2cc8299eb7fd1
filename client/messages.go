package client

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"strconv"
	"time"
)

// Server message types (docs/protocol.md, section 3) that reach callbacks
// as Event.Type.
const (
	EventSessionPaused          = "sessionPaused"
	EventSessionResumed         = "sessionResumed"
	EventBroadcastMuted         = "broadcastMuted"
	EventBroadcastUnmuted       = "broadcastUnmuted"
	EventVolumeChanged          = "volumeChanged"
	EventSpeakerStateChanged    = "speakerStateChanged"
	EventSpeakerDisconnected    = "speakerDisconnected"
	EventSpeakerReconnected     = "speakerReconnected"
	EventSessionEnded           = "sessionEnded"
	EventTranslationUnavailable = "translationUnavailable"
	EventTranslationAvailable   = "translationAvailable"
	EventLanguageChanged        = "languageChanged"
	EventPlaybackPaused         = "playbackPaused"
	EventPlaybackResumed        = "playbackResumed"
	EventStreamGap              = "streamGap"
	EventAudioSkipped           = "audioSkipped"
	EventConnectionWarning      = "connectionWarning"
)

// BroadcastState is a session's broadcast state as the server reports it.
type BroadcastState struct {
	Paused       bool    `json:"isPaused"`
	Muted        bool    `json:"isMuted"`
	Volume       float64 `json:"volume"` // 0.0–1.0
	SpeakerState string  `json:"speakerState,omitempty"`
	// Active is the original system's field: true unless paused.
	Active bool `json:"isActive"`
	// LastStateChange is when the state last changed, in Unix milliseconds.
	LastStateChange int64 `json:"lastStateChange"`
}

// Audio codecs (docs/protocol.md): a Frame's Codec, and what a Listener or
// Speaker asks for with its Codec field.
const (
	// CodecPCM is 16-bit little-endian PCM, 16 kHz, mono: the session's
	// audioFormat pcm_s16le_16000_mono, and what every client gets unless
	// it asks for Opus.
	CodecPCM = "pcm"
	// CodecOpus is one Opus packet (RFC 6716) per frame, mono.
	CodecOpus = "opus"
)

// checkCodec refuses a codec other than CodecPCM, CodecOpus or empty
// (PCM), as the server would.
func checkCodec(codec string) error {
	switch codec {
	case "", CodecPCM, CodecOpus:
		return nil
	}
	return &Error{Code: "VALIDATION_INVALID_FIELD", Message: `codec must be "pcm" or "opus".`, HTTPStatus: 400}
}

// Frame is one audio chunk: what a Listener hears, or the source audio a
// Worker receives.
type Frame struct {
	SessionID string
	// Language is the stream's language.
	Language string
	// Seq is the chunk's sequence number in its stream (1, 2, 3, …).
	Seq uint64
	// Timestamp is the capture time of the chunk's speech: for the
	// speaker's audio when the server received it (about capture plus the
	// one-way network delay), for a worker's translation the time of the
	// source speech it translates. Now minus Timestamp is mouth-to-ear delay.
	Timestamp time.Time
	// Codec is the audio's codec, CodecPCM or CodecOpus. A Listener that
	// asked for Opus gets both, frame by frame: PCM where the speaker or
	// worker producing the language had no Opus (Decoder plays both).
	Codec string
	// Data is the audio exactly as the speaker or worker sent it: PCM
	// samples, or one Opus packet. It is only valid during the callback:
	// copy it to keep it.
	Data []byte
}

// Caption is a line of text for a stream (a transcript or a translation).
type Caption struct {
	SessionID string
	Language  string
	Text      string
	// Final is false for a provisional caption that a later one replaces.
	Final bool
	// Seq orders the caption against the audio of its stream.
	Seq       uint64
	Timestamp time.Time
}

// Event is a server message about a session's state that is neither audio
// nor a caption. Type is one of the Event constants (unknown types the
// server may add later also arrive here); which other fields are set
// depends on it, as in docs/protocol.md.
type Event struct {
	Type      string
	SessionID string
	Timestamp time.Time

	// BroadcastState accompanies state changes (sessionPaused, …).
	BroadcastState *BroadcastState
	// Volume is the new volume (volumeChanged).
	Volume float64
	// State is the speaker's state text (speakerStateChanged).
	State string
	// Reason is why a session ended ("ended", "speakerTimeout", "expired")
	// or why a stream has a gap ("historyExpired", "epochChanged") or
	// audio was skipped ("stale").
	Reason string
	// GracePeriod is how long the speaker has to come back (speakerDisconnected).
	GracePeriod time.Duration
	// TargetLanguage and PreviousLanguage: translationAvailable,
	// translationUnavailable, languageChanged.
	TargetLanguage   string
	PreviousLanguage string
	// Message is the server's explanation (translationUnavailable).
	Message string
	// LastSequenceNumber, FirstSequenceNumber and Epoch describe a
	// streamGap: the frames after LastSequenceNumber and before
	// FirstSequenceNumber are lost.
	LastSequenceNumber  uint64
	FirstSequenceNumber uint64
	Epoch               string
	// FromSequenceNumber, ToSequenceNumber and Frames describe an
	// audioSkipped: the server left out Frames audio frames numbered
	// FromSequenceNumber … ToSequenceNumber (of Epoch) for arriving too
	// late to be worth hearing, after a broker outage or a long reconnect.
	// Audio goes on live after them: a player should start afresh (as
	// after an underrun), not wait for or conceal the missing numbers.
	// Captions among them were delivered.
	FromSequenceNumber uint64
	ToSequenceNumber   uint64
	Frames             int
	// RemainingMinutes is the time until the server closes the connection
	// (connectionWarning); the client refreshes before that on its own.
	RemainingMinutes int
}

// Status is the speaker's view of its session (sessionStatus and
// stateRestored).
type Status struct {
	SessionID            string
	ListenerCount        int
	LanguageDistribution map[string]int
	// Duration is the time since the session was created.
	Duration       time.Duration
	BroadcastState BroadcastState
	// UpdateReason is "requested", "periodic", "listenerCountChanged",
	// "newLanguage", "producedLanguagesChanged", "languageStatusChanged"
	// or "stateRestored".
	UpdateReason string
	Timestamp    time.Time
	// Languages is the workers' last report of each language they produce
	// (sessionStatus.languageStatus), by language.
	Languages map[string]ProducedLanguage
}

// ProducedLanguage is a worker's last report of a language it produces.
type ProducedLanguage struct {
	WorkerID string
	LanguageStatus
	UpdatedAt time.Time
}

// wireMsg is every field a server message may carry. One is reused per
// connection, so decoding an audio message allocates little.
type wireMsg struct {
	Type      string `json:"type"`
	SessionID string `json:"sessionId"`
	Timestamp int64  `json:"timestamp"`

	Code       string  `json:"code"`
	Message    string  `json:"message"`
	HTTPStatus int     `json:"httpStatus"`
	RetryAfter float64 `json:"retryAfter"`

	TargetLanguage string          `json:"targetLanguage"`
	SourceLanguage string          `json:"sourceLanguage"`
	ConnectionID   string          `json:"connectionId"`
	Role           string          `json:"role"`
	RefreshTicket  string          `json:"refreshTicket"`
	QualityTier    string          `json:"qualityTier"`
	ExpiresAt      int64           `json:"expiresAt"`
	Epoch          string          `json:"epoch"`
	SequenceNumber uint64          `json:"sequenceNumber"`
	BroadcastState *BroadcastState `json:"broadcastState"`

	SpeakerConnected     *bool          `json:"speakerConnected"`
	ListenerCount        int            `json:"listenerCount"`
	LanguageDistribution map[string]int `json:"languageDistribution"`
	LanguageStatus       map[string]struct {
		WorkerID  string `json:"workerId"`
		Stage     string `json:"stage"`
		ErrorCode string `json:"errorCode"`
		LatencyMs int    `json:"latencyMs"`
		UpdatedAt int64  `json:"updatedAt"`
	} `json:"languageStatus"`
	SessionDuration float64 `json:"sessionDuration"`
	UpdateReason    string  `json:"updateReason"`

	AudioData base64Bytes `json:"audioData"`
	Codec     string      `json:"codec"`
	Language  string      `json:"language"`
	Text      string      `json:"text"`
	Final     bool        `json:"final"`

	VolumeLevel         float64 `json:"volumeLevel"`
	State               string  `json:"state"`
	Reason              string  `json:"reason"`
	GracePeriodSeconds  float64 `json:"gracePeriodSeconds"`
	PreviousLanguage    string  `json:"previousLanguage"`
	LastSequenceNumber  uint64  `json:"lastSequenceNumber"`
	FirstSequenceNumber uint64  `json:"firstSequenceNumber"`
	FromSequenceNumber  uint64  `json:"fromSequenceNumber"`
	ToSequenceNumber    uint64  `json:"toSequenceNumber"`
	Frames              int     `json:"frames"`
	RemainingMinutes    int     `json:"remainingMinutes"`

	// Action is the request a worker's error answers.
	Action string `json:"action"`

	WorkerID string          `json:"workerId"`
	Sessions []WorkerSession `json:"sessions"`
}

// codec is the codec of an audioData message: absent means PCM.
func (m *wireMsg) codec() string {
	if m.Codec == "" {
		return CodecPCM
	}
	return m.Codec
}

// reset clears m for the next message, keeping the audio buffer.
func (m *wireMsg) reset() { *m = wireMsg{AudioData: m.AudioData[:0]} }

func (m *wireMsg) error() *Error {
	return &Error{Code: m.Code, Message: m.Message, HTTPStatus: m.HTTPStatus,
		RetryAfter: time.Duration(m.RetryAfter * float64(time.Second)), SessionID: m.SessionID,
		TargetLanguage: m.TargetLanguage, Action: m.Action}
}

func (m *wireMsg) event() Event {
	return Event{
		Type: m.Type, SessionID: m.SessionID, Timestamp: msTime(m.Timestamp),
		BroadcastState: m.BroadcastState, Volume: m.VolumeLevel, State: m.State, Reason: m.Reason,
		GracePeriod:    time.Duration(m.GracePeriodSeconds * float64(time.Second)),
		TargetLanguage: m.TargetLanguage, PreviousLanguage: m.PreviousLanguage, Message: m.Message,
		LastSequenceNumber: m.LastSequenceNumber, FirstSequenceNumber: m.FirstSequenceNumber,
		Epoch: m.Epoch, RemainingMinutes: m.RemainingMinutes,
		FromSequenceNumber: m.FromSequenceNumber, ToSequenceNumber: m.ToSequenceNumber, Frames: m.Frames,
	}
}

func (m *wireMsg) status() Status {
	st := Status{SessionID: m.SessionID, ListenerCount: m.ListenerCount, LanguageDistribution: m.LanguageDistribution,
		Duration: time.Duration(m.SessionDuration * float64(time.Second)), UpdateReason: m.UpdateReason,
		Timestamp: msTime(m.Timestamp)}
	if m.BroadcastState != nil {
		st.BroadcastState = *m.BroadcastState
	}
	if len(m.LanguageStatus) > 0 {
		st.Languages = make(map[string]ProducedLanguage, len(m.LanguageStatus))
		for l, r := range m.LanguageStatus {
			st.Languages[l] = ProducedLanguage{WorkerID: r.WorkerID, UpdatedAt: msTime(r.UpdatedAt),
				LanguageStatus: LanguageStatus{Stage: r.Stage, ErrorCode: r.ErrorCode, LatencyMs: r.LatencyMs}}
		}
	}
	return st
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// base64Bytes decodes a base64 JSON string into its existing buffer, so
// that a connection's reused wireMsg decodes audio without allocating.
type base64Bytes []byte

// UnmarshalJSON implements json.Unmarshaler.
func (b *base64Bytes) UnmarshalJSON(p []byte) error {
	if len(p) < 2 || p[0] != '"' {
		*b = (*b)[:0]
		if bytes.Equal(p, []byte("null")) {
			return nil
		}
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[base64Bytes]()}
	}
	raw := p[1 : len(p)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		// An escaped string (e.g. "\/"): unescape the slow way.
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return err
		}
		raw = []byte(s)
	}
	n := base64.StdEncoding.DecodedLen(len(raw))
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	n, err := base64.StdEncoding.Decode((*b)[:n], raw)
	if err != nil {
		return err
	}
	*b = (*b)[:n]
	return nil
}

// Binary audio frame layout (docs/protocol.md, section 3.1).
const (
	binaryHeaderSize = 20
	binaryVersion    = 1
	binaryKindAudio  = 1 // PCM
	binaryKindOpus   = 2 // one Opus packet
)

// parseBinary splits a binary audio frame. ok is false for frames of an
// unknown version or kind, which clients skip.
func parseBinary(p []byte) (lang [2]byte, seq uint64, ts int64, codec string, audio []byte, ok bool) {
	if len(p) < binaryHeaderSize || p[0] != binaryVersion {
		return lang, 0, 0, "", nil, false
	}
	switch p[1] {
	case binaryKindAudio:
		codec = CodecPCM
	case binaryKindOpus:
		codec = CodecOpus
	default:
		return lang, 0, 0, "", nil, false
	}
	lang = [2]byte{p[2], p[3]}
	return lang, binary.BigEndian.Uint64(p[4:]), int64(binary.BigEndian.Uint64(p[12:])), codec, p[binaryHeaderSize:], true
}

// sameLang reports whether a binary frame's language is lang, without
// allocating a string for it.
func sameLang(b [2]byte, lang string) bool {
	return len(lang) == 2 && b[0] == lang[0] && b[1] == lang[1]
}

// appendAudioAction appends {"action":…,"sessionId":…,[lang,]"audioData":…[,seq]}
// to dst. It is written by hand because it runs for every chunk a speaker or
// worker sends.
func appendAudioAction(dst []byte, action, sessionID, lang string, pcm []byte, seq uint64) []byte {
	dst = append(dst, `{"action":"`...)
	dst = append(dst, action...)
	dst = append(dst, `","sessionId":`...)
	dst = appendJSONString(dst, sessionID)
	if lang != "" {
		dst = append(dst, `,"targetLanguage":`...)
		dst = appendJSONString(dst, lang)
	}
	dst = append(dst, `,"audioData":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, pcm)
	dst = append(dst, '"')
	if seq > 0 {
		dst = append(dst, `,"sequenceNumber":`...)
		dst = strconv.AppendUint(dst, seq, 10)
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string. Session ids and language
// codes are plain ASCII and are copied as they are; anything else goes
// through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
