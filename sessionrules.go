package pentecost

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// The rules of the SessionService contract that do not depend on where
// sessions are kept: what a new session looks like, how an update applies,
// when a session counts as ended. Every store uses them, so that all of them
// behave alike (the storetest suite holds them to it).

// MaxSpeakerStateLen bounds the free text of BroadcastState.SpeakerState, in bytes.
const MaxSpeakerStateLen = 64

// NewSession validates what CreateSession reads from in (SourceLanguage,
// QualityTier and AudioFormat) and returns the session to store for owner,
// created at now, without its ID.
// Errors: EINVALIDLANGUAGE, EUNSUPPORTEDLANG, EVALIDATIONFIELD.
func NewSession(in *Session, owner string, now time.Time, maxIdle time.Duration) (*Session, error) {
	lang, err := ValidateLanguage(in.SourceLanguage)
	if err != nil {
		return nil, err
	}
	tier := in.QualityTier
	if tier == "" {
		tier = QualityStandard
	} else if !tier.Valid() {
		return nil, fieldError("qualityTier", "Quality tier must be standard or premium.")
	}
	format := in.AudioFormat
	if format == "" {
		format = AudioPCM16
	} else if format != AudioPCM16 {
		return nil, fieldError("audioFormat", "Audio format is not supported.")
	}
	state := DefaultBroadcastState()
	state.ChangedAt = now
	s := &Session{
		OwnerID:        owner,
		SourceLanguage: lang,
		QualityTier:    tier,
		AudioFormat:    format,
		Status:         SessionActive,
		BroadcastState: state,
		CreatedAt:      now,
	}
	s.Touch(now, maxIdle)
	return s, nil
}

// Touch records use of s at now: it stays open until maxIdle later.
func (s *Session) Touch(now time.Time, maxIdle time.Duration) {
	s.LastActiveAt, s.ExpiresAt = now, now.Add(maxIdle)
}

// Apply validates upd and applies it to s at now. It reports whether the
// update asks for the session to end (the caller ends it with End). Status
// and the broadcast state's pause always agree afterwards; the state's
// ChangedAt moves only when the state changed. On error s is unchanged
// except for fields validated before the bad one.
// Errors: EINVALIDLANGUAGE, EUNSUPPORTEDLANG, EVALIDATIONFIELD.
func (s *Session) Apply(upd SessionUpdate, now time.Time) (end bool, err error) {
	if upd.SourceLanguage != nil {
		lang, err := ValidateLanguage(*upd.SourceLanguage)
		if err != nil {
			return false, err
		}
		s.SourceLanguage = lang
	}
	if upd.QualityTier != nil {
		if !upd.QualityTier.Valid() {
			return false, fieldError("qualityTier", "Quality tier must be standard or premium.")
		}
		s.QualityTier = *upd.QualityTier
	}

	state := s.BroadcastState
	var pausedSet *bool
	if b := upd.BroadcastState; b != nil {
		pausedSet = b.Paused
		if b.Paused != nil {
			state.Paused = *b.Paused
		}
		if b.Muted != nil {
			state.Muted = *b.Muted
		}
		if b.Volume != nil {
			v := *b.Volume
			if math.IsNaN(v) || v < 0 || v > 1 {
				return false, fieldError("broadcastState.volume", "Volume must be between 0.0 and 1.0.")
			}
			state.Volume = v
		}
		if b.SpeakerState != nil {
			if len(*b.SpeakerState) > MaxSpeakerStateLen || !utf8.ValidString(*b.SpeakerState) {
				return false, fieldError("broadcastState.speakerState", fmt.Sprintf("Speaker state must be UTF-8 text of at most %d bytes.", MaxSpeakerStateLen))
			}
			state.SpeakerState = *b.SpeakerState
		}
	}
	if upd.Status != nil {
		switch st := *upd.Status; st {
		case SessionActive, SessionPaused:
			paused := st == SessionPaused
			if pausedSet != nil && *pausedSet != paused {
				return false, fieldError("status", "Status and broadcastState.isPaused disagree.")
			}
			state.Paused = paused
		case SessionEnded:
			end = true
		default:
			return false, fieldError("status", "Status must be active, paused or ended.")
		}
	}

	s.Status = SessionActive
	if state.Paused {
		s.Status = SessionPaused
	}
	old := s.BroadcastState
	if state.Paused != old.Paused || state.Muted != old.Muted || state.Volume != old.Volume || state.SpeakerState != old.SpeakerState {
		state.ChangedAt = now
	}
	s.BroadcastState = state
	return end, nil
}

// End marks s ended at now; its listeners are gone.
func (s *Session) End(now time.Time) {
	s.Status = SessionEnded
	s.EndedAt = now
	s.ListenerCount = 0
}

// AsOf makes s what it is at now and returns it: a live session past its
// ExpiresAt has ended, at its ExpiresAt, even before a sweep stored that.
func (s *Session) AsOf(now time.Time) *Session {
	if s.Status != SessionEnded && !now.Before(s.ExpiresAt) {
		s.End(s.ExpiresAt)
	}
	return s
}

// fieldError is EVALIDATIONFIELD naming the offending field.
func fieldError(field, msg string) error {
	return &Error{Code: EVALIDATIONFIELD, Message: msg, Details: map[string]string{"field": field}}
}
