package pentecost

import (
	"context"
	"encoding/json"
	"time"
)

// SessionStatus is where a session is in its life.
type SessionStatus string

// Session statuses. A paused session keeps its listeners but sends no audio;
// an ended session accepts nobody and is purged after the retention period.
const (
	SessionActive SessionStatus = "active"
	SessionPaused SessionStatus = "paused"
	SessionEnded  SessionStatus = "ended"
)

// Valid reports whether s is one of the known statuses.
func (s SessionStatus) Valid() bool {
	return s == SessionActive || s == SessionPaused || s == SessionEnded
}

// QualityTier selects how much effort translation engines spend on a session.
type QualityTier string

// Quality tiers, as in the original system.
const (
	QualityStandard QualityTier = "standard"
	QualityPremium  QualityTier = "premium"
)

// Valid reports whether q is one of the known tiers.
func (q QualityTier) Valid() bool { return q == QualityStandard || q == QualityPremium }

// AudioPCM16 is the default audio format: signed 16-bit little-endian PCM,
// mono, 16 kHz. It is declared on each session so other codecs can follow.
const AudioPCM16 = "pcm_s16le_16000_mono"

// BroadcastState is what the speaker's controls have set. Listeners receive
// it on join and whenever it changes.
type BroadcastState struct {
	Paused bool    `json:"isPaused"`
	Muted  bool    `json:"isMuted"`
	Volume float64 `json:"volume"` // 0.0–1.0

	// SpeakerState is free text the speaker's client reports (e.g. "speaking").
	SpeakerState string `json:"speakerState,omitempty"`

	// ChangedAt is when any of the above last changed.
	ChangedAt time.Time `json:"-"`
}

// DefaultBroadcastState is the state of a new session: live, unmuted, full volume.
func DefaultBroadcastState() BroadcastState {
	return BroadcastState{Volume: 1.0}
}

// MarshalJSON writes ChangedAt as Unix milliseconds, like every timestamp.
func (b BroadcastState) MarshalJSON() ([]byte, error) {
	type plain BroadcastState
	return json.Marshal(struct {
		plain
		Active    bool  `json:"isActive"`
		ChangedAt int64 `json:"lastStateChange"`
	}{plain(b), !b.Paused, UnixMilli(b.ChangedAt)})
}

// Session is one live talk: a speaker, a source language and the listeners
// who join it by its memorable ID. OwnerID is the speaker's user ID; the API
// shows it only to that speaker, since for embedded accounts it is the login
// name, and leaves it out (empty) for everyone else.
type Session struct {
	ID             string         `json:"sessionId"`
	OwnerID        string         `json:"speakerId,omitempty"`
	SourceLanguage string         `json:"sourceLanguage"`
	QualityTier    QualityTier    `json:"qualityTier"`
	AudioFormat    string         `json:"audioFormat"`
	Status         SessionStatus  `json:"status"`
	BroadcastState BroadcastState `json:"broadcastState"`
	ListenerCount  int            `json:"listenerCount"`

	CreatedAt time.Time `json:"-"`
	// LastActiveAt is the last time a speaker used the session; the session
	// ends by itself when it has been idle for the configured maximum.
	LastActiveAt time.Time `json:"-"`
	ExpiresAt    time.Time `json:"-"`
	EndedAt      time.Time `json:"-"`
}

// MarshalJSON writes timestamps as Unix milliseconds, as the original system did.
func (s *Session) MarshalJSON() ([]byte, error) {
	type plain Session
	var endedAt *int64
	if !s.EndedAt.IsZero() {
		v := UnixMilli(s.EndedAt)
		endedAt = &v
	}
	return json.Marshal(struct {
		*plain
		CreatedAt    int64  `json:"createdAt"`
		LastActiveAt int64  `json:"lastActiveAt"`
		ExpiresAt    int64  `json:"expiresAt"`
		EndedAt      *int64 `json:"endedAt"`
	}{(*plain)(s), UnixMilli(s.CreatedAt), UnixMilli(s.LastActiveAt), UnixMilli(s.ExpiresAt), endedAt})
}

// UnixMilli returns t as Unix milliseconds, or 0 for the zero time.
func UnixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// SessionUpdate holds the fields a PATCH or a speaker's control may change.
// Nil fields are left alone.
type SessionUpdate struct {
	Status         *SessionStatus        `json:"status"`
	SourceLanguage *string               `json:"sourceLanguage"`
	QualityTier    *QualityTier          `json:"qualityTier"`
	BroadcastState *BroadcastStateUpdate `json:"broadcastState"`
}

// BroadcastStateUpdate changes parts of a BroadcastState. Nil fields are left alone.
type BroadcastStateUpdate struct {
	Paused       *bool    `json:"isPaused"`
	Muted        *bool    `json:"isMuted"`
	Volume       *float64 `json:"volume"`
	SpeakerState *string  `json:"speakerState"`
}

// SessionFilter selects sessions for FindSessions.
type SessionFilter struct {
	OwnerID *string
	Status  *SessionStatus
	Offset  int
	Limit   int
}

// SessionService manages sessions. Implementations validate input and check
// ownership against the user in the context (see UserFromContext).
type SessionService interface {
	// CreateSession creates a session owned by the user in ctx, filling in
	// its ID, timestamps and defaults.
	// Errors: EAUTHREQUIRED, EINVALIDLANGUAGE, EUNSUPPORTEDLANG, EVALIDATIONFIELD,
	// ESESSIONIDEXHAUSTED, EUNAVAILABLE.
	CreateSession(ctx context.Context, s *Session) error

	// FindSessionByID finds a session by an ID typed by a person: case,
	// spaces and surrounding blanks are forgiven. Ended sessions are found
	// until they are purged.
	// Errors: EINVALIDSESSIONID, ESESSIONNOTFOUND, EUNAVAILABLE.
	FindSessionByID(ctx context.Context, id string) (*Session, error)

	// FindSessions returns sessions matching the filter, newest first, and
	// the total number that match.
	// Errors: EUNAVAILABLE.
	FindSessions(ctx context.Context, filter SessionFilter) ([]*Session, int, error)

	// UpdateSession changes a session; only its owner may. Status and the
	// broadcast state's pause move together: pausing one pauses the other.
	// Errors: EAUTHREQUIRED, EFORBIDDEN, EINVALIDSESSIONID, ESESSIONNOTFOUND,
	// ESESSIONENDED, EINVALIDLANGUAGE, EUNSUPPORTEDLANG, EVALIDATIONFIELD, EUNAVAILABLE.
	UpdateSession(ctx context.Context, id string, upd SessionUpdate) (*Session, error)

	// EndSession ends a session at once; only its owner may.
	// Errors: EAUTHREQUIRED, EFORBIDDEN, EINVALIDSESSIONID, ESESSIONNOTFOUND,
	// ESESSIONENDED, EUNAVAILABLE.
	EndSession(ctx context.Context, id string) (*Session, error)

	// TouchSession records that the speaker used the session now, moving
	// its idle expiry forward. It does not check ownership: the caller has.
	// Errors: ESESSIONNOTFOUND, ESESSIONENDED, EUNAVAILABLE.
	TouchSession(ctx context.Context, id string) error

	// SetListenerCount records the number of live listeners of a session.
	// Errors: ESESSIONNOTFOUND, EUNAVAILABLE.
	SetListenerCount(ctx context.Context, id string, n int) error

	// ExpireSessions ends every session idle past its expiry and returns them.
	ExpireSessions(ctx context.Context) ([]*Session, error)

	// PurgeSessions deletes sessions ended longer ago than the retention
	// period and returns how many went.
	PurgeSessions(ctx context.Context) (int, error)
}
